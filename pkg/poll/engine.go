// Package poll is FARM's poll engine, shared by every orchestrator: lease, cursor, fingerprint
// index, diff, publish, and only then commit.
//
// One poll:
//  1. takes the source's lease (a second poll of the same source returns ErrBusy at once);
//  2. lists every active run plus the runs that started or changed since cursor-overlap, and
//     fetches by reference the runs that were active at the last commit but are not listed as
//     active any more (they finished, possibly long after they started);
//  3. skips every run whose fingerprint matches the index (no store operation at all), reads the
//     stored state of the others in one batch and diffs them task by task (diff.go);
//  4. makes one RunDelta per changed run (split if large), publishes them packed into batches
//     (event.Pack: several runs per message, each run always under the same ordering key, so its
//     deltas stay in order), and waits until Pub/Sub has acknowledged every message;
//  5. only then writes the run states, the index and the cursor.
//
// A crash before 5 leaves the cursor and the run states where they were, so the next poll
// publishes the same transitions again with the same ids: nothing is lost, and duplicates are
// recognisable downstream.
package poll

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// Errors the HTTP layer maps to status codes.
var (
	// ErrBusy: another poll of the same source holds the lease.
	ErrBusy = errors.New("a poll of this source is already running")
	// ErrSource: the orchestrator's API failed; the cursor did not move.
	ErrSource = errors.New("orchestrator API failed")
	// ErrPublish: Pub/Sub did not acknowledge every message; the cursor did not move.
	ErrPublish = errors.New("publishing run deltas failed")
	// ErrStore: the state store failed.
	ErrStore = errors.New("state store failed")
	// ErrBadRequest: the request cannot be served as asked (e.g. a window too large).
	ErrBadRequest = errors.New("bad request")
)

// Publisher sends messages and returns only when every one was acknowledged by Pub/Sub, or with
// the first error. pkg/publish implements it.
type Publisher interface {
	Publish(ctx context.Context, msgs []event.Message) error
}

// Sink receives every published delta; the local runner's `farm poll` prints them.
type Sink func(d *event.RunDelta)

// Engine polls one Source.
type Engine struct {
	src       Source
	store     state.Store
	pub       Publisher
	clock     clock.Clock
	log       *slog.Logger
	cfg       Config
	vocab     vocabulary
	onPublish Sink
}

// Config tunes an Engine. pkg/config reads it from the FARM_* variables named below, starting
// from DefaultConfig.
type Config struct {
	Tenant      string // FARM_TENANT
	Environment string // FARM_ENVIRONMENT
	// Overlap is how far before the cursor each poll looks again (FARM_POLL_OVERLAP).
	Overlap time.Duration
	// InitialLookback is how far back the first poll looks (FARM_INITIAL_LOOKBACK).
	InitialLookback time.Duration
	// LeaseTTL is longer than a poll can take: how long a crashed poll's lease blocks the next
	// (FARM_LEASE_TTL).
	LeaseTTL time.Duration
	// RunRetention: run documents expire this long after their last change (FARM_RUN_RETENTION).
	RunRetention time.Duration
	// MaxBackfillWindow is the largest since..until a backfill may ask for
	// (FARM_MAX_BACKFILL_WINDOW).
	MaxBackfillWindow time.Duration
	// MaxEventsPerMessage splits a run's events over several messages (Pub/Sub caps messages at
	// 10 MB; an event is well under 2 KB).
	MaxEventsPerMessage int
	// LoadParallelism bounds concurrent Source.Load calls.
	LoadParallelism int
	// DiffBatch is how many changed runs are loaded, diffed and published at a time (memory).
	DiffBatch int
	// Batch bounds a message's deltas and sets the ordering keys' shards.
	Batch event.BatchLimits
	// MaxRunsPerPoll bounds the changed runs an incremental poll loads, diffs and publishes, so
	// that a poll of any estate ends within its timeout (FARM_POLL_MAX_RUNS; 0: no limit). The
	// rest wait for the next polls (see deferral in Poll).
	MaxRunsPerPoll int
}

