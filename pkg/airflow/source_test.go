package airflow_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
)

const (
	S  = airflowsim.Scheduled
	Q  = airflowsim.Queued
	R  = airflowsim.Running
	OK = airflowsim.Success
)

func TestRetryRecordsEveryTry(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) { retryScenario(t, envOpts{sim: simOpts}) })
}

// The same with the state in Firestore (its emulator), as deployed.
func TestRetryRecordsEveryTryOnFirestore(t *testing.T) {
	retryScenario(t, envOpts{sim: airflowsim.Options{API: "v2"}, firestore: true})
}

func retryScenario(t *testing.T, o envOpts) {
	e := newEnv(t, o)
	e.trigger("etl", "r1", task("grp.work", 1))
	work := e.sim.TI("etl", "r1", "grp.work")
	steps := []func(){
		func() {},
		func() { e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning)); e.must(work.Advance(S, Q)) },
		func() { e.must(work.Advance(R)) },
		func() { e.must(work.Advance(airflowsim.UpForRetry)) },
		func() { e.must(work.Advance(S, Q)) },
		func() { e.must(work.Advance(R)) },
		func() { e.must(work.Advance(OK)); e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunSuccess)) },
	}
	var all []*event.RunDelta
	var phases []string
	for i, step := range steps {
		if i > 0 {
			e.advance(time.Minute)
		}
		step()
		_, deltas := e.poll()
		for _, d := range deltas {
			phases = append(phases, d.Run.Phase)
		}
		all = append(all, deltas...)
	}
	want := []string{
		"#1 ·->queued -..-",
		"#1 queued->running 2m0s..-",
		"#1 running->up_for_retry 2m0s..3m0s",
		"#2 ·->queued -..-",
		"#2 queued->running 5m0s..-",
		"#2 running->success 5m0s..6m0s",
	}
	if got := transitions(all, "grp.work"); !slices.Equal(got, want) {
		t.Errorf("grp.work:\n got %q\nwant %q", got, want)
	}
	wantGroup := []string{"#0 ·->running -..-", "#0 running->running 2m0s..-", "#0 running->success 2m0s..6m0s"}
	if got := transitions(all, "grp"); !slices.Equal(got, wantGroup) {
		t.Errorf("group grp:\n got %q\nwant %q", got, wantGroup)
	}
	if !slices.Equal(phases, []string{"queued", "running", "running", "running", "running", "running", "success"}) {
		t.Errorf("run phases %v", phases)
	}
	last := all[len(all)-1]
	for _, ev := range last.Events {
		if ev.NodeID == "grp.work" {
			a := ev.Airflow
			if a.TryNumber != 2 || a.MaxTries != 1 || a.RunState != "success" || a.QueueSeconds == nil || *a.QueueSeconds != 60 || a.Operator == "" || a.Pool != "default_pool" {
				t.Errorf("airflow fields of the last try: %+v", *a)
			}
		}
		if ev.NodeID == "grp" && (ev.Type != airflow.TypeTaskGroup || ev.ParentID != "") {
			t.Errorf("group node: type %s parent %q", ev.Type, ev.ParentID)
		}
	}
}

// Tries that happened entirely between two polls are read from the tries endpoint.
func TestTriesBetweenPollsAreRecovered(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("load", 3))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		load := e.sim.TI("etl", "r1", "load")
		e.must(load.Advance(S, Q, R))
		e.poll()
		e.advance(time.Minute)
		e.must(load.Advance(airflowsim.UpForRetry))
		e.advance(time.Minute)
		e.must(load.Advance(S, Q, R))
		e.advance(time.Minute)
		e.must(load.Advance(airflowsim.UpForRetry))
		e.advance(time.Minute)
		e.must(load.Advance(S, Q, R))
		e.advance(time.Minute)
		e.must(load.Advance(OK))
		_, deltas := e.poll()
		want := []string{
			"#3 ·->success 4m0s..5m0s",
			"#1 running->up_for_retry 0s..1m0s",
			"#2 ·->up_for_retry 2m0s..3m0s",
		}
		if got := transitions(deltas, "load"); !slices.Equal(got, want) {
			t.Errorf("load:\n got %q\nwant %q", got, want)
		}
		// The next change costs no tries call: finished tries are remembered.
		e.sim.ResetRequests()
		e.advance(time.Minute)
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunSuccess))
		e.poll()
		if n := len(e.requests("/tries")); n != 0 {
			t.Errorf("%d tries calls for tries already read", n)
		}
	})
}

