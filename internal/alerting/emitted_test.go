package alerting_test

import (
	"maps"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// operation is what FARM's trace function really sent for one operation name.
type operation struct {
	services  map[string]bool
	resources map[string]bool
	meta      map[string]bool // string tags
	metrics   map[string]bool // numeric tags
	errors    int             // error spans
	// stats is true when every span is one DataDog computes trace metrics for: a top-level span
	// (_dd.top_level) or a measured one (_dd.measured). Others have no trace.<operation>.* at all.
	stats bool
}

// hasTag reports whether spans of the operation carry the tag, string or numeric.
func (o *operation) hasTag(k string) bool { return o.meta[k] || o.metrics[k] }

var (
	emittedOnce sync.Once
	emittedOps  map[string]*operation
	emittedErr  string
)

// emitted returns, by operation name, the services, resources and tags of the spans pkg/trace
// sends for a failed Argo run (retried step, nested DAG) and a failed Airflow run (queued
// tasks, a retried try), as a local agent receives them. These are the names the monitors and
// the dashboard may use: what the code emits, not a second copy of it.
func emitted(t *testing.T) map[string]*operation {
	t.Helper()
	emittedOnce.Do(func() { emittedOps, emittedErr = traceSample(t) })
	if emittedErr != "" {
		t.Fatal(emittedErr)
	}
	return emittedOps
}

func traceSample(t *testing.T) (map[string]*operation, string) {
	agent := ddagent.New()
	srv := httptest.NewServer(agent)
	defer srv.Close()
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)

	cfg := defaultConfig(t)
	clk := clock.NewManual(day0.Add(2 * time.Hour))
	tc := cfg.Trace
	tc.Version = "1.0.0"
	tr, err := apm.New(tc, apm.Deps{Clock: clk, Ledger: filestore.New(filepath.Join(t.TempDir(), "state.json"), filestore.WithClock(clk))})
	if err != nil {
		return nil, "trace.New: " + err.Error()
	}
	for _, d := range []*event.RunDelta{argoRun(), airflowRun()} {
		res, err := tr.Trace(t.Context(), d)
		if err != nil {
			return nil, "trace " + d.Run.Key() + ": " + err.Error()
		}
		if res.Sent != len(d.Events)+1 {
			return nil, "trace " + d.Run.Key() + ": not every span was sent"
		}
	}
	ops := map[string]*operation{}
	for _, s := range agent.Spans() {
		o := ops[s.Name]
		if o == nil {
			o = &operation{services: map[string]bool{}, resources: map[string]bool{}, meta: map[string]bool{}, metrics: map[string]bool{}, stats: true}
			ops[s.Name] = o
		}
		o.stats = o.stats && (s.Metrics["_dd.top_level"] == 1 || s.Metrics["_dd.measured"] == 1)
		o.errors += int(s.Error)
		o.services[s.Service] = true
		o.resources[s.Resource] = true
		for k := range s.Meta {
			o.meta[k] = true
		}
		for k := range s.Metrics {
			o.metrics[k] = true
		}
	}
	return ops, ""
}

