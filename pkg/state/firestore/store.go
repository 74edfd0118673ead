package firestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	gfs "cloud.google.com/go/firestore"
	"google.golang.org/api/option"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/state"
)

// Collection and field names, exported for the terraform of TTL policies and for operators.
const (
	SourcesCollection = "farm_sources"
	RunsCollection    = "runs" // a subcollection of each source document
	LedgerCollection  = "farm_ledger"
	// ExpireAtField is the Timestamp field of run and ledger documents that TTL policies read.
	ExpireAtField = "expire_at"
)

// getAllBatch bounds the documents asked for in one BatchGetDocuments call.
const getAllBatch = 300

// Store is the Firestore state.Store and state.Ledger. It is safe for concurrent use.
type Store struct {
	client      *gfs.Client
	clock       clock.Clock
	timeout     time.Duration
	maxAttempts int
	usage       state.Usage
	index       indexCache // the index parts this store last read or wrote, by source
	// afterRuns, when set by tests, runs between the run writes and the commit transaction of
	// Commit: a crash between the two steps.
	afterRuns func(ctx context.Context) error
}

var (
	_ state.Store  = (*Store)(nil)
	_ state.Ledger = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the Ledger uses to ignore expired entries (default: the wall clock).
func WithClock(c clock.Clock) Option { return func(s *Store) { s.clock = c } }

// WithTimeout bounds every call of the store (its retries and transaction attempts included):
// an unreachable or stuck Firestore fails the call with context.DeadlineExceeded instead of
// holding the function until the platform kills it. Zero: no bound but the caller's context.
func WithTimeout(d time.Duration) Option { return func(s *Store) { s.timeout = d } }

// bound returns ctx limited by the store's timeout.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// WithMaxAttempts sets how many times a contended transaction is tried (default 5).
func WithMaxAttempts(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.maxAttempts = n
		}
	}
}

// New returns a Store using client, which the caller creates (lazily) and closes.
func New(client *gfs.Client, opts ...Option) *Store {
	s := &Store{client: client, clock: clock.Real{}, maxAttempts: gfs.DefaultTransactionMaxAttempts}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NewClient connects to the Firestore database databaseID ("" or "(default)" for the default
// database) of projectID. With FIRESTORE_EMULATOR_HOST set, the client library talks to that
// emulator without credentials.
func NewClient(ctx context.Context, projectID, databaseID string, opts ...option.ClientOption) (*gfs.Client, error) {
	if projectID == "" {
		return nil, fmt.Errorf("%w: Firestore project id is empty", state.ErrInvalid)
	}
	var (
		c   *gfs.Client
		err error
	)
	if databaseID == "" || databaseID == gfs.DefaultDatabaseID {
		c, err = gfs.NewClient(ctx, projectID, opts...)
	} else {
		c, err = gfs.NewClientWithDatabase(ctx, projectID, databaseID, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("firestore client for project %s database %q: %w", projectID, databaseID, err)
	}
	return c, nil
}

// Usage returns the document reads and writes performed so far (see state.Usage for the rules).
// The poll engine reads it before and after a poll.
func (s *Store) Usage() (reads, writes int64) { return s.usage.Counts() }

// StoreName names the store in a poll's counters (firestore_reads, firestore_writes).
func (s *Store) StoreName() string { return "firestore" }

// fail wraps err from operation op, adding the context's error when the context ended, so that
// callers can test errors.Is(err, context.Canceled) whatever the client library returned.
func fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("firestore: %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("firestore: %s: %w", op, err)
}

// write is one document replaced by bulkSet.
type write struct {
	name string // for error messages
	ref  *gfs.DocumentRef
	data any
}

// bulkSet replaces documents with a BulkWriter: batched, sent in parallel and retried per write,
// with no 500-write limit. Each write is independent: on error some may have been applied.
func (s *Store) bulkSet(ctx context.Context, op string, writes []write) error {
	if len(writes) == 0 {
		return nil
	}
	bw := s.client.BulkWriter(ctx)
	jobs := make([]*gfs.BulkWriterJob, 0, len(writes))
	var first error
	for _, w := range writes {
		j, err := bw.Set(w.ref, w.data)
		if err != nil {
			first = fmt.Errorf("%s: %w", w.name, err)
			break
		}
		jobs = append(jobs, j)
	}
	bw.End()
	written := 0
	for i, j := range jobs {
		if _, err := j.Results(); err != nil {
			if first == nil {
				first = fmt.Errorf("%s: %w", writes[i].name, err)
			}
			continue
		}
		written++
	}
	s.usage.Wrote(written)
	if first != nil {
		return fail(ctx, fmt.Sprintf("%s: %d of %d documents not written", op, len(writes)-written, len(writes)), first)
	}
	return nil
}
