package airflowsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/clock"
)

func runEstate(t *testing.T, api string, spec airflowsim.EstateSpec, d, step time.Duration) (*fixture, []airflowsim.Counts) {
	t.Helper()
	f := newFixture(t, airflowsim.Options{API: api})
	if _, err := f.sim.StartEstate(spec); err != nil {
		t.Fatal(err)
	}
	var counts []airflowsim.Counts
	for el := time.Duration(0); el < d; el += step {
		f.clk.Advance(step)
		f.sim.Sync()
		counts = append(counts, f.sim.Counts())
	}
	return f, counts
}

func TestEstateKeepsActiveRunsAndExposesTruth(t *testing.T) {
	spec := airflowsim.EstateSpec{DAGs: 3, ActiveRuns: 6, TasksPerRun: 8, StepEvery: 10 * time.Second, FailRate: 0.3, RetryRate: 0.3, Monitoring: true, Seed: 7}
	for _, api := range []string{"v1", "v2"} {
		t.Run(api, func(t *testing.T) {
			f, counts := runEstate(t, api, spec, 2*time.Hour, 7*time.Second)
			for i, c := range counts {
				if c.ActiveRuns != 6 {
					t.Fatalf("after step %d: %d active runs, want 6", i, c.ActiveRuns)
				}
			}
			truth := f.sim.Truth()
			seen := map[string]bool{}
			last := map[string]airflowsim.Transition{}
			for _, tr := range truth {
				seen[tr.To] = true
				if !tr.IsRun() {
					last[fmt.Sprintf("%s/%s/%s/%d", tr.DagID, tr.RunID, tr.TaskID, tr.MapIndex)] = tr
				}
			}
			for _, st := range []string{airflowsim.UpForRetry, airflowsim.UpForReschedule, airflowsim.UpstreamFailed, airflowsim.Skipped, airflowsim.Failed, airflowsim.Success} {
				if !seen[st] {
					t.Errorf("two simulated hours never showed %s", st)
				}
			}
			// What the API shows now is the last transition of every task instance.
			body := map[string]any{}
			if api == "v2" {
				body["page_limit"] = 100000 // v1's batch has no paging; v2's is paged but not capped
			}
			_, page, _ := f.call(http.MethodPost, "/api/"+api+"/dags/~/dagRuns/~/taskInstances/list", body)
			rows := items(page, "task_instances")
			if api == "v2" && total(page) > len(rows) {
				t.Fatalf("v2 batch answered %d of %d rows in one page; raise the page", len(rows), total(page))
			}
			checked := 0
			for _, ti := range rows {
				k := fmt.Sprintf("%s/%s/%s/%d", ti["dag_id"], ti["dag_run_id"], ti["task_id"], int(ti["map_index"].(float64)))
				tr, ok := last[k]
				state, _ := ti["state"].(string)
				if !ok {
					if state != "" {
						t.Fatalf("%s is %s but the truth has no transition for it", k, state)
					}
					continue
				}
				checked++
				if tr.To != state || float64(tr.Try) != ti["try_number"].(float64) {
					t.Fatalf("%s: API %s try %v, truth %s try %d", k, state, ti["try_number"], tr.To, tr.Try)
				}
			}
			if checked < 50 {
				t.Fatalf("only %d task instances checked against the truth", checked)
			}
			var monitoring int
			for _, tr := range truth {
				if tr.DagID == "airflow_monitoring" && tr.IsRun() && tr.To == airflowsim.RunSuccess {
					monitoring++
				}
			}
			if monitoring < 12 {
				t.Fatalf("%d airflow_monitoring runs in two hours, want one every 10 minutes", monitoring)
			}
		})
	}
}

func TestEstateIsDeterministic(t *testing.T) {
	spec := airflowsim.EstateSpec{DAGs: 2, ActiveRuns: 4, StepEvery: 5 * time.Second, Seed: 42}
	a, _ := runEstate(t, "v2", spec, 10*time.Minute, 3*time.Second)
	b, _ := runEstate(t, "v2", spec, 10*time.Minute, 12*time.Second)
	ta, tb := a.sim.Truth(), b.sim.Truth()
	if len(ta) < 100 || !reflect.DeepEqual(ta, tb) {
		t.Fatalf("same seed and clock, observed at different moments: %d and %d transitions differ", len(ta), len(tb))
	}
	spec.Seed = 43
	c, _ := runEstate(t, "v2", spec, 10*time.Minute, 3*time.Second)
	if reflect.DeepEqual(ta, c.sim.Truth()) {
		t.Fatal("another seed gave the same estate")
	}
}

