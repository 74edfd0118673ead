package argo

import "github.com/farmobs/farm/pkg/event"

// StatusOf reads an Argo node or workflow phase in FARM's common statuses.
func StatusOf(phase string) event.Status {
	switch phase {
	case "":
		return event.StatusUnknown
	case "Pending":
		return event.StatusPending
	case "Running":
		return event.StatusRunning
	case "Succeeded":
		return event.StatusSucceeded
	case "Failed":
		return event.StatusFailed
	case "Error":
		return event.StatusErrored
	case "Skipped":
		return event.StatusSkipped
	case "Omitted":
		return event.StatusOmitted
	}
	return event.StatusUnknown
}

// Status is StatusOf: the engine reads stored phases with it (poll.Source).
func (s *Source) Status(phase string) event.Status { return StatusOf(phase) }