// Without a tries endpoint (before 2.10) the gap is recorded, nothing is invented.
func TestTriesGapOnOldServer(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v1", Version: "2.9.3"}})
	e.trigger("etl", "r1", task("load", 3))
	load := e.sim.TI("etl", "r1", "load")
	e.must(load.Advance(S, Q, R))
	e.poll()
	e.advance(time.Minute)
	e.must(load.Advance(airflowsim.UpForRetry, S, Q, R, airflowsim.UpForRetry, S, Q, R))
	_, deltas := e.poll()
	if got := transitions(deltas, "load"); !slices.Equal(got, []string{"#3 ·->running 1m0s..-"}) {
		t.Fatalf("load: %q: nothing may be invented for tries 1 and 2", got)
	}
	for _, ev := range deltas[0].Events {
		if ev.NodeID == "load" && fmt.Sprint(ev.Airflow.MissedTries) != "[2]" {
			t.Errorf("try 3 MissedTries %v, want [2] (try 1 was stored, try 2 never seen)", ev.Airflow.MissedTries)
		}
	}
	if n := len(e.requests("/tries")); n != 0 {
		t.Errorf("%d calls to a tries endpoint 2.9 does not have", n)
	}
}

func TestClearedTaskResetsToNullThenRunsAgain(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("report", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		rep := e.sim.TI("etl", "r1", "report")
		e.must(rep.Advance(S, Q, R))
		e.advance(time.Minute)
		e.must(rep.Advance(OK))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunSuccess))
		_, d1 := e.poll()
		e.advance(time.Minute)
		e.must(rep.Advance(airflowsim.None))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunQueued))
		_, d2 := e.poll()
		e.advance(time.Minute)
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(rep.Advance(S, Q, R))
		e.advance(time.Minute)
		e.must(rep.Advance(OK))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunSuccess))
		_, d3 := e.poll()
		got := transitions(slices.Concat(d1, d2, d3), "report")
		// The reset belongs to the next try: try 1's success stays recorded as such.
		want := []string{"#1 ·->success 0s..1m0s", "#2 ·->none -..-", "#2 none->success 3m0s..4m0s"}
		if !slices.Equal(got, want) {
			t.Errorf("report:\n got %q\nwant %q", got, want)
		}
		if d2[0].Run.Phase != "queued" || d2[0].Run.PrevPhase != "success" {
			t.Errorf("cleared run: phase %s (previous %s), want queued after success", d2[0].Run.Phase, d2[0].Run.PrevPhase)
		}
	})
}

func TestMappedTaskInstancesNestUnderTheirTask(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", airflowsim.TaskSpec{ID: "part.fan", Mapped: true}, task("part.done", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.poll()
		e.must(e.sim.Expand("etl", "r1", "part.fan", 3))
		for i := range 3 {
			e.advance(time.Minute)
			e.must(e.sim.MappedTI("etl", "r1", "part.fan", i).Advance(S, Q, R))
		}
		_, d1 := e.poll()
		for i := range 3 {
			e.advance(time.Minute)
			e.must(e.sim.MappedTI("etl", "r1", "part.fan", i).Advance(OK))
		}
		_, d2 := e.poll()
		all := slices.Concat(d1, d2)
		if got := transitions(all, "part.fan[1]"); !slices.Equal(got, []string{"#1 ·->running 2m0s..-", "#1 running->success 2m0s..5m0s"}) {
			t.Errorf("part.fan[1]: %q", got)
		}
		want := []string{"#0 ·->running 1m0s..-", "#0 running->success 1m0s..6m0s"}
		if got := transitions(all, "part.fan"); !slices.Equal(got, want) {
			t.Errorf("mapped task part.fan:\n got %q\nwant %q", got, want)
		}
		// The group is running while part.done has not started, in a running run.
		if got := transitions(all, "part"); !slices.Equal(got, []string{"#0 ·->running 1m0s..-"}) {
			t.Errorf("group part: %q", got)
		}
		for _, ev := range polltest.Events(all) {
			switch ev.NodeID {
			case "part.fan[1]":
				if ev.ParentID != "part.fan" || ev.Airflow.MapIndex != 1 || ev.Type != airflow.TypeTask {
					t.Errorf("mapped instance: parent %q map index %d type %s", ev.ParentID, ev.Airflow.MapIndex, ev.Type)
				}
			case "part.fan":
				if ev.ParentID != "part" || ev.Type != airflow.TypeMappedTask {
					t.Errorf("mapped task: parent %q type %s", ev.ParentID, ev.Type)
				}
			}
		}
	})
}

