package airflow_test

// The Argo scenario list replayed for Airflow, on both API versions: the real client and source
// polling the simulator through the real engine and publisher.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
)

// summary lists the task transitions of deltas as "run/node#attempt prev>state".
func summary(deltas []*event.RunDelta) []string {
	var out []string
	for _, d := range deltas {
		for _, e := range d.Events {
			out = append(out, d.Run.Name+"/"+e.NodeID+"#"+strconv.Itoa(e.Attempt)+" "+e.PrevState+">"+e.State)
		}
	}
	slices.Sort(out)
	return out
}

func expectSummary(t *testing.T, what string, deltas []*event.RunDelta, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := summary(deltas); !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestScenarioShortTaskSeenOnlyFinished(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("long", 0), task("short", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "r1", "long").Advance(S, Q, R))
		_, d := e.poll()
		expectSummary(t, "first poll", d, "r1/long#1 >running")
		// short starts and ends between two polls: first seen succeeded, with its real times.
		e.advance(20 * time.Second)
		e.must(e.sim.TI("etl", "r1", "short").Advance(S, Q, R))
		e.advance(20 * time.Second)
		e.must(e.sim.TI("etl", "r1", "short").Advance(OK))
		e.advance(20 * time.Second)
		_, d = e.poll()
		expectSummary(t, "second poll", d, "r1/short#1 >success")
		if got := transitions(d, "short"); !slices.Equal(got, []string{"#1 ·->success 20s..40s"}) {
			t.Errorf("short: %q", got)
		}
		// A replay of the window publishes the same transitions with the same ids.
		first := polltest.Events(d)
		e.advance(time.Minute)
		if _, err := e.engine.Poll(t.Context(), poll.Request{Since: t0, Until: e.h.Clock.Now(), Replay: true}); err != nil {
			t.Fatal(err)
		}
		replayed := map[string]bool{}
		for _, ev := range polltest.Events(e.h.Published()) {
			replayed[ev.ID] = true
		}
		for _, ev := range first {
			if !replayed[ev.ID] {
				t.Errorf("replay lost %s#%d %s (id %s)", ev.NodeID, ev.Attempt, ev.State, ev.ID)
			}
		}
	})
}

func TestScenarioLongTaskStartedBeforeTheWindow(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("train", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "r1", "train").Advance(S, Q, R))
		e.advance(5 * time.Hour) // FARM starts long after, with a one-hour first window
		_, d := e.poll()
		expectSummary(t, "start", d, "r1/train#1 >running")
		for range 5 {
			e.advance(time.Minute)
			_, d = e.poll()
			expectSummary(t, "quiet minute", d)
		}
		e.must(e.sim.TI("etl", "r1", "train").Advance(OK))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunSuccess))
		e.advance(time.Minute)
		_, d = e.poll()
		expectSummary(t, "finished", d, "r1/train#1 running>success")
		if d[0].Run.PrevPhase != "running" || d[0].Run.Phase != "success" {
			t.Errorf("run %s>%s", d[0].Run.PrevPhase, d[0].Run.Phase)
		}
	})
}

func TestScenarioDownLongerThanTheOverlap(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("a", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "r1", "a").Advance(S, Q, R))
		_, d := e.poll()
		expectSummary(t, "before", d, "r1/a#1 >running")
		// Down for three hours: r1 ends, r2 runs from start to end.
		e.advance(time.Hour)
		e.must(e.sim.TI("etl", "r1", "a").Advance(OK))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunSuccess))
		e.advance(30 * time.Minute)
		e.trigger("etl", "r2", task("x", 1))
		e.must(e.sim.SetRunState("etl", "r2", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "r2", "x").Advance(S, Q, R, airflowsim.UpForRetry, S, Q, R, airflowsim.Failed))
		e.must(e.sim.SetRunState("etl", "r2", airflowsim.RunFailed))
		e.advance(90 * time.Minute)
		_, d = e.poll()
		expectSummary(t, "after the downtime", d, "r1/a#1 running>success", "r2/x#1 >up_for_retry", "r2/x#2 >failed")
		e.advance(time.Minute)
		_, d = e.poll()
		expectSummary(t, "next", d)
	})
}

func TestScenarioCrashBetweenPublishAndCommit(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.h.Store = polltest.NewCrashOnce(e.store)
		e.engine = e.h.Engine(e.src, poll.Config{Overlap: 2 * time.Minute})
		e.trigger("etl", "r1", task("a", 1))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "r1", "a").Advance(S, Q, R, airflowsim.UpForRetry, S, Q, R))
		if _, err := e.engine.Poll(t.Context(), poll.Request{}); err == nil {
			t.Fatal("the crashing poll succeeded")
		}
		first := polltest.Events(e.h.Published())
		e.advance(time.Minute)
		res, second := e.poll()
		if len(first) != 2 || !slices.Equal(ids(first), ids(polltest.Events(second))) {
			t.Fatalf("after the crash: %v, first publication %v: want the same transitions with the same ids", summary(second), ids(first))
		}
		if !res.PreviousCursor.IsZero() {
			t.Fatalf("the crashed poll moved the cursor to %s", res.PreviousCursor)
		}
		e.advance(time.Minute)
		_, d := e.poll()
		expectSummary(t, "then nothing new", d)
	})
}

func ids(events []event.TaskEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	slices.Sort(out)
	return out
}

func TestScenarioOverlappingPolls(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := newEnv(t, envOpts{
		sim: airflowsim.Options{API: "v2"},
		handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/dagRuns") {
					once.Do(func() { close(entered); <-release })
				}
				h.ServeHTTP(w, r)
			})
		},
	})
	e.trigger("etl", "r1", task("a", 0))
	e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
	e.must(e.sim.TI("etl", "r1", "a").Advance(S, Q, R))
	first := make(chan error, 1)
	go func() {
		_, err := e.engine.Poll(context.Background(), poll.Request{})
		first <- err
	}()
	<-entered
	_, err := e.engine.Poll(t.Context(), poll.Request{})
	close(release)
	if !errors.Is(err, poll.ErrBusy) {
		t.Fatalf("second poll while the first runs: %v, want ErrBusy", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first poll: %v", err)
	}
	expectSummary(t, "one poll published", e.h.Published(), "r1/a#1 >running")
}
