package state

import "sync/atomic"

// Usage counts the document reads and writes a store performed, the way Firestore bills them.
// Both stores count alike, so the poll engine reports comparable figures with either:
//
//   - every document requested is one read, found or not (a transaction's read included, counted
//     again if the transaction is retried);
//   - every document created, replaced, updated or deleted is one write, counted once it is
//     committed.
//
// The zero value is ready; it is safe for concurrent use. Stores expose it through a
// Usage() (reads, writes int64) method, cumulative since the store was created.
type Usage struct {
	reads, writes atomic.Int64
}

// Read adds n reads.
func (u *Usage) Read(n int) { u.reads.Add(int64(n)) }

// Wrote adds n writes.
func (u *Usage) Wrote(n int) { u.writes.Add(int64(n)) }

// Counts returns the reads and writes so far.
func (u *Usage) Counts() (reads, writes int64) { return u.reads.Load(), u.writes.Load() }
