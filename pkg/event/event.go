// Package event is FARM's message contract: the RunDelta a poll makes of every run that changed,
// published several to a message (Batch, schema version 2; Pack composes them, DecodeDeltas reads
// both versions), the task events inside it, and the deterministic ids that make replays
// recognisable.
//
// Every consumer (trace, BigQuery sink) depends on this package and nothing else from the poll
// side, so a change here is a change of the wire format, and schemas/rundelta.schema.json changes
// in the same commit. A breaking change (a field removed, renamed, retyped or given another
// meaning) bumps SchemaVersion; an optional field added does not: Decode ignores fields it does
// not know, so pollers and consumers can be deployed in either order.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the version of the messages this code writes: a Batch of RunDeltas. It also
// reads SchemaVersion1, one RunDelta per message, so that messages in flight during an upgrade
// are still processed.
const (
	SchemaVersion  = 2
	SchemaVersion1 = 1
)

// Sources FARM knows.
const (
	SourceArgo    = "argo"
	SourceAirflow = "airflow"
)

// Pub/Sub attribute keys set on every RunDelta message, so subscriptions can filter without
// decoding the body.
const (
	AttrSource        = "source"
	AttrSchemaVersion = "schema_version"
	AttrTenant        = "tenant"
	AttrEnvironment   = "environment"
	AttrInstance      = "instance"
	AttrDeltaID       = "delta_id" // version 1: the delta's id
	AttrBatchID       = "batch_id" // version 2: the batch's id
	AttrDeltas        = "deltas"   // version 2: how many deltas the batch carries
)

// RunDelta is one run's delta, inside a Batch (or, in version 1, a message of its own): a run's current state and the task transitions seen since the
// previous poll (or, on replay, every transition still visible).
type RunDelta struct {
	SchemaVersion int    `json:"schema_version"`
	ID            string `json:"id"` // deterministic: see DeltaID
	Tenant        string `json:"tenant"`
	Environment   string `json:"environment"`
	// ObservedAt is when the poll that produced this delta started.
	ObservedAt time.Time `json:"observed_at"`
	// Replay is true when the delta was re-published by a backfill with replay; its event ids are
	// the same as the first time.
	Replay bool `json:"replay,omitempty"`
	// Part and Parts number the messages when one run's events were split to respect Pub/Sub
	// message limits (1-based; Parts is 1 for an unsplit delta).
	Part   int         `json:"part"`
	Parts  int         `json:"parts"`
	Run    Run         `json:"run"`
	Events []TaskEvent `json:"events"`
}

// Run identifies a workflow run (Argo Workflow, Airflow DAG run) and its current state.
type Run struct {
	Source    string `json:"source"`   // SourceArgo or SourceAirflow
	Instance  string `json:"instance"` // configured name of the orchestrator instance
	Namespace string `json:"namespace,omitempty"`
	UID       string `json:"uid"`  // Argo metadata.uid; Airflow "<dag_id>/<dag_run_id>"
	Name      string `json:"name"` // Argo workflow name; Airflow dag_run_id
	// Pipeline groups runs of the same workflow: Argo cron workflow, else workflow template, else
	// generateName without its suffix, else name; Airflow dag_id.
	Pipeline   string     `json:"pipeline"`
	Phase      string     `json:"phase"` // the orchestrator's own word
	PrevPhase  string     `json:"previous_phase,omitempty"`
	Status     Status     `json:"status"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Message    string     `json:"message,omitempty"`
	// URL links to the run in the orchestrator's UI when its base URL is configured.
	URL    string            `json:"url,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`

	// Argo only.
	CreatedAt   *time.Time        `json:"created_at,omitempty"`  // metadata.creationTimestamp
	Annotations map[string]string `json:"annotations,omitempty"` // see argo.Mapper for what is left out
	Parameters  []Parameter       `json:"parameters,omitempty"`  // spec.arguments.parameters

	// Airflow only.
	RunType                string     `json:"run_type,omitempty"`
	LogicalDate            *time.Time `json:"logical_date,omitempty"`
	QueuedAt               *time.Time `json:"queued_at,omitempty"`
	RunAfter               *time.Time `json:"run_after,omitempty"`
	DataIntervalStart      *time.Time `json:"data_interval_start,omitempty"`
	DataIntervalEnd        *time.Time `json:"data_interval_end,omitempty"`
	LastSchedulingDecision *time.Time `json:"last_scheduling_decision,omitempty"`
	// ExternalTrigger is Airflow 2's flag; Airflow 3 removed it (run_type and triggered_by say it).
	ExternalTrigger *bool `json:"external_trigger,omitempty"`
}

// Parameter is one argument a run was submitted with (Argo spec.arguments.parameters). Value is
// absent when the parameter has none there (declared bare, or valueFrom). A run of a workflow
// template lists only the arguments given at submission, not the template's defaults.
type Parameter struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

// Key is the run's identity, stable across polls and machines: the state store's document key,
// and what chooses the run's Pub/Sub ordering key (OrderingKey).
func (r Run) Key() string {
	return r.Source + "/" + r.Instance + "/" + r.Namespace + "/" + r.UID
}

