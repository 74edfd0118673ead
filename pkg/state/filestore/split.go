package filestore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/state"
)

// Runs and the fingerprint index live beside the state file, in "<file>.d/<source hash>/", so
// that a poll rewrites what it changed rather than the whole estate:
//
//	runs/<key hash>.json      one file per run, replaced (temp file and rename) when it changes
//	index-<i>-<gen>.json      part i of the index (state.PartOf), written
//	                          under a new generation when it changes
//
// The state file lists the generation of every part (index_gens) and stays the commit point: a
// Commit writes the runs, then the new parts, then the state file, then removes the parts it
// superseded. After a crash the cursor and index are one whole commit; run files may be one commit
// ahead, which is safe for the reason the Firestore store gives (their changes were published).

// filePartRuns sizes index parts like the Firestore store's.
const filePartRuns = 4000

type runFile struct {
	Key string `json:"key"`
	runData
}

type filePart struct {
	gen     int64
	entries state.Index
}

func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func (s *Store) sourceDir(source string) string {
	return filepath.Join(s.path+".d", hashName(source))
}

func (s *Store) runPath(source, key string) string {
	return filepath.Join(s.sourceDir(source), "runs", hashName(key)+".json")
}

func (s *Store) partPath(source string, i int, gen int64) string {
	return filepath.Join(s.sourceDir(source), fmt.Sprintf("index-%d-%d.json", i, gen))
}

// writeSmall replaces path atomically (temp file, rename), without the syncs of the state file:
// losing a run file to a power cut only makes its run look changed again.
func writeSmall(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeRunFiles writes each run's file.
func (s *Store) writeRunFiles(source string, runs map[string]*runData) error {
	for key, r := range runs {
		if err := writeSmall(s.runPath(source, key), runFile{Key: key, runData: *r}); err != nil {
			return fmt.Errorf("write run %q: %w", key, err)
		}
	}
	return nil
}

// readRunFile returns the stored run of key, nil if there is none or it expired by now.
func (s *Store) readRunFile(source, key string, now time.Time) (*runData, error) {
	b, err := os.ReadFile(s.runPath(source, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f runFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("run file of %q is damaged: %w", key, err)
	}
	if f.Key != key {
		return nil, fmt.Errorf("run file %s holds key %q, want %q", s.runPath(source, key), f.Key, key)
	}
	if !f.ExpireAt.IsZero() && !now.Before(f.ExpireAt) {
		return nil, nil // what a TTL policy would have deleted
	}
	return &f.runData, nil
}

// readIndex returns the index sd names: its parts (reusing those this store holds at the same
// generation), or the inline index of a file written before the split.
func (s *Store) readIndex(source string, sd *sourceData) (state.Index, error) {
	if sd == nil {
		return state.Index{}, nil
	}
	if sd.IndexGens == nil {
		return maps.Clone(sd.Index), nil
	}
	cached := s.parts[source]
	parts := make([]*filePart, len(sd.IndexGens))
	for i, gen := range sd.IndexGens {
		if i < len(cached) && cached[i] != nil && cached[i].gen == gen {
			parts[i] = cached[i]
			continue
		}
		b, err := os.ReadFile(s.partPath(source, i, gen))
		if err != nil {
			return nil, fmt.Errorf("index part %d of %s: %w", i, source, err)
		}
		p := &filePart{gen: gen, entries: state.Index{}}
		if err := json.Unmarshal(b, &p.entries); err != nil {
			return nil, fmt.Errorf("index part %d of %s is damaged: %w", i, source, err)
		}
		parts[i] = p
	}
	if s.parts == nil {
		s.parts = map[string][]*filePart{}
	}
	s.parts[source] = parts
	idx := state.Index{}
	for _, p := range parts {
		maps.Copy(idx, p.entries)
	}
	return idx, nil
}

// writeIndex writes the parts of index that differ from what sd names, under generation gen,
// sets sd's generations, and returns how many parts it wrote.
func (s *Store) writeIndex(source string, sd *sourceData, index state.Index, gen int64) (written int, err error) {
	if _, err := s.readIndex(source, sd); err != nil { // the parts as committed, to compare with
		return 0, err
	}
	n := state.PartsFor(len(index), filePartRuns)
	cached := s.parts[source]
	if sd.IndexGens == nil || len(cached) != n {
		cached = nil // a new layout: every part is written
	}
	byPart := index.Split(n)
	gens := make([]int64, 0, n)[:n]
	parts := make([]*filePart, n)
	for i, entries := range byPart {
		if cached != nil && state.OnlyDropsInactive(cached[i].entries, entries) {
			// Unchanged, or only finished runs leaving: as in the Firestore store, the part is
			// not rewritten for entries a poll never follows up; its next write drops them.
			gens[i], parts[i] = cached[i].gen, cached[i]
			continue
		}
		if err := writeSmall(s.partPath(source, i, gen), entries); err != nil {
			return written, fmt.Errorf("write index part %d of %s: %w", i, source, err)
		}
		written++
		gens[i], parts[i] = gen, &filePart{gen: gen, entries: entries}
	}
	sd.IndexGens, sd.Index = gens, nil
	if s.parts == nil {
		s.parts = map[string][]*filePart{}
	}
	s.parts[source] = parts
	return written, nil
}

// nextGen is a generation above every one sd names.
func nextGen(sd *sourceData, now time.Time) int64 {
	g := now.UnixNano()
	for _, x := range sd.IndexGens {
		g = max(g, x+1)
	}
	return g
}

// orphanParts lists part files of source that no generation of sd names (left by a commit that
// did not complete).
func (s *Store) orphanParts(source string, sd *sourceData) []string {
	names, _ := filepath.Glob(filepath.Join(s.sourceDir(source), "index-*-*.json"))
	var out []string
	for _, name := range names {
		f := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "index-"), ".json")
		is, gs, ok := strings.Cut(f, "-")
		i, err1 := strconv.Atoi(is)
		g, err2 := strconv.ParseInt(gs, 10, 64)
		if !ok || err1 != nil || err2 != nil || i >= len(sd.IndexGens) || sd.IndexGens[i] != g {
			out = append(out, name)
		}
	}
	return out
}
