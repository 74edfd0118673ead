package firestore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	gfs "cloud.google.com/go/firestore"

	"github.com/farmobs/farm/pkg/state"
)

// The fingerprint index is split over part documents, so that it has no size ceiling and a commit
// writes only the parts that changed:
//
//	farm_sources/{source}/index/{i}   i in 0..index_parts-1: entries (gzip of the JSON Index of
//	                                  the keys whose FNV-1a hash is i modulo index_parts),
//	                                  entries_encoding, runs, gen
//
// The source document names the parts (index_parts) and the generation of each (index_gens). The
// parts that changed are written in the commit transaction, atomically with the lease check and
// the cursor, up to txPartBytes of them. Beyond that (a new layout, or a very large index with
// most of it changing at once) the rest is written just before the transaction, after a read
// that checks the lease is still held: a crash in between leaves parts ahead of the source
// document, which is safe for the same reason as run documents ahead of the index (their runs
// were published and their states written).
//
// The store keeps every part it read or wrote, with its generation, so an Acquire reads only the
// parts another process wrote since: a warm instance reads none. A poll costs Acquire 1+1,
// LoadRuns 1 per changed run, run writes 1 per changed run, parts written, commit 1+1 (+1 read
// when parts overflow the transaction).

// Fields of an index part document.
const (
	IndexCollection    = "index" // a subcollection of each source document
	fieldIndexParts    = "index_parts"
	fieldIndexGens     = "index_gens"
	fieldPartEntries   = "entries"
	fieldPartEncoding  = "entries_encoding"
	fieldPartRuns      = "runs"
	fieldPartGen       = "gen"
	fieldPartUpdatedAt = "updated_at"
)

// partRuns is the number of index entries a part is sized for: about 150 KB encoded (an active
// Argo entry takes ~37 bytes), far below the document limit, so that rewriting a part is cheap.
// The part count grows by doubling when the index outgrows partRuns×2 per part, and shrinks when
// it falls below a quarter; a part that would still not fit forces more parts.
const partRuns = 4000

type partDoc struct {
	Entries   []byte    `firestore:"entries,omitempty"`
	Encoding  string    `firestore:"entries_encoding,omitempty"`
	Runs      int       `firestore:"runs"`
	Gen       int64     `firestore:"gen"`
	UpdatedAt time.Time `firestore:"updated_at,omitempty"`
}

// txPartBytes bounds the encoded parts a commit transaction carries (its request is limited to
// 10 MiB).
const txPartBytes = 4 << 20

// cachedPart is a part as this store last read or wrote it.
type cachedPart struct {
	gen     int64
	entries state.Index
}

// indexCache holds, per source, the parts this store knows.
type indexCache struct {
	mu      sync.Mutex
	sources map[string][]*cachedPart
}

func (c *indexCache) get(source string) []*cachedPart {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sources[source]
}

func (c *indexCache) set(source string, parts []*cachedPart) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sources == nil {
		c.sources = map[string][]*cachedPart{}
	}
	c.sources[source] = parts
}

func (c *indexCache) drop(source string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sources, source)
}

func (s *Store) partRef(source string, i int) *gfs.DocumentRef {
	return s.sourceRef(source).Collection(IndexCollection).Doc(strconv.Itoa(i))
}

// readIndex returns the index the source document d describes, reading only the parts whose
// generation this store does not hold, and remembers them.
func (s *Store) readIndex(ctx context.Context, source string, d *sourceDoc) (state.Index, error) {
	if d.IndexParts == 0 {
		// Before the index was split (or never committed): the one blob of the source document.
		idx := state.Index{}
		if err := decodeBlob(d.IndexEncoding, d.Index, &idx); err != nil {
			return nil, fmt.Errorf("decode the index of %s: %w", source, err)
		}
		s.index.drop(source)
		return idx, nil
	}
	if len(d.IndexGens) != d.IndexParts {
		return nil, fmt.Errorf("the source document of %s names %d index parts but %d generations", source, d.IndexParts, len(d.IndexGens))
	}
	cached := s.index.get(source)
	parts := make([]*cachedPart, d.IndexParts)
	var refs []*gfs.DocumentRef
	var want []int
	for i := range parts {
		if i < len(cached) && cached[i] != nil && cached[i].gen == d.IndexGens[i] {
			parts[i] = cached[i]
			continue
		}
		refs = append(refs, s.partRef(source, i))
		want = append(want, i)
	}
	for start := 0; start < len(refs); start += getAllBatch {
		batch := refs[start:min(start+getAllBatch, len(refs))]
		snaps, err := s.client.GetAll(ctx, batch)
		s.usage.Read(len(batch))
		if err != nil {
			return nil, fail(ctx, fmt.Sprintf("read %d index parts of %s", len(batch), source), err)
		}
		for j, snap := range snaps {
			i := want[start+j]
			if !snap.Exists() {
				return nil, fmt.Errorf("firestore: index part %d of %s is missing (%s)", i, source, snap.Ref.Path)
			}
			var pd partDoc
			if err := snap.DataTo(&pd); err != nil {
				return nil, fmt.Errorf("firestore: decode %s: %w", snap.Ref.Path, err)
			}
			entries := state.Index{}
			if err := decodeBlob(pd.Encoding, pd.Entries, &entries); err != nil {
				return nil, fmt.Errorf("firestore: decode the entries of %s: %w", snap.Ref.Path, err)
			}
			// A generation other than the committed one is a part written before a commit that
			// did not complete: ahead of the source document, which is safe (see above).
			parts[i] = &cachedPart{gen: pd.Gen, entries: entries}
		}
	}
	s.index.set(source, parts)
	n := 0
	for _, p := range parts {
		n += len(p.entries)
	}
	idx := make(state.Index, n)
	for _, p := range parts {
		maps.Copy(idx, p.entries)
	}
	return idx, nil
}

