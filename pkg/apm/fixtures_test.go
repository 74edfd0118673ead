package apm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/event"
)

// The deltas are built by hand from the shapes the Argo Server and Airflow APIs return (node ids
// "<workflow>-<hash>", the root node's id is the workflow name, retry children "<task>(N)",
// map_index -1 for unmapped tasks, a try that ends up_for_retry, upstream_failed tasks that never
// ran keeping try_number 0); they do not go through the mappers, whose output is the event model.

var day0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)

// at returns day0 plus sec seconds.
func at(sec float64) *time.Time {
	t := day0.Add(time.Duration(sec * float64(time.Second)))
	return &t
}

const (
	argoWF      = "etl-nightly-7x2kq"
	argoUID     = "5b7e0c3e-2a41-4d8e-9f0b-6c1d2e3f4a5b"
	argoRunURL  = "https://argo.example.com/workflows/data/" + argoWF
	tenant      = "acme"
	environment = "prod"
)

type argoNode struct {
	id, name, display, typ, template, parent string
	attempt                                  int
	phase                                    string
	start, end                               *time.Time
	message, pod, host                       string
	resources                                map[string]int64
}

// The nodes of the nested Argo workflow, in their final state: a Retry node whose first attempt
// failed, a nested DAG with a failed pod, a skipped and an omitted step.
var (
	nRoot      = argoNode{id: argoWF, name: argoWF, display: argoWF, typ: "DAG", template: "main", phase: "Failed", start: at(0), end: at(300)}
	nExtract   = argoNode{id: argoWF + "-1402196842", name: argoWF + ".extract", display: "extract", typ: "Retry", template: "extract", parent: argoWF, phase: "Succeeded", start: at(5), end: at(95.5)}
	nExtract0  = argoNode{id: argoWF + "-2853405663", name: argoWF + ".extract(0)", display: "extract(0)", typ: "Pod", template: "extract", parent: nExtract.id, phase: "Failed", start: at(5), end: at(35.25), message: "Error (exit code 1)", pod: argoWF + "-extract-2853405663", host: "gke-pool-a-1f2e", resources: map[string]int64{"cpu": 12, "memory": 30}}
	nExtract1  = argoNode{id: argoWF + "-2920516139", name: argoWF + ".extract(1)", display: "extract(1)", typ: "Pod", template: "extract", parent: nExtract.id, attempt: 1, phase: "Succeeded", start: at(40), end: at(95.5), pod: argoWF + "-extract-2920516139", host: "gke-pool-a-7c9d", resources: map[string]int64{"cpu": 40, "memory": 81}}
	nTransform = argoNode{id: argoWF + "-3091524466", name: argoWF + ".transform", display: "transform", typ: "DAG", template: "transform-dag", parent: argoWF, phase: "Failed", start: at(100), end: at(290), message: "child '" + argoWF + "-2111709534' failed"}
	nClean     = argoNode{id: argoWF + "-1188270532", name: argoWF + ".transform.clean", display: "clean", typ: "Pod", template: "clean", parent: nTransform.id, phase: "Succeeded", start: at(101), end: at(200.000001), pod: argoWF + "-clean-1188270532", host: "gke-pool-b-02aa", resources: map[string]int64{"cpu": 180}}
	nLoad      = argoNode{id: argoWF + "-2111709534", name: argoWF + ".transform.load", display: "load", typ: "Pod", template: "load", parent: nTransform.id, phase: "Failed", start: at(201), end: at(289), message: "OOMKilled (exit code 137)", pod: argoWF + "-load-2111709534", host: "gke-pool-b-02aa"}
	nNotify    = argoNode{id: argoWF + "-774123009", name: argoWF + ".notify", display: "notify", typ: "Skipped", template: "notify", parent: argoWF, phase: "Skipped", start: at(291), end: at(291), message: "when 'false == true' evaluated false"}
	nReport    = argoNode{id: argoWF + "-3500185210", name: argoWF + ".report", display: "report", typ: "Pod", template: "report", parent: argoWF, phase: "Omitted", start: at(290), end: at(290), message: "omitted: depends condition not met"}
)

// running returns n as it looked while still running (no end, no message).
func (n argoNode) running() argoNode {
	n.phase, n.end, n.message, n.resources = "Running", nil, "", nil
	return n
}

