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
	snap, d, err := s.getSource(ctx, ref)
	if err != nil {
		return nil, fail(ctx, "acquire the lease of "+source, err)
	}
	if err := state.LeaseHeld(holder, now, d.LeaseHolder, d.LeaseExpires); err != nil {
		return nil, err
	}
	// Decoded before taking the lease: a corrupt index must not leave a lease behind.
	idx := state.Index{}
	if err := decodeBlob(d.IndexEncoding, d.Index, &idx); err != nil {
		return nil, fmt.Errorf("firestore: decode the index of %s: %w", ref.Path, err)
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
	return &state.Source{Cursor: d.Cursor, Index: idx, LeaseHolder: holder, LeaseExpires: expires}, nil
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
	if err := decodeBlob(d.IndexEncoding, d.Index, &out.Index); err != nil {
		return nil, fmt.Errorf("firestore: decode the index of %s: %w", ref.Path, err)
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

// Commit writes runs, then, in a transaction that checks holder still holds the lease, the
// cursor (unless zero) and the index, and clears the lease.
//
// The run documents are written first and outside the transaction (a transaction would cap a
// poll at 500 runs): if the lease turns out to be lost, or the process dies before the
// transaction, the runs are ahead of the index. That is safe: the next poll sees those runs as
// changed, reads them and finds nothing new to publish.
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
	idx, err := encodeIndex(source, index)
	if err != nil {
		return err
	}
	if err := s.writeRuns(ctx, source, docs); err != nil {
		return err
	}
	if s.afterRuns != nil {
		if err := s.afterRuns(ctx); err != nil {
			return err
		}
	}
	return s.commitSource(ctx, source, holder, cursor, idx, len(index))
}

func encodeIndex(source string, index state.Index) ([]byte, error) {
	if index == nil {
		index = state.Index{}
	}
	b, err := encodeBlob(index)
	if err != nil {
		return nil, fmt.Errorf("encode the index of %s: %w", source, err)
	}
	if len(b) > maxBlobBytes {
		return nil, fmt.Errorf("%w: the index of %s (%d runs) encodes to %d bytes, above the %d that fit in a Firestore document",
			state.ErrInvalid, source, len(index), len(b), maxBlobBytes)
	}
	return b, nil
}

func (s *Store) commitSource(ctx context.Context, source, holder string, cursor time.Time, idx []byte, runs int) error {
	ref := s.sourceRef(source)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *gfs.Transaction) error {
		d, err := s.readSource(tx, ref)
		if err != nil {
			return err
		}
		if d.LeaseHolder != holder {
			return state.LeaseLost(source, holder, d.LeaseHolder, d.LeaseExpires)
		}
		fields := map[string]any{
			fieldIndex:         idx,
			fieldIndexEncoding: encodingGzipJSON,
			fieldIndexRuns:     runs,
			fieldLeaseHolder:   gfs.Delete,
			fieldLeaseExpires:  gfs.Delete,
			fieldCommittedAt:   gfs.ServerTimestamp,
		}
		if cursor.After(d.Cursor) { // never backwards (clocks of two instances may disagree)
			fields[fieldCursor] = cursor
		}
		return tx.Set(ref, fields, gfs.MergeAll)
	}, gfs.MaxAttempts(s.maxAttempts))
	if errors.Is(err, state.ErrLeaseLost) {
		return err
	}
	if err != nil {
		return fail(ctx, "commit "+source, err)
	}
	s.usage.Wrote(1)
	return nil
}
