package airflow

import (
	"fmt"
	"strings"
	"time"
)

// RunRef names a DAG run.
type RunRef struct{ DagID, RunID string }

func (r RunRef) String() string { return r.DagID + "/" + r.RunID }

// Run is a DAG run as both API versions show it.
type Run struct {
	RunRef
	State   string // queued, running, success, failed
	RunType string
	// LogicalDate is null on Airflow 3 for runs without one; v1's execution_date is read into it.
	LogicalDate *time.Time
	QueuedAt    *time.Time // v2 only
	RunAfter    *time.Time // v2 only
	Start, End  *time.Time
	Note        string
	// DataIntervalStart and DataIntervalEnd are null for runs whose timetable has no interval.
	DataIntervalStart, DataIntervalEnd *time.Time
	// LastSchedulingDecision moves on every scheduler loop over the run: reported, never compared.
	LastSchedulingDecision *time.Time
	ExternalTrigger        *bool // v1 only: Airflow 3 removed it
}

// Active reports whether the run may still change on its own.
func (r *Run) Active() bool { return r.State == "queued" || r.State == "running" }

// TaskInstance is one task-instance row (or one row of its tries history): its latest try.
type TaskInstance struct {
	ID          string // v2 task-instance UUID
	DagID       string
	RunID       string
	TaskID      string
	MapIndex    int // -1 when not mapped
	DisplayName string
	// State is Airflow's word; null (and v1's legacy "none") is "".
	State          string
	TryNumber      int
	MaxTries       int
	Start, End     *time.Time
	QueuedWhen     *time.Time
	ScheduledWhen  *time.Time // v2 only
	Operator       string
	Pool           string
	Queue          string
	Hostname       string
	Executor       string
	PriorityWeight int
}

// Run returns the instance's run.
func (t *TaskInstance) Run() RunRef { return RunRef{t.DagID, t.RunID} }

// The wire shapes: one struct reads both versions (v1's execution_date, v2's id, run_after,
// queued_at, scheduled_when, operator_name); unknown fields are ignored.

type wireRun struct {
	DagID         string  `json:"dag_id"`
	DagRunID      string  `json:"dag_run_id"`
	State         *string `json:"state"`
	RunType       string  `json:"run_type"`
	LogicalDate   *string `json:"logical_date"`
	ExecutionDate *string `json:"execution_date"`
	QueuedAt      *string `json:"queued_at"`
	RunAfter      *string `json:"run_after"`
	StartDate     *string `json:"start_date"`
	EndDate       *string `json:"end_date"`
	Note          *string `json:"note"`

	DataIntervalStart      *string `json:"data_interval_start"`
	DataIntervalEnd        *string `json:"data_interval_end"`
	LastSchedulingDecision *string `json:"last_scheduling_decision"`
	ExternalTrigger        *bool   `json:"external_trigger"`
}

type wireTI struct {
	ID              *string `json:"id"`
	TaskID          string  `json:"task_id"`
	DagID           string  `json:"dag_id"`
	DagRunID        string  `json:"dag_run_id"`
	MapIndex        *int    `json:"map_index"`
	TaskDisplayName *string `json:"task_display_name"`
	State           *string `json:"state"`
	TryNumber       int     `json:"try_number"`
	MaxTries        int     `json:"max_tries"`
	StartDate       *string `json:"start_date"`
	EndDate         *string `json:"end_date"`
	QueuedWhen      *string `json:"queued_when"`
	ScheduledWhen   *string `json:"scheduled_when"`
	Operator        *string `json:"operator"`
	OperatorName    *string `json:"operator_name"`
	Pool            *string `json:"pool"`
	Queue           *string `json:"queue"`
	Hostname        *string `json:"hostname"`
	Executor        *string `json:"executor"`
	PriorityWeight  *int    `json:"priority_weight"`
}

type runPage struct {
	DagRuns      []wireRun `json:"dag_runs"`
	TotalEntries *int      `json:"total_entries"`
}

type tiPage struct {
	TaskInstances []wireTI `json:"task_instances"`
	TotalEntries  *int     `json:"total_entries"`
}

// stamps parses datetimes, remembering the first bad one: a datetime without an offset cannot be
// placed in time, so it is an error, never guessed as UTC.
type stamps struct{ err error }

func (p *stamps) parse(what, field string, s *string) *time.Time {
	if s == nil || *s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		if p.err == nil {
			p.err = fmt.Errorf("%s: %s %q is not an RFC 3339 time with an offset", what, field, *s)
		}
		return nil
	}
	t = t.UTC()
	return &t
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (w *wireRun) decode() (Run, error) {
	if w.DagID == "" || w.DagRunID == "" {
		return Run{}, fmt.Errorf("a DAG run without dag_id or dag_run_id: %+v", *w)
	}
	what := "DAG run " + w.DagID + "/" + w.DagRunID
	var p stamps
	r := Run{
		RunRef: RunRef{w.DagID, w.DagRunID}, State: str(w.State), RunType: w.RunType, Note: str(w.Note),
		LogicalDate: p.parse(what, "logical_date", w.LogicalDate), QueuedAt: p.parse(what, "queued_at", w.QueuedAt),
		RunAfter: p.parse(what, "run_after", w.RunAfter), Start: p.parse(what, "start_date", w.StartDate),
		End: p.parse(what, "end_date", w.EndDate), DataIntervalStart: p.parse(what, "data_interval_start", w.DataIntervalStart),
		DataIntervalEnd:        p.parse(what, "data_interval_end", w.DataIntervalEnd),
		LastSchedulingDecision: p.parse(what, "last_scheduling_decision", w.LastSchedulingDecision),
		ExternalTrigger:        w.ExternalTrigger,
	}
	if r.LogicalDate == nil {
		r.LogicalDate = p.parse(what, "execution_date", w.ExecutionDate)
	}
	return r, p.err
}

func (w *wireTI) decode() (TaskInstance, error) {
	if w.DagID == "" || w.DagRunID == "" || w.TaskID == "" {
		return TaskInstance{}, fmt.Errorf("a task instance without dag_id, dag_run_id or task_id: %+v", *w)
	}
	mi := -1
	if w.MapIndex != nil {
		mi = *w.MapIndex
	}
	what := fmt.Sprintf("task instance %s/%s/%s", w.DagID, w.DagRunID, w.TaskID)
	if mi >= 0 {
		what += fmt.Sprintf("[%d]", mi)
	}
	state := strings.ToLower(str(w.State))
	if state == "none" {
		state = "" // Airflow before 2.7 spelled null "none"
	}
	op := str(w.Operator)
	if w.OperatorName != nil && *w.OperatorName != "" {
		op = *w.OperatorName
	}
	var p stamps
	t := TaskInstance{
		ID: str(w.ID), DagID: w.DagID, RunID: w.DagRunID, TaskID: w.TaskID, MapIndex: mi,
		DisplayName: str(w.TaskDisplayName), State: state, TryNumber: w.TryNumber, MaxTries: w.MaxTries,
		Start: p.parse(what, "start_date", w.StartDate), End: p.parse(what, "end_date", w.EndDate),
		QueuedWhen: p.parse(what, "queued_when", w.QueuedWhen), ScheduledWhen: p.parse(what, "scheduled_when", w.ScheduledWhen),
		Operator: op, Pool: str(w.Pool), Queue: str(w.Queue), Hostname: str(w.Hostname), Executor: str(w.Executor),
	}
	if w.PriorityWeight != nil {
		t.PriorityWeight = *w.PriorityWeight
	}
	return t, p.err
}
