package firestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	gfs "cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/farmobs/farm/pkg/state"
)

// Fields of a source document.
const (
	fieldSource        = "source"
	fieldLeaseHolder   = "lease_holder"
	fieldLeaseExpires  = "lease_expires"
	fieldCursor        = "cursor"
	fieldIndex         = "index"
	fieldIndexEncoding = "index_encoding"
	fieldIndexRuns     = "index_runs"
	fieldCommittedAt   = "committed_at"
)

// sourceDoc is the stored form of a source document.
type sourceDoc struct {
	Source        string    `firestore:"source"`
	LeaseHolder   string    `firestore:"lease_holder,omitempty"`
	LeaseExpires  time.Time `firestore:"lease_expires,omitempty"`
	Cursor        time.Time `firestore:"cursor,omitempty"`
	Index         []byte    `firestore:"index,omitempty"`
	IndexEncoding string    `firestore:"index_encoding,omitempty"`
	IndexRuns     int       `firestore:"index_runs"`
	IndexParts    int       `firestore:"index_parts,omitempty"`
	IndexGens     []int64   `firestore:"index_gens,omitempty"`
	CommittedAt   time.Time `firestore:"committed_at,omitempty"`
}

func (s *Store) sourceRef(source string) *gfs.DocumentRef {
	return s.client.Collection(SourcesCollection).Doc(escapeID(source))
}

// readSource reads the source document in tx; a missing document is an empty one.
func (s *Store) readSource(tx *gfs.Transaction, ref *gfs.DocumentRef) (*sourceDoc, error) {
	snaps, err := tx.GetAll([]*gfs.DocumentRef{ref})
	s.usage.Read(1)
	if err != nil {
		return nil, err
	}
	d := &sourceDoc{}
	if !snaps[0].Exists() {
		return d, nil
	}
	if err := snaps[0].DataTo(d); err != nil {
		return nil, fmt.Errorf("decode %s: %w", ref.Path, err)
	}
	return d, nil
}

// Acquire takes the lease without a transaction: read the source document, refuse if another
// holder's lease has not expired at now, else write holder and expiry on the condition that the
// document has not changed since it was read (Create when there is none yet). A condition that
// fails means another caller wrote the document in between: it took the lease, and this caller is
// refused at once. A transaction instead makes simultaneous callers queue for the document's lock
// (the emulator answers them "Transaction lock timeout" after many seconds) and lets a caller that
// waited poll right after the one that held the lease.
func (s *Store) Acquire(ctx context.Context, source, holder string, now time.Time, ttl time.Duration) (*state.Source, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckAcquire(source, holder, ttl); err != nil {
		return nil, err
	}
	ref := s.sourceRef(source)
	expires := now.Add(ttl)
	snap, doc, err := s.getSource(ctx, ref)
	if err != nil {
		return nil, fail(ctx, "acquire the lease of "+source, err)
	}
	if err := state.LeaseHeld(holder, now, doc.LeaseHolder, doc.LeaseExpires); err != nil {
		return nil, err
	}
	if snap.Exists() {
		_, err = ref.Update(ctx, []gfs.Update{
			{Path: fieldSource, Value: source},
			{Path: fieldLeaseHolder, Value: holder},
			{Path: fieldLeaseExpires, Value: expires},
		}, gfs.LastUpdateTime(snap.UpdateTime))
	} else {
		_, err = ref.Create(ctx, map[string]any{fieldSource: source, fieldLeaseHolder: holder, fieldLeaseExpires: expires})
	}
	if c := status.Code(err); c == codes.FailedPrecondition || c == codes.AlreadyExists {
		return nil, s.lostRace(ctx, ref, holder, expires)
	}
	if err != nil {
		return nil, fail(ctx, "acquire the lease of "+source, err)
	}
	s.usage.Wrote(1)
	// The parts are read once the lease is ours, outside the transaction (they would join its
	// read set); an index that cannot be read gives the lease back.
	idx, err := s.readIndex(ctx, source, doc)
	if err != nil {
		if rerr := s.Release(context.WithoutCancel(ctx), source, holder); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("firestore: acquire the lease of %s: %w", source, err)
	}
	return &state.Source{Cursor: doc.Cursor, Index: idx, LeaseHolder: holder, LeaseExpires: expires}, nil
}

