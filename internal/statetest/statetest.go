// Package statetest is the contract every state.Store and state.Ledger implementation passes.
//
//	func TestContract(t *testing.T) {
//		statetest.Run(t, func(t *testing.T) (state.Store, state.Ledger) { ... a fresh, empty store ... })
//	}
//
// Semantics fixed here, beyond the interface's comments:
//   - a lease is held while now < expiry: at its expiry instant anyone may take it;
//   - Commit checks only that holder is still the lease holder (an expired lease nobody took is
//     still held); a Commit after the holder's own Commit or Release is ErrLeaseLost;
//   - Acquire always returns a non-nil Index; LoadRuns returns runs with non-nil Tasks;
//   - Commit replaces a stored run whole (tasks are not merged);
//   - Load ignores entries whose ExpireAt is not after the store's clock, even if still stored;
//     Record replaces an entry (its data and its expiry); a zero expiry and data over
//     state.MaxLedgerData are refused;
//   - bad arguments are refused with state.ErrInvalid, a done context with its error;
//   - times keep at least microsecond precision;
//   - the index has no size ceiling (200,000 active runs commit), and a commit that changes k
//     entries writes at most runs + 1 + k documents, whatever the index's size; an inactive
//     entry a commit dropped may still be returned until a later commit rewrites its part of the
//     index (a poll never follows an inactive entry up, so it costs nothing).
//
// Subtests run in parallel, each on its own store.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/farmobs/farm/pkg/state"
)

// NewStore returns a fresh, empty store and its ledger (often the same value) for one test.
type NewStore func(t *testing.T) (state.Store, state.Ledger)

// Run runs the contract suite against the stores newStore makes.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s state.Store, l state.Ledger)
	}{
		{"LeaseExclusion", testLeaseExclusion},
		{"LeaseExpiry", testLeaseExpiry},
		{"HolderReacquire", testHolderReacquire},
		{"Release", testRelease},
		{"CommitAdvancesAndReleases", testCommit},
		{"PeekTakesNoLease", testPeek},
		{"CommitLostLease", testCommitLostLease},
		{"ZeroCursorKeepsCursor", testZeroCursor},
		{"IndexRoundTrip", testIndexRoundTrip},
		{"LargeIndexWritesWhatChanged", testLargeIndex},
		{"LoadRuns", testLoadRuns},
		{"BigRun", testBigRun},
		{"ManyRuns", testManyRuns},
		{"ConcurrentAcquire", testConcurrentAcquire},
		{"CursorNeverBackwards", testCursorNeverBackwards},
		{"Ledger", testLedger},
		{"LedgerExpiry", testLedgerExpiry},
		{"LedgerManyIDs", testLedgerManyIDs},
		{"LedgerData", testLedgerData},
		{"ContextCanceled", testContextCanceled},
		{"InvalidArguments", testInvalid},
		{"Usage", testUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, l := newStore(t)
			tc.fn(t, s, l)
		})
	}
}

// t0 has microsecond precision, the finest Firestore keeps.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

const (
	src = "argo/prod"
	ttl = time.Minute
)

func acquire(t *testing.T, s state.Store, source, holder string, now time.Time) *state.Source {
	t.Helper()
	got, err := s.Acquire(t.Context(), source, holder, now, ttl)
	if err != nil {
		t.Fatalf("Acquire(%s, %s, %s): %v", source, holder, now.Format(time.RFC3339Nano), err)
	}
	if got.Index == nil {
		t.Fatalf("Acquire(%s, %s) returned a nil Index", source, holder)
	}
	return got
}

// wantHeld checks that holder cannot take source at now because owner holds it until expires.
func wantHeld(t *testing.T, s state.Store, source, holder string, now time.Time, owner string, expires time.Time) {
	t.Helper()
	_, err := s.Acquire(t.Context(), source, holder, now, ttl)
	var held *state.LeaseHeldError
	if !errors.Is(err, state.ErrLeaseHeld) || !errors.As(err, &held) {
		t.Fatalf("Acquire(%s, %s) at %s = %v, want a *LeaseHeldError", source, holder, now.Format(time.RFC3339Nano), err)
	}
	if held.Holder != owner || !held.Expires.Equal(expires) {
		t.Fatalf("lease held by %s until %s, want %s until %s", held.Holder, held.Expires, owner, expires)
	}
}

func commit(t *testing.T, s state.Store, holder string, runs []*state.Run, cursor time.Time, idx state.Index) {
	t.Helper()
	if err := s.Commit(t.Context(), src, holder, runs, cursor, idx); err != nil {
		t.Fatalf("Commit(%s, %s): %v", src, holder, err)
	}
}