func TestSensorRescheduleUpstreamFailedAndSkipped(t *testing.T) {
	forSensorStarts(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("wait", 0), task("transform", 0), task("load", 0), task("notify", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		wait := e.sim.TI("etl", "r1", "wait")
		e.must(wait.Advance(S, Q, R))
		_, d1 := e.poll()
		e.advance(time.Minute)
		e.must(wait.Advance(airflowsim.UpForReschedule))
		_, d2 := e.poll()
		e.advance(time.Minute)
		e.must(wait.Advance(S, Q, R))
		_, d3 := e.poll()
		e.advance(time.Minute)
		e.must(wait.Advance(OK))
		e.must(e.sim.TI("etl", "r1", "transform").Advance(S, Q, R, airflowsim.Failed))
		e.must(e.sim.TI("etl", "r1", "load").Advance(airflowsim.UpstreamFailed))
		e.must(e.sim.TI("etl", "r1", "notify").Advance(airflowsim.Skipped))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunFailed))
		_, d4 := e.poll()
		all := slices.Concat(d1, d2, d3, d4)
		poke2 := perPoke(simOpts, "2m0s", "0s")
		wantWait := []string{"#1 ·->running 0s..-", "#1 running->up_for_reschedule 0s..1m0s", "#1 up_for_reschedule->running " + poke2 + "..-", "#1 running->success " + poke2 + "..3m0s"}
		if got := transitions(all, "wait"); !slices.Equal(got, wantWait) {
			t.Errorf("sensor:\n got %q\nwant %q", got, wantWait)
		}
		for node, want := range map[string]string{"load": "#0 ·->upstream_failed 3m0s..3m0s", "notify": "#0 ·->skipped 3m0s..3m0s", "transform": "#1 ·->failed 3m0s..3m0s"} {
			if got := transitions(all, node); !slices.Equal(got, []string{want}) {
				t.Errorf("%s: %q, want %q", node, got, want)
			}
		}
		final := d4[len(d4)-1]
		if final.Run.Phase != "failed" || final.Run.Status != event.StatusFailed {
			t.Errorf("run %s/%s", final.Run.Phase, final.Run.Status)
		}
	})
}

func TestNullLogicalDateRun(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2"}})
	e.must(e.sim.TriggerRun(airflowsim.RunSpec{DagID: "adhoc", RunID: "manual__2026-03-02T10:00:00+00:00", RunType: "manual", Tasks: []airflowsim.TaskSpec{{ID: "go"}}}))
	e.must(e.sim.SetRunState("adhoc", "manual__2026-03-02T10:00:00+00:00", airflowsim.RunRunning))
	e.must(e.sim.TI("adhoc", "manual__2026-03-02T10:00:00+00:00", "go").Advance(S, Q, R))
	_, deltas := e.poll()
	if len(deltas) != 1 {
		t.Fatalf("%d deltas", len(deltas))
	}
	r := deltas[0].Run
	if r.LogicalDate != nil || r.RunAfter == nil || !r.RunAfter.Equal(t0) || r.QueuedAt == nil || r.RunType != "manual" || r.UID != "adhoc/manual__2026-03-02T10:00:00+00:00" {
		t.Errorf("run: logical %v run_after %v queued %v type %s uid %s", r.LogicalDate, r.RunAfter, r.QueuedAt, r.RunType, r.UID)
	}
	if !strings.HasSuffix(r.URL, "/dags/adhoc/runs/manual__2026-03-02T10:00:00+00:00") {
		t.Errorf("Airflow 3 run URL %s", r.URL)
	}
	if got := transitions(deltas, "go"); !slices.Equal(got, []string{"#1 ·->running 0s..-"}) {
		t.Errorf("go: %q", got)
	}
	if deltas[0].Events[0].Airflow.TaskInstanceID == "" {
		t.Error("Airflow 3 task instance id missing")
	}
}

func TestSilentlyCappedPageSize(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts, source: func(o *sourceSetup) { o.PageSize = 500 }})
		for i := range 250 {
			e.trigger(fmt.Sprintf("dag_%03d", i%7), fmt.Sprintf("run_%03d", i), task("t", 0))
		}
		res, deltas := e.poll()
		if res.RunsSeen != 250 || len(deltas) != 250 {
			t.Fatalf("saw %d runs, published %d; want all 250 although the server caps pages at 100", res.RunsSeen, len(deltas))
		}
		var active int
		for _, r := range e.requests("/dagRuns") {
			if r.Method == http.MethodGet && r.Query.Get("state") == "queued" {
				active++
				if r.Query.Get("order_by") != "id" {
					t.Errorf("run listing without a stable order: %v", r.Query)
				}
			}
		}
		if active != 3 {
			t.Errorf("%d pages of active runs, want 3 (100 + 100 + 50)", active)
		}
	})
}

