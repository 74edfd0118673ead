package argo_test

// End-to-end scenarios of issue 2: the real Argo client polling the simulated Argo Server
// through the real engine, with Firestore (the emulator) as the state store and the in-process
// Pub/Sub server behind FARM's publisher. Each scenario asserts the exact transitions published
// across successive polls.

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state/firestore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

const ns = "data"

type scenario struct {
	t      *testing.T
	h      *polltest.Harness
	sim    *argosim.Server
	src    *argo.Source
	engine *poll.Engine
}

func newScenario(t *testing.T, listing argo.Listing, opts argosim.Options) *scenario {
	t.Helper()
	store := firestore.New(testenv.Firestore(t))
	h := polltest.New(t, store, t0)
	sim := argosim.NewServer(h.Clock, opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	u, _ := url.Parse(srv.URL)
	cfg := argo.DefaultConfig()
	cfg.URL, cfg.Instance, cfg.Namespaces, cfg.PageSize, cfg.Listing = u, "test", []string{ns}, 3, listing
	cfg.HTTPTimeout, cfg.HTTPRetries = 2*time.Second, 2
	src, err := argo.New(cfg, argo.Deps{Clock: h.Clock,
		HTTP: []httpx.Option{httpx.WithSleep(func(ctx context.Context, d time.Duration) error { return ctx.Err() })}})
	if err != nil {
		t.Fatal(err)
	}
	return &scenario{t: t, h: h, sim: sim, src: src,
		engine: h.Engine(src, poll.Config{Overlap: 5 * time.Minute, InitialLookback: time.Hour})}
}

// forListings runs a scenario on each way of listing: every guarantee must hold on both paths,
// and on the automatic choice between them.
func forListings(t *testing.T, fn func(*testing.T, argo.Listing)) {
	for _, l := range []argo.Listing{argo.ListingFull, argo.ListingChanged, argo.ListingAuto} {
		t.Run(string(l), func(t *testing.T) { fn(t, l) })
	}
}

// min returns t0 plus m minutes.
func mins(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// node builds a node of workflow wf; name "" is the root. end < 0: not finished.
func node(wf, name string, typ argosim.NodeType, phase argosim.NodePhase, start, end int, boundary string, children ...string) argosim.NodeStatus {
	full := wf
	if name != "" {
		full = wf + "." + name
	}
	n := argosim.NodeStatus{
		ID: argosim.NodeID(wf, full), Name: full, DisplayName: name, Type: typ, TemplateName: "main",
		Phase: phase, StartedAt: argosim.NewTime(mins(start)),
	}
	if name == "" {
		n.DisplayName = wf
	}
	if end >= 0 {
		n.FinishedAt = argosim.NewTime(mins(end))
	}
	if boundary != "" {
		n.BoundaryID = argosim.NodeID(wf, boundary)
	}
	for _, c := range children {
		n.Children = append(n.Children, argosim.NodeID(wf, wf+"."+c))
	}
	return n
}

// put stores workflow name with the given phase, start/end and nodes (the root DAG is added).
func (s *scenario) put(name string, phase string, start, end int, nodes ...argosim.NodeStatus) {
	s.t.Helper()
	rootPhase := argosim.NodePhase(phase)
	var children []string
	for _, n := range nodes {
		children = append(children, strings.TrimPrefix(n.Name, name+"."))
	}
	all := argosim.Nodes{}
	root := node(name, "", argosim.NodeTypeDAG, rootPhase, start, end, "", children...)
	all[root.ID] = root
	for _, n := range nodes {
		if n.BoundaryID == "" {
			n.BoundaryID = root.ID
		}
		all[n.ID] = n
	}
	wf := argosim.Workflow{
		Metadata: argosim.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{argosim.LabelWorkflowTemplate: "etl"}},
		Status:   argosim.WorkflowStatus{Phase: phase, StartedAt: argosim.NewTime(mins(start)), Nodes: all},
	}
	if end >= 0 {
		wf.Status.FinishedAt = argosim.NewTime(mins(end))
	}
	if _, err := s.sim.Put(wf); err != nil {
		s.t.Fatal(err)
	}
}

// pollAt moves the clock to minute m and polls; it returns the transitions published, as
// "workflow/node From>To" with node the display name.
func (s *scenario) pollAt(m int) []string {
	s.t.Helper()
	s.h.Clock.Set(mins(m))
	if _, err := s.engine.Poll(context.Background(), poll.Request{}); err != nil {
		s.t.Fatalf("poll at minute %d: %v", m, err)
	}
	return s.published()
}

func (s *scenario) published() []string {
	s.t.Helper()
	var out []string
	for _, d := range s.h.Published() {
		for _, e := range d.Events {
			out = append(out, fmt.Sprintf("%s/%s %s>%s", d.Run.Name, e.DisplayName, e.PrevState, e.State))
		}
	}
	slices.Sort(out)
	return out
}

func expect(t *testing.T, when string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: published\n  %q\nwant\n  %q", when, got, want)
	}
}