func TestEstateRetentionPrunesFinishedRuns(t *testing.T) {
	spec := airflowsim.EstateSpec{DAGs: 2, ActiveRuns: 2, TasksPerRun: 5, StepEvery: 5 * time.Second, Retention: 10 * time.Minute, Seed: 3}
	_, counts := runEstate(t, "v1", spec, 3*time.Hour, 30*time.Second)
	last := counts[len(counts)-1]
	if last.Runs > 20 {
		t.Fatalf("%d runs kept with a 10 minute retention", last.Runs)
	}
}

func TestDemo(t *testing.T) {
	for _, api := range []string{"v1", "v2"} {
		f := newFixture(t, airflowsim.Options{})
		demo, err := airflowsim.NewDemo(f.clk, api, 1)
		if err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(5 * time.Minute)
		if c := demo.Counts(); c.ActiveRuns != 6 || c.Runs < 10 {
			t.Fatalf("%s demo after 5 minutes: %+v", api, c)
		}
		h, stop, err := airflowsim.Simulator(api)(t.Context())
		if err != nil || h == nil {
			t.Fatalf("Simulator: %v", err)
		}
		stop()
	}
}

// The demo starts with its runs at every stage: the local runner's first poll finds finished
// Airflow runs (it showed none for 2.5 minutes when every run started with the runner), and the
// next polls find more.
func TestDemoHasFinishedRunsFromTheStart(t *testing.T) {
	f := newFixture(t, airflowsim.Options{})
	demo, err := airflowsim.NewDemo(f.clk, "v2", 1)
	if err != nil {
		t.Fatal(err)
	}
	finished := func() int {
		demo.Sync()
		n := 0
		for _, tr := range demo.Truth() {
			if tr.IsRun() && tr.DagID != "airflow_monitoring" && (tr.To == airflowsim.RunSuccess || tr.To == airflowsim.RunFailed) {
				n++
			}
		}
		return n
	}
	if n := finished(); n < 1 {
		t.Fatalf("%d runs finished when the demo starts, want at least one", n)
	}
	before := finished()
	f.clk.Advance(45 * time.Second)
	if n := finished(); n <= before {
		t.Errorf("no run finished in the demo's first 45 s (%d finished at the start, %d now)", before, n)
	}
	if c := demo.Counts(); c.ActiveRuns != 6 {
		t.Errorf("active runs %d, want 6", c.ActiveRuns)
	}
}

// An answer reflects one instant: a run listed as running carries a last scheduling decision at
// which the truth has it running. (The run listing used to read the clock a second time and
// stamp runs with a later instant than the states it showed.)
func TestAnswerReflectsOneInstant(t *testing.T) {
	clk := clock.NewTicking(t0, time.Minute)
	sim, err := airflowsim.New(airflowsim.Options{API: "v2", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.StartEstate(airflowsim.EstateSpec{DAGs: 3, ActiveRuns: 6, TasksPerRun: 6, StepEvery: time.Second, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v2/dags/~/dagRuns?state=running")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		DagRuns []struct {
			DagID                  string    `json:"dag_id"`
			RunID                  string    `json:"dag_run_id"`
			State                  string    `json:"state"`
			LastSchedulingDecision time.Time `json:"last_scheduling_decision"`
		} `json:"dag_runs"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || len(page.DagRuns) == 0 {
		t.Fatalf("no running runs listed: %v", err)
	}
	truth := sim.Truth() // later: every step up to the listed instants has happened
	for _, r := range page.DagRuns {
		state := ""
		for _, tr := range truth {
			if tr.IsRun() && tr.DagID == r.DagID && tr.RunID == r.RunID && !tr.At.After(r.LastSchedulingDecision) {
				state = tr.To
			}
		}
		if state != r.State {
			t.Errorf("run %s/%s listed %s with last_scheduling_decision %s, when the truth has it %q", r.DagID, r.RunID, r.State, r.LastSchedulingDecision.Format(time.RFC3339), state)
		}
	}
}
