package sink_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
)

func TestViewFilesMatchViewList(t *testing.T) {
	files, err := filepath.Glob("../../schemas/views/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".sql"))
	}
	want := slices.Clone(sink.Views)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("view files %v, sink.Views %v: every view file must be listed, in creation order", names, want)
	}
	// Each view may read only tables and views created before it.
	for i, name := range sink.Views {
		sql, err := sink.ViewSQL(schemasDir, name, "p", "d")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sql, "%{") {
			t.Errorf("view %s contains %%{, which terraform's templatefile reads as a directive", name)
		}
		for j, later := range sink.Views[i:] {
			if strings.Contains(sql, "`p.d."+later+"`") {
				t.Errorf("view %s reads %s, which is created after it (position %d)", name, later, i+j)
			}
		}
	}
}

func TestViewSQLPlaceholders(t *testing.T) {
	sql, err := sink.ViewSQL(schemasDir, "argo_dedup", "my-project", "farm_prod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sql, "FROM `my-project.farm_prod.argo`") || strings.Contains(sql, "${") {
		t.Errorf("placeholders not replaced:\n%s", sql)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "views"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "views", "bad.sql"), []byte("SELECT 1 FROM `${project}.${region}.t`"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.ViewSQL(os.DirFS(dir), "bad", "p", "d"); err == nil || !strings.Contains(err.Error(), "${region}") {
		t.Errorf("got %v, want an error naming the unknown placeholder", err)
	}
}

// argoRunOf is a finished (or running) workflow of pipeline etl-nightly with one pod "extract".
func argoRunOf(n int, start time.Time, runSeconds, podSeconds float64, phase string) *event.RunDelta {
	wf := fmt.Sprintf("etl-nightly-%05d", n)
	s := start
	podStart := s.Add(time.Second)
	r := sinktest.ArgoRun{Name: wf, UID: fmt.Sprintf("uid-%d", n), Pipeline: "etl-nightly", Phase: phase, Start: &s}
	root := sinktest.ArgoNode{ID: wf, Name: wf, Display: wf, Type: "DAG", Template: "main", Phase: phase, Start: &s}
	pod := sinktest.ArgoNode{ID: wf + "-1402196842", Name: wf + ".extract", Display: "extract", Type: "Pod", Template: "extract", Parent: wf,
		Phase: "Running", Start: &podStart}
	if phase != "Running" {
		end, podEnd := s.Add(secs(runSeconds)), podStart.Add(secs(podSeconds))
		r.End, root.End, pod.End = &end, &end, &podEnd
		pod.Phase = phase
	}
	skipped := sinktest.ArgoNode{ID: wf + "-99", Name: wf + ".notify", Display: "notify", Type: "Skipped", Parent: wf, Phase: "Skipped",
		Start: &podStart, End: &podStart}
	return sinktest.ArgoDelta(r, start.Add(secs(runSeconds)+time.Minute), root, pod, skipped)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// sensorAirflowRun is a run of "sensing" whose sensor "wait" pokes three times within try 1 on
// a server that overwrites start_date with each poke's start (Airflow 2.0 to 3.2), each poke seen
// by a poll of its own: running at 100 s, up_for_reschedule 100..110, running at 200,
// up_for_reschedule 200..210, running at 300, success 300..310. Its try takes 210 s.
func sensorAirflowRun() []*event.RunDelta {
	run := sinktest.AirflowRun{DagID: "sensing", RunID: "scheduled__2026-03-02T00:00:00+00:00", RunType: "scheduled", State: "running", Start: sinktest.At(90)}
	poke := func(start, end float64, state, prev string) *event.RunDelta {
		tr := sinktest.AirflowTry{TaskID: "wait", Type: "Task", MapIndex: -1, Try: 1, MaxTries: 1, State: state, Prev: prev,
			Queued: sinktest.At(start - 2), Start: sinktest.At(start), QueueSeconds: sinktest.F64(2), Pool: "sensors", Queue: "default"}
		if end > 0 {
			tr.End = sinktest.At(end)
		}
		r := run
		if state == "success" {
			r.State, r.PrevState, r.End = "success", "running", sinktest.At(311)
		}
		return sinktest.AirflowDelta(r, sinktest.Day0.Add(secs(end+1)), tr)
	}
	return []*event.RunDelta{
		poke(100, -1, "running", ""), poke(100, 110, "up_for_reschedule", "running"), poke(200, -1, "running", "up_for_reschedule"),
		poke(200, 210, "up_for_reschedule", "running"), poke(300, -1, "running", "up_for_reschedule"), poke(300, 310, "success", "running"),
	}
}

// failedAirflowRun is a second run of daily_sales whose only try failed after 50 s, having waited
// 7.5 s in queue default.
func failedAirflowRun() *event.RunDelta {
	return sinktest.AirflowDelta(sinktest.AirflowRun{
		DagID: "daily_sales", RunID: "manual__2026-03-02T02:00:00+00:00", RunType: "manual",
		State: "failed", PrevState: "running", Start: sinktest.At(3600), End: sinktest.At(4200),
	}, sinktest.Day0.Add(71*time.Minute),
		sinktest.AirflowTry{TaskID: "fetch_orders", Type: "Task", MapIndex: -1, Try: 1, MaxTries: 1, State: "failed", Prev: "running",
			Queued: sinktest.At(3600), Start: sinktest.At(3607.5), End: sinktest.At(3657.5), QueueSeconds: sinktest.F64(7.5),
			Pool: "default_pool", Queue: "default"},
	)
}

// TestReportingViews loads a known data set through the sink and checks the figures of every
// reporting view against values worked out by hand.
func TestReportingViews(t *testing.T) {
	env := newBQEnv(t, true)
	day1 := sinktest.Day0.Add(24 * time.Hour)
	var deltas []*event.RunDelta
	// Argo, 2026-03-02: four runs of 100..400 s whose pod took 10..40 s; the last failed. Run 1 is
	// first seen running, so the runs view must pick its later state. Run 5 is still running.
	deltas = append(deltas, argoRunOf(1, sinktest.Day0, 0, 0, "Running"))
	for i, phase := range []string{"Succeeded", "Succeeded", "Succeeded", "Failed"} {
		deltas = append(deltas, argoRunOf(i+1, sinktest.Day0.Add(time.Duration(i)*time.Hour), float64(100*(i+1)), float64(10*(i+1)), phase))
	}
	deltas = append(deltas, argoRunOf(5, sinktest.Day0.Add(5*time.Hour), 0, 0, "Running"))
	// Argo, 2026-03-03: one run of 50 s.
	deltas = append(deltas, argoRunOf(6, day1, 50, 5, "Succeeded"))
	// Airflow, 2026-03-02: a run of 390 s (try 1 up_for_retry after 30 s, try 2 succeeded after
	// 34.123456 s; three mapped instances) seen once while try 2 was running; a failed run of 600 s.
	running := sinktest.RetriedMappedAirflowDelta()
	running.Run.Phase, running.Run.Status, running.Run.FinishedAt = "running", event.StatusRunning, nil
	try2 := running.Events[1]
	try2.State, try2.Status, try2.FinishedAt = "running", event.StatusRunning, nil
	try2.ID = event.TaskEventID(running.Run.Key(), try2.NodeID, try2.Attempt, try2.State, try2.StartedAt, nil)
	running.Events = []event.TaskEvent{try2}
	running.ObservedAt = sinktest.Day0.Add(6 * time.Minute)
	deltas = append(deltas, sinktest.Finish(running), sinktest.RetriedMappedAirflowDelta(), failedAirflowRun())
	deltas = append(deltas, sensorAirflowRun()...)

	for i, d := range deltas {
		env.mustDeliver(t, sinktest.Message(t, d, fmt.Sprint(5000+i), d.ObservedAt.Add(time.Second)))
	}

	d0, d1 := civil.DateOf(sinktest.Day0), civil.DateOf(day1)
	checkView(t, env, "run_duration_daily", "source, pipeline, day", []map[string]bigquery.Value{
		{"source": "airflow", "pipeline": "daily_sales", "day": d0, "runs": int64(2), "failed_runs": int64(1),
			"p50_seconds": 495.0, "p90_seconds": 579.0, "p99_seconds": 597.9, "max_seconds": 600.0, "avg_seconds": 495.0},
		{"source": "airflow", "pipeline": "sensing", "day": d0, "runs": int64(1), "failed_runs": int64(0),
			"p50_seconds": 221.0, "p90_seconds": 221.0, "p99_seconds": 221.0, "max_seconds": 221.0, "avg_seconds": 221.0},
		{"source": "argo", "pipeline": "etl-nightly", "day": d0, "runs": int64(4), "failed_runs": int64(1),
			"p50_seconds": 250.0, "p90_seconds": 370.0, "p99_seconds": 397.0, "max_seconds": 400.0, "avg_seconds": 250.0},
		{"source": "argo", "pipeline": "etl-nightly", "day": d1, "runs": int64(1), "failed_runs": int64(0),
			"p50_seconds": 50.0, "p90_seconds": 50.0, "p99_seconds": 50.0, "max_seconds": 50.0, "avg_seconds": 50.0},
	})
	checkView(t, env, "failure_rate_daily", "source, pipeline, day", []map[string]bigquery.Value{
		{"source": "airflow", "pipeline": "daily_sales", "day": d0, "runs": int64(2), "failed_runs": int64(1), "failure_rate": 0.5},
		{"source": "airflow", "pipeline": "sensing", "day": d0, "runs": int64(1), "failed_runs": int64(0), "failure_rate": 0.0},
		{"source": "argo", "pipeline": "etl-nightly", "day": d0, "runs": int64(4), "failed_runs": int64(1), "failure_rate": 0.25},
		{"source": "argo", "pipeline": "etl-nightly", "day": d1, "runs": int64(1), "failed_runs": int64(0), "failure_rate": 0.0},
	})
	checkView(t, env, "task_duration_daily", "source, pipeline, day, task, task_type", []map[string]bigquery.Value{
		{"source": "airflow", "pipeline": "daily_sales", "day": d0, "task": "enrich", "task_type": "TaskGroup", "attempts": int64(1),
			"failed_attempts": int64(0), "p50_seconds": 17.0, "p90_seconds": 17.0, "p99_seconds": 17.0, "max_seconds": 17.0, "avg_seconds": 17.0},
		{"source": "airflow", "pipeline": "daily_sales", "day": d0, "task": "enrich.score", "task_type": "MappedTask", "attempts": int64(3),
			"failed_attempts": int64(0), "p50_seconds": 11.0, "p90_seconds": 12.2, "p99_seconds": 12.47, "max_seconds": 12.5, "avg_seconds": 30.5 / 3},
		{"source": "airflow", "pipeline": "daily_sales", "day": d0, "task": "fetch_orders", "task_type": "Task", "attempts": int64(3),
			"failed_attempts": int64(2), "p50_seconds": 34.123456, "p90_seconds": 46.8246912, "p99_seconds": 49.68246912,
			"max_seconds": 50.0, "avg_seconds": 114.123456 / 3},
		{"source": "airflow", "pipeline": "sensing", "day": d0, "task": "wait", "task_type": "Task", "attempts": int64(1),
			"failed_attempts": int64(0), "p50_seconds": 210.0, "p90_seconds": 210.0, "p99_seconds": 210.0, "max_seconds": 210.0, "avg_seconds": 210.0},
		{"source": "argo", "pipeline": "etl-nightly", "day": d0, "task": "extract", "task_type": "Pod", "attempts": int64(4),
			"failed_attempts": int64(1), "p50_seconds": 25.0, "p90_seconds": 37.0, "p99_seconds": 39.7, "max_seconds": 40.0, "avg_seconds": 25.0},
		{"source": "argo", "pipeline": "etl-nightly", "day": d1, "task": "extract", "task_type": "Pod", "attempts": int64(1),
			"failed_attempts": int64(0), "p50_seconds": 5.0, "p90_seconds": 5.0, "p99_seconds": 5.0, "max_seconds": 5.0, "avg_seconds": 5.0},
	})
	checkView(t, env, "queue_time_daily", "pipeline, pool, queue, day", []map[string]bigquery.Value{
		{"source": "airflow", "tenant": "acme", "environment": "prod", "pipeline": "daily_sales", "pool": "default_pool", "queue": "default",
			"day": d0, "tries": int64(3), "p50_seconds": 2.5, "p90_seconds": 6.5, "p99_seconds": 7.4, "max_seconds": 7.5, "avg_seconds": 11.0 / 3},
		{"source": "airflow", "tenant": "acme", "environment": "prod", "pipeline": "daily_sales", "pool": "scoring", "queue": "default",
			"day": d0, "tries": int64(3), "p50_seconds": 3.0, "p90_seconds": 3.8, "p99_seconds": 3.98, "max_seconds": 4.0, "avg_seconds": 3.0},
		{"source": "airflow", "tenant": "acme", "environment": "prod", "pipeline": "sensing", "pool": "sensors", "queue": "default",
			"day": d0, "tries": int64(1), "p50_seconds": 2.0, "p90_seconds": 2.0, "p99_seconds": 2.0, "max_seconds": 2.0, "avg_seconds": 2.0},
	})
	// The runs view holds the latest state of each of the 8 runs: run 1 finished, run 5 running.
	runs := env.query(t, "SELECT run_name, run_status, duration_seconds FROM farm.runs WHERE run_name IN ('etl-nightly-00001', 'etl-nightly-00005') ORDER BY run_name")
	want := []map[string]bigquery.Value{
		{"run_name": "etl-nightly-00001", "run_status": "succeeded", "duration_seconds": 100.0},
		{"run_name": "etl-nightly-00005", "run_status": "running", "duration_seconds": nil},
	}
	if !sameRows(runs, want) {
		t.Errorf("runs: got %v, want %v", runs, want)
	}
	if n := env.count(t, "SELECT COUNT(*) FROM farm.runs"); n != 9 {
		t.Errorf("runs has %d rows, want 9 (6 Argo, 3 Airflow)", n)
	}
}

// checkView compares a view's rows (ordered by order) with want on want's columns; floats may
// differ by rounding.
func checkView(t *testing.T, env *bqEnv, view, order string, want []map[string]bigquery.Value) {
	t.Helper()
	got := env.query(t, "SELECT * FROM farm."+view+" ORDER BY "+order)
	if !sameRows(got, want) {
		t.Errorf("%s:\ngot  %v\nwant %v", view, got, want)
	}
}

func sameRows(got, want []map[string]bigquery.Value) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		for k, w := range want[i] {
			g, ok := got[i][k]
			if !ok {
				return false
			}
			if wf, isFloat := w.(float64); isFloat {
				gf, ok := g.(float64)
				if !ok || math.Abs(gf-wf) > 1e-9*math.Max(1, math.Abs(wf)) {
					return false
				}
				continue
			}
			if g != w {
				return false
			}
		}
	}
	return true
}