// TaskEvent is one observed state transition of one task (Argo node, Airflow task instance try).
type TaskEvent struct {
	ID          string `json:"id"`      // deterministic: see TaskEventID
	NodeID      string `json:"node_id"` // Argo node id; Airflow task_id or task_id[map_index]
	Name        string `json:"name"`
	DisplayName string `json:"display_name,omitempty"`
	Type        string `json:"type"` // Argo node type (Pod, DAG, Retry…); Airflow "Task", "TaskGroup", "MappedTask"
	Template    string `json:"template,omitempty"`
	// ParentID is the NodeID of the enclosing group (DAG, Steps, StepGroup, Retry, task group,
	// mapped task); empty when the parent is the run itself.
	ParentID   string     `json:"parent_id,omitempty"`
	Attempt    int        `json:"attempt"` // Argo: index of a Retry child; Airflow: try_number
	State      string     `json:"state"`   // the orchestrator's own word
	PrevState  string     `json:"previous_state,omitempty"`
	Status     Status     `json:"status"`
	PrevStatus Status     `json:"previous_status,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// AttemptStartedAt is set on the events of an attempt the poll engine knows was rescheduled
	// (an Airflow sensor in reschedule mode runs one try as several pokes): the earliest start
	// it observed for the attempt. Airflow 2.0 to 3.2 overwrite start_date with each poke's
	// start, so it is then earlier than StartedAt; on servers that keep the first start the two
	// are equal. Replays read no run state and leave it out: it is not part of the event id.
	AttemptStartedAt *time.Time `json:"attempt_started_at,omitempty"`
	Message          string     `json:"message,omitempty"`
	Pod              string     `json:"pod,omitempty"`
	HostNode         string     `json:"host_node,omitempty"`
	// ResourcesDuration is Argo's resourcesDuration (seconds per resource, e.g. cpu, memory).
	ResourcesDuration map[string]int64 `json:"resources_duration,omitempty"`
	Airflow           *AirflowTask     `json:"airflow,omitempty"`
}

// AirflowTask carries the task-instance fields that only Airflow has.
type AirflowTask struct {
	DagID          string     `json:"dag_id"`
	DagRunID       string     `json:"dag_run_id"`
	TaskID         string     `json:"task_id"`
	MapIndex       int        `json:"map_index"` // -1 when not mapped
	TryNumber      int        `json:"try_number"`
	MaxTries       int        `json:"max_tries"`
	Operator       string     `json:"operator,omitempty"`
	Pool           string     `json:"pool,omitempty"`
	Queue          string     `json:"queue,omitempty"`
	Hostname       string     `json:"hostname,omitempty"`
	Executor       string     `json:"executor,omitempty"`
	PriorityWeight int        `json:"priority_weight,omitempty"`
	QueuedAt       *time.Time `json:"queued_at,omitempty"`
	ScheduledAt    *time.Time `json:"scheduled_at,omitempty"`
	// QueueSeconds is the wait between queued (or scheduled) and start, when both are known.
	QueueSeconds *float64 `json:"queue_seconds,omitempty"`
	// TaskInstanceID is Airflow 3's task instance UUID.
	TaskInstanceID string `json:"task_instance_id,omitempty"`
	RunState       string `json:"dag_run_state,omitempty"`
	// MissedTries lists try numbers that ran between two polls but could not be recovered
	// (servers older than 2.10 have no tries endpoint): the gap is recorded, not invented.
	MissedTries []int `json:"missed_tries,omitempty"`
}

// Duration returns FinishedAt-StartedAt when both are set.
func (e TaskEvent) Duration() (time.Duration, bool) {
	if e.StartedAt == nil || e.FinishedAt == nil {
		return 0, false
	}
	return e.FinishedAt.Sub(*e.StartedAt), true
}

// ErrUnsupportedVersion marks a message whose schema version this code does not understand.
var ErrUnsupportedVersion = errors.New("unsupported RunDelta schema version")

// ErrInvalid marks a message that is not a valid RunDelta.
var ErrInvalid = errors.New("invalid RunDelta")

// Encode returns the JSON of d.
func Encode(d *RunDelta) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode run delta: %w", err)
	}
	return b, nil
}

// Decode reads a message that holds one RunDelta: a version-1 message, or a batch of one. A
// schema version this build does not read is ErrUnsupportedVersion; a document that breaks
// schemas/rundelta.schema.json is ErrInvalid (see ValidateJSON: the one validation of a message,
// used by every consumer). Consumers read messages with DecodeDeltas.
func Decode(data []byte) (*RunDelta, error) {
	ds, err := DecodeDeltas(data)
	if err != nil {
		return nil, err
	}
	if len(ds) != 1 {
		return nil, fmt.Errorf("%w: a batch of %d deltas where one was expected", ErrInvalid, len(ds))
	}
	return &ds[0], nil
}

// Validate checks d as a delta would be checked: encoded as a version-1 message, against the
// schema's run_delta.
func (d *RunDelta) Validate() error {
	b, err := Encode(d)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return validateDelta(b)
}

func joinProblems(p []string) string {
	const most = 5
	if len(p) > most {
		p = append(p[:most:most], fmt.Sprintf("and %d more", len(p)-most))
	}
	var b bytes.Buffer
	for i, s := range p {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// Attributes returns the Pub/Sub attributes of d as a version-1 message.
func (d *RunDelta) Attributes() map[string]string {
	return map[string]string{
		AttrSource:        d.Run.Source,
		AttrSchemaVersion: fmt.Sprint(d.SchemaVersion),
		AttrTenant:        d.Tenant,
		AttrEnvironment:   d.Environment,
		AttrInstance:      d.Run.Instance,
		AttrDeltaID:       d.ID,
	}
}
