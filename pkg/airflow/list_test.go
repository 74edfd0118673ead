package airflow_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// What a long-lived process publishes, completing changed runs from its memory and the change
// feed, is what a process reading every changed run in full publishes: the same event ids, poll
// after poll, on a generated estate of task groups, mapped tasks, rescheduled sensors, retries
// and failures. The full reader is a new process at every poll (its memory empty), on a store of
// its own, polling the same server at the same instants.
func TestMemoryAndFeedPublishWhatAFullReadDoes(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		spec := airflowsim.EstateSpec{DAGs: 5, ActiveRuns: 12, TasksPerRun: 9, StepEvery: 20 * time.Second, RetryRate: 0.25, FailRate: 0.2, Seed: 5}
		if _, err := e.sim.StartEstate(spec); err != nil {
			t.Fatal(err)
		}
		full := polltest.New(t, filestore.New(filepath.Join(t.TempDir(), "full.json"), filestore.WithClock(e.h.Clock)), t0)
		var memoBatches, fullBatches, events int
		for i := range 40 {
			e.advance(time.Minute)
			full.Clock.Advance(time.Minute)
			e.sim.ResetRequests()
			_, got := e.poll()
			memoBatches += len(e.requests("/taskInstances/list"))

			e.sim.ResetRequests()
			src := e.newSource(nil)
			engine := full.Engine(src, poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour})
			if _, err := engine.Poll(t.Context(), poll.Request{}); err != nil {
				t.Fatal(err)
			}
			want := full.Published()
			fullBatches += len(e.requests("/taskInstances/list"))

			g, w := eventIDs(got), eventIDs(want)
			events += len(w)
			if !slices.Equal(g, w) {
				t.Fatalf("poll %d: the process with a memory published\n%s\nthe full reader\n%s", i+1, strings.Join(g, "\n"), strings.Join(w, "\n"))
			}
		}
		if events < 300 {
			t.Fatalf("only %d events in 40 polls: too few to compare", events)
		}
		// The comparison means something only if the memory was used.
		if memoBatches*3 > fullBatches {
			t.Errorf("the process with a memory made %d batch calls, the full reader %d: the memory was hardly used", memoBatches, fullBatches)
		}
		t.Logf("%d events; batch calls: %d with a memory, %d reading in full", events, memoBatches, fullBatches)
	})
}

// eventIDs lists a poll's events as "run node#attempt state id", sorted.
func eventIDs(deltas []*event.RunDelta) []string {
	var out []string
	for _, d := range deltas {
		for _, ev := range d.Events {
			out = append(out, fmt.Sprintf("%s %s#%d %s %s", d.Run.UID, ev.NodeID, ev.Attempt, ev.State, ev.ID))
		}
	}
	slices.Sort(out)
	return out
}

// The calls of an incremental poll do not depend on how many runs are active (nor, as
// TestAPICallsDoNotGrowWithDAGs shows, on how many DAGs there are): the same three changes cost
// the same calls among 30 active runs as among 300, at a page size of 10. The other runs wait
// with a task queued: on Airflow 3 a running task's heartbeat rewrites its row, so each task
// running puts a row in every poll's change feed (TestRunningTasksOnAirflow3).
func TestCallsPerPollDoNotGrowWithActiveRuns(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		calls := map[int]int{}
		for _, runs := range []int{30, 300} {
			e := newEnv(t, envOpts{sim: simOpts, source: func(o *sourceSetup) { o.PageSize = 10 }})
			for i := range runs {
				id := fmt.Sprintf("r%03d", i)
				e.trigger(fmt.Sprintf("dag_%02d", i%7), id, task("extract", 0), task("load", 1))
				e.must(e.sim.SetRunState(fmt.Sprintf("dag_%02d", i%7), id, airflowsim.RunRunning))
				e.must(e.sim.TI(fmt.Sprintf("dag_%02d", i%7), id, "extract").Advance(S, Q))
			}
			e.poll() // the process's first poll lists every active run
			e.advance(3 * time.Minute)
			e.poll()
			e.advance(3 * time.Minute)
			for _, i := range []int{3, 4, 5} {
				e.must(e.sim.TI(fmt.Sprintf("dag_%02d", i%7), fmt.Sprintf("r%03d", i), "extract").Advance(R, OK))
			}
			e.sim.ResetRequests()
			res, deltas := e.poll()
			if res.RunsChanged != 3 || len(deltas) != 3 {
				t.Fatalf("%d runs: %d changed, %d deltas; want 3 and 3", runs, res.RunsChanged, len(deltas))
			}
			calls[runs] = int(res.APICalls)
			if n := len(e.sim.Requests()); n != calls[runs] {
				t.Fatalf("the server saw %d calls, the poll counted %d", n, calls[runs])
			}
		}
		if calls[30] != calls[300] || calls[300] > 3 {
			t.Errorf("calls for the same 3 changes: %d among 30 active runs, %d among 300; want the same, at most 3", calls[30], calls[300])
		}
	})
}