// stored acquires and releases the source to read its cursor and index.
func stored(t *testing.T, s state.Store) *state.Source {
	t.Helper()
	got := acquire(t, s, src, "inspector", t0.Add(24*time.Hour))
	if err := s.Release(t.Context(), src, "inspector"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	return got
}

var cmpOpts = []cmp.Option{cmpopts.EquateEmpty()}

func testLeaseExclusion(t *testing.T, s state.Store, _ state.Ledger) {
	got := acquire(t, s, src, "a", t0)
	if got.LeaseHolder != "a" || !got.LeaseExpires.Equal(t0.Add(ttl)) {
		t.Errorf("lease = %s until %s, want a until %s", got.LeaseHolder, got.LeaseExpires, t0.Add(ttl))
	}
	if !got.Cursor.IsZero() || len(got.Index) != 0 {
		t.Errorf("a new source has cursor %s and %d index entries, want zero and none", got.Cursor, len(got.Index))
	}
	wantHeld(t, s, src, "b", t0.Add(30*time.Second), "a", t0.Add(ttl))
	// Leases are per source.
	acquire(t, s, "argo/other", "b", t0.Add(30*time.Second))
	wantHeld(t, s, "argo/other", "a", t0.Add(31*time.Second), "b", t0.Add(30*time.Second+ttl))
}

func testLeaseExpiry(t *testing.T, s state.Store, _ state.Ledger) {
	acquire(t, s, src, "a", t0)
	wantHeld(t, s, src, "b", t0.Add(ttl-time.Microsecond), "a", t0.Add(ttl))
	got := acquire(t, s, src, "b", t0.Add(ttl))
	if got.LeaseHolder != "b" || !got.LeaseExpires.Equal(t0.Add(2*ttl)) {
		t.Errorf("lease = %s until %s, want b until %s", got.LeaseHolder, got.LeaseExpires, t0.Add(2*ttl))
	}
	if err := s.Commit(t.Context(), src, "a", nil, t0, nil); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("Commit by the expired holder = %v, want ErrLeaseLost", err)
	}
	commit(t, s, "b", nil, t0, nil)
}

func testHolderReacquire(t *testing.T, s state.Store, _ state.Ledger) {
	acquire(t, s, src, "a", t0)
	got := acquire(t, s, src, "a", t0.Add(30*time.Second))
	if !got.LeaseExpires.Equal(t0.Add(30*time.Second + ttl)) {
		t.Errorf("re-acquired lease expires %s, want %s", got.LeaseExpires, t0.Add(30*time.Second+ttl))
	}
	// Past the first expiry, the extended lease still holds.
	wantHeld(t, s, src, "b", t0.Add(70*time.Second), "a", t0.Add(30*time.Second+ttl))
}

func testRelease(t *testing.T, s state.Store, _ state.Ledger) {
	ctx := t.Context()
	if err := s.Release(ctx, "never/seen", "a"); err != nil {
		t.Fatalf("Release of an unknown source = %v, want nil", err)
	}
	idx := state.Index{"argo/prod/ns/u1": {Fingerprint: "7", Active: true, Ref: "ns/w1/u1"}}
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", nil, t0, idx)

	acquire(t, s, src, "a", t0.Add(time.Minute))
	if err := s.Release(ctx, src, "b"); err != nil {
		t.Fatalf("Release by a non-holder = %v, want nil", err)
	}
	wantHeld(t, s, src, "b", t0.Add(time.Minute+time.Second), "a", t0.Add(time.Minute+ttl))
	if err := s.Release(ctx, src, "a"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	got := acquire(t, s, src, "b", t0.Add(time.Minute+time.Second))
	if !got.Cursor.Equal(t0) || !cmp.Equal(got.Index, idx, cmpOpts...) {
		t.Errorf("after Release: cursor %s, index %v; want %s, %v", got.Cursor, got.Index, t0, idx)
	}
	if err := s.Commit(ctx, src, "a", nil, t0.Add(time.Hour), nil); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("Commit after releasing = %v, want ErrLeaseLost", err)
	}
}

