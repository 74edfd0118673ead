package airflow

import (
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/event"
)

// StatusOf reads an Airflow task-instance or DAG-run state in FARM's common statuses (v1 sends
// "none" or null, v2 null).
func StatusOf(state string) event.Status {
	switch strings.ToLower(state) {
	case "", "none", "null":
		return event.StatusNone
	case "scheduled":
		return event.StatusScheduled
	case "queued":
		return event.StatusQueued
	case "running":
		return event.StatusRunning
	case "deferred":
		return event.StatusDeferred
	case "up_for_retry":
		return event.StatusUpForRetry
	case "up_for_reschedule":
		return event.StatusUpForResched
	case "restarting":
		return event.StatusRestarting
	case "success":
		return event.StatusSucceeded
	case "failed":
		return event.StatusFailed
	case "upstream_failed":
		return event.StatusUpstreamFailed
	case "skipped":
		return event.StatusSkipped
	case "removed":
		return event.StatusRemoved
	}
	return event.StatusUnknown
}

// Status is StatusOf: the engine reads stored states with it (poll.Source).
func (s *Source) Status(state string) event.Status { return StatusOf(state) }

// QueuedAt is a task instance's queued_when (poll.Requeuer): a sensor in reschedule mode is
// queued again for every poke within one try, with the same state, try and start date.
func (s *Source) QueuedAt(e *event.TaskEvent) *time.Time {
	if e.Airflow == nil {
		return nil
	}
	return e.Airflow.QueuedAt
}