// A process whose memory is older than the window (another function instance polled meanwhile)
// does not complete a run from it: a task that ended while it was not looking would otherwise
// still be running in its eyes, and the group around it with it. It reads the run in full.
func TestAnotherInstancesPollsMakeTheMemoryStale(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("g.a", 0), task("g.b", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "r1", "g.a").Advance(S, Q, R))
		a := e.src
		e.poll() // instance a: g.a running, g.b not started

		b := e.newSource(nil)
		e.engine = e.h.Engine(b, poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour})
		e.advance(time.Minute)
		e.must(e.sim.TI("etl", "r1", "g.a").Advance(OK))
		e.must(e.sim.TI("etl", "r1", "g.b").Advance(S, Q, R))
		e.poll() // instance b sees g.a end
		e.advance(10 * time.Minute)
		e.poll()

		e.engine = e.h.Engine(a, poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour})
		e.advance(time.Minute)
		e.must(e.sim.TI("etl", "r1", "g.b").Advance(OK))
		e.sim.ResetRequests()
		_, deltas := e.poll() // instance a again: only g.b is in the feed
		if got := transitions(deltas, "g"); !slices.Equal(got, []string{"#0 running->success 0s..12m0s"}) {
			t.Errorf("group g: %q, want it to end with g.b", got)
		}
		if n := len(e.requests("/taskInstances/list")); n != 1 {
			t.Errorf("%d batch calls: the stale memory was used instead of reading the run", n)
		}
	})
}

// A run that appears between two full listings (queued, then started, then finished) is seen
// through the listings of what changed, with every task; so is one that starts and ends between
// two polls.
func TestNewRunsBetweenFullListings(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "old", task("a", 0))
		e.must(e.sim.SetRunState("etl", "old", airflowsim.RunRunning))
		e.poll()
		e.advance(time.Minute)
		e.poll()
		e.sim.ResetRequests()

		e.advance(time.Minute)
		e.trigger("etl", "queued", task("a", 0), task("b", 0))
		e.trigger("etl", "quick", task("a", 0))
		e.must(e.sim.SetRunState("etl", "quick", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "quick", "a").Advance(S, Q, R, OK))
		e.must(e.sim.SetRunState("etl", "quick", airflowsim.RunSuccess))
		_, d1 := e.poll()
		e.advance(time.Minute)
		e.must(e.sim.SetRunState("etl", "queued", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "queued", "a").Advance(S, Q, R))
		_, d2 := e.poll()
		e.advance(time.Minute)
		e.must(e.sim.TI("etl", "queued", "a").Advance(OK))
		e.must(e.sim.TI("etl", "queued", "b").Advance(S, Q, R, OK))
		e.must(e.sim.SetRunState("etl", "queued", airflowsim.RunSuccess))
		_, d3 := e.poll()
		phases := map[string][]string{}
		for _, d := range slices.Concat(d1, d2, d3) {
			phases[d.Run.Name] = append(phases[d.Run.Name], d.Run.Phase)
		}
		if got := phases["quick"]; !slices.Equal(got, []string{"success"}) {
			t.Errorf("quick: phases %q", got)
		}
		if got := phases["queued"]; !slices.Equal(got, []string{"queued", "running", "success"}) {
			t.Errorf("queued: phases %q", got)
		}
		var tasks []string
		for _, d := range slices.Concat(d1, d2, d3) {
			for _, ev := range d.Events {
				tasks = append(tasks, d.Run.Name+" "+ev.NodeID+" "+ev.State)
			}
		}
		want := []string{"quick a success", "queued a running", "queued a success", "queued b success"}
		if !slices.Equal(tasks, want) {
			t.Errorf("events %q, want %q", tasks, want)
		}
		for _, r := range e.sim.Requests() {
			if r.Path == "/api/"+simOpts.API+"/dags/~/dagRuns" && !r.Query.Has("updated_at_gte") && !r.Query.Has("start_date_gte") {
				t.Errorf("a full listing between full listings: %s?%s", r.Path, r.Query.Encode())
			}
		}
	})
}