func testCommit(t *testing.T, s state.Store, _ state.Ledger) {
	ctx := t.Context()
	runs := sampleRuns()
	idx := state.Index{runs[0].Key: {Fingerprint: runs[0].Fingerprint}, runs[1].Key: {Fingerprint: runs[1].Fingerprint, Active: true, Ref: "ns/w2/u2"}}
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", runs, t0, idx)
	// The lease is released: another poll may start at once.
	got := acquire(t, s, src, "b", t0)
	if !got.Cursor.Equal(t0) || !cmp.Equal(got.Index, idx, cmpOpts...) {
		t.Errorf("after Commit: cursor %s, index %v; want %s, %v", got.Cursor, got.Index, t0, idx)
	}
	loaded, err := s.LoadRuns(ctx, src, []string{runs[0].Key, runs[1].Key})
	if err != nil {
		t.Fatalf("LoadRuns: %v", err)
	}
	if len(loaded) != 2 {
		t.Fatalf("LoadRuns found %d runs, want 2", len(loaded))
	}
	if err := s.Commit(ctx, src, "a", nil, t0.Add(time.Hour), nil); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("a second Commit by the same holder = %v, want ErrLeaseLost", err)
	}
}

func testPeek(t *testing.T, s state.Store, _ state.Ledger) {
	ctx := t.Context()
	empty, err := s.Peek(ctx, src)
	if err != nil || !empty.Cursor.IsZero() || empty.Index == nil || len(empty.Index) != 0 {
		t.Fatalf("Peek of a new source = %+v, %v; want an empty document", empty, err)
	}
	runs := sampleRuns()
	idx := state.Index{runs[0].Key: {Fingerprint: runs[0].Fingerprint, Active: true, Ref: "r"}}
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", runs, t0, idx)
	acquire(t, s, src, "b", t0.Add(time.Second))
	got, err := s.Peek(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cursor.Equal(t0) || !cmp.Equal(got.Index, idx, cmpOpts...) || got.LeaseHolder != "b" {
		t.Errorf("Peek = cursor %s, index %v, holder %q; want %s, %v, b", got.Cursor, got.Index, got.LeaseHolder, t0, idx)
	}
	// Peeking took nothing: b still holds the lease and can commit.
	commit(t, s, "b", nil, t0.Add(time.Minute), idx)
	if _, err := s.Peek(ctx, ""); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("Peek of an empty name = %v, want ErrInvalid", err)
	}
}

