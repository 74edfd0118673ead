// Package sink turns RunDeltas into BigQuery rows — one per task event, in the argo or airflow
// table — and writes them to BigQuery's streaming API or to newline-delimited JSON files that
// `bq load` accepts. The tables' schemas are schemas/argo.json and schemas/airflow.json; the row
// types here match them column for column (a test checks both directions).
package sink

import (
	"encoding/json"
	"fmt"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/farmobs/farm/pkg/event"
)

// Tables FARM writes, named like the sources that feed them.
const (
	TableArgo    = event.SourceArgo
	TableAirflow = event.SourceAirflow
)

// Row is one table row. Save gives its columns for the streaming API (NULL columns left out)
// and its insert id, the event id; encoding/json gives the same columns for a load file.
type Row interface {
	bigquery.ValueSaver
}

// Common holds the columns both tables share: the Pub/Sub delivery, the event's identity and the
// source-neutral statuses the reporting views use.
type Common struct {
	SubscriptionName string          `json:"subscription_name,omitempty"`
	MessageID        string          `json:"message_id,omitempty"`
	PublishTime      *time.Time      `json:"publish_time,omitempty"`
	Attributes       json.RawMessage `json:"attributes,omitempty"`
	EventID          string          `json:"event_id,omitempty"`
	DeltaID          string          `json:"delta_id,omitempty"`
	SchemaVersion    int64           `json:"schema_version"`
	Tenant           string          `json:"tenant,omitempty"`
	Environment      string          `json:"environment,omitempty"`
	Instance         string          `json:"instance,omitempty"`
	ObservedAt       *time.Time      `json:"observed_at,omitempty"`
	Replay           bool            `json:"replay"`
	Pipeline         string          `json:"pipeline,omitempty"`
	RunUID           string          `json:"run_uid,omitempty"`
	RunStatus        string          `json:"run_status,omitempty"`
	Status           string          `json:"status,omitempty"`
	PreviousStatus   string          `json:"previous_status,omitempty"`
}

// ArgoRow is a row of the argo table: one Argo node transition.
type ArgoRow struct {
	Common
	// Columns of the first FARM argo table, with their meaning: they describe the workflow.
	Name              string          `json:"name,omitempty"`
	NormalizedName    string          `json:"normalized_name,omitempty"`
	Namespace         string          `json:"namespace,omitempty"`
	Kind              string          `json:"kind,omitempty"`
	URL               string          `json:"url,omitempty"`
	Phase             string          `json:"phase,omitempty"`
	WorkflowTemplate  string          `json:"workflow_template,omitempty"`
	Labels            json.RawMessage `json:"labels,omitempty"`
	Annotations       json.RawMessage `json:"annotations,omitempty"`
	CreationTimestamp *time.Time      `json:"creation_timestamp,omitempty"`
	Parameters        json.RawMessage `json:"parameters,omitempty"`
	StartedAt         *time.Time      `json:"started_at,omitempty"`
	FinishedAt        *time.Time      `json:"finished_at,omitempty"`

	PreviousPhase string `json:"previous_phase,omitempty"`
	RunMessage    string `json:"run_message,omitempty"`

	NodeID                string          `json:"node_id,omitempty"`
	NodeName              string          `json:"node_name,omitempty"`
	NodeDisplayName       string          `json:"node_display_name,omitempty"`
	NodeType              string          `json:"node_type,omitempty"`
	NodeTemplate          string          `json:"node_template,omitempty"`
	NodeParentID          string          `json:"node_parent_id,omitempty"`
	NodeAttempt           int64           `json:"node_attempt"`
	NodePhase             string          `json:"node_phase,omitempty"`
	NodePreviousPhase     string          `json:"node_previous_phase,omitempty"`
	NodeStartedAt         *time.Time      `json:"node_started_at,omitempty"`
	NodeFinishedAt        *time.Time      `json:"node_finished_at,omitempty"`
	NodeDurationSeconds   *float64        `json:"node_duration_seconds,omitempty"`
	NodeMessage           string          `json:"node_message,omitempty"`
	NodePod               string          `json:"node_pod,omitempty"`
	NodeHostNode          string          `json:"node_host_node,omitempty"`
	NodeResourcesDuration json.RawMessage `json:"node_resources_duration,omitempty"`
}

