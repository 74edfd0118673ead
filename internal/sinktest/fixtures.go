// Package sinktest builds RunDeltas and Pub/Sub deliveries for the sink's tests and the
// BigQuerySink function's. The runs are written by hand from the shapes the Argo Server and
// Airflow APIs return (node ids "<workflow>-<hash>", retry children "<task>(N)", map_index -1 for
// unmapped tasks, a try ending up_for_retry); they do not go through the mappers, whose output is
// the event model, the contract.
package sinktest

import (
	"fmt"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/event"
)

// Subscription is the push subscription the test deliveries come from.
const Subscription = "projects/farm-test/subscriptions/farm-bigquery-sink"

// Day0 is the start of the test runs.
var Day0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)

// At returns Day0 plus sec seconds.
func At(sec float64) *time.Time {
	t := Day0.Add(time.Duration(sec * float64(time.Second)))
	return &t
}

// ArgoNode is one node transition of a test workflow.
type ArgoNode struct {
	ID, Name, Display, Type, Template, Parent string
	Attempt                                   int
	Phase, Prev                               string
	Start, End                                *time.Time
	Message, Pod, Host                        string
	Resources                                 map[string]int64
}

// ArgoRun is a test workflow.
type ArgoRun struct {
	Name, UID, Pipeline, Phase, PrevPhase string
	Start, End, Created                   *time.Time
	Labels, Annotations                   map[string]string
	Parameters                            []event.Parameter
}

// ArgoDelta is the RunDelta of a workflow of instance prod-eu, namespace data, observed at
// observed, with one event per node.
func ArgoDelta(r ArgoRun, observed time.Time, nodes ...ArgoNode) *event.RunDelta {
	run := event.Run{
		Source:      event.SourceArgo,
		Instance:    "prod-eu",
		Namespace:   "data",
		UID:         r.UID,
		Name:        r.Name,
		Pipeline:    r.Pipeline,
		Phase:       r.Phase,
		PrevPhase:   r.PrevPhase,
		Status:      argo.StatusOf(r.Phase),
		StartedAt:   r.Start,
		FinishedAt:  r.End,
		URL:         "https://argo.example.com/workflows/data/" + r.Name,
		Labels:      r.Labels,
		CreatedAt:   r.Created,
		Annotations: r.Annotations,
		Parameters:  r.Parameters,
	}
	events := make([]event.TaskEvent, 0, len(nodes))
	for _, n := range nodes {
		e := event.TaskEvent{
			ID:                event.TaskEventID(run.Key(), n.ID, n.Attempt, n.Phase, n.Start, n.End),
			NodeID:            n.ID,
			Name:              n.Name,
			DisplayName:       n.Display,
			Type:              n.Type,
			Template:          n.Template,
			ParentID:          n.Parent,
			Attempt:           n.Attempt,
			State:             n.Phase,
			PrevState:         n.Prev,
			Status:            argo.StatusOf(n.Phase),
			StartedAt:         n.Start,
			FinishedAt:        n.End,
			Message:           n.Message,
			Pod:               n.Pod,
			HostNode:          n.Host,
			ResourcesDuration: n.Resources,
		}
		if n.Prev != "" {
			e.PrevStatus = argo.StatusOf(n.Prev)
		}
		events = append(events, e)
	}
	return Finish(&event.RunDelta{Run: run, ObservedAt: observed, Events: events})
}

// Finish fills in what every delta has: schema version, tenant acme, environment prod, one part,
// and the deterministic delta id.
func Finish(d *event.RunDelta) *event.RunDelta {
	d.SchemaVersion = event.SchemaVersion
	d.Tenant = "acme"
	d.Environment = "prod"
	d.Part, d.Parts = 1, 1
	ids := make([]string, len(d.Events))
	for i, e := range d.Events {
		ids[i] = e.ID
	}
	d.ID = event.DeltaID(d.Run.Key(), d.Run.Phase, d.Part, ids)
	return d
}

