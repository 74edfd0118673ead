package poll

import (
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// seen is what one poll shows of a task: state, start, end and queued time as seconds (-1: none).
type seen struct {
	state              string
	start, end, queued float64
}

func offset(sec float64) *time.Time {
	if sec < 0 {
		return nil
	}
	t := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).Add(time.Duration(sec * float64(time.Second)))
	return &t
}

// TestDiffRemembersTheFirstStartOfARescheduledAttempt checks rule 5 over the polls of one task:
// the first start of an attempt that runs as several pokes is carried by its events, whether the
// server overwrites start_date per poke or keeps it; attempts that were never rescheduled, and an
// Argo node run again by `argo retry`, carry none.
func TestDiffRemembersTheFirstStartOfARescheduledAttempt(t *testing.T) {
	cases := []struct {
		name   string
		source string
		polls  []seen
		want   []float64 // AttemptStartedAt of each poll's event, -1 for none
	}{
		{"sensor, start per poke", event.SourceAirflow,
			[]seen{{"running", 5, -1, 0}, {"up_for_reschedule", 5, 60, 0}, {"queued", -1, -1, 120}, {"running", 125, -1, 120}, {"success", 125, 180, 120}},
			[]float64{-1, 5, 5, 5, 5}},
		{"sensor, first start kept", event.SourceAirflow,
			[]seen{{"running", 5, -1, 0}, {"up_for_reschedule", 5, 60, 0}, {"running", 5, -1, 120}, {"success", 5, 180, 120}},
			[]float64{-1, 5, 5, 5}},
		{"sensor, start per poke, pokes between two polls", event.SourceAirflow,
			[]seen{{"running", 5, -1, 0}, {"success", 245, 300, 240}},
			[]float64{-1, 5}},
		{"sensor, first start kept, pokes between two polls: nothing tells", event.SourceAirflow,
			[]seen{{"running", 5, -1, 0}, {"success", 5, 300, 240}},
			[]float64{-1, -1}},
		{"sensor first seen rescheduled", event.SourceAirflow,
			[]seen{{"up_for_reschedule", 5, 60, 0}},
			[]float64{5}},
		{"plain task", event.SourceAirflow,
			[]seen{{"queued", -1, -1, 0}, {"running", 5, -1, 0}, {"success", 5, 60, 0}, {"failed", 5, 90, 0}},
			[]float64{-1, -1, -1, -1}},
		{"argo retry of a failed node", event.SourceArgo,
			[]seen{{"Running", 5, -1, -1}, {"Failed", 5, 60, -1}, {"Running", 120, -1, -1}, {"Succeeded", 120, 180, -1}},
			[]float64{-1, -1, -1, -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var prev *state.Run
			for i, s := range c.polls {
				task := event.TaskEvent{NodeID: "wait", Attempt: 1, State: s.state, StartedAt: offset(s.start), FinishedAt: offset(s.end)}
				if c.source == event.SourceAirflow {
					task.Airflow = &event.AirflowTask{TaskID: "wait", MapIndex: -1, TryNumber: 1, QueuedAt: offset(s.queued)}
				}
				v := vocabulary{status: testStatus}
				if c.source == event.SourceAirflow {
					v.queued = func(e *event.TaskEvent) *time.Time { return e.Airflow.QueuedAt }
				}
				snap := &Snapshot{Run: event.Run{Source: c.source, Instance: "i", UID: "u"}, Tasks: []event.TaskEvent{task}}
				events, tasks := diff(prev, snap, v)
				if len(events) != 1 {
					t.Fatalf("poll %d: %d events", i, len(events))
				}
				got, want := events[0].AttemptStartedAt, offset(c.want[i])
				if (got == nil) != (want == nil) || (got != nil && !got.Equal(*want)) {
					t.Errorf("poll %d (%s): attempt started at %v, want %v", i, s.state, got, want)
				}
				replayed, _ := diff(nil, snap, v)
				if replayed[0].ID != events[0].ID {
					t.Errorf("poll %d: id %s, a replay's %s: the remembered start must not change ids", i, events[0].ID, replayed[0].ID)
				}
				prev = &state.Run{Tasks: tasks}
			}
		})
	}
}
