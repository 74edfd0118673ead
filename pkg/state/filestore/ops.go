package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/farmobs/farm/pkg/state"
)

// Acquire takes the lease on source for holder until now+ttl, unless another holder's lease has
// not expired at now.
func (s *Store) Acquire(ctx context.Context, source, holder string, now time.Time, ttl time.Duration) (*state.Source, error) {
	if err := state.CheckAcquire(source, holder, ttl); err != nil {
		return nil, err
	}
	var out *state.Source
	err := s.update(ctx, func(d *fileData) (bool, error) {
		s.usage.Read(1)
		sd := d.source(source, true)
		if err := state.LeaseHeld(holder, now, sd.LeaseHolder, sd.LeaseExpires); err != nil {
			return false, err
		}
		idx, err := s.readIndex(source, sd)
		if err != nil {
			return false, err
		}
		if idx == nil {
			idx = state.Index{}
		}
		sd.LeaseHolder, sd.LeaseExpires = holder, now.Add(ttl)
		out = &state.Source{Cursor: sd.Cursor, Index: idx, LeaseHolder: holder, LeaseExpires: sd.LeaseExpires}
		return true, nil
	})
	if held := (*state.LeaseHeldError)(nil); errors.As(err, &held) {
		return nil, held
	}
	if err != nil {
		return nil, wrap("acquire the lease of "+source, err)
	}
	s.usage.Wrote(1)
	return out, nil
}