func testCommitLostLease(t *testing.T, s state.Store, _ state.Ledger) {
	ctx := t.Context()
	idx1 := state.Index{"argo/prod/ns/u1": {Fingerprint: "1"}}
	if err := s.Commit(ctx, src, "a", nil, t0, idx1); !errors.Is(err, state.ErrLeaseLost) {
		t.Fatalf("Commit without Acquire = %v, want ErrLeaseLost", err)
	}
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", nil, t0, idx1)

	t1 := t0.Add(time.Hour)
	acquire(t, s, src, "a", t1)
	acquire(t, s, src, "b", t1.Add(ttl)) // a's lease expired and b took it
	err := s.Commit(ctx, src, "a", sampleRuns(), t1, state.Index{"argo/prod/ns/u2": {Fingerprint: "2"}})
	if !errors.Is(err, state.ErrLeaseLost) {
		t.Fatalf("Commit with a lost lease = %v, want ErrLeaseLost", err)
	}
	if err := s.Release(ctx, src, "b"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	got := stored(t, s)
	if !got.Cursor.Equal(t0) || !cmp.Equal(got.Index, idx1, cmpOpts...) {
		t.Errorf("after a lost-lease Commit: cursor %s, index %v; want unchanged %s, %v", got.Cursor, got.Index, t0, idx1)
	}
}

func testZeroCursor(t *testing.T, s state.Store, _ state.Ledger) {
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", nil, t0, state.Index{"k1": {Fingerprint: "1"}})
	acquire(t, s, src, "a", t0.Add(time.Hour))
	idx2 := state.Index{"k1": {Fingerprint: "1"}, "k2": {Fingerprint: "2"}}
	commit(t, s, "a", nil, time.Time{}, idx2)
	got := stored(t, s)
	if !got.Cursor.Equal(t0) {
		t.Errorf("a zero cursor moved the cursor to %s, want %s", got.Cursor, t0)
	}
	if !cmp.Equal(got.Index, idx2, cmpOpts...) {
		t.Errorf("index = %v, want %v", got.Index, idx2)
	}
}

func testIndexRoundTrip(t *testing.T, s state.Store, _ state.Ledger) {
	idx := state.Index{
		"argo/prod/ns/5f1c-uid":     {Fingerprint: "123456789", Active: true, Ref: "ns/wf-abc/5f1c-uid"},
		"argo/prod/ns/done":         {Fingerprint: "42"},
		"airflow/c1/dag.x/run_1":    {Fingerprint: "sha:0f0f", Active: true, Ref: "dag.x/manual__2030-01-02T03:04:05+00:00"},
		"airflow/c1/dägé/ünïcode ✓": {Fingerprint: "x"},
	}
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", nil, t0, idx)
	if got := stored(t, s); !cmp.Equal(got.Index, idx, cmpOpts...) {
		t.Errorf("index round trip (-want +got):\n%s", cmp.Diff(idx, got.Index, cmpOpts...))
	}
	acquire(t, s, src, "a", t0.Add(time.Hour))
	commit(t, s, "a", nil, time.Time{}, nil)
	if got := stored(t, s); len(got.Index) != 0 {
		t.Errorf("after committing a nil index: %d entries, want none", len(got.Index))
	}
}

func sampleRuns() []*state.Run {
	return []*state.Run{
		{
			Key: "argo/prod/ns/u1", Fingerprint: "1001", Phase: "Succeeded",
			Tasks: map[string]state.Task{
				"wf-1":           {State: "Succeeded", StartedAt: t0, FinishedAt: t0.Add(time.Minute)},
				"wf-1-123456789": {State: "Running", StartedAt: t0.Add(time.Second)},
				"wf-1-pending":   {State: "Pending"},
				"wait#1":         {State: "queued", QueuedAt: t0.Add(time.Minute), TryStart: t0, Rescheduled: true},
			},
			UpdatedAt: t0, ExpireAt: t0.Add(30 * 24 * time.Hour),
		},
		{Key: "argo/prod/ns/u2", Fingerprint: "1002", Phase: "Running", UpdatedAt: t0},
		{Key: "airflow/c1/dag.x/manual__2030-01-02T03:04:05+00:00", Fingerprint: "h:ab", Phase: "queued", Tasks: map[string]state.Task{}},
	}
}

func testLoadRuns(t *testing.T, s state.Store, _ state.Ledger) {
	ctx := t.Context()
	runs := sampleRuns()
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", runs, t0, nil)

	keys := []string{runs[0].Key, runs[1].Key, "argo/prod/ns/absent", runs[0].Key, runs[2].Key}
	got, err := s.LoadRuns(ctx, src, keys)
	if err != nil {
		t.Fatalf("LoadRuns: %v", err)
	}
	want := map[string]*state.Run{runs[0].Key: runs[0], runs[1].Key: runs[1], runs[2].Key: runs[2]}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("LoadRuns (-want +got):\n%s", diff)
	}
	for k, r := range got {
		if r.Tasks == nil {
			t.Errorf("run %s has nil Tasks", k)
		}
	}
	if got, err := s.LoadRuns(ctx, src, nil); err != nil || len(got) != 0 {
		t.Errorf("LoadRuns(no keys) = %v, %v; want none", got, err)
	}
	if got, err := s.LoadRuns(ctx, "argo/other", []string{runs[0].Key}); err != nil || len(got) != 0 {
		t.Errorf("another source's LoadRuns = %v, %v; want none", got, err)
	}

	// A later commit replaces the run whole.
	next := &state.Run{Key: runs[0].Key, Fingerprint: "1003", Phase: "Failed",
		Tasks: map[string]state.Task{"wf-1": {State: "Failed", StartedAt: t0, FinishedAt: t0.Add(2 * time.Minute)}}, UpdatedAt: t0.Add(time.Hour)}
	acquire(t, s, src, "a", t0.Add(time.Hour))
	commit(t, s, "a", []*state.Run{next}, t0.Add(time.Hour), nil)
	got, err = s.LoadRuns(ctx, src, []string{next.Key})
	if err != nil {
		t.Fatalf("LoadRuns: %v", err)
	}
	if diff := cmp.Diff(map[string]*state.Run{next.Key: next}, got, cmpOpts...); diff != "" {
		t.Errorf("replaced run (-want +got):\n%s", diff)
	}
}

// bigRun is a workflow of n tasks with realistic Argo node ids.
func bigRun(key string, n int) *state.Run {
	tasks := make(map[string]state.Task, n)
	for i := range n {
		start := t0.Add(time.Duration(i) * time.Second)
		task := state.Task{State: "Succeeded", StartedAt: start, FinishedAt: start.Add(time.Duration(i%97) * time.Second)}
		if i%10 == 0 {
			task = state.Task{State: "Running", StartedAt: start}
		}
		tasks[fmt.Sprintf("big-workflow-x7k2p-%d", 1000000000+i*7919)] = task
	}
	return &state.Run{Key: key, Fingerprint: "99", Phase: "Running", Tasks: tasks, UpdatedAt: t0, ExpireAt: t0.Add(time.Hour)}
}