func TestScenarioShortTaskAndTaskInsideWindow(t *testing.T) {
	forListings(t, testScenarioShortTaskAndTaskInsideWindow)
}

func testScenarioShortTaskAndTaskInsideWindow(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 1})
	s.put("wf-a", "Running", 0, -1, node("wf-a", "long", argosim.NodeTypePod, "Running", 0, -1, ""))
	expect(t, "first poll", s.pollAt(1), "wf-a/wf-a >Running", "wf-a/long >Running")

	// A task that starts and finishes between two polls is first seen Succeeded: it still gets
	// its real start and end.
	s.put("wf-a", "Running", 0, -1,
		node("wf-a", "long", argosim.NodeTypePod, "Running", 0, -1, ""),
		node("wf-a", "short", argosim.NodeTypePod, "Succeeded", 1, 1, ""))
	got := s.pollAt(2)
	expect(t, "second poll", got, "wf-a/short >Succeeded")

	s.h.Clock.Set(mins(3))
	if _, err := s.engine.Poll(context.Background(), poll.Request{Since: mins(0), Until: mins(3), Replay: true}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range s.h.Published() {
		for _, e := range d.Events {
			if e.DisplayName != "short" {
				continue
			}
			found = true
			if e.StartedAt == nil || e.FinishedAt == nil || !e.StartedAt.Equal(mins(1)) || !e.FinishedAt.Equal(mins(1)) {
				t.Errorf("short task times %v..%v, want both at minute 1", e.StartedAt, e.FinishedAt)
			}
		}
	}
	if !found {
		t.Error("the replay did not publish the short task")
	}
}

func TestScenarioLongTaskStartedBeforeTheWindow(t *testing.T) {
	forListings(t, testScenarioLongTaskStartedBeforeTheWindow)
}

func testScenarioLongTaskStartedBeforeTheWindow(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 2})
	// FARM starts while a task that began long before its first window is running: its
	// running state is recorded, not lost.
	s.put("wf-b", "Running", -300, -1, node("wf-b", "train", argosim.NodeTypePod, "Running", -290, -1, ""))
	expect(t, "start", s.pollAt(0), "wf-b/wf-b >Running", "wf-b/train >Running")
	for m := 1; m <= 10; m++ {
		expect(t, fmt.Sprintf("minute %d", m), s.pollAt(m))
	}
	s.put("wf-b", "Succeeded", -300, 11, node("wf-b", "train", argosim.NodeTypePod, "Succeeded", -290, 11, ""))
	expect(t, "finished", s.pollAt(12), "wf-b/wf-b Running>Succeeded", "wf-b/train Running>Succeeded")
	expect(t, "after", s.pollAt(13))
}

func TestScenarioDownLongerThanTheOverlap(t *testing.T) {
	forListings(t, testScenarioDownLongerThanTheOverlap)
}

func testScenarioDownLongerThanTheOverlap(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 3})
	s.put("wf-c", "Running", 0, -1, node("wf-c", "a", argosim.NodeTypePod, "Running", 0, -1, ""))
	expect(t, "before", s.pollAt(1), "wf-c/wf-c >Running", "wf-c/a >Running")

	// FARM is down for three hours: wf-c finishes, wf-d starts and finishes entirely.
	s.put("wf-c", "Succeeded", 0, 60, node("wf-c", "a", argosim.NodeTypePod, "Succeeded", 0, 60, ""))
	s.put("wf-d", "Failed", 90, 95, node("wf-d", "x", argosim.NodeTypePod, "Failed", 90, 95, ""))
	expect(t, "after downtime", s.pollAt(181),
		"wf-c/wf-c Running>Succeeded", "wf-c/a Running>Succeeded",
		"wf-d/wf-d >Failed", "wf-d/x >Failed")
	expect(t, "next", s.pollAt(182))
}

func TestScenarioRetriesAndArgoRetry(t *testing.T) { forListings(t, testScenarioRetriesAndArgoRetry) }

