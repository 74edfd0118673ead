package filestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/farmobs/farm/pkg/state"
)

// formatVersion is written in the file; another version is refused rather than misread.
// Version 1 kept runs and the index inline; it is still read, and moved out by the next Commit.
const formatVersion = 2

// fileData is the whole file.
type fileData struct {
	Version int                    `json:"version"`
	Sources map[string]*sourceData `json:"sources"`
	// Ledger holds, per namespace, each recorded id's entry.
	Ledger map[string]map[string]ledgerEntry `json:"ledger"`
}

// ledgerEntry is one ledger entry: its expiry and its data.
type ledgerEntry struct {
	ExpireAt time.Time `json:"expire_at"`
	Data     []byte    `json:"data,omitempty"`
}

// UnmarshalJSON also reads the entries of earlier files, which were their expiry alone.
func (e *ledgerEntry) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*e = ledgerEntry{}
		return json.Unmarshal(b, &e.ExpireAt)
	}
	type plain ledgerEntry
	return json.Unmarshal(b, (*plain)(e))
}

type sourceData struct {
	LeaseHolder  string    `json:"lease_holder,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	Cursor       time.Time `json:"cursor,omitzero"`
	// IndexGens names the index parts (split.go); Index and Runs are the inline index and runs of
	// a version 1 file, until its next Commit.
	IndexGens []int64             `json:"index_gens,omitempty"`
	Index     state.Index         `json:"index,omitempty"`
	Runs      map[string]*runData `json:"runs,omitempty"`
}

type runData struct {
	Fingerprint string                `json:"fingerprint"`
	Phase       string                `json:"phase,omitempty"`
	Tasks       map[string]state.Task `json:"tasks,omitempty"`
	UpdatedAt   time.Time             `json:"updated_at,omitzero"`
	ExpireAt    time.Time             `json:"expire_at,omitzero"`
}

func newFileData() *fileData {
	return &fileData{Version: formatVersion, Sources: map[string]*sourceData{}, Ledger: map[string]map[string]ledgerEntry{}}
}

// source returns the source's data, creating it if asked.
func (d *fileData) source(name string, create bool) *sourceData {
	sd := d.Sources[name]
	if sd == nil && create {
		sd = &sourceData{}
		d.Sources[name] = sd
	}
	return sd
}

// prune drops what a TTL policy would have deleted by now.
func (d *fileData) prune(now time.Time) {
	for _, sd := range d.Sources {
		maps.DeleteFunc(sd.Runs, func(_ string, r *runData) bool { return !r.ExpireAt.IsZero() && !now.Before(r.ExpireAt) })
	}
	for ns, ids := range d.Ledger {
		maps.DeleteFunc(ids, func(_ string, e ledgerEntry) bool { return !now.Before(e.ExpireAt) })
		if len(ids) == 0 {
			delete(d.Ledger, ns)
		}
	}
}

// readFile parses path; a missing file is an empty store.
func readFile(path string) (*fileData, fs.FileInfo, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newFileData(), nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read state file: %w", err)
	}
	d := newFileData()
	if err := json.Unmarshal(b, d); err != nil {
		return nil, nil, fmt.Errorf("state file %s is damaged (fix or remove it): %w", path, err)
	}
	if d.Version != formatVersion && d.Version != 1 {
		return nil, nil, fmt.Errorf("state file %s has format version %d, this FARM reads %d", path, d.Version, formatVersion)
	}
	if d.Sources == nil {
		d.Sources = map[string]*sourceData{}
	}
	if d.Ledger == nil {
		d.Ledger = map[string]map[string]ledgerEntry{}
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("stat state file: %w", err)
	}
	return d, info, nil
}

// writeFile replaces path atomically: temp file, fsync, rename, fsync of the directory.
func writeFile(path string, d *fileData) (fs.FileInfo, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*") // created 0600
	if err != nil {
		return nil, fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("replace state file: %w", err)
	}
	syncDir(dir)
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat state file: %w", err)
	}
	return info, nil
}

// syncDir makes the rename durable. Best effort: not every system can sync a directory.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}