func testBigRun(t *testing.T, s state.Store, _ state.Ledger) {
	run := bigRun("argo/prod/ns/big", 5000)
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", []*state.Run{run}, t0, nil)
	got, err := s.LoadRuns(t.Context(), src, []string{run.Key})
	if err != nil {
		t.Fatalf("LoadRuns: %v", err)
	}
	if diff := cmp.Diff(run, got[run.Key], cmpOpts...); diff != "" {
		t.Errorf("5,000-task run (-want +got):\n%s", diff)
	}
}

func testManyRuns(t *testing.T, s state.Store, _ state.Ledger) {
	const n = 750 // above the 300-document read and 500-write batch limits
	runs := make([]*state.Run, n)
	keys := make([]string, 0, n+1)
	for i := range runs {
		runs[i] = &state.Run{
			Key: fmt.Sprintf("argo/prod/ns-%d/uid-%04d", i%7, i), Fingerprint: fmt.Sprint(i), Phase: "Running",
			Tasks:     map[string]state.Task{fmt.Sprintf("wf-%d", i): {State: "Running", StartedAt: t0}},
			UpdatedAt: t0,
		}
		keys = append(keys, runs[i].Key)
	}
	keys = append(keys, "argo/prod/ns/absent")
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", runs, t0, nil)
	got, err := s.LoadRuns(t.Context(), src, keys)
	if err != nil {
		t.Fatalf("LoadRuns: %v", err)
	}
	if len(got) != n {
		t.Fatalf("LoadRuns found %d runs, want %d", len(got), n)
	}
	for _, r := range runs {
		if diff := cmp.Diff(r, got[r.Key], cmpOpts...); diff != "" {
			t.Fatalf("run %s (-want +got):\n%s", r.Key, diff)
		}
	}
}

func testConcurrentAcquire(t *testing.T, s state.Store, _ state.Ledger) {
	const n = 4
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Acquire(t.Context(), src, fmt.Sprintf("h%d", i), t0, ttl)
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, err := range errs {
		var held *state.LeaseHeldError
		switch {
		case err == nil && winner != "":
			t.Fatalf("h%d and %s both acquired the lease", i, winner)
		case err == nil:
			winner = fmt.Sprintf("h%d", i)
		case !errors.As(err, &held):
			t.Fatalf("h%d: %v, want success or a *LeaseHeldError", i, err)
		}
	}
	if winner == "" {
		t.Fatalf("nobody acquired the lease: %v", errs)
	}
	for i, err := range errs {
		var held *state.LeaseHeldError
		if errors.As(err, &held) && held.Holder != winner {
			t.Errorf("h%d was told %s holds the lease, want %s", i, held.Holder, winner)
		}
	}
}

// seen returns which of ids the ledger has in ns.
func seen(t *testing.T, l state.Ledger, ns string, ids ...string) map[string]bool {
	t.Helper()
	got, err := l.Load(t.Context(), ns, ids)
	if err != nil {
		t.Fatalf("Load(%s): %v", ns, err)
	}
	out := make(map[string]bool, len(got))
	for id := range got {
		out[id] = true
	}
	return out
}

// record records ids in ns without data.
func record(t *testing.T, l state.Ledger, ns string, expireAt time.Time, ids ...string) {
	t.Helper()
	entries := make(map[string][]byte, len(ids))
	for _, id := range ids {
		entries[id] = nil
	}
	if err := l.Record(t.Context(), ns, entries, expireAt); err != nil {
		t.Fatalf("Record(%s): %v", ns, err)
	}
}

// testLedgerData: an entry keeps its data, a second Record replaces it, and data of the largest
// size allowed fits; larger is refused.
func testLedgerData(t *testing.T, _ state.Store, l state.Ledger) {
	ctx := t.Context()
	later := time.Now().Add(time.Hour)
	big := make([]byte, state.MaxLedgerData)
	for i := range big {
		big[i] = byte(i * 31)
	}
	if err := l.Record(ctx, "trace", map[string][]byte{"m1": []byte("spans 1 2"), "m2": nil, "m3": big}, later); err != nil {
		t.Fatal(err)
	}
	got, err := l.Load(ctx, "trace", []string{"m1", "m2", "m3", "m4"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got["m1"]) != "spans 1 2" || len(got["m2"]) != 0 || !bytes.Equal(got["m3"], big) {
		t.Errorf("Load = %d entries, m1 %q, m2 %q, m3 %d bytes; want m1..m3 as recorded", len(got), got["m1"], got["m2"], len(got["m3"]))
	}
	if err := l.Record(ctx, "trace", map[string][]byte{"m1": []byte("spans 1 2 3")}, later); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Load(ctx, "trace", []string{"m1"}); err != nil || string(got["m1"]) != "spans 1 2 3" {
		t.Errorf("after a second Record: %q, %v; want the new data", got["m1"], err)
	}
	if err := l.Record(ctx, "trace", map[string][]byte{"m5": make([]byte, state.MaxLedgerData+1)}, later); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("Record of %d bytes = %v, want ErrInvalid", state.MaxLedgerData+1, err)
	}
}