// getSource reads the source document outside any transaction; a missing one is empty (its
// snapshot does not exist).
func (s *Store) getSource(ctx context.Context, ref *gfs.DocumentRef) (*gfs.DocumentSnapshot, *sourceDoc, error) {
	snap, err := ref.Get(ctx)
	s.usage.Read(1)
	d := &sourceDoc{}
	if status.Code(err) == codes.NotFound {
		return snap, d, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if err := snap.DataTo(d); err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", ref.Path, err)
	}
	return snap, d, nil
}

// lostRace is the *LeaseHeldError of a caller whose conditional write lost to another's: the
// document is read again to say who holds the lease now.
func (s *Store) lostRace(ctx context.Context, ref *gfs.DocumentRef, holder string, expires time.Time) error {
	held := &state.LeaseHeldError{Holder: "a poll that has just finished", Expires: expires}
	if _, d, err := s.getSource(ctx, ref); err == nil && d.LeaseHolder != "" && d.LeaseHolder != holder {
		held.Holder, held.Expires = d.LeaseHolder, d.LeaseExpires
	}
	return held
}

// Peek reads the source document outside any transaction, without taking the lease.
func (s *Store) Peek(ctx context.Context, source string) (*state.Source, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckName("source", source); err != nil {
		return nil, err
	}
	ref := s.sourceRef(source)
	snap, err := ref.Get(ctx)
	s.usage.Read(1)
	out := &state.Source{Index: state.Index{}}
	if status.Code(err) == codes.NotFound {
		return out, nil
	}
	if err != nil {
		return nil, fail(ctx, "read the source "+source, err)
	}
	var d sourceDoc
	if err := snap.DataTo(&d); err != nil {
		return nil, fmt.Errorf("firestore: decode %s: %w", ref.Path, err)
	}
	if out.Index, err = s.readIndex(ctx, source, &d); err != nil {
		return nil, fmt.Errorf("firestore: %w", err)
	}
	out.Cursor, out.LeaseHolder, out.LeaseExpires = d.Cursor, d.LeaseHolder, d.LeaseExpires
	return out, nil
}

// Release clears the lease if holder holds it.
func (s *Store) Release(ctx context.Context, source, holder string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckLease(source, holder); err != nil {
		return err
	}
	ref := s.sourceRef(source)
	wrote := false
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *gfs.Transaction) error {
		wrote = false
		d, err := s.readSource(tx, ref)
		if err != nil || d.LeaseHolder != holder {
			return err
		}
		wrote = true
		return tx.Update(ref, clearLease())
	}, gfs.MaxAttempts(s.maxAttempts))
	if err != nil {
		return fail(ctx, "release the lease of "+source, err)
	}
	if wrote {
		s.usage.Wrote(1)
	}
	return nil
}

func clearLease() []gfs.Update {
	return []gfs.Update{{Path: fieldLeaseHolder, Value: gfs.Delete}, {Path: fieldLeaseExpires, Value: gfs.Delete}}
}