// argoDelta is one poll's RunDelta of the workflow, in phase with the given end.
func argoDelta(phase string, end *time.Time, nodes ...argoNode) *event.RunDelta {
	run := event.Run{
		Source: event.SourceArgo, Instance: "prod-eu", Namespace: "data", UID: argoUID, Name: argoWF,
		Pipeline: "etl-nightly", Phase: phase, Status: argo.StatusOf(phase), StartedAt: at(0), FinishedAt: end,
		URL: argoRunURL,
		Labels: map[string]string{
			"workflows.argoproj.io/cron-workflow": "etl-nightly",
			"workflows.argoproj.io/completed":     fmt.Sprint(end != nil),
		},
	}
	if phase == "Failed" {
		run.Message = "child '" + nTransform.id + "' failed"
	}
	events := make([]event.TaskEvent, len(nodes))
	for i, n := range nodes {
		events[i] = event.TaskEvent{
			ID: event.TaskEventID(run.Key(), n.id, n.attempt, n.phase, n.start, n.end), NodeID: n.id, Name: n.name,
			DisplayName: n.display, Type: n.typ, Template: n.template, ParentID: n.parent, Attempt: n.attempt,
			State: n.phase, Status: argo.StatusOf(n.phase), StartedAt: n.start, FinishedAt: n.end,
			Message: n.message, Pod: n.pod, HostNode: n.host, ResourcesDuration: n.resources,
		}
	}
	return finish(&event.RunDelta{Run: run, ObservedAt: day0.Add(6 * time.Minute), Events: events})
}

// nestedArgoDelta is the finished workflow, every node in one delta.
func nestedArgoDelta() *event.RunDelta {
	return argoDelta("Failed", at(300), nRoot, nExtract, nExtract0, nExtract1, nTransform, nClean, nLoad, nNotify, nReport)
}

func finish(d *event.RunDelta) *event.RunDelta {
	d.SchemaVersion = event.SchemaVersion
	d.Tenant, d.Environment = tenant, environment
	if d.Part == 0 {
		d.Part, d.Parts = 1, 1
	}
	ids := make([]string, len(d.Events))
	for i, e := range d.Events {
		ids[i] = e.ID
	}
	d.ID = event.DeltaID(d.Run.Key(), d.Run.Phase, d.Part, ids)
	return d
}

// airflowTry is one task-instance try (or a group) of the Airflow DAG run.
type airflowTry struct {
	taskID, typ, parent      string
	mapped                   bool // a mapped instance, with mapIndex
	mapIndex                 int
	try, maxTries            int
	state                    string
	queued, start, end       *time.Time
	queueSeconds             *float64
	hostname, operator, pool string
	message, taskInstanceID  string
	missedTries              []int
	group                    bool // a task group: no task-instance fields
}

func f64(v float64) *float64 { return &v }

const (
	dagID    = "daily_sales"
	dagRunID = "scheduled__2026-03-01T00:00:00+00:00"
)

// The tries of the Airflow DAG run: a task retried once, a task group holding a mapped task (its
// aggregate and three mapped instances) and a task, a failed task, an upstream_failed and a
// skipped one.
var (
	tFetch1 = airflowTry{taskID: "fetch_orders", try: 1, maxTries: 2, state: "up_for_retry", queued: at(11), start: at(13.5), end: at(43.5), queueSeconds: f64(2.5), hostname: "airflow-worker-0", message: "ConnectionError: orders API timed out"}
	tFetch2 = airflowTry{taskID: "fetch_orders", try: 2, maxTries: 2, state: "success", queued: at(345), start: at(346), end: at(380.123456), queueSeconds: f64(1), hostname: "airflow-worker-1"}
	tEnrich = airflowTry{taskID: "enrich", typ: "TaskGroup", state: "success", start: at(381), end: at(398), group: true}
	tScore  = airflowTry{taskID: "enrich.score", typ: "MappedTask", parent: "enrich", try: 1, maxTries: 1, state: "success", start: at(381), end: at(397.5), operator: "_PythonDecoratedOperator", pool: "scoring"}
	tScore0 = airflowTry{taskID: "enrich.score", typ: "MappedTask", parent: "enrich.score", mapped: true, mapIndex: 0, try: 1, maxTries: 1, state: "success", queued: at(381), start: at(383), end: at(390), queueSeconds: f64(2), hostname: "airflow-worker-0", operator: "_PythonDecoratedOperator", pool: "scoring"}
	tScore1 = airflowTry{taskID: "enrich.score", typ: "MappedTask", parent: "enrich.score", mapped: true, mapIndex: 1, try: 1, maxTries: 1, state: "success", queued: at(381), start: at(384), end: at(395), queueSeconds: f64(3), hostname: "airflow-worker-1", operator: "_PythonDecoratedOperator", pool: "scoring"}
	tScore2 = airflowTry{taskID: "enrich.score", typ: "MappedTask", parent: "enrich.score", mapped: true, mapIndex: 2, try: 1, maxTries: 1, state: "success", queued: at(381), start: at(385), end: at(397.5), queueSeconds: f64(4), hostname: "airflow-worker-0", operator: "_PythonDecoratedOperator", pool: "scoring", missedTries: []int{1}, taskInstanceID: "0195a3c4-7d2e-7f41-9c3b-2a1f0e9d8c7b"}
	tMerge  = airflowTry{taskID: "enrich.merge", parent: "enrich", try: 1, maxTries: 1, state: "success", start: at(397.6), end: at(398), hostname: "airflow-worker-1"}
	tLoad   = airflowTry{taskID: "load_warehouse", try: 1, maxTries: 1, state: "failed", start: at(399), end: at(420), hostname: "airflow-worker-0", message: "psycopg2.OperationalError: server closed the connection unexpectedly"}
	tPub    = airflowTry{taskID: "publish", try: 0, maxTries: 1, state: "upstream_failed", start: at(420.5), end: at(420.5)}
	tClean  = airflowTry{taskID: "cleanup", try: 0, maxTries: 0, state: "skipped", start: at(420.5), end: at(420.5)}
)