func testLedger(t *testing.T, _ state.Store, l state.Ledger) {
	later := time.Now().Add(time.Hour)
	if got := seen(t, l, "trace", "d1", "d2"); len(got) != 0 {
		t.Errorf("Load on an empty ledger = %v", got)
	}
	odd := "argo/prod/ns/u1/a_b.c %2F"
	record(t, l, "trace", later, "d1", odd, "d1")
	want := map[string]bool{"d1": true, odd: true}
	if got := seen(t, l, "trace", "d1", odd, "d3", "d1"); !cmp.Equal(got, want) {
		t.Errorf("Load = %v, want %v", got, want)
	}
	if got := seen(t, l, "sink", "d1"); len(got) != 0 {
		t.Errorf("namespaces are not kept apart: %v", got)
	}
	// "a_b"+"c" and "a"+"b_c" are different entries, neither hiding the other.
	record(t, l, "a_b", later, "c")
	if got := seen(t, l, "a", "b_c"); len(got) != 0 {
		t.Errorf("namespace a id b_c seen after recording namespace a_b id c: %v", got)
	}
	record(t, l, "a", later, "b_c")
	if got := seen(t, l, "a_b", "c"); !got["c"] {
		t.Errorf("namespace a_b id c lost after recording namespace a id b_c: %v", got)
	}
	if got := seen(t, l, "trace"); len(got) != 0 {
		t.Errorf("Load(no ids) = %v", got)
	}
	record(t, l, "trace", later)
}

func testLedgerExpiry(t *testing.T, _ state.Store, l state.Ledger) {
	now := time.Now()
	record(t, l, "trace", now.Add(-time.Minute), "old")
	record(t, l, "trace", now.Add(time.Hour), "new")
	want := map[string]bool{"new": true}
	if got := seen(t, l, "trace", "old", "new"); !cmp.Equal(got, want) {
		t.Errorf("Seen = %v, want %v (expired entries are ignored)", got, want)
	}
	// Recording again replaces the expiry, both ways.
	record(t, l, "trace", now.Add(time.Hour), "old")
	record(t, l, "trace", now.Add(-time.Minute), "new")
	want = map[string]bool{"old": true}
	if got := seen(t, l, "trace", "old", "new"); !cmp.Equal(got, want) {
		t.Errorf("after re-recording: Load = %v, want %v", got, want)
	}
}

func testLedgerManyIDs(t *testing.T, _ state.Store, l state.Ledger) {
	ids := make([]string, 650)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i*7919)
	}
	record(t, l, "trace", time.Now().Add(time.Hour), ids[:600]...)
	got := seen(t, l, "trace", ids...)
	if len(got) != 600 {
		t.Fatalf("Load found %d of 600 recorded ids", len(got))
	}
	for _, id := range ids[600:] {
		if got[id] {
			t.Fatalf("id %s seen but never recorded", id)
		}
	}
}

func testContextCanceled(t *testing.T, s state.Store, l state.Ledger) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", nil, t0, state.Index{"k": {Fingerprint: "1"}})
	acquire(t, s, src, "a", t0.Add(time.Hour))

	calls := map[string]func() error{
		"Acquire": func() error { _, err := s.Acquire(ctx, "argo/other", "b", t0, ttl); return err },
		"Release": func() error { return s.Release(ctx, src, "a") },
		"LoadRuns": func() error {
			_, err := s.LoadRuns(ctx, src, []string{"k"})
			return err
		},
		"Commit": func() error {
			return s.Commit(ctx, src, "a", sampleRuns(), t0.Add(time.Hour), state.Index{"k2": {Fingerprint: "2"}})
		},
		"Load":   func() error { _, err := l.Load(ctx, "trace", []string{"d1"}); return err },
		"Record": func() error { return l.Record(ctx, "trace", map[string][]byte{"d1": nil}, time.Now().Add(time.Hour)) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", name, err)
		}
	}
	// Nothing happened: a still holds src with the old cursor and index; argo/other is free.
	wantHeld(t, s, src, "b", t0.Add(time.Hour+time.Second), "a", t0.Add(time.Hour+ttl))
	acquire(t, s, "argo/other", "b", t0)
	commit(t, s, "a", nil, time.Time{}, state.Index{"k": {Fingerprint: "1"}})
	if got := stored(t, s); !got.Cursor.Equal(t0) {
		t.Errorf("cursor = %s after a canceled Commit, want %s", got.Cursor, t0)
	}
	if got := seen(t, l, "trace", "d1"); len(got) != 0 {
		t.Errorf("a canceled Record recorded %v", got)
	}
}

