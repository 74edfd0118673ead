package firestore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	gfs "cloud.google.com/go/firestore"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/firestore"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const src = "argo/prod"

func mustAcquire(t *testing.T, s *firestore.Store, holder string, now time.Time) *state.Source {
	t.Helper()
	got, err := s.Acquire(t.Context(), src, holder, now, time.Minute)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", holder, err)
	}
	return got
}

func mustCommit(t *testing.T, s *firestore.Store, holder string, runs []*state.Run, cursor time.Time, idx state.Index) {
	t.Helper()
	if err := s.Commit(t.Context(), src, holder, runs, cursor, idx); err != nil {
		t.Fatalf("Commit(%s): %v", holder, err)
	}
}

func sourceDoc(t *testing.T, c *gfs.Client) *gfs.DocumentSnapshot {
	t.Helper()
	snap, err := c.Collection(firestore.SourcesCollection).Doc("argo%2Fprod").Get(t.Context())
	if err != nil {
		t.Fatalf("read the source document: %v", err)
	}
	return snap
}

func runDocs(t *testing.T, c *gfs.Client) []*gfs.DocumentSnapshot {
	t.Helper()
	snaps, err := c.Collection(firestore.SourcesCollection).Doc("argo%2Fprod").Collection(firestore.RunsCollection).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatalf("list run documents: %v", err)
	}
	return snaps
}

// TestLayout checks the documents where terraform (TTL policies) and operators expect them.
func TestLayout(t *testing.T) {
	t.Parallel()
	c := testenv.Firestore(t)
	s := firestore.New(c)
	run := &state.Run{Key: "argo/prod/ns/uid-1", Fingerprint: "17", Phase: "Running",
		Tasks:     map[string]state.Task{"wf-1": {State: "Running", StartedAt: t0}},
		UpdatedAt: t0, ExpireAt: t0.Add(720 * time.Hour)}
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", []*state.Run{run}, t0, state.Index{run.Key: {Fingerprint: "17"}})
	if err := s.Record(t.Context(), "trace", []string{"argo/prod/d_1"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	data := sourceDoc(t, c).Data()
	if data["source"] != src || data["index_runs"] != int64(1) || data["index_encoding"] != "gzip+json" {
		t.Errorf("source document = %v", data)
	}
	if _, ok := data["index"].([]byte); !ok {
		t.Errorf("index is %T, want bytes", data["index"])
	}
	if got, ok := data["cursor"].(time.Time); !ok || !got.Equal(t0) {
		t.Errorf("cursor = %v, want the Timestamp %s", data["cursor"], t0)
	}
	if _, ok := data["lease_holder"]; ok {
		t.Errorf("lease_holder still set after Commit: %v", data)
	}

	runs := runDocs(t, c)
	if len(runs) != 1 {
		t.Fatalf("%d run documents, want 1", len(runs))
	}
	rd := runs[0].Data()
	if id := runs[0].Ref.ID; len(id) != 32 || strings.ContainsAny(id, "/.") {
		t.Errorf("run document id %q is not a 32-character hash", id)
	}
	if rd["key"] != run.Key || rd["fingerprint"] != "17" || rd["task_count"] != int64(1) {
		t.Errorf("run document = %v", rd)
	}
	if got, ok := rd[firestore.ExpireAtField].(time.Time); !ok || !got.Equal(run.ExpireAt) {
		t.Errorf("run %s = %v, want the Timestamp %s", firestore.ExpireAtField, rd[firestore.ExpireAtField], run.ExpireAt)
	}

	led, err := c.Collection(firestore.LedgerCollection).Doc("trace_argo%2Fprod%2Fd%5F1").Get(t.Context())
	if err != nil {
		t.Fatalf("ledger document: %v", err)
	}
	if got, ok := led.Data()[firestore.ExpireAtField].(time.Time); !ok || !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("ledger %s = %v", firestore.ExpireAtField, led.Data()[firestore.ExpireAtField])
	}
}

// activeIndex is the index of n active Argo runs shaped like real ones: uid keys, resourceVersion
// fingerprints and namespace/name/uid refs.
func activeIndex(n int) state.Index {
	rng := rand.New(rand.NewPCG(1, 2))
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	idx := make(state.Index, n)
	for range n {
		ns := fmt.Sprintf("team-%02d", rng.IntN(20))
		uid := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff)
		suffix := make([]byte, 5)
		for j := range suffix {
			suffix[j] = alnum[rng.IntN(len(alnum))]
		}
		name := fmt.Sprintf("pipeline-%03d-%s", rng.IntN(200), suffix)
		idx["argo/prod-cluster/"+ns+"/"+uid] = state.IndexEntry{
			Fingerprint: fmt.Sprint(380000000 + rng.IntN(20000000)), Active: true, Ref: ns + "/" + name + "/" + uid,
		}
	}
	return idx
}

