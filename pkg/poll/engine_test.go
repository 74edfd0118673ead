package poll_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
)

// script is a Source whose runs the test sets directly: the engine's logic is tested here; the
// real Argo and Airflow sources are tested against their simulators in their own packages.
type script struct {
	mu      sync.Mutex
	runs    map[string]*poll.Snapshot // by name
	listErr error
	fetched [][]string
	loads   int
}

func newScript() *script { return &script{runs: map[string]*poll.Snapshot{}} }

func (s *script) Name() string { return "argo/test" }

func (s *script) Status(phase string) event.Status { return poll.WordStatus(phase) }

func (s *script) set(name, phase string, active bool, tasks ...event.TaskEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fp := fmt.Sprint(phase, tasks)
	s.runs[name] = &poll.Snapshot{
		Run:         event.Run{Source: event.SourceArgo, Instance: "test", Namespace: "ns", UID: "uid-" + name, Name: name, Pipeline: name, Phase: phase, Status: poll.WordStatus(phase)},
		Ref:         "ns/" + name + "/uid-" + name,
		Fingerprint: fp,
		Active:      active,
		Tasks:       tasks,
	}
}

// hide keeps a run out of List (it started before the window and is no longer active) while
// Fetch still finds it.
func (s *script) List(ctx context.Context, w poll.Window) ([]*poll.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listErr != nil {
		return nil, s.listErr
	}
	var out []*poll.Snapshot
	for _, r := range s.runs {
		if r.Active || !strings.HasPrefix(r.Run.Name, "old-") {
			out = append(out, clone(r, false))
		}
	}
	// By name, as a server lists in an order of its own: which runs come first matters when a
	// poll defers some.
	slices.SortFunc(out, func(a, b *poll.Snapshot) int { return strings.Compare(a.Run.Name, b.Run.Name) })
	return out, nil
}

func (s *script) Fetch(ctx context.Context, refs []string) ([]*poll.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched = append(s.fetched, refs)
	var out []*poll.Snapshot
	for _, ref := range refs {
		for _, r := range s.runs {
			if r.Ref == ref {
				out = append(out, clone(r, false))
			}
		}
	}
	return out, nil
}

func (s *script) Load(ctx context.Context, snap *poll.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	snap.Tasks = append([]event.TaskEvent(nil), s.runs[snap.Run.Name].Tasks...)
	snap.Loaded = true
	return nil
}