// Runs a poll defers (more changed than FARM_POLL_MAX_RUNS) are published in full by the next
// polls, although their task instances, older than the window, are not in the change feed and
// the process read them already: rows of a run never committed are not stored, so they are
// events too. Past a page of them, the poll lists every active run instead of reading each.
func TestDeferredRunsArePublishedInFull(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts, source: func(o *sourceSetup) { o.PageSize = 10 }})
		const runs = 30
		for i := range runs {
			id := fmt.Sprintf("r%02d", i)
			e.trigger("etl", id, task("a", 0), task("b", 0))
			e.must(e.sim.SetRunState("etl", id, airflowsim.RunRunning))
			e.must(e.sim.TI("etl", id, "a").Advance(S, Q, R, OK))
			e.must(e.sim.TI("etl", id, "b").Advance(S, Q, R))
		}
		e.advance(3 * time.Hour) // every row is older than the first window
		e.engine = e.h.Engine(e.src, poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour, MaxRunsPerPoll: 12})
		published := map[string][]string{}
		for p := range 4 {
			e.sim.ResetRequests()
			res, deltas := e.poll()
			for _, d := range deltas {
				for _, ev := range d.Events {
					published[d.Run.Name] = append(published[d.Run.Name], ev.NodeID+" "+ev.State)
				}
			}
			var single int
			for _, r := range e.sim.Requests() {
				if strings.Contains(r.Path, "/dagRuns/r") && !strings.Contains(r.Path, "/taskInstances") {
					single++
				}
			}
			if single > 10 {
				t.Errorf("poll %d read %d runs one by one, more than a page", p+1, single)
			}
			t.Logf("poll %d: %d changed, %d deferred, %d calls, %d single-run reads", p+1, res.RunsChanged, res.RunsDeferred, res.APICalls, single)
			e.advance(time.Minute)
		}
		for i := range runs {
			id := fmt.Sprintf("r%02d", i)
			got := published[id]
			slices.Sort(got)
			if !slices.Equal(got, []string{"a success", "b running"}) {
				t.Errorf("%s: published %q, want a success and b running", id, got)
			}
		}
	})
}

