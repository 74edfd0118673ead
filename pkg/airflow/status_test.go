package airflow_test

import (
	"testing"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/event"
)

func TestStatusOf(t *testing.T) {
	for state, want := range map[string]event.Status{
		"": event.StatusNone, "none": event.StatusNone, "null": event.StatusNone, "scheduled": event.StatusScheduled,
		"queued": event.StatusQueued, "running": event.StatusRunning, "deferred": event.StatusDeferred,
		"up_for_retry": event.StatusUpForRetry, "up_for_reschedule": event.StatusUpForResched,
		"restarting": event.StatusRestarting, "success": event.StatusSucceeded, "SUCCESS": event.StatusSucceeded,
		"failed": event.StatusFailed, "upstream_failed": event.StatusUpstreamFailed, "skipped": event.StatusSkipped,
		"removed": event.StatusRemoved, "shutdown": event.StatusUnknown,
	} {
		if got := airflow.StatusOf(state); got != want {
			t.Errorf("StatusOf(%q) = %s, want %s", state, got, want)
		}
	}
}