// TestSizes measures, on the emulator, the stored index of 10,000 active runs and a run of 5,000
// tasks against Firestore's 1 MiB document limit.
func TestSizes(t *testing.T) {
	t.Parallel()
	c := testenv.Firestore(t)
	s := firestore.New(c)
	idx := activeIndex(10_000)
	run := bigRun(5000)
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", []*state.Run{run}, t0, idx)

	got := mustAcquire(t, s, "a", t0.Add(time.Hour))
	if len(got.Index) != len(idx) {
		t.Fatalf("index round trip: %d entries, want %d", len(got.Index), len(idx))
	}
	indexBytes := len(sourceDoc(t, c).Data()["index"].([]byte))
	taskBytes := len(runDocs(t, c)[0].Data()["tasks"].([]byte))
	t.Logf("index of %d active runs: %d bytes (%.0f%% of 1 MiB); run of %d tasks: %d bytes",
		len(idx), indexBytes, 100*float64(indexBytes)/(1<<20), len(run.Tasks), taskBytes)
	if indexBytes > 600_000 {
		t.Errorf("index of 10,000 active runs takes %d bytes: too close to the 1 MiB document limit", indexBytes)
	}
	if taskBytes > 200_000 {
		t.Errorf("a 5,000-task run takes %d bytes", taskBytes)
	}
}

func bigRun(n int) *state.Run {
	tasks := make(map[string]state.Task, n)
	for i := range n {
		start := t0.Add(time.Duration(i) * time.Second)
		tasks[fmt.Sprintf("big-workflow-x7k2p-%d", 1000000000+i*7919)] = state.Task{State: "Succeeded", StartedAt: start, FinishedAt: start.Add(time.Duration(i%97) * time.Second)}
	}
	return &state.Run{Key: "argo/prod/ns/big", Fingerprint: "1", Phase: "Running", Tasks: tasks, UpdatedAt: t0}
}

