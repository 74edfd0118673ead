package firestore_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

func indexPart(t *testing.T, c *gfs.Client, i int) *gfs.DocumentSnapshot {
	t.Helper()
	snap, err := c.Collection(firestore.SourcesCollection).Doc("argo%2Fprod").Collection(firestore.IndexCollection).Doc(fmt.Sprint(i)).Get(t.Context())
	if err != nil {
		t.Fatalf("read index part %d: %v", i, err)
	}
	return snap
}

func indexParts(t *testing.T, c *gfs.Client) []*gfs.DocumentSnapshot {
	t.Helper()
	snaps, err := c.Collection(firestore.SourcesCollection).Doc("argo%2Fprod").Collection(firestore.IndexCollection).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatalf("list index parts: %v", err)
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
	if err := s.Record(t.Context(), "trace", map[string][]byte{"argo/prod/d_1": nil}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	data := sourceDoc(t, c).Data()
	if data["source"] != src || data["index_runs"] != int64(1) || data["index_parts"] != int64(1) {
		t.Errorf("source document = %v", data)
	}
	if gens, ok := data["index_gens"].([]any); !ok || len(gens) != 1 {
		t.Errorf("index_gens = %v, want one generation", data["index_gens"])
	}
	part := indexPart(t, c, 0).Data()
	if _, ok := part["entries"].([]byte); !ok || part["entries_encoding"] != "gzip+json" || part["runs"] != int64(1) {
		t.Errorf("index part 0 = %v, want entries (bytes), their encoding and count", part)
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

// TestSizes measures, on the emulator, the stored index of 200,000 active runs (split over parts
// far below Firestore's 1 MiB document limit) and a run of 5,000 tasks; then what a commit that
// changes a few runs writes, and what another instance reads.
func TestSizes(t *testing.T) {
	t.Parallel()
	c := testenv.Firestore(t)
	s := firestore.New(c)
	idx := activeIndex(200_000)
	run := bigRun(5000)
	mustAcquire(t, s, "a", t0)
	mustCommit(t, s, "a", []*state.Run{run}, t0, idx)

	other := firestore.New(c) // another instance: it holds no part yet
	got := mustAcquire(t, other, "b", t0.Add(time.Hour))
	if len(got.Index) != len(idx) {
		t.Fatalf("index round trip: %d entries, want %d", len(got.Index), len(idx))
	}
	parts := indexParts(t, c)
	largest := 0
	for _, p := range parts {
		largest = max(largest, len(p.Data()["entries"].([]byte)))
	}
	taskBytes := len(runDocs(t, c)[0].Data()["tasks"].([]byte))
	t.Logf("index of %d active runs: %d parts, the largest %d bytes (%.0f%% of 1 MiB); run of %d tasks: %d bytes",
		len(idx), len(parts), largest, 100*float64(largest)/(1<<20), len(run.Tasks), taskBytes)
	if largest > 300_000 {
		t.Errorf("an index part takes %d bytes: too close to the 1 MiB document limit", largest)
	}
	if taskBytes > 200_000 {
		t.Errorf("a 5,000-task run takes %d bytes", taskBytes)
	}

	// Three runs change: at most three parts are written, beside the runs and the source.
	next := maps.Clone(got.Index)
	var changed []*state.Run
	for k := range next {
		if len(changed) == 3 {
			break
		}
		e := next[k]
		e.Fingerprint += "9"
		next[k] = e
		changed = append(changed, &state.Run{Key: k, Fingerprint: e.Fingerprint})
	}
	_, w0 := other.Usage()
	mustCommit(t, other, "b", changed, t0.Add(time.Hour), next)
	if _, w1 := other.Usage(); w1-w0 > 3+3+1 {
		t.Errorf("a commit of 3 changed runs wrote %d documents, want at most 3 runs + 3 parts + 1", w1-w0)
	}
	// The first instance reads only the parts the other one wrote.
	r0, _ := s.Usage()
	again := mustAcquire(t, s, "a", t0.Add(2*time.Hour))
	if r1, _ := s.Usage(); r1-r0 > 1+3 {
		t.Errorf("Acquire after another instance's commit read %d documents, want the source and at most 3 parts", r1-r0)
	}
	if !maps.Equal(again.Index, next) {
		t.Errorf("the first instance's index differs from the one the other committed")
	}
}

// TestIndexBeforeParts: a source committed while its index was one blob of the source document
// is read as it was, and its next commit writes parts and drops the blob.
func TestIndexBeforeParts(t *testing.T) {
	t.Parallel()
	c := testenv.Firestore(t)
	idx := state.Index{"argo/prod/ns/u1": {Fingerprint: "1", Active: true, Ref: "ns/w1/u1"}, "argo/prod/ns/u2": {Fingerprint: "2"}}
	blob := gzipJSON(t, idx)
	ref := c.Collection(firestore.SourcesCollection).Doc("argo%2Fprod")
	if _, err := ref.Set(t.Context(), map[string]any{"source": src, "cursor": t0, "index": blob, "index_encoding": "gzip+json", "index_runs": 2}); err != nil {
		t.Fatal(err)
	}
	s := firestore.New(c)
	got := mustAcquire(t, s, "a", t0.Add(time.Minute))
	if !maps.Equal(got.Index, idx) || !got.Cursor.Equal(t0) {
		t.Fatalf("Acquire of an index before parts: %v at %s, want %v at %s", got.Index, got.Cursor, idx, t0)
	}
	mustCommit(t, s, "a", nil, t0.Add(time.Minute), idx)
	data := sourceDoc(t, c).Data()
	if _, ok := data["index"]; ok || data["index_parts"] != int64(1) {
		t.Errorf("after the first commit with parts: %v, want no blob and one part", data)
	}
	if got := mustAcquire(t, firestore.New(c), "b", t0.Add(time.Hour)); !maps.Equal(got.Index, idx) {
		t.Errorf("index read back from its parts: %v, want %v", got.Index, idx)
	}
}

func gzipJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
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
	partRef := indexPart(t, c, 0).Ref
	runRef := runDocs(t, c)[0].Ref
	fresh := func() *firestore.Store { return firestore.New(c) } // holds no part: reads them

	tests := []struct {
		name    string
		ref     *gfs.DocumentRef
		updates []gfs.Update
		call    func() error
		want    string
	}{
		{"index not gzip", partRef, []gfs.Update{{Path: "entries", Value: []byte("{not gzip")}},
			func() error { _, err := fresh().Acquire(ctx, src, "b", t0, time.Minute); return err }, "decode the entries"},
		{"index encoding unknown", partRef, []gfs.Update{{Path: "entries_encoding", Value: "zstd"}},
			func() error { _, err := fresh().Acquire(ctx, src, "b", t0, time.Minute); return err }, `unknown encoding "zstd"`},
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
	if err := s.Record(ctx, "trace", map[string][]byte{"d": nil}, t0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Record = %v, want a deadline error", err)
	}
}

func TestLedgerUsesClock(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	s := firestore.New(testenv.Firestore(t), firestore.WithClock(clk))
	if err := s.Record(t.Context(), "trace", map[string][]byte{"d1": nil}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{t0, true}, {t0.Add(time.Hour - time.Microsecond), true}, {t0.Add(time.Hour), false}, {t0.Add(48 * time.Hour), false}} {
		clk.Set(tc.at)
		got, err := s.Load(t.Context(), "trace", []string{"d1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got["d1"]; ok != tc.want {
			t.Errorf("Load at %s found d1: %v, want %v", tc.at, ok, tc.want)
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
	if err := s.Record(t.Context(), ns, map[string][]byte{a: nil}, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Record: %v", err)
	}
	got, err := s.Load(t.Context(), ns, []string{a, b})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	_, hasA := got[a]
	_, hasB := got[b]
	if !hasA || hasB {
		t.Errorf("Load = %v, want only the recorded id", got)
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
