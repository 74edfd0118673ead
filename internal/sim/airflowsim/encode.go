package airflowsim

import (
	"time"
)

// The JSON shapes below are those of Airflow's own schemas: v1 from
// airflow/api_connexion/schemas (marshmallow, datetimes as "+00:00"), v2 from
// airflow-core/src/airflow/api_fastapi/core_api/datamodels (pydantic, datetimes as "Z").

type dagRunV1 struct {
	Conf                   map[string]any `json:"conf"`
	DagID                  string         `json:"dag_id"`
	DagRunID               string         `json:"dag_run_id"`
	DataIntervalEnd        *string        `json:"data_interval_end"`
	DataIntervalStart      *string        `json:"data_interval_start"`
	EndDate                *string        `json:"end_date"`
	ExecutionDate          *string        `json:"execution_date"`
	ExternalTrigger        bool           `json:"external_trigger"`
	LastSchedulingDecision *string        `json:"last_scheduling_decision"`
	LogicalDate            *string        `json:"logical_date"`
	Note                   *string        `json:"note"`
	RunType                string         `json:"run_type"`
	StartDate              *string        `json:"start_date"`
	State                  string         `json:"state"`
}

type dagVersionV2 struct {
	ID            string  `json:"id"`
	VersionNumber int     `json:"version_number"`
	DagID         string  `json:"dag_id"`
	BundleName    string  `json:"bundle_name"`
	BundleVersion *string `json:"bundle_version"`
	CreatedAt     string  `json:"created_at"`
	DagDisplay    string  `json:"dag_display_name"`
}

type dagRunV2 struct {
	DagRunID               string         `json:"dag_run_id"`
	DagID                  string         `json:"dag_id"`
	LogicalDate            *string        `json:"logical_date"`
	QueuedAt               *string        `json:"queued_at"`
	StartDate              *string        `json:"start_date"`
	EndDate                *string        `json:"end_date"`
	Duration               *float64       `json:"duration"`
	DataIntervalStart      *string        `json:"data_interval_start"`
	DataIntervalEnd        *string        `json:"data_interval_end"`
	RunAfter               string         `json:"run_after"`
	LastSchedulingDecision *string        `json:"last_scheduling_decision"`
	RunType                string         `json:"run_type"`
	State                  string         `json:"state"`
	TriggeredBy            *string        `json:"triggered_by"`
	Conf                   map[string]any `json:"conf"`
	Note                   *string        `json:"note"`
	DagVersions            []dagVersionV2 `json:"dag_versions"`
	BundleVersion          *string        `json:"bundle_version"`
	DagDisplayName         string         `json:"dag_display_name"`
}

type taskInstanceV1 struct {
	DagID           string         `json:"dag_id"`
	DagRunID        string         `json:"dag_run_id"`
	Duration        *float64       `json:"duration"`
	EndDate         *string        `json:"end_date"`
	ExecutionDate   string         `json:"execution_date"`
	Executor        *string        `json:"executor"`
	ExecutorConfig  string         `json:"executor_config"`
	Hostname        string         `json:"hostname"`
	MapIndex        int            `json:"map_index"`
	MaxTries        int            `json:"max_tries"`
	Note            *string        `json:"note"`
	Operator        *string        `json:"operator"`
	Pid             *int           `json:"pid"`
	Pool            string         `json:"pool"`
	PoolSlots       int            `json:"pool_slots"`
	PriorityWeight  *int           `json:"priority_weight"`
	Queue           *string        `json:"queue"`
	QueuedWhen      *string        `json:"queued_when"`
	RenderedFields  map[string]any `json:"rendered_fields"`
	RenderedMapIdx  *string        `json:"rendered_map_index"`
	SLAMiss         any            `json:"sla_miss"`
	StartDate       *string        `json:"start_date"`
	State           *string        `json:"state"`
	TaskDisplayName string         `json:"task_display_name"`
	TaskID          string         `json:"task_id"`
	Trigger         any            `json:"trigger"`
	TriggererJob    any            `json:"triggerer_job"`
	TryNumber       int            `json:"try_number"`
	Unixname        string         `json:"unixname"`
}