func testInvalid(t *testing.T, s state.Store, l state.Ledger) {
	ctx := t.Context()
	acquire(t, s, src, "a", t0)
	long := string(make([]byte, state.MaxNameBytes+1))
	calls := map[string]func() error{
		"Acquire empty source": func() error { _, err := s.Acquire(ctx, "", "a", t0, ttl); return err },
		"Acquire empty holder": func() error { _, err := s.Acquire(ctx, src, "", t0, ttl); return err },
		"Acquire zero ttl":     func() error { _, err := s.Acquire(ctx, src, "a", t0, 0); return err },
		"Acquire long source":  func() error { _, err := s.Acquire(ctx, long, "a", t0, ttl); return err },
		"Release empty holder": func() error { return s.Release(ctx, src, "") },
		"LoadRuns empty key": func() error {
			_, err := s.LoadRuns(ctx, src, []string{"k", ""})
			return err
		},
		"Commit nil run": func() error { return s.Commit(ctx, src, "a", []*state.Run{nil}, t0, nil) },
		"Commit empty key": func() error {
			return s.Commit(ctx, src, "a", []*state.Run{{Fingerprint: "1"}}, t0, nil)
		},
		"Commit duplicate key": func() error {
			return s.Commit(ctx, src, "a", []*state.Run{{Key: "k"}, {Key: "k"}}, t0, nil)
		},
		"Commit invalid UTF-8": func() error { return s.Commit(ctx, src, "a", []*state.Run{{Key: "\xff"}}, t0, nil) },
		"Load empty namespace": func() error { _, err := l.Load(ctx, "", []string{"d"}); return err },
		"Load empty id":        func() error { _, err := l.Load(ctx, "trace", []string{""}); return err },
		"Record empty id":      func() error { return l.Record(ctx, "trace", map[string][]byte{"": nil}, time.Now().Add(time.Hour)) },
		"Record zero expiry":   func() error { return l.Record(ctx, "trace", map[string][]byte{"d": nil}, time.Time{}) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("%s = %v, want state.ErrInvalid", name, err)
		}
	}
	// The refused Commits left the lease with a.
	wantHeld(t, s, src, "b", t0.Add(time.Second), "a", t0.Add(ttl))
}

// usageCounter is what the poll engine reads from a store that counts its operations.
type usageCounter interface {
	Usage() (reads, writes int64)
}