func TestAPICallsDoNotGrowWithDAGs(t *testing.T) {
	calls := func(dags int) int64 {
		e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2"}})
		for i := range 60 {
			e.trigger(fmt.Sprintf("dag_%03d", i%dags), fmt.Sprintf("run_%03d", i), task("a", 0), task("b", 0))
		}
		res, _ := e.poll()
		return res.APICalls
	}
	if few, many := calls(2), calls(60); few != many {
		t.Errorf("API calls: %d with 2 DAGs, %d with 60: they must not depend on the number of DAGs", few, many)
	}
}

func TestExcludedDAGIsNeverQueriedForTasks(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts, source: func(o *sourceSetup) { o.DagExclude = regexp.MustCompile("^airflow_monitoring$") }})
		e.trigger("airflow_monitoring", "m1", task("echo", 1))
		e.trigger("etl", "r1", task("a", 1))
		for _, dag := range []string{"airflow_monitoring", "etl"} {
			run := map[string]string{"airflow_monitoring": "m1", "etl": "r1"}[dag]
			e.must(e.sim.SetRunState(dag, run, airflowsim.RunRunning))
			id := map[string]string{"airflow_monitoring": "echo", "etl": "a"}[dag]
			e.must(e.sim.TI(dag, run, id).Advance(S, Q, R, airflowsim.UpForRetry, S, Q, R))
		}
		_, d1 := e.poll()
		e.advance(time.Minute)
		e.must(e.sim.TI("airflow_monitoring", "m1", "echo").Advance(OK))
		_, d2 := e.poll()
		for _, d := range slices.Concat(d1, d2) {
			if d.Run.Pipeline == "airflow_monitoring" {
				t.Fatalf("published a delta of the excluded DAG: %s", d.Run.UID)
			}
		}
		for _, r := range e.sim.Requests() {
			if strings.Contains(r.Path, "airflow_monitoring") || strings.Contains(string(r.Body), "airflow_monitoring") {
				t.Errorf("a call names the excluded DAG: %s %s %s", r.Method, r.Path, r.Body)
			}
		}
		if len(e.requests("/etl/dagRuns/r1/taskInstances/a/tries")) != 1 {
			t.Error("the watched DAG's retried task was not read")
		}
	})
}

func TestUnchangedRunsCostNothing(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		for i := range 20 {
			e.trigger("etl", fmt.Sprintf("r%02d", i), task("a", 0), task("b", 0))
			e.must(e.sim.SetRunState("etl", fmt.Sprintf("r%02d", i), airflowsim.RunRunning))
			e.must(e.sim.TI("etl", fmt.Sprintf("r%02d", i), "a").Advance(S, Q, R))
		}
		e.poll()
		e.advance(3 * time.Minute)
		e.poll() // the overlap shows the first poll's changes again: read, found unchanged
		e.advance(3 * time.Minute)
		e.sim.ResetRequests()
		res, deltas := e.poll()
		// The source document is read and written twice (lease, commit): no run document.
		if res.RunsChanged != 0 || len(deltas) != 0 || res.StoreReads != 2 || res.StoreWrites != 2 {
			t.Errorf("nothing changed: %d runs changed, %d deltas, %d reads, %d writes; want 0, 0, and the source document's 2 and 2", res.RunsChanged, len(deltas), res.StoreReads, res.StoreWrites)
		}
		if n := len(e.requests("/taskInstances/list")); n != 0 {
			t.Errorf("%d task-instance batch calls for unchanged runs", n)
		}
		e.advance(time.Minute)
		e.must(e.sim.TI("etl", "r07", "a").Advance(OK))
		e.sim.ResetRequests()
		res, deltas = e.poll()
		if res.RunsChanged != 1 || len(deltas) != 1 || deltas[0].Run.Name != "r07" {
			t.Errorf("one run changed: %d changed, %d deltas", res.RunsChanged, len(deltas))
		}
		// The process read r07 before: its other task instances come from memory, the changed
		// one from the change feed. Three calls: the runs queued or finished, the runs started,
		// the feed; no listing of the active runs, no batch.
		var calls []string
		for _, r := range e.sim.Requests() {
			calls = append(calls, r.Method+" "+r.Path+"?"+r.Query.Encode())
			if r.Query.Has("updated_at_gte") || r.Query.Has("start_date_gte") {
				continue
			}
			t.Errorf("a call that does not ask for what changed: %s %s?%s", r.Method, r.Path, r.Query.Encode())
		}
		if len(calls) != 3 {
			t.Errorf("%d calls for one changed run, want 3:\n%s", len(calls), strings.Join(calls, "\n"))
		}
	})
}

