package airflow

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/clock"
)

// Fuzz targets of the decoders of Airflow's answers (v1 and v2): DAG-run pages, task-instance pages
// and tries. Their seeds are documents the simulator serves, shaped like Airflow 2.10's /api/v1 and
// Airflow 3's /api/v2 (see internal/sim/airflowsim); `go test` runs the seeds, `make fuzz` mutates them.

// simDocs returns the bodies of every read FARM makes, from a simulated Airflow of each API with a
// retried task, a mapped task and a finished run.
func simDocs(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	for _, api := range []string{"v1", "v2"} {
		clk := clock.NewManual(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
		sim, err := airflowsim.New(airflowsim.Options{API: api, Clock: clk})
		if err != nil {
			f.Fatal(err)
		}
		ld := clk.Now()
		must := func(err error) {
			if err != nil {
				f.Fatal(err)
			}
		}
		must(sim.TriggerRun(airflowsim.RunSpec{DagID: "etl", RunID: "scheduled__1", LogicalDate: &ld, Tasks: []airflowsim.TaskSpec{
			{ID: "extract.fetch", Retries: 2, Operator: "PythonOperator", Pool: "default_pool", Queue: "default", Priority: 3},
			{ID: "load", Mapped: true},
		}}))
		must(sim.Expand("etl", "scheduled__1", "load", 2))
		clk.Advance(time.Minute)
		must(sim.TI("etl", "scheduled__1", "extract.fetch").Advance("scheduled", "queued", "running", "up_for_retry"))
		clk.Advance(time.Minute)
		must(sim.TI("etl", "scheduled__1", "extract.fetch").Advance("scheduled", "queued", "running", "success"))
		must(sim.MappedTI("etl", "scheduled__1", "load", 0).Advance("scheduled", "queued", "running", "failed"))
		must(sim.SetRunState("etl", "scheduled__1", "failed"))
		srv := httptest.NewServer(sim)
		p := "/api/" + api + "/"
		for _, path := range []string{
			p + "dags/~/dagRuns?order_by=start_date",
			p + "dags/etl/dagRuns/scheduled__1",
			p + "dags/~/dagRuns/~/taskInstances",
			p + "dags/etl/dagRuns/scheduled__1/taskInstances/extract.fetch/tries",
		} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				f.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				f.Fatalf("%s: %d %s", path, resp.StatusCode, b)
			}
			out = append(out, b)
		}
		srv.Close()
	}
	return out
}

func addSeeds(f *testing.F) {
	for _, d := range simDocs(f) {
		f.Add(d)
	}
	for _, s := range []string{`{}`, `{"dag_runs":null}`, `{"task_instances":[{}]}`, `{"dag_run_id":"x","start_date":"2026-01-01T00:00:00"}`} {
		f.Add([]byte(s))
	}
}

// FuzzRunPage decodes a DAG-run list page and a single DAG run, then maps every run.
func FuzzRunPage(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var page runPage
		if json.Unmarshal(data, &page) == nil {
			for i := range page.DagRuns {
				if r, err := page.DagRuns[i].decode(); err == nil {
					_ = r.Active()
				}
			}
			_, _ = totalOf(page.TotalEntries, "runs")
		}
		var one wireRun
		if json.Unmarshal(data, &one) == nil {
			_, _ = one.decode()
		}
	})
}

// FuzzTaskInstancePage decodes a task-instance page (list, batch or tries: the same shape) and
// maps every instance to its task event, as a poll does.
func FuzzTaskInstancePage(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var page tiPage
		if json.Unmarshal(data, &page) != nil {
			return
		}
		tis, err := decodeTIs(page.TaskInstances)
		if err != nil {
			return
		}
		run := &Run{RunRef: RunRef{DagID: "etl", RunID: "r"}, State: "running"}
		for i := range tis {
			_ = tiKey(tis[i])
			_ = taskEvent(&tis[i], run.State)
		}
		_ = runEvents(tis, run)
	})
}