// NestedArgoDelta is a workflow of cron workflow etl-nightly with a retried step (first try
// failed), a nested DAG holding a pod, and a skipped step; every node finished. Its events are
// root, extract (Retry), extract(0), extract(1), transform (DAG), clean, notify.
func NestedArgoDelta() *event.RunDelta {
	const wf = "etl-nightly-7x2kq"
	root := ArgoNode{ID: wf, Name: wf, Display: wf, Type: "DAG", Template: "main", Phase: "Succeeded", Prev: "Running", Start: At(0), End: At(300)}
	extract := ArgoNode{ID: wf + "-1402196842", Name: wf + ".extract", Display: "extract", Type: "Retry", Template: "extract", Parent: wf,
		Phase: "Succeeded", Prev: "Running", Start: At(5), End: At(95)}
	try0 := ArgoNode{ID: wf + "-2853405663", Name: wf + ".extract(0)", Display: "extract(0)", Type: "Pod", Template: "extract", Parent: extract.ID,
		Attempt: 0, Phase: "Failed", Prev: "Running", Start: At(5), End: At(35.25), Message: "Error (exit code 1)",
		Pod: wf + "-extract-2853405663", Host: "gke-pool-a-1f2e", Resources: map[string]int64{"cpu": 12, "memory": 30}}
	try1 := ArgoNode{ID: wf + "-2920516139", Name: wf + ".extract(1)", Display: "extract(1)", Type: "Pod", Template: "extract", Parent: extract.ID,
		Attempt: 1, Phase: "Succeeded", Prev: "Pending", Start: At(40), End: At(95.5),
		Pod: wf + "-extract-2920516139", Host: "gke-pool-a-7c9d", Resources: map[string]int64{"cpu": 40, "memory": 81}}
	transform := ArgoNode{ID: wf + "-3091524466", Name: wf + ".transform", Display: "transform", Type: "DAG", Template: "transform-dag", Parent: wf,
		Phase: "Succeeded", Prev: "Running", Start: At(100), End: At(290)}
	clean := ArgoNode{ID: wf + "-1188270532", Name: wf + ".transform.clean", Display: "clean", Type: "Pod", Template: "clean", Parent: transform.ID,
		Phase: "Succeeded", Start: At(101), End: At(288.000001),
		Pod: wf + "-clean-1188270532", Host: "gke-pool-b-02aa", Resources: map[string]int64{"cpu": 180}}
	notify := ArgoNode{ID: wf + "-774123009", Name: wf + ".notify", Display: "notify", Type: "Skipped", Template: "notify", Parent: wf,
		Phase: "Skipped", Start: At(291), End: At(291), Message: "when 'false == true' evaluated false"}
	return ArgoDelta(ArgoRun{
		Name: wf, UID: "5b7e0c3e-2a41-4d8e-9f0b-6c1d2e3f4a5b", Pipeline: "etl-nightly", Phase: "Succeeded", PrevPhase: "Running",
		Start: At(0), End: At(300), Created: At(-2),
		Labels: map[string]string{
			"workflows.argoproj.io/cron-workflow":     "etl-nightly",
			"workflows.argoproj.io/workflow-template": "etl",
			"workflows.argoproj.io/completed":         "true",
		},
		Annotations: map[string]string{"workflows.argoproj.io/scheduled-time": "2026-03-02T01:00:00Z"},
		Parameters:  []event.Parameter{{Name: "date", Value: &nightlyDate}, {Name: "dry-run"}},
	}, Day0.Add(6*time.Minute), root, extract, try0, try1, transform, clean, notify)
}

var nightlyDate = "2026-03-01"

// AirflowTry is one task-instance try transition of a test DAG run.
type AirflowTry struct {
	TaskID, Type, Parent    string
	MapIndex                int
	Try, MaxTries           int
	State, Prev             string
	Queued, Start, End      *time.Time
	QueueSeconds            *float64
	Operator, Pool, Queue   string
	Hostname, Executor      string
	Priority                int
	MissedTries             []int
	TaskInstanceID, Message string
}

// AirflowRun is a test DAG run.
type AirflowRun struct {
	DagID, RunID, RunType, State, PrevState string
	Logical, Start, End, Queued, RunAfter   *time.Time
	IntervalStart, IntervalEnd, Decision    *time.Time
	ExternalTrigger                         *bool
	Note                                    string
}

