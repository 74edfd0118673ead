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
	Data      []byte    `firestore:"data,omitempty"`
}

func (s *Store) ledgerRef(namespace, id string) *gfs.DocumentRef {
	return s.client.Collection(LedgerCollection).Doc(ledgerID(namespace, id))
}

// Load returns the entries recorded in namespace under ids whose entry has not expired by the
// store's clock, with their data. Expired entries count as absent even before the TTL policy
// deletes them, which it does lazily.
func (s *Store) Load(ctx context.Context, namespace string, ids []string) (map[string][]byte, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckLedger(namespace, ids); err != nil {
		return nil, err
	}
	ids = state.Unique(ids)
	now := s.clock.Now()
	found := make(map[string][]byte)
	for start := 0; start < len(ids); start += getAllBatch {
		batch := ids[start:min(start+getAllBatch, len(ids))]
		if err := s.loadEntries(ctx, namespace, batch, now, found); err != nil {
			return nil, err
		}
	}
	return found, nil
}

func (s *Store) loadEntries(ctx context.Context, namespace string, ids []string, now time.Time, found map[string][]byte) error {
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
			found[ids[i]] = d.Data
		}
	}
	return nil
}

// Record records entries in namespace until expireAt, replacing earlier entries (BulkWriter: one
// write per entry).
func (s *Store) Record(ctx context.Context, namespace string, entries map[string][]byte, expireAt time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := state.CheckRecord(namespace, entries, expireAt); err != nil {
		return err
	}
	writes := make([]write, 0, len(entries))
	for id, data := range entries {
		writes = append(writes, write{name: "id " + id, ref: s.ledgerRef(namespace, id), data: &ledgerDoc{Namespace: namespace, ID: id, ExpireAt: expireAt, Data: data}})
	}
	return s.bulkSet(ctx, "record ledger entries of "+namespace, writes)
}