// TestOversizedRun: a run that cannot fit in a document is refused before anything is written.
func TestOversizedRun(t *testing.T) {
	t.Parallel()
	c := testenv.Firestore(t)
	s := firestore.New(c)
	rng := rand.New(rand.NewPCG(3, 4))
	huge := &state.Run{Key: "argo/prod/ns/huge", Tasks: map[string]state.Task{}}
	for len(huge.Tasks) < 40_000 { // random ids do not compress: ~1.3 MB gzipped
		huge.Tasks[fmt.Sprintf("%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64())] = state.Task{State: "Succeeded"}
	}
	small := &state.Run{Key: "argo/prod/ns/small", Fingerprint: "1"}
	mustAcquire(t, s, "a", t0)
	err := s.Commit(t.Context(), src, "a", []*state.Run{small, huge}, t0, nil)
	if !errors.Is(err, state.ErrInvalid) || !strings.Contains(err.Error(), huge.Key) {
		t.Fatalf("Commit of an oversized run = %v, want ErrInvalid naming %s", err, huge.Key)
	}
	if n := len(runDocs(t, c)); n != 0 {
		t.Errorf("%d run documents written by a refused Commit", n)
	}
	mustCommit(t, s, "a", []*state.Run{small}, t0, nil) // the lease was kept
}

// TestCrashBetweenRunsAndCommit: a poll that dies after writing its runs leaves the cursor and
// index where they were and its lease until expiry; the next poll takes over.
func TestCrashBetweenRunsAndCommit(t *testing.T) {
	t.Parallel()
	c := testenv.Firestore(t)
	s := firestore.New(c)
	idx := state.Index{"argo/prod/ns/u0": {Fingerprint: "1"}}
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", nil, t0, idx)

	crash := errors.New("process killed")
	firestore.SetAfterRuns(s, func(context.Context) error { return crash })
	t1 := t0.Add(time.Hour)
	mustAcquire(t, s, "a", t1)
	run := &state.Run{Key: "argo/prod/ns/u1", Fingerprint: "2", Tasks: map[string]state.Task{"n": {State: "Running"}}}
	if err := s.Commit(t.Context(), src, "a", []*state.Run{run}, t1, state.Index{run.Key: {Fingerprint: "2"}}); !errors.Is(err, crash) {
		t.Fatalf("Commit = %v, want the crash", err)
	}
	firestore.SetAfterRuns(s, nil)

	if _, err := s.Acquire(t.Context(), src, "b", t1.Add(time.Second), time.Minute); !errors.Is(err, state.ErrLeaseHeld) {
		t.Fatalf("Acquire while the crashed poll's lease runs = %v, want ErrLeaseHeld", err)
	}
	got := mustAcquire(t, s, "b", t1.Add(time.Minute))
	if !got.Cursor.Equal(t0) || len(got.Index) != 1 || got.Index["argo/prod/ns/u0"].Fingerprint != "1" {
		t.Errorf("after the crash: cursor %s, index %v; want %s, %v", got.Cursor, got.Index, t0, idx)
	}
	runs, err := s.LoadRuns(t.Context(), src, []string{run.Key})
	if err != nil || runs[run.Key] == nil || runs[run.Key].Fingerprint != "2" {
		t.Errorf("the run written before the crash: %v, %v", runs, err)
	}
	if err := s.Commit(t.Context(), src, "a", nil, t1, nil); !errors.Is(err, state.ErrLeaseLost) {
		t.Errorf("the crashed poll's late Commit = %v, want ErrLeaseLost", err)
	}
	mustCommit(t, s, "b", []*state.Run{run}, t1, state.Index{run.Key: {Fingerprint: "2"}})
}

// TestCorruptDocuments: damaged stored state gets a clear error, and a corrupt index does not
// leave a lease behind.
func TestCorruptDocuments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := testenv.Firestore(t)
	s := firestore.New(c)
	run := &state.Run{Key: "argo/prod/ns/u1", Fingerprint: "1"}
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", []*state.Run{run}, t0, state.Index{run.Key: {Fingerprint: "1"}})
	srcRef := sourceDoc(t, c).Ref
	runRef := runDocs(t, c)[0].Ref

	tests := []struct {
		name    string
		ref     *gfs.DocumentRef
		updates []gfs.Update
		call    func() error
		want    string
	}{
		{"index not gzip", srcRef, []gfs.Update{{Path: "index", Value: []byte("{not gzip")}},
			func() error { _, err := s.Acquire(ctx, src, "b", t0, time.Minute); return err }, "decode the index"},
		{"index encoding unknown", srcRef, []gfs.Update{{Path: "index_encoding", Value: "zstd"}},
			func() error { _, err := s.Acquire(ctx, src, "b", t0, time.Minute); return err }, `unknown encoding "zstd"`},
		{"tasks not gzip", runRef, []gfs.Update{{Path: "tasks", Value: []byte{0x1f, 0x8b, 0}}},
			func() error { _, err := s.LoadRuns(ctx, src, []string{run.Key}); return err }, "decode the tasks of run"},
		{"key mismatch", runRef, []gfs.Update{{Path: "key", Value: "argo/prod/ns/other"}},
			func() error { _, err := s.LoadRuns(ctx, src, []string{run.Key}); return err }, `holds key "argo/prod/ns/other"`},
		{"field of the wrong type", runRef, []gfs.Update{{Path: "task_count", Value: "many"}},
			func() error { _, err := s.LoadRuns(ctx, src, []string{run.Key}); return err }, "decode run"},
	}
	for _, tc := range tests {
		before, err := tc.ref.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.ref.Update(ctx, tc.updates); err != nil {
			t.Fatalf("%s: damage the document: %v", tc.name, err)
		}
		if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want one containing %q", tc.name, err, tc.want)
		}
		if _, err := tc.ref.Set(ctx, before.Data()); err != nil {
			t.Fatalf("%s: repair: %v", tc.name, err)
		}
	}
	if holder, err := sourceDoc(t, c).DataAt("lease_holder"); err == nil {
		t.Errorf("a corrupt index left a lease to %v", holder)
	}
	mustAcquire(t, s, "b", t0)
}