func clone(r *poll.Snapshot, loaded bool) *poll.Snapshot {
	c := *r
	c.Tasks, c.Loaded = nil, loaded
	return &c
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func at(min int) *time.Time { t := t0.Add(time.Duration(min) * time.Minute); return &t }

func task(id, phase string, start, end *time.Time) event.TaskEvent {
	return event.TaskEvent{NodeID: id, Name: id, Type: "Pod", State: phase, Status: poll.WordStatus(phase), StartedAt: start, FinishedAt: end}
}

func transitions(h *polltest.Harness) []string {
	var out []string
	for _, tr := range polltest.Transitions(h.Published()) {
		out = append(out, fmt.Sprintf("%s/%s %s>%s", tr.Run, tr.Node, tr.From, tr.To))
	}
	return out
}

func mustPoll(t *testing.T, e *poll.Engine, req poll.Request) *poll.Result {
	t.Helper()
	res, err := e.Poll(context.Background(), req)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return res
}

func TestEngineIncremental(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	e := h.Engine(src, poll.Config{})

	src.set("a", "Running", true, task("a", "Running", at(0), nil), task("a-1", "Running", at(0), nil))
	res := mustPoll(t, e, poll.Request{})
	if got, want := transitions(h), []string{"a/a >Running", "a/a-1 >Running"}; !sameSet(got, want) {
		t.Fatalf("first poll published %v, want %v (a running task is recorded at start)", got, want)
	}
	if !res.Cursor.Equal(t0) || res.RunsChanged != 1 {
		t.Fatalf("result %+v: want cursor %s and 1 changed run", res, t0)
	}

	// Nothing changed: no event, no store operation for the run.
	h.Clock.Advance(time.Minute)
	res = mustPoll(t, e, poll.Request{})
	if got := transitions(h); len(got) != 0 || res.RunsChanged != 0 {
		t.Fatalf("unchanged poll published %v, changed %d", got, res.RunsChanged)
	}

	// The task finishes and another one starts and finishes between two polls.
	src.set("a", "Running", true, task("a", "Running", at(0), nil), task("a-1", "Succeeded", at(0), at(1)), task("a-2", "Failed", at(1), at(2)))
	h.Clock.Advance(time.Minute)
	mustPoll(t, e, poll.Request{})
	if got, want := transitions(h), []string{"a/a-1 Running>Succeeded", "a/a-2 >Failed"}; !sameSet(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}

func TestEngineFollowsRunsThatLeftTheActiveListing(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	e := h.Engine(src, poll.Config{})
	src.set("old-b", "Running", true, task("old-b", "Running", at(-600), nil))
	mustPoll(t, e, poll.Request{})
	h.Published()

	// FARM is down for hours; the run finished long after it started, so no window lists it.
	src.set("old-b", "Succeeded", false, task("old-b", "Succeeded", at(-600), at(100)))
	h.Clock.Advance(5 * time.Hour)
	res := mustPoll(t, e, poll.Request{})
	if got, want := transitions(h), []string{"old-b/old-b Running>Succeeded"}; !sameSet(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if res.RunsFetched != 1 || len(src.fetched) != 1 || src.fetched[0][0] != "ns/old-b/uid-old-b" {
		t.Fatalf("fetched %v (result %d), want the run's ref once", src.fetched, res.RunsFetched)
	}
	// Finished: not followed again.
	h.Clock.Advance(time.Minute)
	mustPoll(t, e, poll.Request{})
	if len(src.fetched) != 1 {
		t.Fatalf("a finished run is still fetched: %v", src.fetched)
	}
}

func TestEngineCrashBetweenPublishAndCommitRepublishesSameIDs(t *testing.T) {
	store := polltest.NewCrashOnce(newStore(t))
	h := polltest.New(t, store, t0)
	src := newScript()
	e := h.Engine(src, poll.Config{})
	src.set("c", "Running", true, task("c", "Running", at(0), nil), task("c-1", "Succeeded", at(0), at(1)))
	if _, err := e.Poll(context.Background(), poll.Request{}); !errors.Is(err, poll.ErrStore) {
		t.Fatalf("poll with failing commit: err = %v, want ErrStore", err)
	}
	first := polltest.Events(h.Published())
	h.Clock.Advance(time.Minute)
	res := mustPoll(t, e, poll.Request{})
	second := polltest.Events(h.Published())
	if len(first) != 2 || !reflect.DeepEqual(ids(first), ids(second)) {
		t.Fatalf("after the crash the next poll published ids %v, first publication had %v", ids(second), ids(first))
	}
	if !res.PreviousCursor.IsZero() {
		t.Fatalf("cursor moved despite the failed commit: %s", res.PreviousCursor)
	}
}

func TestEngineFailuresLeaveCursor(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	e := h.Engine(src, poll.Config{})
	src.set("d", "Running", true, task("d", "Running", at(0), nil))
	mustPoll(t, e, poll.Request{})
	h.Published()

	src.listErr = errors.New("argo server: 500 Internal Server Error")
	h.Clock.Advance(time.Minute)
	if _, err := e.Poll(context.Background(), poll.Request{}); !errors.Is(err, poll.ErrSource) {
		t.Fatalf("err = %v, want ErrSource", err)
	}
	src.listErr = nil
	h.Clock.Advance(time.Minute)
	res := mustPoll(t, e, poll.Request{}) // the lease was released: no wait for expiry
	if !res.PreviousCursor.Equal(t0) {
		t.Fatalf("previous cursor %s, want %s (the failed poll must not move it)", res.PreviousCursor, t0)
	}
}

func TestEngineLease(t *testing.T) {
	store := newStore(t)
	h := polltest.New(t, store, t0)
	e := h.Engine(newScript(), poll.Config{LeaseTTL: time.Minute})
	if _, err := store.Acquire(context.Background(), "argo/test", "crashed-poll", t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Poll(context.Background(), poll.Request{}); !errors.Is(err, poll.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy while another poll holds the lease", err)
	}
	h.Clock.Advance(2 * time.Minute) // the crashed poll's lease expires
	mustPoll(t, e, poll.Request{})
}

func TestEngineBackfillAndReplay(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	e := h.Engine(src, poll.Config{MaxBackfillWindow: 24 * time.Hour})
	src.set("e", "Succeeded", false, task("e", "Succeeded", at(0), at(3)), task("e-1", "Succeeded", at(1), at(2)))
	mustPoll(t, e, poll.Request{})
	first := ids(polltest.Events(h.Published()))

	h.Clock.Advance(time.Hour)
	win := poll.Request{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour)}
	res := mustPoll(t, e, win)
	if got := h.Published(); len(got) != 0 || !res.Cursor.IsZero() {
		t.Fatalf("backfill of published runs sent %d deltas / moved cursor to %s", len(got), res.Cursor)
	}
	win.Replay = true
	mustPoll(t, e, win)
	replayed := h.Published()
	if !reflect.DeepEqual(ids(polltest.Events(replayed)), first) || !replayed[0].Replay {
		t.Fatalf("replay ids %v (replay flag %v), want the first ids %v", ids(polltest.Events(replayed)), replayed[0].Replay, first)
	}
	if _, err := e.Poll(context.Background(), poll.Request{Since: t0.Add(-48 * time.Hour), Until: t0}); !errors.Is(err, poll.ErrBadRequest) {
		t.Fatalf("a window over the maximum: err = %v, want ErrBadRequest", err)
	}
}

func TestEngineSplitsLargeRuns(t *testing.T) {
	tests := []struct {
		name     string
		batch    event.BatchLimits
		messages int
	}{
		{"the parts in one batch", event.BatchLimits{}, 1},
		{"one part a message", event.BatchLimits{MaxDeltas: 1}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := polltest.New(t, newStore(t), t0)
			src := newScript()
			e := h.Engine(src, poll.Config{MaxEventsPerMessage: 10, Batch: tc.batch})
			var tasks []event.TaskEvent
			for i := range 25 {
				tasks = append(tasks, task(fmt.Sprintf("n%02d", i), "Succeeded", at(0), at(1)))
			}
			src.set("big", "Running", true, tasks...)
			res := mustPoll(t, e, poll.Request{})
			got := h.Published()
			if len(got) != 3 || res.Messages != tc.messages || res.Events != 25 {
				t.Fatalf("%d deltas in %d messages (events %d), want 3 in %d carrying 25 events", len(got), res.Messages, res.Events, tc.messages)
			}
			seen := map[string]bool{}
			for i, d := range got {
				if d.Part != i+1 || d.Parts != 3 || seen[d.ID] {
					t.Errorf("delta %d: part %d/%d id %s (duplicate %v)", i, d.Part, d.Parts, d.ID, seen[d.ID])
				}
				seen[d.ID] = true
			}
		})
	}
}

// TestEngineBatchesRuns: the changed runs of a poll share messages, bounded by count, each run
// under its shard's ordering key (polltest checks the key of every delta).
func TestEngineBatchesRuns(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	h.OrderingShards = 2
	src := newScript()
	e := h.Engine(src, poll.Config{Batch: event.BatchLimits{MaxDeltas: 7, Shards: 2}})
	for i := range 30 {
		src.set(fmt.Sprintf("run%02d", i), "Running", true, task("a", "Running", at(0), nil))
	}
	res := mustPoll(t, e, poll.Request{})
	got := h.Published()
	if len(got) != 30 || res.RunsChanged != 30 {
		t.Fatalf("%d deltas for %d changed runs, want 30", len(got), res.RunsChanged)
	}
	// 30 runs over 2 keys, at most 7 a message: at least ceil(30/7) = 5, at most 5 + 1 messages.
	if res.Messages < 5 || res.Messages > 6 {
		t.Errorf("%d messages for 30 runs, 7 a message over 2 keys: want 5 or 6", res.Messages)
	}
	keys := map[string]bool{}
	for _, m := range h.Server.Messages() {
		keys[m.OrderingKey] = true
	}
	if len(keys) != 2 {
		t.Errorf("%d ordering keys, want the 2 shards", len(keys))
	}
}

func ids(events []event.TaskEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestEngineNodeThatFinishesTwice(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	e := h.Engine(src, poll.Config{})
	src.set("r", "Failed", false, task("r-1", "Failed", at(0), at(1)))
	mustPoll(t, e, poll.Request{})
	first := polltest.Events(h.Published())

	// `argo retry` resets the node, keeping its id; it fails again before the next poll sees it
	// running: same state, later times — a new transition with a new id.
	src.set("r", "Failed", false, task("r-1", "Failed", at(2), at(3)))
	h.Clock.Advance(time.Minute)
	mustPoll(t, e, poll.Request{})
	second := polltest.Events(h.Published())
	if len(second) != 1 || second[0].PrevState != "Failed" || second[0].ID == first[0].ID {
		t.Fatalf("second failure published %+v; want one Failed>Failed event with a new id", second)
	}
}

func TestEngineTruncatesHugeMessages(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	e := h.Engine(src, poll.Config{})
	huge := task("m", "Failed", at(0), at(1))
	huge.Message = strings.Repeat("é", 1<<20) // a pod that printed a megabyte
	src.set("m", "Failed", false, huge)
	big := strings.Repeat("x", 1<<20)
	snap := src.runs["m"]
	snap.Run.Message, snap.Run.Annotations = big, map[string]string{"big": big, "small": "s"}
	snap.Run.Parameters = []event.Parameter{{Name: "big", Value: &big}, {Name: "unset"}}
	mustPoll(t, e, poll.Request{})
	deltas := h.Published()
	got := polltest.Events(deltas)
	if len(got) != 1 || len(got[0].Message) > 5<<10 || !strings.HasSuffix(got[0].Message, "…") || !utf8.ValidString(got[0].Message) {
		t.Fatalf("message of %d bytes published", len(got[0].Message))
	}
	run := deltas[0].Run
	if len(run.Message) > 5<<10 || len(run.Annotations["big"]) > 5<<10 || run.Annotations["small"] != "s" ||
		len(*run.Parameters[0].Value) > 5<<10 || run.Parameters[1].Value != nil {
		t.Errorf("run message %d bytes, annotations %d, parameters %+v", len(run.Message), len(run.Annotations["big"]), run.Parameters)
	}
	if len(snap.Run.Annotations["big"]) != 1<<20 || len(*snap.Run.Parameters[0].Value) != 1<<20 {
		t.Error("the snapshot's annotations or parameters were cut in place")
	}
}

func TestEngineDryRunStoresNothing(t *testing.T) {
	store := newStore(t)
	h := polltest.New(t, store, t0)
	src := newScript()
	e := h.Engine(src, poll.Config{})
	src.set("dry", "Running", true, task("dry", "Running", at(0), nil))
	var printed []*event.RunDelta
	e.OnPublish(func(d *event.RunDelta) { printed = append(printed, d) })
	res := mustPoll(t, e, poll.Request{DryRun: true})
	if len(h.Published()) != 0 || len(printed) != 1 || res.Events != 1 {
		t.Fatalf("dry run: %d published, %d printed, result %+v; want nothing published, 1 printed", len(h.Published()), len(printed), res)
	}
	// A poll is running: a dry run still works, and takes nothing from it.
	if _, err := store.Acquire(context.Background(), "argo/test", "running-poll", t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	mustPoll(t, e, poll.Request{DryRun: true})
	if err := store.Release(context.Background(), "argo/test", "running-poll"); err != nil {
		t.Fatal(err)
	}
	got, err := store.Peek(context.Background(), "argo/test")
	if err != nil || !got.Cursor.IsZero() || len(got.Index) != 0 {
		t.Fatalf("after dry runs the store has cursor %s and %d index entries (err %v)", got.Cursor, len(got.Index), err)
	}
	mustPoll(t, e, poll.Request{})
	if real := polltest.Events(h.Published()); len(real) != 1 || real[0].ID != printed[0].Events[0].ID {
		t.Fatalf("the real poll published %v, the dry run printed %v", ids(real), ids(printed[0].Events))
	}
}

// A backfill is its window: it publishes the runs that overlap it, not the active runs begun
// after it (which every listing includes); the incremental poll still publishes those.
func TestEngineBackfillIsItsWindow(t *testing.T) {
	h := polltest.New(t, newStore(t), t0.Add(2*time.Hour))
	src := newScript()
	e := h.Engine(src, poll.Config{MaxBackfillWindow: 24 * time.Hour})
	timed := func(name, phase string, active bool, start, end *time.Time) {
		src.set(name, phase, active, task(name, phase, start, end))
		src.runs[name].Run.StartedAt, src.runs[name].Run.FinishedAt = start, end
		src.runs[name].Run.CreatedAt = start
	}
	timed("inside", "Succeeded", false, at(10), at(20))
	timed("running-through", "Running", true, at(-120), nil)
	timed("ended-before", "Succeeded", false, at(-30), at(-10))
	timed("begun-after", "Running", true, at(90), nil)
	res := mustPoll(t, e, poll.Request{Since: t0, Until: t0.Add(time.Hour)})
	runs := map[string]bool{}
	for _, d := range h.Published() {
		runs[d.Run.Name] = true
	}
	if want := map[string]bool{"inside": true, "running-through": true}; !reflect.DeepEqual(runs, want) || res.RunsSeen != 2 {
		t.Fatalf("backfill published %v (%d runs seen), want %v", runs, res.RunsSeen, want)
	}
	mustPoll(t, e, poll.Request{})
	got := map[string]bool{}
	for _, d := range h.Published() {
		got[d.Run.Name] = true
	}
	if !got["begun-after"] {
		t.Fatalf("the incremental poll after the backfill published %v, want the active run begun after the window", got)
	}
}

// The store counters are named after the store that counted them: a file store's operations are
// not reported as Firestore's.
func TestStoreCountersNamedByStore(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	src.set("a", "Running", true, task("a", "Running", at(0), nil))
	res := mustPoll(t, h.Engine(src, poll.Config{}), poll.Request{})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"file_store_reads":`) || !strings.Contains(string(b), `"file_store_writes":`) || strings.Contains(string(b), "firestore") {
		t.Fatalf("file store poll answered %s", b)
	}
	var back poll.Result
	if err := json.Unmarshal(b, &back); err != nil || back.StoreReads != res.StoreReads || back.StoreWrites != res.StoreWrites || back.StoreReads == 0 {
		t.Fatalf("read back %+v (%v), want the counters of %+v", back, err, res)
	}
	// Firestore's keep their documented names (log-based metrics and dashboards read them).
	fs, _ := json.Marshal(poll.Result{Store: "firestore", StoreReads: 3, StoreWrites: 2})
	if !strings.Contains(string(fs), `"firestore_reads":3`) || !strings.Contains(string(fs), `"firestore_writes":2`) {
		t.Fatalf("Firestore result: %s", fs)
	}
}