// A fresh process (a cold function instance) lists every active run once, and reads none whose
// fingerprint the index vouches for: it publishes nothing new and costs no state-store read nor
// task-instance call.
func TestColdStartReadsNoUnchangedRun(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2"}})
	e.trigger("etl", "r1", task("a", 2))
	e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
	// Queued for its second try: a running task would be in every change feed on Airflow 3
	// (heartbeats), and read.
	e.must(e.sim.TI("etl", "r1", "a").Advance(S, Q, R, airflowsim.UpForRetry, S, Q))
	e.poll()
	e.advance(3 * time.Minute) // past the overlap: the window no longer shows the first changes
	e.poll()
	e.src = e.newSource(nil)
	e.engine = e.h.Engine(e.src, poll.Config{Overlap: 2 * time.Minute})
	e.advance(time.Minute)
	e.sim.ResetRequests()
	res, deltas := e.poll()
	if len(deltas) != 0 || res.StoreReads != 2 || res.RunsChanged != 0 {
		t.Errorf("cold start: %d deltas, %d reads, %d runs changed; want none, the source document's 2, none", len(deltas), res.StoreReads, res.RunsChanged)
	}
	if n := len(e.requests("/taskInstances/list")) + len(e.requests("/tries")); n != 0 {
		t.Errorf("cold start: %d task-instance calls for a run that did not change", n)
	}
}

func TestOldServerFallsBackToDateRanges(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v1", Version: "2.5.3"}})
	e.trigger("etl", "r1", task("a", 0))
	e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
	e.must(e.sim.TI("etl", "r1", "a").Advance(S, Q, R))
	e.poll()
	e.advance(time.Minute)
	e.must(e.sim.TI("etl", "r1", "a").Advance(OK))
	e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunSuccess))
	_, deltas := e.poll()
	if got := transitions(deltas, "a"); !slices.Equal(got, []string{"#1 running->success 0s..1m0s"}) {
		t.Errorf("a: %q", got)
	}
	for _, r := range e.sim.Requests() {
		if r.Status != 200 && r.Path != "/api/v2/version" { // the detection asks Airflow 3 first
			t.Errorf("%s %s answered %d: a filter 2.5 does not have was sent", r.Method, r.Path, r.Status)
		}
		if r.Query.Get("updated_at_gte") != "" {
			t.Errorf("updated_at_gte sent to 2.5: %v", r.Query)
		}
	}
}

// A run deleted while it was active is noticed by the next full listing of the active runs,
// followed up by reference and reported gone. Between full listings it is vouched for by the
// index like any run without a change (list.go): at most FullListingEvery late.
func TestRunsActiveAtTheLastPollAreFollowedByReference(t *testing.T) {
	for _, c := range []struct {
		name          string
		every         time.Duration
		goneAfter10m  int
		goneAfterFull int
	}{
		{"full listing every 5m", 5 * time.Minute, 1, 0},
		{"full listing every hour", time.Hour, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v1"}, source: func(o *sourceSetup) { o.FullListingEvery = c.every }})
			e.trigger("etl", "r1", task("a", 0))
			e.trigger("etl", "r2", task("a", 0))
			for _, r := range []string{"r1", "r2"} {
				e.must(e.sim.SetRunState("etl", r, airflowsim.RunRunning))
				e.must(e.sim.TI("etl", r, "a").Advance(S, Q, R))
			}
			e.poll()
			e.must(e.sim.DeleteRun("etl", "r2")) // purged by `airflow db clean` before its end was seen
			e.advance(10 * time.Minute)
			res, _ := e.poll()
			if res.RunsGone != c.goneAfter10m || res.RunsFetched != 0 {
				t.Errorf("after 10 minutes: %d gone, %d fetched; want %d and 0", res.RunsGone, res.RunsFetched, c.goneAfter10m)
			}
			e.advance(c.every)
			res, _ = e.poll()
			if res.RunsGone != c.goneAfterFull {
				t.Errorf("after the next full listing: %d gone, want %d", res.RunsGone, c.goneAfterFull)
			}
			snaps, err := e.src.Fetch(t.Context(), []string{"etl/r1", "etl/r2"})
			if err != nil || len(snaps) != 1 || !snaps[0].Loaded || snaps[0].Run.Name != "r1" || len(snaps[0].Tasks) != 1 {
				t.Fatalf("Fetch: %v, %v", snaps, err)
			}
			if _, err := e.src.Fetch(t.Context(), []string{"no-slash"}); err == nil {
				t.Error("a malformed reference was accepted")
			}
		})
	}
}