// A dry run (or a poll that failed) before the first commit lists every active run without
// committing: the next poll still lists them all, there being no index to vouch from.
func TestFirstCommitListsEveryRunAfterADryRun(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2"}})
	for _, id := range []string{"r1", "r2"} {
		e.trigger("etl", id, task("a", 0))
		e.must(e.sim.SetRunState("etl", id, airflowsim.RunRunning))
		e.must(e.sim.TI("etl", id, "a").Advance(S, Q, R))
	}
	e.advance(2 * time.Hour) // older than the first window
	if _, err := e.engine.Poll(t.Context(), poll.Request{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	e.h.Published()
	e.advance(time.Minute)
	res, deltas := e.poll()
	if res.RunsChanged != 2 || len(deltas) != 2 {
		t.Errorf("first real poll after a dry run: %d runs changed, %d deltas; want 2 and 2", res.RunsChanged, len(deltas))
	}
}

// A run deleted and created again under the same id is not completed from what was remembered
// of the first one: it is read in full.
func TestRunCreatedAgainUnderItsIDIsReadInFull(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", airflowsim.TaskSpec{ID: "fan", Mapped: true}, task("done", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.Expand("etl", "r1", "fan", 3))
		for i := range 3 {
			e.must(e.sim.MappedTI("etl", "r1", "fan", i).Advance(S, Q, R))
		}
		e.poll()
		e.advance(time.Minute)
		e.poll()
		e.must(e.sim.DeleteRun("etl", "r1"))
		e.advance(time.Minute)
		e.trigger("etl", "r1", airflowsim.TaskSpec{ID: "fan", Mapped: true}, task("done", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.TI("etl", "r1", "done").Advance(S, Q, R))
		e.sim.ResetRequests()
		_, deltas := e.poll()
		if got := transitions(deltas, "done"); !slices.Equal(got, []string{"#1 ·->running 2m0s..-"}) {
			t.Errorf("done: %q", got)
		}
		for _, ev := range polltest.Events(deltas) {
			if strings.HasPrefix(ev.NodeID, "fan") {
				t.Errorf("an event of the first run's mapped task: %s %s", ev.NodeID, ev.State)
			}
		}
		if n := len(e.requests("/taskInstances/list")); n != 1 {
			t.Errorf("%d batch calls: the run created again was completed from memory", n)
		}
	})
}

// On Airflow 3 the task runner heartbeats a running task instance into its row (its updated_at
// moves every few seconds), so every task running is in every poll's change feed: a poll reads a
// row per running task, a call per page of them, whatever the runs and DAGs. Nothing is
// published for them, and no run is read for them.
func TestRunningTasksOnAirflow3(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2"}, source: func(o *sourceSetup) { o.PageSize = 10 }})
	for i := range 40 {
		id := fmt.Sprintf("r%02d", i)
		e.trigger("etl", id, task("a", 0))
		e.must(e.sim.SetRunState("etl", id, airflowsim.RunRunning))
		e.must(e.sim.TI("etl", id, "a").Advance(S, Q, R))
	}
	e.poll()
	e.advance(10 * time.Minute) // long after the overlap: only heartbeats keep the rows recent
	e.poll()
	e.advance(time.Minute)
	e.sim.ResetRequests()
	res, deltas := e.poll()
	if res.RunsChanged != 0 || len(deltas) != 0 {
		t.Errorf("heartbeats alone: %d runs changed, %d deltas; want none", res.RunsChanged, len(deltas))
	}
	feed := len(e.requests("/dags/~/dagRuns/~/taskInstances"))
	if feed != 4 || res.APICalls != 6 {
		t.Errorf("40 running tasks at 10 rows a page: %d feed pages and %d calls; want 4 and 6 (2 run listings)", feed, res.APICalls)
	}
}

// A poll that read a change but did not commit it (a dry run, a publish that failed, a poll killed
// before its commit) leaves the process remembering more than the index: the next poll still
// publishes the change, although the feed's rows are then as remembered.
func TestChangesReadByAPollThatDidNotCommitArePublished(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		for _, how := range []string{"dry run", "publish failed", "killed before commit"} {
			t.Run(how, func(t *testing.T) {
				e := newEnv(t, envOpts{sim: simOpts})
				e.trigger("etl", "r1", task("a", 0), task("b", 0))
				e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
				e.must(e.sim.TI("etl", "r1", "a").Advance(S, Q, R))
				e.poll()
				e.advance(time.Minute)
				e.poll()
				e.advance(time.Minute)
				e.must(e.sim.TI("etl", "r1", "a").Advance(OK))
				cfg := poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour}
				var err error
				switch how {
				case "dry run":
					_, err = e.engine.Poll(t.Context(), poll.Request{DryRun: true})
				case "publish failed":
					var failing *poll.Engine
					failing, err = poll.New(polltest.Config(cfg), poll.Deps{Source: e.src, Store: e.store, Publisher: refusing{}, Clock: e.h.Clock})
					e.must(err)
					_, err = failing.Poll(t.Context(), poll.Request{})
					if !errors.Is(err, poll.ErrPublish) {
						t.Fatalf("the failing poll: %v", err)
					}
					err = nil
				case "killed before commit":
					crashing := polltest.NewCrashOnce(e.store)
					var killed *poll.Engine
					killed, err = poll.New(polltest.Config(cfg), poll.Deps{Source: e.src, Store: crashing, Publisher: e.h.Publisher, Clock: e.h.Clock})
					e.must(err)
					if _, err = killed.Poll(t.Context(), poll.Request{}); !errors.Is(err, polltest.ErrKilled) {
						t.Fatalf("the killed poll: %v", err)
					}
					err = nil
				}
				e.must(err)
				e.h.Published()
				e.advance(30 * time.Second)
				_, deltas := e.poll()
				if got := transitions(deltas, "a"); !slices.Equal(got, []string{"#1 running->success 0s..2m0s"}) {
					t.Errorf("a: %q, want its end published", got)
				}
			})
		}
	})
}