// DefaultConfig is the configuration FARM polls with when nothing is set.
func DefaultConfig() Config {
	return Config{
		Tenant:              "default",
		Environment:         "dev",
		Overlap:             5 * time.Minute,
		InitialLookback:     time.Hour,
		LeaseTTL:            10 * time.Minute,
		RunRetention:        30 * 24 * time.Hour,
		MaxBackfillWindow:   7 * 24 * time.Hour,
		MaxEventsPerMessage: 500,
		LoadParallelism:     8,
		DiffBatch:           256,
		Batch:               event.DefaultBatchLimits,
		// The changed runs a poll handles at its deployed size (512 MiB, a third of a vCPU) well
		// within the 540 s timeout (BENCHMARKS.md).
		MaxRunsPerPoll: 20_000,
	}
}

// Validate reports every problem of c, each naming its setting.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	positive("FARM_RUN_RETENTION", c.RunRetention)
	positive("FARM_LEASE_TTL", c.LeaseTTL)
	positive("FARM_MAX_BACKFILL_WINDOW", c.MaxBackfillWindow)
	if c.Overlap < 0 {
		errs = append(errs, errors.New("FARM_POLL_OVERLAP must not be negative"))
	}
	if c.InitialLookback < 0 {
		errs = append(errs, errors.New("FARM_INITIAL_LOOKBACK must not be negative"))
	}
	if c.MaxEventsPerMessage < 1 || c.LoadParallelism < 1 || c.DiffBatch < 1 {
		errs = append(errs, fmt.Errorf("poll: events per message (%d), load parallelism (%d) and diff batch (%d) must be positive",
			c.MaxEventsPerMessage, c.LoadParallelism, c.DiffBatch))
	}
	if c.MaxRunsPerPoll < 0 {
		errs = append(errs, errors.New("FARM_POLL_MAX_RUNS must not be negative (0: no bound)"))
	}
	if b := c.Batch; b.MaxDeltas < 1 || b.MaxBytes < 1 || b.Shards < 1 {
		errs = append(errs, fmt.Errorf("poll: a message's deltas (%d), bytes (%d) and ordering key shards (%d) must be positive",
			b.MaxDeltas, b.MaxBytes, b.Shards))
	}
	return errors.Join(errs...)
}

// Deps are what an Engine works with. Clock may be nil for the wall clock, Log nil for
// slog.Default().
type Deps struct {
	Source    Source
	Store     state.Store
	Publisher Publisher
	Clock     clock.Clock
	Log       *slog.Logger
}