func testUsage(t *testing.T, s state.Store, l state.Ledger) {
	us, ok := s.(usageCounter)
	if !ok {
		t.Skip("the store does not count its operations")
	}
	ul, ok := l.(usageCounter)
	if !ok {
		t.Skip("the ledger does not count its operations")
	}
	ctx := t.Context()
	steps := []struct {
		name          string
		counter       usageCounter
		call          func() error
		reads, writes int64
	}{
		{"Acquire", us, func() error { _, err := s.Acquire(ctx, src, "a", t0, ttl); return err }, 1, 1},
		{"Commit 3 runs", us, func() error { return s.Commit(ctx, src, "a", sampleRuns(), t0, nil) }, 1, 4},
		{"Acquire again", us, func() error { _, err := s.Acquire(ctx, src, "a", t0, ttl); return err }, 1, 1},
		{"Acquire held", us, func() error {
			_, err := s.Acquire(ctx, src, "b", t0, ttl)
			if !errors.Is(err, state.ErrLeaseHeld) {
				return fmt.Errorf("want ErrLeaseHeld, got %w", err)
			}
			return nil
		}, 1, 0},
		{"LoadRuns 3 distinct keys, 1 absent", us, func() error {
			_, err := s.LoadRuns(ctx, src, []string{"argo/prod/ns/u1", "argo/prod/ns/u2", "argo/prod/ns/u1", "absent"})
			return err
		}, 3, 0},
		{"Release by a non-holder", us, func() error { return s.Release(ctx, src, "b") }, 1, 0},
		{"Release", us, func() error { return s.Release(ctx, src, "a") }, 1, 1},
		{"Load 2 distinct ids", ul, func() error { _, err := l.Load(ctx, "trace", []string{"d1", "d2", "d1"}); return err }, 2, 0},
		{"Record 2 entries", ul, func() error {
			return l.Record(ctx, "trace", map[string][]byte{"d1": []byte("x"), "d2": nil}, time.Now().Add(time.Hour))
		}, 0, 2},
	}
	for _, st := range steps {
		r0, w0 := st.counter.Usage()
		if err := st.call(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		r1, w1 := st.counter.Usage()
		if r1-r0 != st.reads || w1-w0 != st.writes {
			t.Errorf("%s cost %d reads and %d writes, want %d and %d", st.name, r1-r0, w1-w0, st.reads, st.writes)
		}
	}
}

// A commit with a cursor before the stored one (a poll whose instance's clock is behind) keeps the
// stored cursor: it never moves backwards.
func testCursorNeverBackwards(t *testing.T, s state.Store, _ state.Ledger) {
	ctx := t.Context()
	acquire(t, s, src, "a", t0)
	if err := s.Commit(ctx, src, "a", nil, t0.Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	acquire(t, s, src, "b", t0.Add(time.Minute))
	if err := s.Commit(ctx, src, "b", nil, t0.Add(time.Minute-21*time.Millisecond), nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Peek(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cursor.Equal(t0.Add(time.Minute)) {
		t.Errorf("cursor = %s after committing an earlier one, want %s", got.Cursor.Format(time.RFC3339Nano), t0.Add(time.Minute).Format(time.RFC3339Nano))
	}
}

// largeIndex is an index of n runs, active ones with refs, shaped like Argo's.
func largeIndex(n int) state.Index {
	idx := make(state.Index, n)
	for i := range n {
		uid := fmt.Sprintf("%08x-7c1d-4f2e-9a3b-%012x", i*2654435761%(1<<32), i)
		idx["argo/prod/team-"+fmt.Sprint(i%17)+"/"+uid] = state.IndexEntry{Fingerprint: fmt.Sprint(380000000 + i), Active: i%3 != 0, Ref: "team/wf-" + uid}
	}
	return idx
}

func testLargeIndex(t *testing.T, s state.Store, _ state.Ledger) {
	ctx := t.Context()
	idx := largeIndex(200_000)
	acquire(t, s, src, "a", t0)
	commit(t, s, "a", nil, t0, idx)
	got := acquire(t, s, src, "a", t0.Add(time.Minute))
	if len(got.Index) != len(idx) {
		t.Fatalf("index of %d runs read back with %d entries", len(idx), len(got.Index))
	}

	// Two runs change, one new run appears, an inactive run and an active one leave.
	next := make(state.Index, len(idx))
	for k, v := range idx {
		next[k] = v
	}
	var changed []*state.Run
	var droppedInactive, droppedActive string
	for k, v := range next {
		switch {
		case len(changed) < 2:
			v.Fingerprint += "1"
			next[k] = v
			changed = append(changed, &state.Run{Key: k, Fingerprint: v.Fingerprint})
		case droppedInactive == "" && !v.Active:
			droppedInactive = k
		case droppedActive == "" && v.Active:
			droppedActive = k
		}
	}
	delete(next, droppedInactive)
	delete(next, droppedActive)
	next["argo/prod/team-new/new-uid"] = state.IndexEntry{Fingerprint: "1", Active: true, Ref: "team/new/new-uid"}
	changed = append(changed, &state.Run{Key: "argo/prod/team-new/new-uid", Fingerprint: "1"})

	u, counts := s.(usageCounter)
	var w0 int64
	if counts {
		_, w0 = u.Usage()
	}
	if err := s.Commit(ctx, src, "a", changed, t0.Add(time.Minute), next); err != nil {
		t.Fatal(err)
	}
	if counts {
		// 3 runs, the source, and at most one part per changed entry (2 changed, 1 new, 1 active gone).
		if _, w1 := u.Usage(); w1-w0 > 3+1+4 {
			t.Errorf("a commit changing 4 entries of %d wrote %d documents, want at most 8", len(idx), w1-w0)
		}
	}
	got = stored(t, s)
	for k, v := range next {
		if got.Index[k] != v {
			t.Errorf("entry %s = %+v, want %+v", k, got.Index[k], v)
		}
	}
	if _, ok := got.Index[droppedActive]; ok {
		t.Errorf("the active entry %s the commit dropped is still in the index", droppedActive)
	}
	if len(got.Index) > len(next)+1 {
		t.Errorf("index has %d entries, want %d (+1 inactive entry left for later)", len(got.Index), len(next))
	}
}