func testScenarioRetriesAndArgoRetry(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 4})
	retry := func(phase argosim.NodePhase, end int, attempts ...argosim.NodeStatus) []argosim.NodeStatus {
		var kids []string
		for _, a := range attempts {
			kids = append(kids, strings.TrimPrefix(a.Name, "wf-r."))
		}
		return append([]argosim.NodeStatus{node("wf-r", "fetch", argosim.NodeTypeRetry, phase, 0, end, "", kids...)}, attempts...)
	}
	att := func(i int, phase argosim.NodePhase, start, end int) argosim.NodeStatus {
		return node("wf-r", fmt.Sprintf("fetch(%d)", i), argosim.NodeTypePod, phase, start, end, "")
	}
	s.put("wf-r", "Running", 0, -1, retry("Running", -1, att(0, "Failed", 0, 1), att(1, "Running", 2, -1))...)
	got := s.pollAt(3)
	expect(t, "retrying", got, "wf-r/wf-r >Running", "wf-r/fetch >Running", "wf-r/fetch(0) >Failed", "wf-r/fetch(1) >Running")

	s.put("wf-r", "Failed", 0, 5, retry("Failed", 5, att(0, "Failed", 0, 1), att(1, "Failed", 2, 5))...)
	expect(t, "exhausted", s.pollAt(6), "wf-r/wf-r Running>Failed", "wf-r/fetch Running>Failed", "wf-r/fetch(1) Running>Failed")

	// `argo retry` at minute 7: the failed nodes are reset, keeping their ids, and the workflow
	// restarts (startedAt moves to the retry, which puts it back in the window even when the
	// retried run finishes before the next poll). The nodes finish a second time.
	s.h.Clock.Set(mins(7))
	if err := s.sim.Retry(ns, "wf-r"); err != nil {
		t.Fatal(err)
	}
	s.put("wf-r", "Succeeded", 7, 12, retry("Succeeded", 12, att(0, "Failed", 0, 1), att(1, "Failed", 2, 5), att(2, "Succeeded", 10, 12))...)
	expect(t, "retried by hand", s.pollAt(13),
		"wf-r/wf-r Failed>Succeeded", "wf-r/fetch Failed>Succeeded", "wf-r/fetch(2) >Succeeded")
}

func TestScenarioCompletedWorkflowListedWithoutNodes(t *testing.T) {
	forListings(t, testScenarioCompletedWorkflowListedWithoutNodes)
}

func testScenarioCompletedWorkflowListedWithoutNodes(t *testing.T, listing argo.Listing) {
	for _, tc := range []struct {
		name string
		opts argosim.Options
	}{
		{"GET falls back to the archive (3.5.7+)", argosim.Options{Seed: 5}},
		{"GET 404, then the archive by uid", argosim.Options{Seed: 5, NoArchiveFallback: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScenario(t, listing, tc.opts)
			s.put("wf-e", "Running", 0, -1, node("wf-e", "a", argosim.NodeTypePod, "Running", 0, -1, ""))
			expect(t, "running", s.pollAt(1), "wf-e/wf-e >Running", "wf-e/a >Running")
			s.put("wf-e", "Succeeded", 0, 2, node("wf-e", "a", argosim.NodeTypePod, "Succeeded", 0, 2, ""))
			if err := s.sim.Archive(ns, "wf-e"); err != nil {
				t.Fatal(err)
			}
			if err := s.sim.Delete(ns, "wf-e"); err != nil {
				t.Fatal(err)
			}
			expect(t, "archived and deleted", s.pollAt(3), "wf-e/wf-e Running>Succeeded", "wf-e/a Running>Succeeded")
		})
	}
}

func TestScenarioCompressedNodes(t *testing.T) { forListings(t, testScenarioCompressedNodes) }

func testScenarioCompressedNodes(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 6})
	s.put("wf-z", "Running", 0, -1, node("wf-z", "a", argosim.NodeTypePod, "Succeeded", 0, 1, ""), node("wf-z", "b", argosim.NodeTypePod, "Running", 1, -1, ""))
	if err := s.sim.SetNodeStorage(ns, "wf-z", argosim.StorageCompressed); err != nil {
		t.Fatal(err)
	}
	expect(t, "compressed", s.pollAt(2), "wf-z/wf-z >Running", "wf-z/a >Succeeded", "wf-z/b >Running")
}

func TestScenarioWorkflowArrivesMidListing(t *testing.T) {
	forListings(t, testScenarioWorkflowArrivesMidListing)
}

func testScenarioWorkflowArrivesMidListing(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 7})
	for i := range 7 {
		s.put(fmt.Sprintf("wf-%d", i), "Running", i, -1)
	}
	var once sync.Once
	s.sim.OnList(func(c argosim.ListCall) {
		if c.Offset > 0 { // between the first and the second page: newer workflows shift the offsets
			once.Do(func() {
				s.put("wf-new-1", "Running", 20, -1)
				s.put("wf-new-2", "Running", 21, -1)
			})
		}
	})
	got := s.pollAt(30)
	want := []string{}
	for i := range 7 {
		want = append(want, fmt.Sprintf("wf-%d/wf-%d >Running", i, i))
	}
	// The new workflows may or may not be in this listing; none may be lost or doubled.
	got = slices.DeleteFunc(got, func(s string) bool { return strings.HasPrefix(s, "wf-new") })
	expect(t, "mid-listing", got, want...)
	rest := s.pollAt(31)
	for _, n := range []string{"wf-new-1", "wf-new-2"} {
		if c := s.allRuns()[n]; c != 1 {
			t.Errorf("%s published %d times across both polls, want once (%v)", n, c, rest)
		}
	}
}

