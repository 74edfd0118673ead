package firestore

import (
	"context"
	"fmt"
	"time"

	gfs "cloud.google.com/go/firestore"

	"github.com/farmobs/farm/pkg/state"
)

// runDoc is the stored form of a run document.
type runDoc struct {
	Key           string    `firestore:"key"`
	Fingerprint   string    `firestore:"fingerprint"`
	Phase         string    `firestore:"phase,omitempty"`
	Tasks         []byte    `firestore:"tasks,omitempty"`
	TasksEncoding string    `firestore:"tasks_encoding,omitempty"`
	TaskCount     int       `firestore:"task_count"`
	UpdatedAt     time.Time `firestore:"updated_at,omitempty"`
	ExpireAt      time.Time `firestore:"expire_at,omitempty"` // ExpireAtField
}

func (s *Store) runRef(source, key string) *gfs.DocumentRef {
	return s.sourceRef(source).Collection(RunsCollection).Doc(hashID(key))
}

// encodeRuns encodes every run before anything is written, so an oversized run fails the
// commit cleanly.
func encodeRuns(runs []*state.Run) ([]*runDoc, error) {
	docs := make([]*runDoc, len(runs))
	for i, r := range runs {
		tasks := r.Tasks
		if tasks == nil {
			tasks = map[string]state.Task{}
		}
		b, err := encodeBlob(tasks)
		if err != nil {
			return nil, fmt.Errorf("encode run %q: %w", r.Key, err)
		}
		if len(b) > maxBlobBytes {
			return nil, fmt.Errorf("%w: run %q: %d tasks encode to %d bytes, above the %d that fit in a Firestore document",
				state.ErrInvalid, r.Key, len(tasks), len(b), maxBlobBytes)
		}
		docs[i] = &runDoc{
			Key: r.Key, Fingerprint: r.Fingerprint, Phase: r.Phase,
			Tasks: b, TasksEncoding: encodingGzipJSON, TaskCount: len(tasks),
			UpdatedAt: r.UpdatedAt, ExpireAt: r.ExpireAt,
		}
	}
	return docs, nil
}

func (d *runDoc) run() (*state.Run, error) {
	tasks := map[string]state.Task{}
	if err := decodeBlob(d.TasksEncoding, d.Tasks, &tasks); err != nil {
		return nil, fmt.Errorf("decode the tasks of run %q: %w", d.Key, err)
	}
	return &state.Run{
		Key: d.Key, Fingerprint: d.Fingerprint, Phase: d.Phase, Tasks: tasks,
		UpdatedAt: d.UpdatedAt, ExpireAt: d.ExpireAt,
	}, nil
}

func (s *Store) writeRuns(ctx context.Context, source string, docs []*runDoc) error {
	writes := make([]write, len(docs))
	for i, d := range docs {
		writes[i] = write{name: "run " + d.Key, ref: s.runRef(source, d.Key), data: d}
	}
	return s.bulkSet(ctx, "write the runs of "+source, writes)
}

// LoadRuns reads the runs of keys with GetAll, 300 documents per call.
func (s *Store) LoadRuns(ctx context.Context, source string, keys []string) (map[string]*state.Run, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckLoad(source, keys); err != nil {
		return nil, err
	}
	keys = state.Unique(keys)
	out := make(map[string]*state.Run, len(keys))
	for start := 0; start < len(keys); start += getAllBatch {
		batch := keys[start:min(start+getAllBatch, len(keys))]
		if err := s.loadBatch(ctx, source, batch, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) loadBatch(ctx context.Context, source string, keys []string, out map[string]*state.Run) error {
	refs := make([]*gfs.DocumentRef, len(keys))
	for i, k := range keys {
		refs[i] = s.runRef(source, k)
	}
	snaps, err := s.client.GetAll(ctx, refs)
	s.usage.Read(len(refs))
	if err != nil {
		return fail(ctx, fmt.Sprintf("read %d runs of %s", len(refs), source), err)
	}
	for i, snap := range snaps {
		if !snap.Exists() {
			continue
		}
		var d runDoc
		if err := snap.DataTo(&d); err != nil {
			return fmt.Errorf("firestore: decode run %q (%s): %w", keys[i], snap.Ref.Path, err)
		}
		if d.Key != keys[i] {
			return fmt.Errorf("firestore: run document %s holds key %q, want %q", snap.Ref.Path, d.Key, keys[i])
		}
		r, err := d.run()
		if err != nil {
			return fmt.Errorf("firestore: %s: %w", snap.Ref.Path, err)
		}
		out[keys[i]] = r
	}
	return nil
}