// defaultConfig is FARM's configuration with nothing set: the defaults the deployment uses too.
func defaultConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.LoadFrom(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The runs below carry the fields the Argo and Airflow mappings fill in (pkg/event is the
// contract), in their final state.
var day0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)

func at(sec int) *time.Time {
	t := day0.Add(time.Duration(sec) * time.Second)
	return &t
}

func seconds(v float64) *float64 { return &v }

func delta(run event.Run, events []event.TaskEvent) *event.RunDelta {
	ids := make([]string, len(events))
	for i := range events {
		e := &events[i]
		e.ID = event.TaskEventID(run.Key(), e.NodeID, e.Attempt, e.State, e.StartedAt, e.FinishedAt)
		ids[i] = e.ID
	}
	return &event.RunDelta{
		SchemaVersion: event.SchemaVersion, ID: event.DeltaID(run.Key(), run.Phase, 1, ids),
		Tenant: "acme", Environment: "prod", ObservedAt: *at(400), Part: 1, Parts: 1, Run: run, Events: events,
	}
}

func argoRun() *event.RunDelta {
	const wf = "etl-nightly-7x2kq"
	run := event.Run{
		Source: event.SourceArgo, Instance: "batch", Namespace: "data", UID: "5b7e0c3e-2a41-4d8e-9f0b-6c1d2e3f4a5b",
		Name: wf, Pipeline: "etl-nightly", Phase: "Failed", Status: event.StatusFailed, StartedAt: at(0), FinishedAt: at(300),
		Message: "child '" + wf + "-2111709534' failed", URL: "https://argo.example.com/workflows/data/" + wf,
		Labels: map[string]string{"workflows.argoproj.io/cron-workflow": "etl-nightly"},
	}
	node := func(id, display, typ, parent, phase string, attempt, start, end int) event.TaskEvent {
		return event.TaskEvent{
			NodeID: wf + "-" + id, Name: wf + "." + display, DisplayName: display, Type: typ, Template: display,
			ParentID: parent, Attempt: attempt, State: phase, Status: argo.StatusOf(phase), StartedAt: at(start), FinishedAt: at(end),
		}
	}
	extract := node("1402196842", "extract", "Retry", "", "Succeeded", 0, 5, 95)
	try0 := node("2853405663", "extract(0)", "Pod", extract.NodeID, "Failed", 0, 5, 35)
	try0.Message, try0.Pod, try0.HostNode = "Error (exit code 1)", wf+"-extract-2853405663", "gke-pool-a-1f2e"
	try0.ResourcesDuration = map[string]int64{"cpu": 12, "memory": 30}
	try1 := node("2920516139", "extract(1)", "Pod", extract.NodeID, "Succeeded", 1, 40, 95)
	try1.Pod, try1.HostNode = wf+"-extract-2920516139", "gke-pool-a-7c9d"
	transform := node("3091524466", "transform", "DAG", "", "Failed", 0, 100, 290)
	load := node("2111709534", "load", "Pod", transform.NodeID, "Failed", 0, 201, 289)
	load.Message, load.Pod = "OOMKilled (exit code 137)", wf+"-load-2111709534"
	skipped := node("774123009", "notify", "Skipped", "", "Skipped", 0, 291, 291)
	return delta(run, []event.TaskEvent{extract, try0, try1, transform, load, skipped})
}

func airflowRun() *event.RunDelta {
	const dag, runID = "daily_sales", "scheduled__2026-03-02T00:00:00+00:00"
	run := event.Run{
		Source: event.SourceAirflow, Instance: "composer", UID: dag + "/" + runID, Name: runID, Pipeline: dag,
		Phase: "failed", Status: event.StatusFailed, StartedAt: at(0), FinishedAt: at(600), RunType: "scheduled",
		LogicalDate: at(-3600), QueuedAt: at(-5), URL: "https://airflow.example.com/dags/" + dag + "/grid",
	}
	task := func(id, state string, try, start, end int, queued float64) event.TaskEvent {
		return event.TaskEvent{
			NodeID: id, Name: id, Type: "Task", Attempt: try, State: state, Status: airflow.StatusOf(state),
			StartedAt: at(start), FinishedAt: at(end),
			Airflow: &event.AirflowTask{
				DagID: dag, DagRunID: runID, TaskID: id, MapIndex: -1, TryNumber: try, MaxTries: 2,
				Operator: "PythonOperator", Pool: "default_pool", Queue: "default", Hostname: "worker-1",
				Executor: "CeleryExecutor", PriorityWeight: 3, QueuedAt: at(start - int(queued)), QueueSeconds: seconds(queued),
			},
		}
	}
	extract := task("extract", "success", 1, 10, 100, 12.5)
	load1 := task("load", "up_for_retry", 1, 110, 200, 3)
	load1.Message = "Task failed with exception"
	load2 := task("load", "failed", 2, 260, 590, 7)
	load2.Message = "Task failed with exception"
	return delta(run, []event.TaskEvent{extract, load1, load2})
}

func TestEmittedOperationsAreTheExportedConstants(t *testing.T) {
	ops := emitted(t)
	want := []string{apm.OpArgoWorkflow, apm.OpArgoNode, apm.OpAirflowDagRun, apm.OpAirflowTask}
	if got := slices.Sorted(maps.Keys(ops)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("pkg/trace sent operations %v; its exported constants are %v", got, want)
	}
	cfg := defaultConfig(t)
	for op, svc := range map[string]string{
		apm.OpArgoWorkflow: cfg.Trace.ServiceArgo, apm.OpArgoNode: cfg.Trace.ServiceArgo,
		apm.OpAirflowDagRun: cfg.Trace.ServiceAirflow, apm.OpAirflowTask: cfg.Trace.ServiceAirflow,
	} {
		if !ops[op].services[svc] || len(ops[op].services) != 1 {
			t.Errorf("%s spans have services %v, want %s", op, slices.Sorted(maps.Keys(ops[op].services)), svc)
		}
	}
	// Both runs failed, each with a failed task: trace.<operation>.errors counts failed runs and
	// tasks only if their spans are error spans.
	for op, o := range ops {
		if o.errors == 0 {
			t.Errorf("no %s span of a failed run or task is an error span", op)
		}
	}
	// The monitors group runs by resource_name: the root span's resource must be the pipeline.
	for op, pipeline := range map[string]string{apm.OpArgoWorkflow: "etl-nightly", apm.OpAirflowDagRun: "daily_sales"} {
		if !ops[op].resources[pipeline] || len(ops[op].resources) != 1 {
			t.Errorf("%s spans have resources %v, want the pipeline %s", op, slices.Sorted(maps.Keys(ops[op].resources)), pipeline)
		}
	}
}