// AirflowDelta is the RunDelta of a DAG run of instance composer-eu, observed at observed, with
// one event per try. Task groups (Type "TaskGroup") carry no task-instance block.
func AirflowDelta(r AirflowRun, observed time.Time, tries ...AirflowTry) *event.RunDelta {
	run := event.Run{
		Source:      event.SourceAirflow,
		Instance:    "composer-eu",
		UID:         r.DagID + "/" + r.RunID,
		Name:        r.RunID,
		Pipeline:    r.DagID,
		Phase:       r.State,
		PrevPhase:   r.PrevState,
		Status:      airflow.StatusOf(r.State),
		StartedAt:   r.Start,
		FinishedAt:  r.End,
		RunType:     r.RunType,
		LogicalDate: r.Logical,
		QueuedAt:    r.Queued,
		RunAfter:    r.RunAfter,
		Message:     r.Note,

		DataIntervalStart:      r.IntervalStart,
		DataIntervalEnd:        r.IntervalEnd,
		LastSchedulingDecision: r.Decision,
		ExternalTrigger:        r.ExternalTrigger,
	}
	events := make([]event.TaskEvent, 0, len(tries))
	for _, tr := range tries {
		nodeID := tr.TaskID
		if tr.MapIndex >= 0 {
			nodeID = fmt.Sprintf("%s[%d]", tr.TaskID, tr.MapIndex)
		}
		e := event.TaskEvent{
			ID:          event.TaskEventID(run.Key(), nodeID, tr.Try, tr.State, tr.Start, tr.End),
			NodeID:      nodeID,
			Name:        tr.TaskID,
			DisplayName: tr.TaskID,
			Type:        tr.Type,
			ParentID:    tr.Parent,
			Attempt:     tr.Try,
			State:       tr.State,
			PrevState:   tr.Prev,
			Status:      airflow.StatusOf(tr.State),
			StartedAt:   tr.Start,
			FinishedAt:  tr.End,
			Message:     tr.Message,
		}
		if tr.Prev != "" {
			e.PrevStatus = airflow.StatusOf(tr.Prev)
		}
		if tr.Type != "TaskGroup" {
			e.Airflow = &event.AirflowTask{
				DagID: r.DagID, DagRunID: r.RunID, TaskID: tr.TaskID, MapIndex: tr.MapIndex,
				TryNumber: tr.Try, MaxTries: tr.MaxTries, Operator: tr.Operator, Pool: tr.Pool, Queue: tr.Queue,
				Hostname: tr.Hostname, Executor: tr.Executor, PriorityWeight: tr.Priority, QueuedAt: tr.Queued,
				QueueSeconds: tr.QueueSeconds, TaskInstanceID: tr.TaskInstanceID, RunState: r.State, MissedTries: tr.MissedTries,
			}
		}
		events = append(events, e)
	}
	return Finish(&event.RunDelta{Run: run, ObservedAt: observed, Events: events})
}

// F64 returns a pointer to v.
func F64(v float64) *float64 { return &v }

var scheduledRun = false