// partWrite is one part document to write at commit.
type partWrite struct {
	i       int
	entries state.Index
	blob    []byte
}

// planIndex splits index into parts and returns the part count, the parts to write and the
// parts unchanged (kept as cached). runsWritten is the runs of this commit: the part count only
// changes when the commit writes at least as many runs as the parts it would rewrite, so that
// parts written never exceed changed runs, unless a part would not fit a document.
func (s *Store) planIndex(source string, index state.Index, runsWritten int) (int, []*partWrite, []*cachedPart, error) {
	cached := s.index.get(source)
	n := len(cached)
	if len(index) == 0 && n == 0 {
		return 0, nil, nil, nil // an empty index needs no part
	}
	want := max(1, state.PartsFor(len(index), partRuns))
	switch {
	case n == 0:
		n = want
	case want >= 2*n && runsWritten >= want, want*4 <= n && runsWritten >= want:
		n = want
	}
	for {
		writes, keep, err := s.splitIndex(source, index, n, n != len(cached))
		var tooBig *partTooBig
		if errors.As(err, &tooBig) && n < 1<<16 {
			n *= 2
			continue
		}
		return n, writes, keep, err
	}
}

type partTooBig struct{ size int }

func (e *partTooBig) Error() string { return fmt.Sprintf("an index part encodes to %d bytes", e.size) }

func (s *Store) splitIndex(source string, index state.Index, n int, reshard bool) ([]*partWrite, []*cachedPart, error) {
	byPart := index.Split(n)
	cached := s.index.get(source)
	keep := make([]*cachedPart, n)
	var writes []*partWrite
	for i, entries := range byPart {
		var old *cachedPart
		if !reshard && i < len(cached) {
			old = cached[i]
		}
		if old != nil && state.OnlyDropsInactive(old.entries, entries) {
			// Nothing new, at most finished runs leaving: rewriting the part would cost a write
			// for no change a poll acts on (an inactive entry is never followed up). The next
			// write of this part drops them.
			keep[i] = old
			continue
		}
		blob, err := encodeBlob(entries)
		if err != nil {
			return nil, nil, fmt.Errorf("encode index part %d of %s: %w", i, source, err)
		}
		if len(blob) > maxBlobBytes {
			return nil, nil, &partTooBig{len(blob)}
		}
		writes = append(writes, &partWrite{i: i, entries: entries, blob: blob})
	}
	return writes, keep, nil
}

// splitWrites returns the writes that fit in the commit transaction and the overflow.
func splitWrites(writes []*partWrite) (inTx, before []*partWrite) {
	size := 0
	for _, w := range writes {
		if size+len(w.blob) <= txPartBytes {
			size += len(w.blob)
			inTx = append(inTx, w)
			continue
		}
		before = append(before, w)
	}
	return inTx, before
}

func (w *partWrite) doc(gen int64, now time.Time) *partDoc {
	return &partDoc{Entries: w.blob, Encoding: encodingGzipJSON, Runs: len(w.entries), Gen: gen, UpdatedAt: now}
}

// writePartsBefore writes the parts that do not fit in the commit transaction, after checking
// that holder still holds the lease.
func (s *Store) writePartsBefore(ctx context.Context, source, holder string, writes []*partWrite, gen int64, now time.Time) error {
	if len(writes) == 0 {
		return nil
	}
	ref := s.sourceRef(source)
	snap, err := ref.Get(ctx)
	s.usage.Read(1)
	if err != nil {
		return fail(ctx, "check the lease of "+source, err)
	}
	var d sourceDoc
	if err := snap.DataTo(&d); err != nil {
		return fmt.Errorf("firestore: decode %s: %w", ref.Path, err)
	}
	if d.LeaseHolder != holder {
		return state.LeaseLost(source, holder, d.LeaseHolder, d.LeaseExpires)
	}
	ws := make([]write, len(writes))
	for i, w := range writes {
		ws[i] = write{name: "index part " + strconv.Itoa(w.i), ref: s.partRef(source, w.i), data: w.doc(gen, now)}
	}
	return s.bulkSet(ctx, "write the index of "+source, ws)
}

// deleteParts removes the part documents from n on, left by a layout with more parts.
func (s *Store) deleteParts(ctx context.Context, source string, from, to int) {
	if from >= to {
		return
	}
	bw := s.client.BulkWriter(ctx)
	var jobs []*gfs.BulkWriterJob
	for i := from; i < to; i++ {
		if j, err := bw.Delete(s.partRef(source, i)); err == nil {
			jobs = append(jobs, j)
		}
	}
	bw.End()
	for _, j := range jobs {
		if _, err := j.Results(); err == nil {
			s.usage.Wrote(1)
		}
	}
}
