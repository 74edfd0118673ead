package argo_test

import (
	"testing"

	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/event"
)

func TestStatusOf(t *testing.T) {
	for phase, want := range map[string]event.Status{
		"Pending": event.StatusPending, "Running": event.StatusRunning, "Succeeded": event.StatusSucceeded,
		"Failed": event.StatusFailed, "Error": event.StatusErrored, "Skipped": event.StatusSkipped,
		"Omitted": event.StatusOmitted, "": event.StatusUnknown, "Unheard": event.StatusUnknown,
	} {
		if got := argo.StatusOf(phase); got != want {
			t.Errorf("StatusOf(%q) = %s, want %s", phase, got, want)
		}
	}
}