// historyV1 is TaskInstanceHistorySchema: the tries endpoint's rows.
type historyV1 struct {
	DagID           string   `json:"dag_id"`
	DagRunID        string   `json:"dag_run_id"`
	Duration        *float64 `json:"duration"`
	EndDate         *string  `json:"end_date"`
	Executor        *string  `json:"executor"`
	ExecutorConfig  string   `json:"executor_config"`
	Hostname        string   `json:"hostname"`
	MapIndex        int      `json:"map_index"`
	MaxTries        int      `json:"max_tries"`
	Operator        *string  `json:"operator"`
	Pid             *int     `json:"pid"`
	Pool            string   `json:"pool"`
	PoolSlots       int      `json:"pool_slots"`
	PriorityWeight  *int     `json:"priority_weight"`
	Queue           *string  `json:"queue"`
	QueuedWhen      *string  `json:"queued_when"`
	StartDate       *string  `json:"start_date"`
	State           *string  `json:"state"`
	TaskDisplayName string   `json:"task_display_name"`
	TaskID          string   `json:"task_id"`
	TryNumber       int      `json:"try_number"`
	Unixname        string   `json:"unixname"`
}

type taskInstanceV2 struct {
	ID              string         `json:"id"`
	TaskID          string         `json:"task_id"`
	DagID           string         `json:"dag_id"`
	DagRunID        string         `json:"dag_run_id"`
	MapIndex        int            `json:"map_index"`
	LogicalDate     *string        `json:"logical_date"`
	RunAfter        string         `json:"run_after"`
	StartDate       *string        `json:"start_date"`
	EndDate         *string        `json:"end_date"`
	Duration        *float64       `json:"duration"`
	State           *string        `json:"state"`
	TryNumber       int            `json:"try_number"`
	MaxTries        int            `json:"max_tries"`
	TaskDisplayName string         `json:"task_display_name"`
	DagDisplayName  string         `json:"dag_display_name"`
	Hostname        *string        `json:"hostname"`
	Unixname        *string        `json:"unixname"`
	Pool            string         `json:"pool"`
	PoolSlots       int            `json:"pool_slots"`
	Queue           *string        `json:"queue"`
	PriorityWeight  *int           `json:"priority_weight"`
	Operator        *string        `json:"operator"`
	OperatorName    *string        `json:"operator_name"`
	QueuedWhen      *string        `json:"queued_when"`
	ScheduledWhen   *string        `json:"scheduled_when"`
	Pid             *int           `json:"pid"`
	Executor        *string        `json:"executor"`
	ExecutorConfig  string         `json:"executor_config"`
	Note            *string        `json:"note"`
	RenderedMapIdx  *string        `json:"rendered_map_index"`
	RenderedFields  map[string]any `json:"rendered_fields"`
	Trigger         any            `json:"trigger"`
	TriggererJob    any            `json:"triggerer_job"`
	DagVersion      *dagVersionV2  `json:"dag_version"`
}

// historyV2 is TaskInstanceHistoryResponse.
type historyV2 struct {
	TaskID          string        `json:"task_id"`
	DagID           string        `json:"dag_id"`
	DagRunID        string        `json:"dag_run_id"`
	MapIndex        int           `json:"map_index"`
	StartDate       *string       `json:"start_date"`
	EndDate         *string       `json:"end_date"`
	Duration        *float64      `json:"duration"`
	State           *string       `json:"state"`
	TryNumber       int           `json:"try_number"`
	MaxTries        int           `json:"max_tries"`
	TaskDisplayName string        `json:"task_display_name"`
	DagDisplayName  string        `json:"dag_display_name"`
	Hostname        *string       `json:"hostname"`
	Unixname        *string       `json:"unixname"`
	Pool            string        `json:"pool"`
	PoolSlots       int           `json:"pool_slots"`
	Queue           *string       `json:"queue"`
	PriorityWeight  *int          `json:"priority_weight"`
	Operator        *string       `json:"operator"`
	OperatorName    *string       `json:"operator_name"`
	QueuedWhen      *string       `json:"queued_when"`
	ScheduledWhen   *string       `json:"scheduled_when"`
	Pid             *int          `json:"pid"`
	Executor        *string       `json:"executor"`
	ExecutorConfig  string        `json:"executor_config"`
	DagVersion      *dagVersionV2 `json:"dag_version"`
}