// TestUnreachable: with Firestore down, calls fail within their context instead of hanging.
func TestUnreachable(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(testenv.FirestoreEmulatorHostVar, fmt.Sprintf("127.0.0.1:%d", port)) // nothing listens
	c, err := firestore.NewClient(t.Context(), "unreachable", "")
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer c.Close()
	s := firestore.New(c)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.Acquire(ctx, src, "a", t0, time.Minute); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "acquire the lease of argo/prod") {
		t.Errorf("Acquire = %v, want a deadline error naming the operation", err)
	}
	if err := s.Record(ctx, "trace", []string{"d"}, t0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Record = %v, want a deadline error", err)
	}
}

func TestLedgerUsesClock(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	s := firestore.New(testenv.Firestore(t), firestore.WithClock(clk))
	if err := s.Record(t.Context(), "trace", []string{"d1"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{t0, true}, {t0.Add(time.Hour - time.Microsecond), true}, {t0.Add(time.Hour), false}, {t0.Add(48 * time.Hour), false}} {
		clk.Set(tc.at)
		got, err := s.Seen(t.Context(), "trace", []string{"d1"})
		if err != nil {
			t.Fatal(err)
		}
		if got["d1"] != tc.want {
			t.Errorf("Seen at %s = %v, want %v", tc.at, got["d1"], tc.want)
		}
	}
}

// TestLedgerLongIDs: ids whose escaped form cannot fit a document id are hashed, and still kept
// apart from each other.
func TestLedgerLongIDs(t *testing.T) {
	t.Parallel()
	s := firestore.New(testenv.Firestore(t))
	ns := strings.Repeat("n/", state.MaxNameBytes/2)
	a, b := strings.Repeat("/", state.MaxNameBytes), strings.Repeat("/", state.MaxNameBytes-1)+"."
	if err := s.Record(t.Context(), ns, []string{a}, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Record: %v", err)
	}
	got, err := s.Seen(t.Context(), ns, []string{a, b})
	if err != nil {
		t.Fatalf("Seen: %v", err)
	}
	if !got[a] || got[b] {
		t.Errorf("Seen = %v, want only the recorded id", got)
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	testenv.FirestoreEmulator(t)
	if _, err := firestore.NewClient(t.Context(), "", ""); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("NewClient without a project = %v, want ErrInvalid", err)
	}
	project := testenv.FirestoreProject(t)
	open := func(db string) *firestore.Store {
		c, err := firestore.NewClient(t.Context(), project, db)
		if err != nil {
			t.Fatalf("NewClient(%q): %v", db, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return firestore.New(c)
	}
	if _, err := open("").Acquire(t.Context(), src, "a", t0, time.Minute); err != nil {
		t.Fatalf("default database: %v", err)
	}
	// "(default)" is the same database; "farm-state" another one.
	var held *state.LeaseHeldError
	if _, err := open("(default)").Acquire(t.Context(), src, "b", t0, time.Minute); !errors.As(err, &held) || held.Holder != "a" {
		t.Errorf(`database "(default)": Acquire = %v, want held by a`, err)
	}
	if _, err := open("farm-state").Acquire(t.Context(), src, "b", t0, time.Minute); err != nil {
		t.Errorf("named database: Acquire = %v, want its own free lease", err)
	}
}