// New returns an Engine, or why cfg or deps cannot make one.
func New(cfg Config, deps Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Source == nil || deps.Store == nil || deps.Publisher == nil {
		return nil, errors.New("poll: an engine needs a source, a store and a publisher")
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	return &Engine{src: deps.Source, store: deps.Store, pub: deps.Publisher, clock: deps.Clock, log: deps.Log, cfg: cfg,
		vocab: vocabularyOf(deps.Source)}, nil
}

// OnPublish registers a function called with every delta the poll publishes (or would publish,
// in a dry run), after Pub/Sub acknowledged it.
func (e *Engine) OnPublish(s Sink) { e.onPublish = s }

// Request is what one poll is asked to do. The zero Request is an incremental poll.
type Request struct {
	// Since and Until, when set, make the poll a backfill of that window: it does not move the
	// cursor and also covers archived runs.
	Since, Until time.Time
	// Replay re-publishes every transition still visible in the window, with the same ids as the
	// first time, whether or not it was published before.
	Replay bool
	// DryRun lists and diffs but neither publishes nor stores anything.
	DryRun bool
}

// Backfill reports whether r asks for an explicit window.
func (r Request) Backfill() bool { return !r.Since.IsZero() }

// Result is what one poll did; the HTTP function answers it as JSON.
type Result struct {
	Source      string    `json:"source"`
	Mode        string    `json:"mode"` // incremental, backfill or replay
	DryRun      bool      `json:"dry_run,omitempty"`
	WindowSince time.Time `json:"window_since"`
	WindowUntil time.Time `json:"window_until"`
	RunsSeen    int       `json:"runs_seen"`
	RunsFetched int       `json:"runs_fetched"` // followed up by reference
	RunsGone    int       `json:"runs_gone"`    // active at the last poll, now deleted everywhere
	RunsChanged int       `json:"runs_changed"`
	// RunsDeferred changed runs were left for the next poll (MaxRunsPerPoll).
	RunsDeferred   int   `json:"runs_deferred,omitempty"`
	Events         int   `json:"events"`
	Messages       int   `json:"messages"`
	BytesPublished int64 `json:"bytes_published"`
	StoreReads     int   `json:"firestore_reads"`  // named after Store: see counters.go
	StoreWrites    int   `json:"firestore_writes"` // named after Store: see counters.go
	// Store names the state store in the counters' names: "firestore" (the default), "file_store".
	Store           string    `json:"-"`
	APICalls        int64     `json:"api_calls"`
	APIBytes        int64     `json:"api_bytes"`
	DurationSeconds float64   `json:"duration_seconds"`
	PreviousCursor  time.Time `json:"previous_cursor,omitzero"`
	Cursor          time.Time `json:"cursor,omitzero"`
}

// APICounter is implemented by sources that count their API calls and bytes (cumulative).
type APICounter interface {
	APIStats() (calls, bytes int64)
}

// UsageCounter is implemented by stores that count their operations (cumulative).
type UsageCounter interface {
	Usage() (reads, writes int64)
}

// Poll runs one poll.
func (e *Engine) Poll(ctx context.Context, req Request) (*Result, error) {
	start := e.clock.Now()
	res := &Result{Source: e.src.Name(), Mode: mode(req), DryRun: req.DryRun}
	if err := e.check(req, start); err != nil {
		return res, err
	}
	calls0, bytes0 := e.apiStats()
	reads0, writes0 := e.usage()
	requested := start
	defer func() {
		calls, bytes := e.apiStats()
		res.APICalls, res.APIBytes = calls-calls0, bytes-bytes0
		reads, writes := e.usage()
		if _, ok := e.store.(UsageCounter); ok {
			res.StoreReads, res.StoreWrites = int(reads-reads0), int(writes-writes0)
		}
		if n, ok := e.store.(StoreNamer); ok {
			res.Store = n.StoreName()
		}
		res.DurationSeconds = e.clock.Now().Sub(requested).Seconds()
	}()

	holder := newHolder()
	src, release, err := e.begin(ctx, holder, start, req.DryRun)
	if err != nil {
		return res, err
	}
	committed := false
	defer func() {
		if !committed {
			release()
		}
	}()
	res.PreviousCursor = src.Cursor
	// The poll starts once the lease is held: a start read before would be earlier than the
	// cursor of a poll that held the lease meanwhile.
	start = e.clock.Now()

	w := e.window(req, src.Cursor, start)
	res.WindowSince, res.WindowUntil = w.Since, w.Until
	if !req.Replay {
		w.Known = src.Index
	}
	if !req.Backfill() {
		w.Limit = e.cfg.MaxRunsPerPoll
	}
	w.DryRun = req.DryRun

	snaps, order, gone, err := e.collect(ctx, w, src.Index, res)
	if err != nil {
		return res, err
	}
	keepWindow(snaps, w)
	res.RunsSeen = len(snaps)
	changed := e.changed(snaps, order, src.Index, req.Replay)
	var deferred []*Snapshot
	if limit := e.cfg.MaxRunsPerPoll; limit > 0 && !req.Backfill() && len(changed) > limit {
		// Deferral: the first runs listed are done now, the others by the next polls. Each
		// deferred run stays in the index as changed (its last committed entry, or none known),
		// and is followed up by reference like an active run, and the cursor does not move past
		// this poll's window start, so the next poll lists again every run of this window.
		changed, deferred = changed[:limit], changed[limit:]
		res.RunsDeferred = len(deferred)
		e.log.WarnContext(ctx, "more runs changed than a poll handles: the rest are left for the next polls",
			"source", e.src.Name(), "changed", len(changed)+len(deferred), "deferred", len(deferred), "max_runs_per_poll", limit)
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].Key() < changed[j].Key() })
	res.RunsChanged = len(changed)
	// A source never committed has no stored run to read: its index would name it. Nor has a
	// run a poll deferred before it was ever stored (its entry has no fingerprint).
	readStored := !req.Replay && !(src.Cursor.IsZero() && len(src.Index) == 0)
	var neverStored map[string]bool
	for _, s := range changed {
		if entry, ok := src.Index[s.Key()]; ok && entry.Fingerprint == "" && readStored {
			if neverStored == nil {
				neverStored = map[string]bool{}
			}
			neverStored[s.Key()] = true
		}
	}
	// The next index is built now, in place of the old one, from the runs that did not change:
	// their snapshots can then go while the changed ones are diffed (each changed run's entry is
	// set once its batch is done, from the snapshot as Load left it).
	var index state.Index
	if !req.DryRun {
		index = e.nextIndex(src.Index, snaps, changed, deferred, gone, req.Backfill())
	}
	// The old index and the window's known runs are not needed again: let them go before the
	// batches load. (Locals need no such help: the compiler knows where they are last used.)
	src.Index, w.Known = nil, nil

	// Changed runs are loaded, diffed and published a batch at a time, so that a poll holds the
	// tasks of at most one batch, whatever the number of changed runs (a cold poll changes them
	// all). Only the small stored states wait for the commit.
	var runs []*state.Run
	for from := 0; from < len(changed); from += e.cfg.DiffBatch {
		batch := changed[from:min(from+e.cfg.DiffBatch, len(changed))]
		bruns, deltas, err := e.diffAll(ctx, batch, req.Replay, readStored, neverStored, start)
		if err != nil {
			return res, err
		}
		if c, ok := e.store.(CommitChecker); ok && !req.DryRun {
			// Before anything of this batch is published: a run the store cannot keep would
			// otherwise be published again by every poll.
			if err := c.CheckCommit(bruns); err != nil {
				return res, fmt.Errorf("%w: the store cannot keep this poll's runs: %w", ErrStore, err)
			}
		}
		if err := e.publish(ctx, deltas, req.DryRun, res); err != nil {
			return res, err
		}
		for i, s := range batch {
			if index != nil {
				index[s.Key()] = entryOf(s)
			}
			s.Tasks = nil // diffed and published: the stored state is what the commit needs
			batch[i] = nil
		}
		if w, ok := e.store.(RunWriter); ok && !req.DryRun {
			// Published: the states can be stored now instead of waiting in memory for the
			// commit. A poll that fails later leaves them ahead of the index, which the next
			// poll reads and finds nothing new in.
			if err := w.WriteRuns(ctx, e.src.Name(), bruns); err != nil {
				return res, fmt.Errorf("%w: write run states: %w", ErrStore, err)
			}
			continue
		}
		runs = append(runs, bruns...)
	}
	if req.DryRun {
		return res, nil
	}

	cursor := time.Time{}
	switch {
	case res.RunsDeferred > 0:
		// The next poll's window starts where this one's did: the completed runs deferred are
		// listed again (a cold poll's cursor is set for the first time, its lookback kept).
		cursor = w.Since.Add(e.cfg.Overlap)
		if cursor.After(start) { // a lookback shorter than the overlap
			cursor = start
		}
	case !req.Backfill():
		cursor = start
	}
	if err := e.store.Commit(ctx, e.src.Name(), holder, runs, cursor, index); err != nil {
		return res, fmt.Errorf("%w: commit: %w", ErrStore, err)
	}
	committed = true
	if !cursor.IsZero() {
		res.Cursor = cursor
	}
	return res, nil
}