func TestAuthErrorsNameTheModeAndKeepTheCursor(t *testing.T) {
	e := newEnv(t, envOpts{
		sim: airflowsim.Options{API: "v1", Auth: airflowsim.Auth{Mode: "basic", Username: "farm", Password: "right"}},
		source: func(o *sourceSetup) {
			o.Auth, o.Username, o.Password = "basic", "farm", "right"
		},
	})
	e.trigger("etl", "r1", task("a", 0))
	first, _ := e.poll()
	e.advance(time.Minute)
	e.sim.SetForbidden(true)
	res, err := e.engine.Poll(t.Context(), poll.Request{})
	var ae *airflow.AuthError
	if !errors.Is(err, poll.ErrSource) || !errors.As(err, &ae) || !strings.Contains(err.Error(), `auth mode "basic"`) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("403: %v", err)
	}
	if !res.Cursor.IsZero() {
		t.Errorf("a failed poll moved the cursor to %s", res.Cursor)
	}
	e.sim.SetForbidden(false)
	wrong := e.newSource(func(o *sourceSetup) {
		o.Auth, o.Username, o.Password = "basic", "farm", "wrong"
	})
	_, err = e.h.Engine(wrong, poll.Config{}).Poll(t.Context(), poll.Request{})
	if !errors.As(err, &ae) || ae.Mode != "basic" || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("401: %v", err)
	}
	e.advance(time.Minute)
	res, _ = e.poll()
	if !res.PreviousCursor.Equal(first.Cursor) {
		t.Errorf("cursor after the failures %s, want the last good poll's %s", res.PreviousCursor, first.Cursor)
	}
}

func TestFaultsAreRetriedWithBackoff(t *testing.T) {
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2"}})
	// A short per-call timeout, so the hanging call is given up soon.
	e.src = e.newSource(func(o *sourceSetup) {
		o.HTTP = append(o.HTTP, httpx.WithTimeout(300*time.Millisecond))
	})
	e.engine = e.h.Engine(e.src, poll.Config{})
	e.trigger("etl", "r1", task("a", 0))
	e.sim.InjectFault(airflowsim.Fault{PathPrefix: "/api/v2/dags/~/dagRuns", Method: http.MethodGet, Status: 500, Times: 1})
	e.sim.InjectFault(airflowsim.Fault{PathPrefix: "/api/v2/dags/~/dagRuns/~/taskInstances/list", Status: 429, RetryAfter: "7", Times: 1})
	e.sim.InjectFault(airflowsim.Fault{PathPrefix: "/api/v2/dags/~/dagRuns/~/taskInstances", Method: http.MethodGet, Hang: true, Times: 1})
	_, deltas := e.poll()
	if len(deltas) != 1 {
		t.Fatalf("%d deltas after transient faults", len(deltas))
	}
	e.mu.Lock()
	sleeps := slices.Clone(e.sleeps)
	e.mu.Unlock()
	if !slices.Contains(sleeps, 7*time.Second) || len(sleeps) != 3 {
		t.Errorf("waits %v: want three retries, one honouring Retry-After 7s", sleeps)
	}
	e.advance(time.Minute)
	e.sim.InjectFault(airflowsim.Fault{Status: 503})
	res, err := e.engine.Poll(t.Context(), poll.Request{})
	if !errors.Is(err, poll.ErrSource) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "after 4 attempts") {
		t.Fatalf("persistent 503: %v", err)
	}
	if !res.Cursor.IsZero() {
		t.Error("cursor moved on a failed poll")
	}
}

func TestNaiveDatetimeFromServerIsAnError(t *testing.T) {
	e := newEnv(t, envOpts{
		sim: airflowsim.Options{API: "v1"},
		handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "/dagRuns") {
					h.ServeHTTP(w, r)
					return
				}
				rec := &bodyRewriter{ResponseWriter: w, status: http.StatusOK}
				h.ServeHTTP(rec, r)
				w.WriteHeader(rec.status)
				_, _ = w.Write([]byte(strings.ReplaceAll(rec.buf.String(), "+00:00", "")))
			})
		},
	})
	e.trigger("etl", "r1", task("a", 0))
	_, err := e.engine.Poll(t.Context(), poll.Request{})
	if err == nil || !strings.Contains(err.Error(), "not an RFC 3339 time with an offset") || !strings.Contains(err.Error(), "etl/r1") {
		t.Fatalf("naive datetime: %v", err)
	}
}