// AirflowRow is a row of the airflow table: one task-instance try transition.
type AirflowRow struct {
	Common
	// Columns of the first FARM airflow table, with their meaning: they describe the DAG run.
	DagID       string     `json:"dag_id,omitempty"`
	DagRunID    string     `json:"dag_run_id,omitempty"`
	LogicalDate *time.Time `json:"logical_date,omitempty"`
	StartDate   *time.Time `json:"start_date,omitempty"`
	EndDate     *time.Time `json:"end_date,omitempty"`
	RunType     string     `json:"run_type,omitempty"`
	State       string     `json:"state,omitempty"`

	DataIntervalStart      *time.Time `json:"data_interval_start,omitempty"`
	DataIntervalEnd        *time.Time `json:"data_interval_end,omitempty"`
	LastSchedulingDecision *time.Time `json:"last_scheduling_decision,omitempty"`
	ExternalTrigger        *bool      `json:"external_trigger,omitempty"`
	Note                   string     `json:"note,omitempty"`

	PreviousState string     `json:"previous_state,omitempty"`
	RunQueuedAt   *time.Time `json:"run_queued_at,omitempty"`
	RunAfter      *time.Time `json:"run_after,omitempty"`
	URL           string     `json:"url,omitempty"`

	TaskID              string     `json:"task_id,omitempty"`
	TaskDisplayName     string     `json:"task_display_name,omitempty"`
	TaskType            string     `json:"task_type,omitempty"`
	ParentID            string     `json:"parent_id,omitempty"`
	MapIndex            *int64     `json:"map_index,omitempty"`
	TryNumber           int64      `json:"try_number"`
	MaxTries            *int64     `json:"max_tries,omitempty"`
	TaskState           string     `json:"task_state,omitempty"`
	TaskPreviousState   string     `json:"task_previous_state,omitempty"`
	TaskQueuedAt        *time.Time `json:"task_queued_at,omitempty"`
	TaskScheduledAt     *time.Time `json:"task_scheduled_at,omitempty"`
	TaskStartDate       *time.Time `json:"task_start_date,omitempty"`
	TaskEndDate         *time.Time `json:"task_end_date,omitempty"`
	TaskDurationSeconds *float64   `json:"task_duration_seconds,omitempty"`
	QueueSeconds        *float64   `json:"queue_seconds,omitempty"`
	Operator            string     `json:"operator,omitempty"`
	Pool                string     `json:"pool,omitempty"`
	Queue               string     `json:"queue,omitempty"`
	Hostname            string     `json:"hostname,omitempty"`
	Executor            string     `json:"executor,omitempty"`
	PriorityWeight      *int64     `json:"priority_weight,omitempty"`
	TaskInstanceID      string     `json:"task_instance_id,omitempty"`
	TaskMessage         string     `json:"task_message,omitempty"`
	MissedTries         []int64    `json:"missed_tries,omitempty"`
}

// Save implements bigquery.ValueSaver.
func (r *ArgoRow) Save() (map[string]bigquery.Value, string, error) {
	return saveColumns(r, r.EventID)
}

// Save implements bigquery.ValueSaver.
func (r *AirflowRow) Save() (map[string]bigquery.Value, string, error) {
	return saveColumns(r, r.EventID)
}

// Rows turns a RunDelta delivered in msg into the rows of its source's table, one per event. The
// only error, a source with no table, wraps event.ErrInvalid: it is permanent.
func Rows(msg event.Message, d *event.RunDelta) (table string, rows []Row, err error) {
	c := newCommon(msg, d)
	switch d.Run.Source {
	case event.SourceArgo:
		rows = make([]Row, 0, len(d.Events))
		run := newArgoRun(&d.Run)
		for i := range d.Events {
			rows = append(rows, argoRow(c, run, &d.Events[i]))
		}
		return TableArgo, rows, nil
	case event.SourceAirflow:
		rows = make([]Row, 0, len(d.Events))
		for i := range d.Events {
			rows = append(rows, airflowRow(c, &d.Run, &d.Events[i]))
		}
		return TableAirflow, rows, nil
	}
	return "", nil, fmt.Errorf("%w: no table for run.source %q", event.ErrInvalid, d.Run.Source)
}

func newCommon(msg event.Message, d *event.RunDelta) Common {
	return Common{
		SubscriptionName: msg.Subscription,
		MessageID:        msg.ID,
		PublishTime:      timestamp(&msg.PublishTime),
		Attributes:       jsonObject(msg.Attributes),
		DeltaID:          d.ID,
		SchemaVersion:    int64(d.SchemaVersion),
		Tenant:           d.Tenant,
		Environment:      d.Environment,
		Instance:         d.Run.Instance,
		ObservedAt:       timestamp(&d.ObservedAt),
		Replay:           d.Replay,
		Pipeline:         d.Run.Pipeline,
		RunUID:           d.Run.UID,
		RunStatus:        string(d.Run.Status),
	}
}

// withEvent returns c completed with the fields of one event.
func (c Common) withEvent(e *event.TaskEvent) Common {
	c.EventID = e.ID
	c.Status = string(e.Status)
	c.PreviousStatus = string(e.PrevStatus)
	return c
}

// argoRun holds the workflow columns, computed once per delta.
type argoRun struct {
	run                             *event.Run
	labels, annotations, parameters json.RawMessage
}

func newArgoRun(r *event.Run) argoRun {
	return argoRun{run: r, labels: jsonObject(r.Labels), annotations: jsonObject(r.Annotations), parameters: jsonParameters(r.Parameters)}
}

// argoWorkflowTemplateLabel names the workflow template a workflow was submitted from.
const argoWorkflowTemplateLabel = "workflows.argoproj.io/workflow-template"