// RunWriter is implemented by stores that write run states ahead of their commit anyway
// (Firestore writes them outside its commit transaction): the engine hands them over a batch at
// a time, so a poll never holds every changed run's state.
type RunWriter interface {
	WriteRuns(ctx context.Context, source string, runs []*state.Run) error
}

// CommitChecker is implemented by stores that can tell, before anything is published, whether a
// commit of runs would be refused (a run too large for a document).
type CommitChecker interface {
	CheckCommit(runs []*state.Run) error
}

// publish sends deltas (split into messages) and counts them in res; a dry run only counts them.
func (e *Engine) publish(ctx context.Context, deltas []*event.RunDelta, dryRun bool, res *Result) error {
	msgs, _, err := event.Pack(deltas, e.cfg.Batch)
	if err != nil {
		return err
	}
	for _, d := range deltas {
		res.Events += len(d.Events)
	}
	res.Messages += len(msgs)
	for _, m := range msgs {
		res.BytesPublished += int64(len(m.Data))
	}
	if !dryRun && len(msgs) > 0 {
		if err := e.pub.Publish(ctx, msgs); err != nil {
			return fmt.Errorf("%w: %w", ErrPublish, err)
		}
	}
	e.notify(deltas)
	return nil
}

// begin takes the source's lease and returns the source document and how to give the lease back
// if the poll fails. A dry run takes no lease: it reads the document and stores nothing.
func (e *Engine) begin(ctx context.Context, holder string, now time.Time, dryRun bool) (*state.Source, func(), error) {
	name := e.src.Name()
	if dryRun {
		src, err := e.store.Peek(ctx, name)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: read source: %w", ErrStore, err)
		}
		return src, func() {}, nil
	}
	src, err := e.store.Acquire(ctx, name, holder, now, e.cfg.LeaseTTL)
	if err != nil {
		var held *state.LeaseHeldError
		if errors.As(err, &held) {
			return nil, nil, fmt.Errorf("%w (held by %s until %s)", ErrBusy, held.Holder, held.Expires.UTC().Format(time.RFC3339))
		}
		return nil, nil, fmt.Errorf("%w: acquire lease: %w", ErrStore, err)
	}
	release := func() {
		// The poll failed: give the lease back so the next schedule need not wait for expiry.
		if err := e.store.Release(context.WithoutCancel(ctx), name, holder); err != nil {
			e.log.WarnContext(ctx, "release lease", "source", name, "error", err)
		}
	}
	return src, release, nil
}