func TestStoredStatesKeepGroupStart(t *testing.T) {
	// FillHistory derives groups with stored attempts: a try only the store remembers (an old
	// server shows only the latest) still dates its group.
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v1", Version: "2.9.3"}})
	e.trigger("etl", "r1", task("g.a", 1), task("g.b", 0))
	e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
	a := e.sim.TI("etl", "r1", "g.a")
	e.must(a.Advance(S, Q, R))
	e.poll()
	e.advance(time.Minute)
	e.must(a.Advance(airflowsim.UpForRetry, S, Q, R))
	snaps, err := e.src.List(t.Context(), poll.Window{Since: t0, Until: e.h.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	groupStart := func() time.Duration {
		for _, ev := range snaps[0].Tasks {
			if ev.NodeID == "g" {
				return ev.StartedAt.Sub(t0)
			}
		}
		t.Fatal("no group node")
		return 0
	}
	if got := groupStart(); got != time.Minute {
		t.Fatalf("group start from the snapshot alone: %s", got)
	}
	stored := poll.StoredAttempts{{NodeID: "g.a", Attempt: 1}: t0}
	if err := e.src.FillHistory(t.Context(), snaps[0], stored); err != nil {
		t.Fatal(err)
	}
	if got := groupStart(); got != 0 {
		t.Errorf("group start with the stored first try: %s, want 0s", got)
	}
}

// A sensor rescheduled and running again between two polls shows the same state, try and start
// as at the last poll: only its queued time moved. That re-entry is still a transition to record.
func TestSensorRescheduledBetweenPolls(t *testing.T) {
	forSensorStarts(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("wait", 0))
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		wait := e.sim.TI("etl", "r1", "wait")
		e.must(wait.Advance(S, Q, R))
		_, d1 := e.poll()
		e.advance(time.Minute)
		e.must(wait.Advance(airflowsim.UpForReschedule))
		e.advance(time.Minute)
		e.must(wait.Advance(S, Q, R))
		e.advance(time.Minute)
		_, d2 := e.poll()
		_, d3 := e.poll()
		want := []string{"#1 ·->running 0s..-", "#1 running->running " + perPoke(simOpts, "2m0s", "0s") + "..-"}
		if got := transitions(slices.Concat(d1, d2, d3), "wait"); !slices.Equal(got, want) {
			t.Fatalf("sensor:\n got %q\nwant %q", got, want)
		}
		first, again := eventOf(t, d1, "wait"), eventOf(t, d2, "wait")
		if first.ID == again.ID || again.Airflow.QueuedAt == nil || !again.Airflow.QueuedAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("re-entry: id %s (first %s), queued %v", again.ID, first.ID, again.Airflow.QueuedAt)
		}
	})
}

func eventOf(t *testing.T, ds []*event.RunDelta, node string) event.TaskEvent {
	t.Helper()
	for _, ev := range polltest.Events(ds) {
		if ev.NodeID == node {
			return ev
		}
	}
	t.Fatalf("no event of %s in %d deltas", node, len(ds))
	return event.TaskEvent{}
}

// The run fields of the first FARM table travel in the events on both API versions: data
// interval, last scheduling decision, note, and Airflow 2's external_trigger (gone in Airflow 3).
func TestRunFieldsBothAPIs(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("load", 0))
		e.advance(time.Minute)
		e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
		e.must(e.sim.SetRunNote("etl", "r1", "rerun after the outage"))
		e.must(e.sim.TI("etl", "r1", "load").Advance(S, Q, R))
		_, deltas := e.poll()
		if len(deltas) != 1 {
			t.Fatalf("%d deltas", len(deltas))
		}
		r := deltas[0].Run
		scheduled := t0.Add(time.Minute)
		if r.DataIntervalStart == nil || !r.DataIntervalStart.Equal(t0) || r.DataIntervalEnd == nil || !r.DataIntervalEnd.Equal(t0.Add(24*time.Hour)) {
			t.Errorf("data interval %v..%v, want %v and a day later", r.DataIntervalStart, r.DataIntervalEnd, t0)
		}
		if r.Message != "rerun after the outage" {
			t.Errorf("note %q", r.Message)
		}
		if r.LastSchedulingDecision == nil || !r.LastSchedulingDecision.Equal(scheduled) {
			t.Errorf("last scheduling decision %v, want %v", r.LastSchedulingDecision, scheduled)
		}
		switch simOpts.API {
		case "v1":
			if r.ExternalTrigger == nil || *r.ExternalTrigger {
				t.Errorf("external_trigger %v, want false for a scheduled run", r.ExternalTrigger)
			}
		case "v2":
			if r.ExternalTrigger != nil {
				t.Errorf("external_trigger %v on Airflow 3, which has none", *r.ExternalTrigger)
			}
		}
	})
}

