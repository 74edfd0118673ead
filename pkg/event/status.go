package event

// Status is a source-neutral reading of an orchestrator state, so consumers can decide "finished",
// "error" or "skipped" without knowing Argo's or Airflow's vocabulary. The orchestrator's own word
// always travels beside it (State, Phase); each source package maps its words to these
// (argo.StatusOf, airflow.StatusOf).
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