func (e *Engine) check(req Request, now time.Time) error {
	if !req.Backfill() {
		if req.Replay || !req.Until.IsZero() {
			return fmt.Errorf("%w: replay and until need since (a backfill window)", ErrBadRequest)
		}
		return nil
	}
	until := req.Until
	if until.IsZero() {
		until = now
	}
	if !req.Since.Before(until) {
		return fmt.Errorf("%w: since must be before until", ErrBadRequest)
	}
	if w := until.Sub(req.Since); w > e.cfg.MaxBackfillWindow {
		return fmt.Errorf("%w: window since..until is %s, larger than the maximum %s (FARM_MAX_BACKFILL_WINDOW): split it", ErrBadRequest, w, e.cfg.MaxBackfillWindow)
	}
	return nil
}

func mode(req Request) string {
	switch {
	case req.Replay:
		return "replay"
	case req.Backfill():
		return "backfill"
	}
	return "incremental"
}

func (e *Engine) window(req Request, cursor, now time.Time) Window {
	if req.Backfill() {
		until := req.Until
		if until.IsZero() {
			until = now
		}
		return Window{Since: req.Since, Until: until, Backfill: true}
	}
	since := cursor.Add(-e.cfg.Overlap)
	if cursor.IsZero() {
		since = now.Add(-e.cfg.InitialLookback)
	}
	return Window{Since: since, Until: now}
}

// collect lists the window and follows up the runs that were active at the last commit but are
// no longer listed as active. It returns the snapshots by key, their keys in the order the source
// listed them (fetched runs last), and the keys of runs that are gone.
func (e *Engine) collect(ctx context.Context, w Window, idx state.Index, res *Result) (map[string]*Snapshot, []string, []string, error) {
	listed, err := e.src.List(ctx, w)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: list: %w", ErrSource, err)
	}
	snaps := make(map[string]*Snapshot, len(listed))
	order := make([]string, 0, len(listed))
	add := func(s *Snapshot) {
		key := s.Key()
		if _, ok := snaps[key]; !ok {
			order = append(order, key)
		}
		snaps[key] = s
	}
	for i, s := range listed {
		add(s)
		listed[i] = nil
	}
	var refs, refKeys []string
	for key, entry := range idx {
		if _, ok := snaps[key]; !ok && entry.Active && entry.Ref != "" {
			refs = append(refs, entry.Ref)
			refKeys = append(refKeys, key)
		}
	}
	var gone []string
	if len(refs) > 0 {
		fetched, err := e.src.Fetch(ctx, refs)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: fetch %d runs no longer active: %w", ErrSource, len(refs), err)
		}
		for _, s := range fetched {
			add(s)
		}
		res.RunsFetched = len(fetched)
		for _, k := range refKeys {
			if _, ok := snaps[k]; !ok {
				gone = append(gone, k)
				e.log.WarnContext(ctx, "run vanished before its end was seen", "source", e.src.Name(), "run", k)
			}
		}
		res.RunsGone = len(gone)
	}
	res.RunsSeen = len(snaps)
	return snaps, order, gone, nil
}