// A cold process reads the tries of retried task instances one call each: a poll makes at most
// MaxTriesReads of them, and records the tries it did not read as a gap, never inventing them.
func TestTriesReadsBoundedPerPoll(t *testing.T) {
	e := newEnv(t, envOpts{source: func(o *sourceSetup) { o.MaxTriesReads = 2 }})
	for i := range 5 {
		run := fmt.Sprintf("r%d", i)
		e.trigger("etl", run, task("load", 3))
		e.must(e.sim.SetRunState("etl", run, airflowsim.RunRunning))
		e.must(e.sim.TI("etl", run, "load").Advance(S, Q, R, airflowsim.UpForRetry, S, Q, R, airflowsim.UpForRetry, S, Q, R))
	}
	e.advance(time.Minute)
	_, deltas := e.poll()
	if n := len(e.requests("/tries")); n != 2 {
		t.Fatalf("%d tries calls in one poll, want the bound of 2", n)
	}
	withTries, gaps := 0, 0
	for _, d := range deltas {
		var attempts []int
		var missed string
		for _, ev := range d.Events {
			if ev.NodeID == "load" {
				attempts = append(attempts, ev.Attempt)
				if ev.Attempt == 3 && ev.Airflow != nil {
					missed = fmt.Sprint(ev.Airflow.MissedTries)
				}
			}
		}
		switch {
		case len(attempts) == 3 && missed == "[]":
			withTries++
		case len(attempts) == 1 && missed == "[1 2]":
			gaps++
		default:
			t.Errorf("run %s: attempts %v, try 3 missed %s; want all three tries, or try 3 with [1 2] missed", d.Run.Name, attempts, missed)
		}
	}
	if withTries != 2 || gaps != 3 {
		t.Errorf("%d runs with their earlier tries and %d with a recorded gap, want 2 and 3", withTries, gaps)
	}
}

// The batch query crosses its dag_ids with its dag_run_ids: asking for (a, day 1) and (b, day 2)
// together would also bring the task instances of (a, day 2) and (b, day 1). Requests never name
// a date-made run id beside a DAG that was not asked for it.
func TestBatchNeverCrossesDAGsWithOtherDates(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		days := []string{"scheduled__2026-11-22T00:00:00+00:00", "scheduled__2026-11-23T00:00:00+00:00"}
		var want []airflow.RunRef
		for i, dag := range []string{"a", "b", "c"} {
			for _, day := range days {
				e.trigger(dag, day, task("t1", 0), task("t2", 0))
			}
			want = append(want, airflow.RunRef{DagID: dag, RunID: days[i%2]})
			e.trigger(dag, "manual__"+dag, task("t1", 0))
			want = append(want, airflow.RunRef{DagID: dag, RunID: "manual__" + dag})
		}
		e.sim.ResetRequests()
		got, err := e.src.Client().RunTaskInstances(t.Context(), want)
		if err != nil {
			t.Fatal(err)
		}
		asked := map[airflow.RunRef]bool{}
		for _, r := range want {
			asked[r] = true
			if n := len(got[r]); n == 0 {
				t.Errorf("run %s: no task instance", r)
			}
		}
		for _, req := range e.requests("taskInstances/list") {
			var body struct {
				Dags []string `json:"dag_ids"`
				IDs  []string `json:"dag_run_ids"`
			}
			if err := json.Unmarshal(req.Body, &body); err != nil {
				t.Fatal(err)
			}
			for _, d := range body.Dags {
				for _, id := range body.IDs {
					if r := (airflow.RunRef{DagID: d, RunID: id}); strings.HasPrefix(id, "scheduled__") && !asked[r] {
						t.Errorf("a batch request names %s, a run not asked for (dag_ids %v x dag_run_ids %v)", r, body.Dags, body.IDs)
					}
				}
			}
		}
		if n := len(e.requests("taskInstances/list")); n > 3 {
			t.Errorf("%d batch requests for 2 dates and 3 manual runs, want at most 3", n)
		}
	})
}