// refusing is a publisher Pub/Sub refuses.
type refusing struct{}

func (refusing) Publish(context.Context, []event.Message) error {
	return errors.New("pubsub: permission denied")
}

// Committed runs that change together, more than a poll handles: the runs deferred, read but not
// committed, are published by the next polls.
func TestDeferredChangesOfCommittedRunsArePublished(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		const runs = 30
		for i := range runs {
			id := fmt.Sprintf("r%02d", i)
			e.trigger("etl", id, task("a", 0), task("b", 0))
			e.must(e.sim.SetRunState("etl", id, airflowsim.RunRunning))
			e.must(e.sim.TI("etl", id, "a").Advance(S, Q, R))
		}
		e.poll()
		e.advance(time.Minute)
		e.poll()
		e.engine = e.h.Engine(e.src, poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour, MaxRunsPerPoll: 12})
		e.advance(time.Minute)
		for i := range runs {
			e.must(e.sim.TI("etl", fmt.Sprintf("r%02d", i), "a").Advance(OK))
		}
		ended := map[string]int{}
		for range 4 {
			_, deltas := e.poll()
			for _, d := range deltas {
				ended[d.Run.Name] += len(transitions([]*event.RunDelta{d}, "a"))
			}
			e.advance(time.Minute)
		}
		for i := range runs {
			if id := fmt.Sprintf("r%02d", i); ended[id] != 1 {
				t.Errorf("%s: a's end published %d times, want once", id, ended[id])
			}
		}
	})
}

// A dry run does not stand for a process's first full listing: the first poll that commits lists
// every active run, and so notices a run deleted meanwhile.
func TestDryRunIsNotTheFirstFullListing(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2"}})
	for _, id := range []string{"r1", "r2"} {
		e.trigger("etl", id, task("a", 0))
		e.must(e.sim.SetRunState("etl", id, airflowsim.RunRunning))
		e.must(e.sim.TI("etl", id, "a").Advance(S, Q))
	}
	e.poll()
	e.src = e.newSource(nil) // a new process
	e.engine = e.h.Engine(e.src, poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour})
	e.advance(time.Minute)
	if _, err := e.engine.Poll(t.Context(), poll.Request{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	e.must(e.sim.DeleteRun("etl", "r2"))
	e.advance(time.Minute)
	if res, _ := e.poll(); res.RunsGone != 1 {
		t.Errorf("the first poll to commit after a dry run: %d runs gone, want 1", res.RunsGone)
	}
}
