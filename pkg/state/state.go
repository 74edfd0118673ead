// Package state is FARM's durable memory: per source a lease, a cursor and a fingerprint index;
// per run the task states last published; and a ledger of ids already handled by consumers.
//
// Two implementations pass the same contract tests (statetest): Firestore for Google Cloud and a
// file-backed embedded store for the local runner.
package state

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLeaseHeld is returned by Acquire when another holder's lease has not expired.
var ErrLeaseHeld = errors.New("lease held by another poll")

// ErrLeaseLost is returned by Commit when the caller no longer holds the lease (it expired and
// another poll took it): nothing was advanced.
var ErrLeaseLost = errors.New("lease lost")

// LeaseHeldError says who holds a lease and until when. It wraps ErrLeaseHeld.
type LeaseHeldError struct {
	Holder  string
	Expires time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%v: held by %s until %s", ErrLeaseHeld, e.Holder, e.Expires.UTC().Format(time.RFC3339))
}

func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// Source is the per-source document: lease, cursor and fingerprint index.
type Source struct {
	// Cursor is the start time of the last committed incremental poll (zero before the first).
	Cursor time.Time
	// Index remembers, for runs seen recently, the fingerprint last committed, so runs that did not
	// change cost no read at all.
	Index Index
	// LeaseHolder and LeaseExpires are informational when returned by Acquire.
	LeaseHolder  string
	LeaseExpires time.Time
}

// Index maps run keys to what the last commit knew of them.
type Index map[string]IndexEntry

// IndexEntry is what the index keeps per run.
type IndexEntry struct {
	Fingerprint string `json:"f"`
	// Active runs are followed up by reference when they drop out of the source's active listing.
	Active bool `json:"a,omitempty"`
	// Ref is the source's own reference to fetch the run again (only kept for active runs).
	Ref string `json:"r,omitempty"`
}

// Run is the stored state of one run: what was last published for each of its tasks.
type Run struct {
	Key         string
	Fingerprint string
	Phase       string
	Tasks       map[string]Task // by task key (see poll.TaskKey)
	UpdatedAt   time.Time
	// ExpireAt drives the Firestore TTL policy: the document may be deleted after it.
	ExpireAt time.Time
}

// Task is the last published state of one task.
type Task struct {
	State      string    `json:"s"`
	StartedAt  time.Time `json:"b,omitzero"`
	FinishedAt time.Time `json:"e,omitzero"`
	// QueuedAt is Airflow's queued_when: a rescheduled sensor re-enters a state within one try
	// with only this time changed.
	QueuedAt time.Time `json:"q,omitzero"`
	// TryStart is the first start of an attempt still open whose later states showed another start
	// or none (a sensor in reschedule mode: Airflow 2.0 to 3.2 overwrite start_date with each
	// poke's); zero when StartedAt is that first start.
	TryStart time.Time `json:"t,omitzero"`
	// Rescheduled says the attempt went up_for_reschedule, or its start moved while it stayed
	// open: it runs as several pokes.
	Rescheduled bool `json:"r,omitempty"`
}

// Store is what the poll engine needs. Implementations must be safe for concurrent use.
type Store interface {
	// Acquire takes the lease on source for holder until now+ttl and returns the source document.
	// If another holder's lease has not expired it returns a *LeaseHeldError.
	Acquire(ctx context.Context, source, holder string, now time.Time, ttl time.Duration) (*Source, error)
	// Peek reads the source document without taking the lease (dry runs). A source never
	// committed reads as an empty document.
	Peek(ctx context.Context, source string) (*Source, error)
	// Release gives the lease up without changing the cursor or the index (a failed poll).
	// Releasing a lease one does not hold is not an error.
	Release(ctx context.Context, source, holder string) error
	// LoadRuns reads the stored runs for keys, in as few round trips as the backend allows.
	// Keys with no stored run are absent from the result.
	LoadRuns(ctx context.Context, source string, keys []string) (map[string]*Run, error)
	// Commit writes runs, then the source's cursor and index, and releases the lease — only if
	// holder still holds it (ErrLeaseLost otherwise, with the cursor unchanged). A zero cursor
	// leaves the stored cursor as it is (backfills do not move it), and so does one before it:
	// the cursor never moves backwards.
	Commit(ctx context.Context, source, holder string, runs []*Run, cursor time.Time, index Index) error
}

// Ledger remembers what a consumer already handled, as entries named by id, each with a little
// data (for example, per message, the ids of the spans the trace function sent for its runs), so a
// redelivered message is recognised with one read. Entries expire after their ExpireAt.
type Ledger interface {
	// Load returns the entries of namespace under ids that are recorded and have not expired, by
	// id, each with the data recorded with it (empty when none). One read per distinct id.
	Load(ctx context.Context, namespace string, ids []string) (map[string][]byte, error)
	// Record records entries (id → data) in namespace until expireAt, replacing earlier entries of
	// the same ids. One write per entry.
	Record(ctx context.Context, namespace string, entries map[string][]byte, expireAt time.Time) error
}

// MaxLedgerData bounds the data of one ledger entry: a Firestore document holds at most 1 MiB.
const MaxLedgerData = 900 << 10
