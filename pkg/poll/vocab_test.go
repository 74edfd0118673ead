package poll

import "github.com/farmobs/farm/pkg/event"

// testStatus reads the states the engine's tests use, Argo's and Airflow's words alike. The
// engine knows no source's words: it reads them through Source.Status, which the real sources'
// own tests check.
func testStatus(state string) event.Status {
	switch state {
	case "Pending":
		return event.StatusPending
	case "Running", "running":
		return event.StatusRunning
	case "Succeeded", "success":
		return event.StatusSucceeded
	case "Failed", "failed":
		return event.StatusFailed
	case "Error":
		return event.StatusErrored
	case "queued":
		return event.StatusQueued
	case "up_for_reschedule":
		return event.StatusUpForResched
	}
	return event.StatusUnknown
}

// WordStatus is testStatus for the external tests' scripted source.
var WordStatus = testStatus