// changed returns, in the order listed, the snapshots whose fingerprint the index does not know.
func (e *Engine) changed(snaps map[string]*Snapshot, order []string, idx state.Index, replay bool) []*Snapshot {
	var out []*Snapshot
	for _, key := range order {
		s, ok := snaps[key]
		if !ok {
			continue // outside a backfill's window
		}
		if entry, ok := idx[key]; ok && !replay && entry.Fingerprint == s.Fingerprint && s.Fingerprint != "" {
			continue
		}
		out = append(out, s)
	}
	return out
}

// diffAll loads the changed runs' tasks and stored states and diffs them.
func (e *Engine) diffAll(ctx context.Context, changed []*Snapshot, replay, readStored bool, neverStored map[string]bool, now time.Time) ([]*state.Run, []*event.RunDelta, error) {
	if len(changed) == 0 {
		return nil, nil, nil
	}
	// Keys first: Load may refresh a snapshot's Run while the goroutines run.
	keys := make([]string, len(changed))
	var read []string
	for i, s := range changed {
		keys[i] = s.Key()
		if !neverStored[keys[i]] {
			read = append(read, keys[i])
		}
	}
	readStored = readStored && len(read) > 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.cfg.LoadParallelism + 1) // the stored states' read runs beside the loads
	var stored map[string]*state.Run
	if readStored {
		g.Go(func() error {
			var err error
			if stored, err = e.store.LoadRuns(gctx, e.src.Name(), read); err != nil {
				return fmt.Errorf("%w: load run states: %w", ErrStore, err)
			}
			return nil
		})
	}
	for i, s := range changed {
		if s.Loaded {
			continue
		}
		g.Go(func() error {
			if err := e.src.Load(gctx, s); err != nil {
				return fmt.Errorf("%w: load run %s: %w", ErrSource, keys[i], err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if err := FillHistories(ctx, e.src, changed, stored, e.cfg.LoadParallelism); err != nil {
		return nil, nil, err
	}

	var runs []*state.Run
	var deltas []*event.RunDelta
	for _, s := range changed {
		prev := stored[s.Key()]
		events, tasks := diff(prev, s, e.vocab)
		prevPhase := ""
		if prev != nil {
			prevPhase = prev.Phase
		}
		if prev != nil && len(events) == 0 && prevPhase == s.Run.Phase {
			continue // the fingerprint moved but nothing FARM reports did; the index still learns it
		}
		run := s.Run
		if prevPhase != run.Phase {
			run.PrevPhase = prevPhase
		}
		deltas = append(deltas, e.split(run, events, now, replay)...)
		runs = append(runs, &state.Run{
			Key:         s.Key(),
			Fingerprint: s.Fingerprint,
			Phase:       s.Run.Phase,
			Tasks:       tasks,
			UpdatedAt:   now,
			ExpireAt:    now.Add(e.cfg.RunRetention),
		})
	}
	return runs, deltas, nil
}

// maxMessage bounds orchestrator messages in events: with MaxEventsPerMessage events a Pub/Sub
// message stays far below its 10 MB limit whatever a failing pod printed.
const maxMessage = 4 << 10

// split makes one or more deltas of a run's events.
func (e *Engine) split(run event.Run, events []event.TaskEvent, now time.Time, replay bool) []*event.RunDelta {
	run.Message = truncate(run.Message)
	run.Annotations, run.Parameters = truncateArgs(run.Annotations, run.Parameters)
	for i := range events {
		events[i].Message = truncate(events[i].Message)
	}
	n := e.cfg.MaxEventsPerMessage
	parts := max(1, (len(events)+n-1)/n)
	out := make([]*event.RunDelta, 0, parts)
	for p := range parts {
		chunk := events[min(p*n, len(events)):min((p+1)*n, len(events))]
		ids := make([]string, len(chunk))
		for i := range chunk {
			ids[i] = chunk[i].ID
		}
		out = append(out, &event.RunDelta{
			SchemaVersion: event.SchemaVersion,
			ID:            event.DeltaID(run.Key(), run.Phase, p+1, ids),
			Tenant:        e.cfg.Tenant,
			Environment:   e.cfg.Environment,
			ObservedAt:    now.UTC(),
			Replay:        replay,
			Part:          p + 1,
			Parts:         parts,
			Run:           run,
			Events:        chunk,
		})
	}
	return out
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	for len(s) > 0 && !utf8.ValidString(s) { // do not cut a rune in two
		s = s[:len(s)-1]
	}
	return s + "…"
}

// truncateArgs bounds annotation and parameter values like messages: they are copied into every
// part of a run's delta. The snapshot's own map and slice are left as they are.
func truncateArgs(annotations map[string]string, params []event.Parameter) (map[string]string, []event.Parameter) {
	var a map[string]string
	if annotations != nil {
		a = make(map[string]string, len(annotations))
		for k, v := range annotations {
			a[k] = truncate(v)
		}
	}
	p := slices.Clone(params)
	for i := range p {
		if v := p[i].Value; v != nil {
			t := truncate(*v)
			p[i].Value = &t
		}
	}
	return a, p
}

// nextIndex turns old, in place, into what the index should hold after this poll, but for the
// changed runs, whose entries are set as their batches are done. An incremental poll keeps exactly
// the runs it saw (a run that drops out and comes back costs one read, nothing more); a backfill
// only adds to it. A deferred run keeps its last committed entry, or gets one with no
// fingerprint: either way it is changed to the next poll, and it is followed up by reference.
func (e *Engine) nextIndex(old state.Index, snaps map[string]*Snapshot, changed, deferred []*Snapshot, gone []string, backfill bool) state.Index {
	next := old
	if next == nil {
		next = make(state.Index, len(snaps))
	}
	if !backfill {
		for k := range next {
			if _, ok := snaps[k]; !ok {
				delete(next, k)
			}
		}
	}
	skip := make(map[*Snapshot]bool, len(changed)+len(deferred))
	for _, s := range changed {
		skip[s] = true
	}
	for _, s := range deferred {
		skip[s] = true
		k := s.Key()
		entry, ok := next[k]
		if !ok {
			entry = state.IndexEntry{}
		}
		if s.Ref != "" {
			entry.Active, entry.Ref = true, s.Ref
		}
		next[k] = entry
	}
	for k, s := range snaps {
		if skip[s] {
			continue
		}
		// An unchanged run keeps its entry as read, whose strings the store holds anyway.
		if entry := entryOf(s); next[k] != entry {
			next[k] = entry
		}
	}
	for _, k := range gone {
		delete(next, k)
	}
	return next
}

// entryOf is a run's index entry.
func entryOf(s *Snapshot) state.IndexEntry {
	entry := state.IndexEntry{Fingerprint: s.Fingerprint, Active: s.Active}
	if s.Active {
		entry.Ref = s.Ref
	}
	return entry
}

func (e *Engine) notify(deltas []*event.RunDelta) {
	if e.onPublish == nil {
		return
	}
	for _, d := range deltas {
		e.onPublish(d)
	}
}

func (e *Engine) apiStats() (int64, int64) {
	if c, ok := e.src.(APICounter); ok {
		return c.APIStats()
	}
	return 0, 0
}

func (e *Engine) usage() (int64, int64) {
	if c, ok := e.store.(UsageCounter); ok {
		return c.Usage()
	}
	return 0, 0
}

func newHolder() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