// Commit writes runs, then the index parts that changed, then, in a transaction that checks
// holder still holds the lease, the cursor (unless zero) and the parts' generations, and clears
// the lease.
//
// The run documents and index parts are written first and outside the transaction (a transaction
// would cap a poll at 500 runs): if the lease turns out to be lost, or the process dies before the
// transaction, the runs are ahead of the index. That is safe: the next poll sees those runs as
// changed, reads them and finds nothing new to publish. Parts are written only if unchanged since
// this store read them (see index.go).
//
// A holder whose lease expired but was not taken by anyone still holds it: Commit has no clock,
// and nobody else can have polled in the meantime.
func (s *Store) Commit(ctx context.Context, source, holder string, runs []*state.Run, cursor time.Time, index state.Index) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckLease(source, holder); err != nil {
		return err
	}
	if err := state.CheckRuns(runs); err != nil {
		return err
	}
	docs, err := encodeRuns(runs)
	if err != nil {
		return err
	}
	n, writes, keep, err := s.planIndex(source, index, len(runs))
	if err != nil {
		return fmt.Errorf("%w: %w", state.ErrInvalid, err)
	}
	if err := s.writeRuns(ctx, source, docs); err != nil {
		return err
	}
	if s.afterRuns != nil {
		if err := s.afterRuns(ctx); err != nil {
			return err
		}
	}
	now := s.clock.Now()
	gen := now.UnixNano()
	inTx, before := splitWrites(writes)
	if err := s.writePartsBefore(ctx, source, holder, before, gen, now); err != nil {
		s.index.drop(source)
		return err
	}
	parts := make([]*cachedPart, n)
	gens := make([]int64, n)
	for i := range parts {
		parts[i] = keep[i]
	}
	for _, w := range writes {
		parts[w.i] = &cachedPart{gen: gen, entries: w.entries}
	}
	for i, p := range parts {
		gens[i] = p.gen
	}
	had, err := s.commitSource(ctx, source, holder, cursor, gens, len(index), inTx, gen, now)
	if err != nil {
		s.index.drop(source)
		return err
	}
	s.usage.Wrote(len(inTx))
	s.index.set(source, parts)
	s.deleteParts(ctx, source, n, had)
	return nil
}

// WriteRuns writes run states ahead of the commit, as Commit itself does first (see Commit): the
// poll engine stores each published batch at once instead of holding them all.
func (s *Store) WriteRuns(ctx context.Context, source string, runs []*state.Run) error {
	if err := state.CheckName("source", source); err != nil {
		return err
	}
	if err := state.CheckRuns(runs); err != nil {
		return err
	}
	docs, err := encodeRuns(runs)
	if err != nil {
		return err
	}
	return s.writeRuns(ctx, source, docs)
}

// CheckCommit tells, before anything is published, whether Commit could store runs: a run whose
// tasks do not fit a document is refused now rather than after its deltas went out. The index
// always fits: it takes as many parts as it needs.
func (s *Store) CheckCommit(runs []*state.Run) error {
	if err := state.CheckRuns(runs); err != nil {
		return err
	}
	for _, r := range runs {
		// An encoded task takes well under 50 bytes: only very large runs can reach the limit.
		if len(r.Tasks) < maxBlobBytes/50 {
			continue
		}
		if _, err := encodeRuns([]*state.Run{r}); err != nil {
			return err
		}
	}
	return nil
}

// commitSource is the commit transaction. It returns how many index parts the source had before.
func (s *Store) commitSource(ctx context.Context, source, holder string, cursor time.Time, gens []int64, runs int,
	parts []*partWrite, gen int64, now time.Time) (int, error) {
	ref := s.sourceRef(source)
	before := 0
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *gfs.Transaction) error {
		d, err := s.readSource(tx, ref)
		if err != nil {
			return err
		}
		if d.LeaseHolder != holder {
			return state.LeaseLost(source, holder, d.LeaseHolder, d.LeaseExpires)
		}
		before = d.IndexParts
		fields := map[string]any{
			fieldIndex:         gfs.Delete, // the index of one blob, before it was split
			fieldIndexEncoding: gfs.Delete,
			fieldIndexParts:    len(gens),
			fieldIndexGens:     gens,
			fieldIndexRuns:     runs,
			fieldLeaseHolder:   gfs.Delete,
			fieldLeaseExpires:  gfs.Delete,
			fieldCommittedAt:   gfs.ServerTimestamp,
		}
		if len(gens) == 0 {
			fields[fieldIndexGens] = gfs.Delete
		}
		if cursor.After(d.Cursor) { // never backwards (clocks of two instances may disagree)
			fields[fieldCursor] = cursor
		}
		for _, w := range parts {
			if err := tx.Set(s.partRef(source, w.i), w.doc(gen, now)); err != nil {
				return err
			}
		}
		return tx.Set(ref, fields, gfs.MergeAll)
	}, gfs.MaxAttempts(s.maxAttempts))
	if errors.Is(err, state.ErrLeaseLost) {
		return 0, err
	}
	if err != nil {
		return 0, fail(ctx, "commit "+source, err)
	}
	s.usage.Wrote(1)
	return before, nil
}