// stamp formats a datetime as the server does: Python's isoformat ("+00:00") for v1, pydantic's
// "Z" for v2; microseconds only when not zero, as both do.
func (v version) stamp(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	layout := "2006-01-02T15:04:05"
	if t.Nanosecond() != 0 {
		layout += ".000000"
	}
	if v.api == "v1" {
		return t.Format(layout) + "+00:00"
	}
	return t.Format(layout) + "Z"
}

func (v version) stampPtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := v.stamp(t)
	return &s
}

func (v version) stampOpt(t *time.Time) *string {
	if t == nil {
		return nil
	}
	return v.stampPtr(*t)
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func intPtr(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func (v version) encodeRun(r *dagRun) any {
	if v.api == "v1" {
		return dagRunV1{
			Conf: map[string]any{}, DagID: r.dagID, DagRunID: r.runID,
			DataIntervalEnd: v.stampOpt(r.dataIntervalEnd), DataIntervalStart: v.stampOpt(r.dataIntervalStart),
			EndDate: v.stampPtr(r.end), ExecutionDate: v.stampOpt(r.logicalDate), ExternalTrigger: r.externalTrigger,
			LastSchedulingDecision: v.stampPtr(r.lastSchedulingCheck), LogicalDate: v.stampOpt(r.logicalDate),
			RunType: r.runType, StartDate: v.stampPtr(r.start), State: r.state, Note: strPtr(r.note),
		}
	}
	var dur *float64
	if !r.start.IsZero() && !r.end.IsZero() {
		d := r.end.Sub(r.start).Seconds()
		dur = &d
	}
	return dagRunV2{
		DagRunID: r.runID, DagID: r.dagID, LogicalDate: v.stampOpt(r.logicalDate), QueuedAt: v.stampPtr(r.queuedAt),
		StartDate: v.stampPtr(r.start), EndDate: v.stampPtr(r.end), Duration: dur,
		DataIntervalStart: v.stampOpt(r.dataIntervalStart), DataIntervalEnd: v.stampOpt(r.dataIntervalEnd),
		RunAfter: v.stamp(r.runAfter), LastSchedulingDecision: v.stampPtr(r.lastSchedulingCheck),
		RunType: r.runType, State: r.state, TriggeredBy: strPtr(r.triggeredBy), Conf: map[string]any{},
		DagVersions: []dagVersionV2{v.dagVersion(r.dagID, r.queuedAt)}, DagDisplayName: r.dagID, Note: strPtr(r.note),
	}
}

func (v version) dagVersion(dagID string, created time.Time) dagVersionV2 {
	return dagVersionV2{ID: "0190b0c0-0000-7000-8000-000000000001", VersionNumber: 1, DagID: dagID, BundleName: "dags-folder", CreatedAt: v.stamp(created), DagDisplay: dagID}
}

func (v version) encodeTI(t *taskInstance, r *dagRun) any {
	state := strPtr(t.state)
	var rendered *string
	if t.key.mapIndex >= 0 {
		s := t.key.task + "[" + itoa(t.key.mapIndex) + "]"
		rendered = &s
	}
	if v.api == "v1" {
		ld := ""
		if r.logicalDate != nil {
			ld = v.stamp(*r.logicalDate)
		}
		return taskInstanceV1{
			DagID: t.key.dag, DagRunID: t.key.run, Duration: t.duration(), EndDate: v.stampPtr(t.end),
			ExecutionDate: ld, Executor: strPtr(t.executor), ExecutorConfig: "{}", Hostname: t.hostname,
			MapIndex: t.key.mapIndex, MaxTries: t.maxTries, Operator: strPtr(t.operator), Pid: intPtr(t.pid),
			Pool: t.pool, PoolSlots: 1, PriorityWeight: &t.priorityWeight, Queue: strPtr(t.queue),
			QueuedWhen: v.stampPtr(t.queuedWhen), RenderedFields: map[string]any{}, RenderedMapIdx: rendered,
			StartDate: v.stampPtr(t.start), State: state, TaskDisplayName: t.displayName, TaskID: t.key.task,
			TryNumber: t.tryNumber, Unixname: "airflow",
		}
	}
	dv := v.dagVersion(t.key.dag, r.queuedAt)
	return taskInstanceV2{
		ID: t.uuid, TaskID: t.key.task, DagID: t.key.dag, DagRunID: t.key.run, MapIndex: t.key.mapIndex,
		LogicalDate: v.stampOpt(r.logicalDate), RunAfter: v.stamp(r.runAfter), StartDate: v.stampPtr(t.start),
		EndDate: v.stampPtr(t.end), Duration: t.duration(), State: state, TryNumber: t.tryNumber, MaxTries: t.maxTries,
		TaskDisplayName: t.displayName, DagDisplayName: t.key.dag, Hostname: strPtr(t.hostname), Unixname: strPtr("airflow"),
		Pool: t.pool, PoolSlots: 1, Queue: strPtr(t.queue), PriorityWeight: &t.priorityWeight,
		Operator: strPtr(t.operator), OperatorName: strPtr(t.operator), QueuedWhen: v.stampPtr(t.queuedWhen),
		ScheduledWhen: v.stampPtr(t.scheduledWhen), Pid: intPtr(t.pid), Executor: strPtr(t.executor), ExecutorConfig: "{}",
		RenderedMapIdx: rendered, RenderedFields: map[string]any{}, DagVersion: &dv,
	}
}

func (v version) encodeTry(t *taskInstance, r *dagRun) any {
	if v.api == "v1" {
		return historyV1{
			DagID: t.key.dag, DagRunID: t.key.run, Duration: t.duration(), EndDate: v.stampPtr(t.end),
			Executor: strPtr(t.executor), ExecutorConfig: "{}", Hostname: t.hostname, MapIndex: t.key.mapIndex,
			MaxTries: t.maxTries, Operator: strPtr(t.operator), Pid: intPtr(t.pid), Pool: t.pool, PoolSlots: 1,
			PriorityWeight: &t.priorityWeight, Queue: strPtr(t.queue), QueuedWhen: v.stampPtr(t.queuedWhen),
			StartDate: v.stampPtr(t.start), State: strPtr(t.state), TaskDisplayName: t.displayName, TaskID: t.key.task,
			TryNumber: t.tryNumber, Unixname: "airflow",
		}
	}
	dv := v.dagVersion(t.key.dag, r.queuedAt)
	return historyV2{
		TaskID: t.key.task, DagID: t.key.dag, DagRunID: t.key.run, MapIndex: t.key.mapIndex,
		StartDate: v.stampPtr(t.start), EndDate: v.stampPtr(t.end), Duration: t.duration(), State: strPtr(t.state),
		TryNumber: t.tryNumber, MaxTries: t.maxTries, TaskDisplayName: t.displayName, DagDisplayName: t.key.dag,
		Hostname: strPtr(t.hostname), Unixname: strPtr("airflow"), Pool: t.pool, PoolSlots: 1, Queue: strPtr(t.queue),
		PriorityWeight: &t.priorityWeight, Operator: strPtr(t.operator), OperatorName: strPtr(t.operator),
		QueuedWhen: v.stampPtr(t.queuedWhen), ScheduledWhen: v.stampPtr(t.scheduledWhen), Pid: intPtr(t.pid),
		Executor: strPtr(t.executor), ExecutorConfig: "{}", DagVersion: &dv,
	}
}