func airflowDelta(tries ...airflowTry) *event.RunDelta {
	run := event.Run{
		Source: event.SourceAirflow, Instance: "composer-eu", UID: dagID + "/" + dagRunID, Name: dagRunID,
		Pipeline: dagID, Phase: "failed", Status: event.StatusFailed, StartedAt: at(10), FinishedAt: at(421),
		RunType: "scheduled", LogicalDate: at(-3600), URL: "https://composer.example.com/dags/daily_sales/grid?dag_run_id=" + dagRunID,
		Message: "",
	}
	events := make([]event.TaskEvent, len(tries))
	for i, tr := range tries {
		nodeID, mapIndex := tr.taskID, -1
		if tr.mapped {
			nodeID, mapIndex = fmt.Sprintf("%s[%d]", tr.taskID, tr.mapIndex), tr.mapIndex
		}
		typ := tr.typ
		if typ == "" {
			typ = "Task"
		}
		e := event.TaskEvent{
			ID: event.TaskEventID(run.Key(), nodeID, tr.try, tr.state, tr.start, tr.end), NodeID: nodeID,
			Name: tr.taskID, DisplayName: tr.taskID, Type: typ, ParentID: tr.parent, Attempt: tr.try,
			State: tr.state, Status: airflow.StatusOf(tr.state), StartedAt: tr.start, FinishedAt: tr.end, Message: tr.message,
		}
		if !tr.group {
			e.Airflow = &event.AirflowTask{
				DagID: dagID, DagRunID: dagRunID, TaskID: tr.taskID, MapIndex: mapIndex, TryNumber: tr.try, MaxTries: tr.maxTries,
				Operator: firstNonEmpty(tr.operator, "PythonOperator"), Pool: firstNonEmpty(tr.pool, "default_pool"), Queue: "default",
				Hostname: tr.hostname, Executor: "CeleryExecutor", PriorityWeight: 3, QueuedAt: tr.queued,
				QueueSeconds: tr.queueSeconds, TaskInstanceID: tr.taskInstanceID, RunState: "failed", MissedTries: tr.missedTries,
			}
		}
		events[i] = e
	}
	return finish(&event.RunDelta{Run: run, ObservedAt: day0.Add(8 * time.Minute), Events: events})
}

func groupedAirflowDelta() *event.RunDelta {
	return airflowDelta(tFetch1, tFetch2, tEnrich, tScore, tScore0, tScore1, tScore2, tMerge, tLoad, tPub, tClean)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// message wraps d the way Pub/Sub delivers it.
func message(t testing.TB, d *event.RunDelta, id string) event.Message {
	t.Helper()
	m, err := event.MessageOf(d)
	if err != nil {
		t.Fatal(err)
	}
	m.ID, m.PublishTime, m.Subscription = id, d.ObservedAt.Add(time.Second), "projects/farm-test/subscriptions/farm-trace"
	return m
}