func argoRow(c Common, w argoRun, e *event.TaskEvent) *ArgoRow {
	r := w.run
	return &ArgoRow{
		Common:                c.withEvent(e),
		Name:                  r.Name,
		NormalizedName:        r.Pipeline,
		Namespace:             r.Namespace,
		Kind:                  "Workflow",
		URL:                   r.URL,
		Phase:                 r.Phase,
		WorkflowTemplate:      r.Labels[argoWorkflowTemplateLabel],
		Labels:                w.labels,
		Annotations:           w.annotations,
		CreationTimestamp:     timestamp(r.CreatedAt),
		Parameters:            w.parameters,
		StartedAt:             timestamp(r.StartedAt),
		FinishedAt:            timestamp(r.FinishedAt),
		PreviousPhase:         r.PrevPhase,
		RunMessage:            r.Message,
		NodeID:                e.NodeID,
		NodeName:              e.Name,
		NodeDisplayName:       e.DisplayName,
		NodeType:              e.Type,
		NodeTemplate:          e.Template,
		NodeParentID:          e.ParentID,
		NodeAttempt:           int64(e.Attempt),
		NodePhase:             e.State,
		NodePreviousPhase:     e.PrevState,
		NodeStartedAt:         timestamp(e.StartedAt),
		NodeFinishedAt:        timestamp(e.FinishedAt),
		NodeDurationSeconds:   seconds(e.StartedAt, e.FinishedAt),
		NodeMessage:           e.Message,
		NodePod:               e.Pod,
		NodeHostNode:          e.HostNode,
		NodeResourcesDuration: jsonObject(e.ResourcesDuration),
	}
}

func airflowRow(c Common, r *event.Run, e *event.TaskEvent) *AirflowRow {
	row := &AirflowRow{
		Common:                 c.withEvent(e),
		DagID:                  r.Pipeline,
		DagRunID:               r.Name,
		LogicalDate:            timestamp(r.LogicalDate),
		StartDate:              timestamp(r.StartedAt),
		EndDate:                timestamp(r.FinishedAt),
		RunType:                r.RunType,
		State:                  r.Phase,
		DataIntervalStart:      timestamp(r.DataIntervalStart),
		DataIntervalEnd:        timestamp(r.DataIntervalEnd),
		LastSchedulingDecision: timestamp(r.LastSchedulingDecision),
		ExternalTrigger:        r.ExternalTrigger,
		Note:                   r.Message,
		PreviousState:          r.PrevPhase,
		RunQueuedAt:            timestamp(r.QueuedAt),
		RunAfter:               timestamp(r.RunAfter),
		URL:                    r.URL,
		TaskID:                 e.NodeID,
		TaskDisplayName:        e.DisplayName,
		TaskType:               e.Type,
		ParentID:               e.ParentID,
		TryNumber:              int64(e.Attempt),
		TaskState:              e.State,
		TaskPreviousState:      e.PrevState,
		TaskStartDate:          timestamp(e.StartedAt),
		TaskEndDate:            timestamp(e.FinishedAt),
		TaskDurationSeconds:    seconds(e.StartedAt, e.FinishedAt),
		TaskMessage:            e.Message,
	}
	if a := e.Airflow; a != nil {
		// The task-instance fields are authoritative; the event's generic ones are fallbacks for
		// events that carry no Airflow block (task groups).
		row.DagID = firstNonEmpty(a.DagID, row.DagID)
		row.DagRunID = firstNonEmpty(a.DagRunID, row.DagRunID)
		row.TaskID = firstNonEmpty(a.TaskID, row.TaskID)
		row.MapIndex = ptr(int64(a.MapIndex))
		row.TryNumber = int64(a.TryNumber)
		row.MaxTries = ptr(int64(a.MaxTries))
		row.TaskQueuedAt = timestamp(a.QueuedAt)
		row.TaskScheduledAt = timestamp(a.ScheduledAt)
		row.QueueSeconds = a.QueueSeconds
		row.Operator = a.Operator
		row.Pool = a.Pool
		row.Queue = a.Queue
		row.Hostname = a.Hostname
		row.Executor = a.Executor
		if a.PriorityWeight != 0 {
			row.PriorityWeight = ptr(int64(a.PriorityWeight))
		}
		row.TaskInstanceID = a.TaskInstanceID
		for _, t := range a.MissedTries {
			row.MissedTries = append(row.MissedTries, int64(t))
		}
	}
	return row
}

// timestamp returns t in UTC at BigQuery's microsecond precision, or nil when unset.
func timestamp(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// seconds returns finished-started in seconds at microsecond precision, or nil if either is unset.
func seconds(started, finished *time.Time) *float64 {
	s, f := timestamp(started), timestamp(finished)
	if s == nil || f == nil {
		return nil
	}
	return ptr(f.Sub(*s).Seconds())
}

// jsonObject encodes a map of strings or integers (which always encode) for a JSON column; an
// empty map is NULL.
func jsonObject[V string | int64](m map[string]V) json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	b, _ := json.Marshal(m)
	return b
}

// jsonParameters encodes a run's parameters as a JSON column; none is NULL. Names and values
// are strings: the encoding cannot fail.
func jsonParameters(ps []event.Parameter) json.RawMessage {
	if len(ps) == 0 {
		return nil
	}
	b, _ := json.Marshal(ps)
	return b
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ptr[T any](v T) *T { return &v }
