package apm

import (
	"strconv"
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/event"
)

// tags are a span's string tags (meta) and numeric tags (metrics).
type tags struct {
	meta    map[string]string
	metrics map[string]float64
}

func newTags() tags { return tags{meta: map[string]string{}, metrics: map[string]float64{}} }

func (t tags) clone() tags {
	c := tags{meta: make(map[string]string, len(t.meta)+16), metrics: make(map[string]float64, len(t.metrics)+8)}
	for k, v := range t.meta {
		c.meta[k] = v
	}
	for k, v := range t.metrics {
		c.metrics[k] = v
	}
	return c
}

// str sets a string tag unless v is empty.
func (t tags) str(k, v string) {
	if v != "" {
		t.meta[k] = truncate(v, maxTagValue)
	}
}

func (t tags) num(k string, v float64) { t.metrics[k] = v }

func (t tags) timeTag(k string, v *time.Time) {
	if v != nil && !v.IsZero() {
		t.meta[k] = v.UTC().Format(time.RFC3339Nano)
	}
}

// Labels of Argo workflows that say where a run came from.
const (
	labelCronWorkflow            = "workflows.argoproj.io/cron-workflow"
	labelWorkflowTemplate        = "workflows.argoproj.io/workflow-template"
	labelClusterWorkflowTemplate = "workflows.argoproj.io/cluster-workflow-template"
)

// commonTags are on every span of d's run: unified service tagging (env, version; the service is
// the span's own), the tenant, and what identifies and links to the run.
func (p planner) commonTags(d *event.RunDelta) tags {
	t := newTags()
	t.str("env", d.Environment)
	t.str("version", p.version)
	t.str("tenant", d.Tenant)
	t.str("pipeline", d.Run.Pipeline)
	t.str("instance", d.Run.Instance)
	t.str("run.name", d.Run.Name)
	t.str("run.id", d.Run.UID)
	t.str("run.url", d.Run.URL)
	t.str("run.type", runType(d.Run))
	switch d.Run.Source {
	case event.SourceArgo:
		t.str("kube_namespace", d.Run.Namespace)
	case event.SourceAirflow:
		t.str("airflow.dag_id", d.Run.Pipeline)
		t.str("airflow.run_id", d.Run.Name)
	}
	return t
}

// runType says how the run was started: Airflow's run_type; for Argo, what the workflow came
// from, read from the labels the controller sets.
func runType(r event.Run) string {
	if r.Source == event.SourceAirflow {
		return r.RunType
	}
	switch {
	case r.Labels[labelCronWorkflow] != "":
		return "cron_workflow"
	case r.Labels[labelWorkflowTemplate] != "":
		return "workflow_template"
	case r.Labels[labelClusterWorkflowTemplate] != "":
		return "cluster_workflow_template"
	}
	return "workflow"
}

// outcomeTags tags the status and, for failures, the error the orchestrator reported; a message
// that is not an error (a skip's reason) goes to messageKey. It reports whether the span is an
// error. Skipped and omitted tasks are tagged status:skipped or status:omitted, not errors.
func outcomeTags(t tags, status event.Status, state, message, messageKey string) bool {
	t.str("status", string(status))
	t.str("state", state)
	if !status.IsError() {
		t.str(messageKey, message)
		return false
	}
	t.str("error.type", state)
	t.str("error.message", firstOf(message, describe(state, messageKey == "run.message")))
	return true
}

// describe says in words what an error state means when the orchestrator gave no message (Airflow
// never does): the state itself is error.type already, and "up_for_retry: up_for_retry" said
// nothing.
func describe(state string, run bool) string {
	what := "task"
	if run {
		what = "run"
	}
	switch strings.ToLower(state) {
	case "up_for_retry":
		return "this try failed; Airflow will try the task again"
	case "upstream_failed":
		return "not run: an upstream task failed"
	case "failed":
		return "the " + what + " failed (the orchestrator gave no message)"
	case "error":
		return "the " + what + " errored (the orchestrator gave no message)"
	}
	return "the " + what + " ended in state " + state
}

func rootTags(t tags, r event.Run) {
	if r.Source == event.SourceArgo {
		t.str("argo.cron_workflow", r.Labels[labelCronWorkflow])
		t.str("argo.workflow_template", firstOf(r.Labels[labelWorkflowTemplate], r.Labels[labelClusterWorkflowTemplate]))
		return
	}
	t.timeTag("airflow.logical_date", r.LogicalDate)
	t.timeTag("airflow.queued_at", r.QueuedAt)
}

func taskTags(t tags, source string, e *event.TaskEvent) {
	t.str("task.id", e.NodeID)
	t.str("task.name", e.Name)
	t.str("task.type", e.Type)
	t.num("task.attempt", float64(e.Attempt))
	if source == event.SourceArgo {
		argoTags(t, e)
	} else if e.Airflow != nil {
		airflowTags(t, e.Airflow)
	}
}

func argoTags(t tags, e *event.TaskEvent) {
	t.str("argo.template", e.Template)
	t.str("pod_name", e.Pod)
	t.str("argo.host_node", e.HostNode)
	for res, secs := range e.ResourcesDuration {
		t.num("argo.resources_duration."+res, float64(secs))
	}
}

func airflowTags(t tags, a *event.AirflowTask) {
	t.str("airflow.task_id", a.TaskID)
	t.num("airflow.map_index", float64(a.MapIndex))
	t.num("airflow.try_number", float64(a.TryNumber))
	t.num("airflow.max_tries", float64(a.MaxTries))
	t.str("airflow.operator", a.Operator)
	t.str("airflow.pool", a.Pool)
	t.str("airflow.queue", a.Queue)
	t.str("airflow.executor", a.Executor)
	t.str("airflow.hostname", a.Hostname)
	t.str("airflow.task_instance_id", a.TaskInstanceID)
	if a.PriorityWeight != 0 {
		t.num("airflow.priority_weight", float64(a.PriorityWeight))
	}
	if a.QueueSeconds != nil {
		t.num("airflow.queue_seconds", *a.QueueSeconds)
	}
	t.timeTag("airflow.queued_at", a.QueuedAt)
	if len(a.MissedTries) > 0 {
		tries := make([]string, len(a.MissedTries))
		for i, n := range a.MissedTries {
			tries[i] = strconv.Itoa(n)
		}
		t.str("airflow.missed_tries", strings.Join(tries, ","))
	}
}
