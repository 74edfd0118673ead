package event

import "strings"

// Status is a source-neutral reading of an orchestrator state, so consumers can decide "finished",
// "error" or "skipped" without knowing Argo's or Airflow's vocabulary. The orchestrator's own word
// always travels beside it (State, Phase).
type Status string

// Statuses. Terminal ones end a task or run; the others may still change.
const (
	StatusUnknown        Status = "unknown"
	StatusNone           Status = "none" // Airflow: no state yet, or cleared
	StatusPending        Status = "pending"
	StatusScheduled      Status = "scheduled"
	StatusQueued         Status = "queued"
	StatusRunning        Status = "running"
	StatusDeferred       Status = "deferred"
	StatusUpForRetry     Status = "up_for_retry"
	StatusUpForResched   Status = "up_for_reschedule"
	StatusRestarting     Status = "restarting"
	StatusSucceeded      Status = "succeeded"
	StatusFailed         Status = "failed"
	StatusErrored        Status = "errored"
	StatusUpstreamFailed Status = "upstream_failed"
	StatusSkipped        Status = "skipped"
	StatusOmitted        Status = "omitted"
	StatusRemoved        Status = "removed"
)

// Terminal reports whether the status ends an attempt.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusErrored, StatusUpstreamFailed, StatusSkipped, StatusOmitted, StatusRemoved,
		// up_for_retry and up_for_reschedule end one Airflow try (the next try is another task event).
		StatusUpForRetry, StatusUpForResched:
		return true
	}
	return false
}

// IsError reports whether the status is a failure that should show as an error.
func (s Status) IsError() bool {
	switch s {
	case StatusFailed, StatusErrored, StatusUpstreamFailed, StatusUpForRetry:
		return true
	}
	return false
}

// IsSkipped reports whether the task did not run by design (not an error).
func (s Status) IsSkipped() bool { return s == StatusSkipped || s == StatusOmitted }

// ArgoStatus maps an Argo node or workflow phase.
func ArgoStatus(phase string) Status {
	switch phase {
	case "":
		return StatusUnknown
	case "Pending":
		return StatusPending
	case "Running":
		return StatusRunning
	case "Succeeded":
		return StatusSucceeded
	case "Failed":
		return StatusFailed
	case "Error":
		return StatusErrored
	case "Skipped":
		return StatusSkipped
	case "Omitted":
		return StatusOmitted
	}
	return StatusUnknown
}

// AirflowStatus maps an Airflow task-instance or DAG-run state (v1 sends "none" or null, v2 null).
func AirflowStatus(state string) Status {
	switch strings.ToLower(state) {
	case "", "none", "null":
		return StatusNone
	case "scheduled":
		return StatusScheduled
	case "queued":
		return StatusQueued
	case "running":
		return StatusRunning
	case "deferred":
		return StatusDeferred
	case "up_for_retry":
		return StatusUpForRetry
	case "up_for_reschedule":
		return StatusUpForResched
	case "restarting":
		return StatusRestarting
	case "success":
		return StatusSucceeded
	case "failed":
		return StatusFailed
	case "upstream_failed":
		return StatusUpstreamFailed
	case "skipped":
		return StatusSkipped
	case "removed":
		return StatusRemoved
	}
	return StatusUnknown
}