// RetriedMappedAirflowDelta is a DAG run of daily_sales with a task that failed its first try
// (up_for_retry after 30 s) and succeeded its second (34.123456 s), a task mapped over three
// inputs (7, 11 and 12.5 s, pool scoring), and their task group (17 s). Events in that order:
// fetch_orders try 1, try 2, enrich, enrich.score[0], [1], [2].
func RetriedMappedAirflowDelta() *event.RunDelta {
	base := AirflowTry{MapIndex: -1, MaxTries: 2, Type: "Task", Pool: "default_pool", Queue: "default",
		Executor: "CeleryExecutor", Operator: "PythonOperator"}
	try := func(mod func(*AirflowTry)) AirflowTry {
		t := base
		mod(&t)
		return t
	}
	return AirflowDelta(AirflowRun{
		DagID: "daily_sales", RunID: "scheduled__2026-03-01T00:00:00+00:00", RunType: "scheduled",
		State: "success", PrevState: "running", Logical: At(-3600), Start: At(10), End: At(400),
		IntervalStart: At(-3600), IntervalEnd: At(82800), Decision: At(400.5), ExternalTrigger: &scheduledRun,
		Note: "rerun after the orders API outage",
	}, Day0.Add(7*time.Minute),
		try(func(t *AirflowTry) {
			t.TaskID, t.Try, t.State, t.Prev = "fetch_orders", 1, "up_for_retry", "running"
			t.Queued, t.Start, t.End, t.QueueSeconds = At(11), At(13.5), At(43.5), F64(2.5)
			t.Hostname, t.Priority, t.Message = "airflow-worker-0", 3, "ConnectionError: orders API timed out"
		}),
		try(func(t *AirflowTry) {
			t.TaskID, t.Try, t.State, t.Prev = "fetch_orders", 2, "success", "running"
			t.Queued, t.Start, t.End, t.QueueSeconds = At(345), At(346), At(380.123456), F64(1)
			t.Hostname, t.Priority = "airflow-worker-1", 3
		}),
		try(func(t *AirflowTry) {
			t.TaskID, t.Type, t.State, t.Prev, t.Try, t.MaxTries = "enrich", "TaskGroup", "success", "running", 0, 0
			t.Start, t.End = At(381), At(398)
		}),
		try(func(t *AirflowTry) {
			t.TaskID, t.Type, t.Parent, t.MapIndex, t.Try, t.State = "enrich.score", "MappedTask", "enrich", 0, 1, "success"
			t.Queued, t.Start, t.End, t.QueueSeconds = At(381), At(383), At(390), F64(2)
			t.Hostname, t.Operator, t.Pool = "airflow-worker-0", "_PythonDecoratedOperator", "scoring"
		}),
		try(func(t *AirflowTry) {
			t.TaskID, t.Type, t.Parent, t.MapIndex, t.Try, t.State, t.Prev = "enrich.score", "MappedTask", "enrich", 1, 1, "success", "queued"
			t.Queued, t.Start, t.End, t.QueueSeconds = At(381), At(384), At(395), F64(3)
			t.Hostname, t.Operator, t.Pool = "airflow-worker-1", "_PythonDecoratedOperator", "scoring"
		}),
		try(func(t *AirflowTry) {
			t.TaskID, t.Type, t.Parent, t.MapIndex, t.Try, t.State, t.Prev = "enrich.score", "MappedTask", "enrich", 2, 1, "success", "running"
			t.Queued, t.Start, t.End, t.QueueSeconds = At(381), At(385), At(397.5), F64(4)
			t.Hostname, t.Operator, t.Pool, t.MissedTries = "airflow-worker-0", "_PythonDecoratedOperator", "scoring", []int{1}
			t.TaskInstanceID = "0195a3c4-7d2e-7f41-9c3b-2a1f0e9d8c7b"
		}),
	)
}

// Message wraps a delta the way a poll publishes it and Pub/Sub delivers it from Subscription: a
// batch of one.
func Message(t testing.TB, d *event.RunDelta, id string, published time.Time) event.Message {
	t.Helper()
	return Batch(t, []*event.RunDelta{d}, id, published)
}

// Batch wraps deltas of one source in one message, as a poll packs them, delivered from
// Subscription.
func Batch(t testing.TB, ds []*event.RunDelta, id string, published time.Time) event.Message {
	t.Helper()
	msgs, _, err := event.Pack(ds, event.BatchLimits{MaxDeltas: len(ds), MaxBytes: 1 << 30, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d deltas packed into %d messages, want one (one source)", len(ds), len(msgs))
	}
	m := msgs[0]
	m.ID, m.PublishTime, m.Subscription = id, published, Subscription
	return m
}

// MessageV1 wraps a delta as a version-1 message (one delta, the run as ordering key), as
// releases before batches published it and consumers still read it.
func MessageV1(t testing.TB, d *event.RunDelta, id string, published time.Time) event.Message {
	t.Helper()
	v1 := *d
	v1.SchemaVersion = event.SchemaVersion1
	data, err := event.Encode(&v1)
	if err != nil {
		t.Fatal(err)
	}
	return event.Message{
		ID: id, PublishTime: published, Attributes: v1.Attributes(), Data: data,
		OrderingKey: v1.Run.Key(), Subscription: Subscription,
	}
}

// Envelope is the CloudEvent body of a push delivery of m.
func Envelope(t testing.TB, m event.Message) []byte {
	t.Helper()
	b, err := event.EnvelopeJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
