package firestore

import (
	"context"
	"fmt"
	"time"

	gfs "cloud.google.com/go/firestore"

	"github.com/farmobs/farm/pkg/state"
)

// ledgerDoc is the stored form of a ledger entry.
type ledgerDoc struct {
	Namespace string    `firestore:"namespace"`
	ID        string    `firestore:"id"`
	ExpireAt  time.Time `firestore:"expire_at"` // ExpireAtField
}

func (s *Store) ledgerRef(namespace, id string) *gfs.DocumentRef {
	return s.client.Collection(LedgerCollection).Doc(ledgerID(namespace, id))
}

// Seen returns the ids recorded in namespace whose entry has not expired by the store's clock.
// Expired entries count as absent even before the TTL policy deletes them, which it does lazily.
func (s *Store) Seen(ctx context.Context, namespace string, ids []string) (map[string]bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckLedger(namespace, ids); err != nil {
		return nil, err
	}
	ids = state.Unique(ids)
	now := s.clock.Now()
	seen := make(map[string]bool)
	for start := 0; start < len(ids); start += getAllBatch {
		batch := ids[start:min(start+getAllBatch, len(ids))]
		if err := s.seenBatch(ctx, namespace, batch, now, seen); err != nil {
			return nil, err
		}
	}
	return seen, nil
}

func (s *Store) seenBatch(ctx context.Context, namespace string, ids []string, now time.Time, seen map[string]bool) error {
	refs := make([]*gfs.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = s.ledgerRef(namespace, id)
	}
	snaps, err := s.client.GetAll(ctx, refs)
	s.usage.Read(len(refs))
	if err != nil {
		return fail(ctx, fmt.Sprintf("read %d ledger entries of %s", len(refs), namespace), err)
	}
	for i, snap := range snaps {
		if !snap.Exists() {
			continue
		}
		var d ledgerDoc
		if err := snap.DataTo(&d); err != nil {
			return fmt.Errorf("firestore: decode ledger entry %s: %w", snap.Ref.Path, err)
		}
		// The id is compared too: a long id's document id is only a hash of it.
		if d.Namespace == namespace && d.ID == ids[i] && now.Before(d.ExpireAt) {
			seen[ids[i]] = true
		}
	}
	return nil
}

// Record writes one ledger document per id, replacing any earlier entry (and its expiry).
func (s *Store) Record(ctx context.Context, namespace string, ids []string, expireAt time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckRecord(namespace, ids, expireAt); err != nil {
		return err
	}
	ids = state.Unique(ids)
	writes := make([]write, len(ids))
	for i, id := range ids {
		writes[i] = write{name: "id " + id, ref: s.ledgerRef(namespace, id), data: &ledgerDoc{Namespace: namespace, ID: id, ExpireAt: expireAt}}
	}
	return s.bulkSet(ctx, "record ledger entries of "+namespace, writes)
}