func (s *scenario) allRuns() map[string]int {
	out := map[string]int{}
	for _, m := range s.h.Server.Messages() {
		ds, _ := event.DecodeDeltas(m.Data)
		for _, d := range ds {
			out[d.Run.Name]++
		}
	}
	return out
}

func TestScenarioAPIFailuresKeepTheCursor(t *testing.T) {
	forListings(t, testScenarioAPIFailuresKeepTheCursor)
}

func testScenarioAPIFailuresKeepTheCursor(t *testing.T, listing argo.Listing) {
	for _, kind := range []argosim.FaultKind{argosim.FaultInternal, argosim.FaultHang, argosim.FaultMalformed} {
		t.Run(fmt.Sprint(kind), func(t *testing.T) {
			s := newScenario(t, listing, argosim.Options{Seed: 8})
			s.put("wf-f", "Running", 0, -1, node("wf-f", "a", argosim.NodeTypePod, "Running", 0, -1, ""))
			s.pollAt(1)
			s.put("wf-f", "Succeeded", 0, 2, node("wf-f", "a", argosim.NodeTypePod, "Succeeded", 0, 2, ""))
			s.sim.InjectFault(argosim.Fault{Kind: kind, Endpoint: argosim.EndpointList, Count: 10})
			s.h.Clock.Set(mins(3))
			_, err := s.engine.Poll(context.Background(), poll.Request{})
			if !errors.Is(err, poll.ErrSource) {
				t.Fatalf("poll during faults: %v, want ErrSource", err)
			}
			if got := s.published(); len(got) != 0 {
				t.Fatalf("a failed poll published %v", got)
			}
			s.sim.ClearFaults()
			res, err := s.engine.Poll(context.Background(), poll.Request{})
			if err != nil {
				t.Fatal(err)
			}
			if !res.PreviousCursor.Equal(mins(1)) {
				t.Errorf("cursor after the failed poll = %s, want %s", res.PreviousCursor, mins(1))
			}
			expect(t, "recovered", s.published(), "wf-f/wf-f Running>Succeeded", "wf-f/a Running>Succeeded")
		})
	}
}

func TestScenarioCrashBetweenPublishAndCommit(t *testing.T) {
	forListings(t, testScenarioCrashBetweenPublishAndCommit)
}

func testScenarioCrashBetweenPublishAndCommit(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 10})
	s.h.Store = polltest.NewCrashOnce(firestore.New(testenv.Firestore(t)))
	s.engine = s.h.Engine(s.src, poll.Config{})
	s.put("wf-k", "Running", 0, -1, node("wf-k", "a", argosim.NodeTypePod, "Succeeded", 0, 1, ""))
	s.h.Clock.Set(mins(2))
	if _, err := s.engine.Poll(context.Background(), poll.Request{}); err == nil {
		t.Fatal("the crashing poll succeeded")
	}
	first := polltest.Events(s.h.Published())
	s.h.Clock.Set(mins(3))
	res, err := s.engine.Poll(context.Background(), poll.Request{})
	if err != nil {
		t.Fatal(err)
	}
	second := polltest.Events(s.h.Published())
	if len(first) != 2 || !slices.Equal(ids(first), ids(second)) {
		t.Fatalf("after the crash: ids %v, first publication %v: want the same transitions, same ids", ids(second), ids(first))
	}
	if !res.PreviousCursor.IsZero() {
		t.Fatalf("the crashed poll moved the cursor to %s", res.PreviousCursor)
	}
	expect(t, "then nothing new", s.pollAt(4))
}

func ids(events []event.TaskEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	slices.Sort(out)
	return out
}

func TestScenarioOverlappingPolls(t *testing.T) { forListings(t, testScenarioOverlappingPolls) }

func testScenarioOverlappingPolls(t *testing.T, listing argo.Listing) {
	s := newScenario(t, listing, argosim.Options{Seed: 9})
	s.put("wf-o", "Running", 0, -1)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.sim.OnList(func(argosim.ListCall) {
		once.Do(func() { close(entered); <-release })
	})
	s.h.Clock.Set(mins(1))
	first := make(chan error, 1)
	go func() {
		_, err := s.engine.Poll(context.Background(), poll.Request{})
		first <- err
	}()
	<-entered
	_, err := s.engine.Poll(context.Background(), poll.Request{})
	close(release)
	if !errors.Is(err, poll.ErrBusy) {
		t.Fatalf("second poll while the first runs: %v, want ErrBusy", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first poll: %v", err)
	}
	expect(t, "one poll published", s.published(), "wf-o/wf-o >Running")
}