// Peek returns a copy of the source document without taking the lease.
func (s *Store) Peek(ctx context.Context, source string) (*state.Source, error) {
	if err := state.CheckName("source", source); err != nil {
		return nil, err
	}
	out := &state.Source{Index: state.Index{}}
	err := s.view(ctx, func(d *fileData) error {
		s.usage.Read(1)
		if sd := d.source(source, false); sd != nil {
			out.Cursor, out.LeaseHolder, out.LeaseExpires = sd.Cursor, sd.LeaseHolder, sd.LeaseExpires
			idx, err := s.readIndex(source, sd)
			if err != nil {
				return err
			}
			if idx != nil {
				out.Index = idx
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("read the source "+source, err)
	}
	return out, nil
}

// Release clears the lease if holder holds it.
func (s *Store) Release(ctx context.Context, source, holder string) error {
	if err := state.CheckLease(source, holder); err != nil {
		return err
	}
	wrote := false
	err := s.update(ctx, func(d *fileData) (bool, error) {
		s.usage.Read(1)
		sd := d.source(source, false)
		if sd == nil || sd.LeaseHolder != holder {
			return false, nil
		}
		sd.LeaseHolder, sd.LeaseExpires = "", time.Time{}
		wrote = true
		return true, nil
	})
	if err != nil {
		return wrap("release the lease of "+source, err)
	}
	if wrote {
		s.usage.Wrote(1)
	}
	return nil
}

// LoadRuns returns copies of the stored runs of keys.
func (s *Store) LoadRuns(ctx context.Context, source string, keys []string) (map[string]*state.Run, error) {
	if err := state.CheckLoad(source, keys); err != nil {
		return nil, err
	}
	keys = state.Unique(keys)
	out := make(map[string]*state.Run, len(keys))
	err := s.view(ctx, func(d *fileData) error {
		s.usage.Read(len(keys))
		sd := d.source(source, false)
		if sd == nil {
			return nil
		}
		now := s.clock.Now()
		for _, k := range keys {
			if r := sd.Runs[k]; r != nil { // a version 1 file
				out[k] = r.run(k)
				continue
			}
			r, err := s.readRunFile(source, k, now)
			if err != nil {
				return err
			}
			if r != nil {
				out[k] = r.run(k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("read the runs of "+source, err)
	}
	return out, nil
}

// Commit writes runs, the cursor (unless zero) and the index, and releases the lease, all in one
// file write, if holder still holds the lease.
func (s *Store) Commit(ctx context.Context, source, holder string, runs []*state.Run, cursor time.Time, index state.Index) error {
	if err := state.CheckLease(source, holder); err != nil {
		return err
	}
	if err := state.CheckRuns(runs); err != nil {
		return err
	}
	parts := 0
	err := s.update(ctx, func(d *fileData) (bool, error) {
		s.usage.Read(1)
		sd := d.source(source, false)
		if sd == nil {
			return false, state.LeaseLost(source, holder, "", time.Time{})
		}
		if sd.LeaseHolder != holder {
			return false, state.LeaseLost(source, holder, sd.LeaseHolder, sd.LeaseExpires)
		}
		// Runs first, then the index parts, then (by update) the state file: the commit point.
		if len(sd.Runs) > 0 { // a version 1 file: its inline runs move to their files
			if err := s.writeRunFiles(source, sd.Runs); err != nil {
				return false, err
			}
		}
		byKey := make(map[string]*runData, len(runs))
		for _, r := range runs {
			byKey[r.Key] = newRunData(r)
		}
		if err := s.writeRunFiles(source, byKey); err != nil {
			return false, err
		}
		next := *sd
		var err error
		if parts, err = s.writeIndex(source, &next, index, nextGen(sd, s.clock.Now())); err != nil {
			return false, err
		}
		*sd = next
		sd.Runs = nil
		if cursor.After(sd.Cursor) { // never backwards (clocks of two instances may disagree)
			sd.Cursor = cursor
		}
		sd.LeaseHolder, sd.LeaseExpires = "", time.Time{}
		s.afterWrite = func() {
			for _, name := range s.orphanParts(source, sd) {
				_ = os.Remove(name)
			}
		}
		return true, nil
	})
	if err != nil {
		return wrap("commit "+source, err)
	}
	s.usage.Wrote(len(runs) + 1 + parts)
	return nil
}

func newRunData(r *state.Run) *runData {
	return &runData{Fingerprint: r.Fingerprint, Phase: r.Phase, Tasks: maps.Clone(r.Tasks), UpdatedAt: r.UpdatedAt, ExpireAt: r.ExpireAt}
}

func (r *runData) run(key string) *state.Run {
	tasks := maps.Clone(r.Tasks)
	if tasks == nil {
		tasks = map[string]state.Task{}
	}
	return &state.Run{Key: key, Fingerprint: r.Fingerprint, Phase: r.Phase, Tasks: tasks, UpdatedAt: r.UpdatedAt, ExpireAt: r.ExpireAt}
}

// Load returns the entries recorded in namespace under ids whose entry has not expired by the
// store's clock, with their data.
func (s *Store) Load(ctx context.Context, namespace string, ids []string) (map[string][]byte, error) {
	if err := state.CheckLedger(namespace, ids); err != nil {
		return nil, err
	}
	ids = state.Unique(ids)
	now := s.clock.Now()
	found := make(map[string][]byte)
	err := s.view(ctx, func(d *fileData) error {
		s.usage.Read(len(ids))
		for _, id := range ids {
			if e, ok := d.Ledger[namespace][id]; ok && now.Before(e.ExpireAt) {
				found[id] = bytes.Clone(e.Data)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("read the ledger of "+namespace, err)
	}
	return found, nil
}

// Record records entries in namespace until expireAt, replacing earlier entries.
func (s *Store) Record(ctx context.Context, namespace string, entries map[string][]byte, expireAt time.Time) error {
	if err := state.CheckRecord(namespace, entries, expireAt); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	err := s.update(ctx, func(d *fileData) (bool, error) {
		stored := d.Ledger[namespace]
		if stored == nil {
			stored = make(map[string]ledgerEntry, len(entries))
			d.Ledger[namespace] = stored
		}
		for id, data := range entries {
			stored[id] = ledgerEntry{ExpireAt: expireAt, Data: bytes.Clone(data)}
		}
		return true, nil
	})
	if err != nil {
		return wrap("record ledger entries of "+namespace, err)
	}
	s.usage.Wrote(len(entries))
	return nil
}

func wrap(op string, err error) error { return fmt.Errorf("filestore: %s: %w", op, err) }
