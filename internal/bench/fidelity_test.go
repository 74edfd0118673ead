package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/event"
)

func at(min int) time.Time { return Epoch.Add(time.Duration(min) * time.Minute) }

func ptr(t time.Time) *time.Time { return &t }

// delta publishes events of run "r" at poll time obs.
func delta(obs int, evs ...event.TaskEvent) *event.RunDelta {
	return &event.RunDelta{ObservedAt: at(obs), Run: event.Run{UID: "r", Phase: "Running"}, Events: evs}
}

func ev(id, node, state string, start int) event.TaskEvent {
	return event.TaskEvent{ID: id, NodeID: node, State: state, StartedAt: ptr(at(start))}
}

func TestCompareTruth(t *testing.T) {
	// Node a: Pending at 0, Running at 2 (start 2), Succeeded at 5. Polls at 1 and 3 and 6.
	truthA := func() []truth {
		return []truth{
			{run: "r", node: "a", state: "Pending", start: at(2), from: at(0)},
			{run: "r", node: "a", state: "Running", prev: "Pending", start: at(2), from: at(2)},
			{run: "r", node: "a", state: "Succeeded", prev: "Running", start: at(2), from: at(5)},
		}
	}
	polls := DayStats{SeenAt: []time.Time{at(1), at(3), at(6)}}
	all := []*event.RunDelta{delta(1, ev("p", "a", "Pending", 2)), delta(3, ev("r", "a", "Running", 2)), delta(6, ev("s", "a", "Succeeded", 2))}
	tests := []struct {
		name  string
		truth []truth
		got   []*event.RunDelta
		polls DayStats
		check func(t *testing.T, f *Fidelity)
	}{
		{"everything recorded", truthA(), all, polls, func(t *testing.T, f *Fidelity) {
			if f.Recorded != 3 || len(f.Missed) != 0 || !f.OK() {
				t.Errorf("recorded %d, missed %v", f.Recorded, f.Missed)
			}
		}},
		{"superseded between polls", truthA(), []*event.RunDelta{all[0], all[2]}, DayStats{SeenAt: []time.Time{at(1), at(6)}},
			func(t *testing.T, f *Fidelity) {
				if f.Observable != 2 || f.Superseded != 1 || f.MissedObservable() != 0 || len(f.Missed) != 1 || f.Missed[0].Cause != causeSuperseded || !f.OK() {
					t.Errorf("observable %d, superseded %d, missed %v", f.Observable, f.Superseded, f.Missed)
				}
			}},
		{"observable but not published", truthA(), []*event.RunDelta{all[0], delta(3), all[2]}, polls, func(t *testing.T, f *Fidelity) {
			if f.MissedObservable() != 1 || f.OK() || !strings.HasPrefix(f.Missed[0].Cause, causeObservable) {
				t.Errorf("missed %v", f.Missed)
			}
		}},
		{"run never published while visible", truthA(), []*event.RunDelta{all[2]}, polls, func(t *testing.T, f *Fidelity) {
			if f.MissedObservable() != 2 || f.Missed[0].Cause != causeNotListed {
				t.Errorf("missed %v", f.Missed)
			}
		}},
		{"same id twice", truthA(), append(all, delta(6, ev("s", "a", "Succeeded", 2))), polls, func(t *testing.T, f *Fidelity) {
			if f.DupSameID != 1 || f.DupDiffID != 0 || !f.OK() {
				t.Errorf("same id %d, different id %d", f.DupSameID, f.DupDiffID)
			}
		}},
		{"different id for the same transition", truthA(), append(all, delta(6, ev("s2", "a", "Succeeded", 2))), polls, func(t *testing.T, f *Fidelity) {
			if f.DupDiffID != 1 || f.OK() {
				t.Errorf("different id %d", f.DupDiffID)
			}
		}},
		{"invented", truthA(), append(all, delta(6, ev("x", "b", "Failed", 2))), polls, func(t *testing.T, f *Fidelity) {
			if len(f.Invented) != 1 || f.Invented[0] != "r|b|Failed" || f.OK() {
				t.Errorf("invented %v", f.Invented)
			}
		}},
		{"wrong start time", truthA(), []*event.RunDelta{all[0], all[1], delta(6, ev("s", "a", "Succeeded", 4))}, polls, func(t *testing.T, f *Fidelity) {
			if f.MaxStartErr != 2*time.Minute || f.OK() || !strings.Contains(f.WorstStart, "r|a|Succeeded") {
				t.Errorf("start error %v (%s)", f.MaxStartErr, f.WorstStart)
			}
		}},
		{"node removed and re-created", []truth{
			{run: "r", node: "a", state: "Succeeded", from: at(0)},
			{run: "r", node: "a", state: "Pending", from: at(4)},
		}, []*event.RunDelta{delta(6, event.TaskEvent{ID: "p2", NodeID: "a", State: "Pending"})}, polls, func(t *testing.T, f *Fidelity) {
			if len(f.Missed) != 1 || f.Missed[0].Cause != causeRemoved || f.MissedObservable() != 0 {
				t.Errorf("missed %v", f.Missed)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := compareTruth(event.SourceArgo, tc.truth, tc.got, tc.polls)
			tc.check(t, f)
			var out strings.Builder
			f.Write(&out)
			if !strings.Contains(out.String(), "task transitions exposed") {
				t.Errorf("report:\n%s", out.String())
			}
		})
	}
}

// TestSensorTries: a sensor pokes at 1 (running, up_for_reschedule at 2) and at 3 (running, success
// at 4) within try 1, on a server that overwrites the start per poke; polls at 1 and 5.
func TestSensorTries(t *testing.T) {
	truths := func() []truth {
		return []truth{
			{run: "r", node: "s", try: 1, state: "running", start: at(1), from: at(1)},
			{run: "r", node: "s", try: 1, state: "up_for_reschedule", start: at(1), end: at(2), from: at(2)},
			{run: "r", node: "s", try: 1, state: "running", start: at(3), from: at(3)},
			{run: "r", node: "s", try: 1, state: "success", start: at(3), end: at(4), from: at(4)},
		}
	}
	final := func(attemptStart *time.Time) []*event.RunDelta {
		e := event.TaskEvent{NodeID: "s", Attempt: 1, State: "success", Status: event.StatusSucceeded, StartedAt: ptr(at(3)), FinishedAt: ptr(at(4)), AttemptStartedAt: attemptStart}
		return []*event.RunDelta{delta(5, e)}
	}
	for _, c := range []struct {
		name             string
		got              []*event.RunDelta
		committed        []time.Time
		fromFirst, crash int
		wrong            int
	}{
		{"first start remembered", final(ptr(at(1))), []time.Time{at(1), at(5)}, 1, 0, 0},
		{"first start forgotten", final(nil), []time.Time{at(1), at(5)}, 0, 0, 1},
		{"first poke seen by a crashed poll only", final(nil), []time.Time{at(5)}, 0, 1, 0},
		{"span before the first poke", final(ptr(at(0))), []time.Time{at(5)}, 0, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := truths()
			visibility(ts, []time.Time{at(1), at(5)})
			s := sensorTries(ts, c.got, c.committed)
			if s.Finished != 1 || s.FromFirstStart != c.fromFirst || s.SeenOnlyByCrashed != c.crash || len(s.Wrong) != c.wrong {
				t.Errorf("%+v", s)
			}
		})
	}
}

// TestRunDay runs two simulated hours per source with frequent crashes, races and faults, so that
// each happens, and holds FARM to the fidelity targets: every observable transition recorded.
func TestRunDay(t *testing.T) {
	testenv.FirestoreEmulator(t)
	for _, kind := range []string{event.SourceArgo, event.SourceAirflow} {
		t.Run(kind, func(t *testing.T) {
			o := DefaultDay(kind)
			o.Day, o.Estate.Runs, o.Estate.Tasks = 2*time.Hour, 12, 10
			o.CrashRate, o.RaceRate, o.FaultRate, o.LongGapRate = 0.2, 0.2, 0.3, 0.1
			f, err := RunDay(t.Context(), o, quiet)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			f.Write(&out)
			t.Log(out.String())
			st := f.Stats
			if st.Crashes == 0 || st.Races == 0 || st.Faulted == 0 || st.LongGaps == 0 || st.Busy == 0 {
				t.Errorf("stats %+v: every kind of trouble should have happened", st)
			}
			if f.Exposed == 0 || f.Recorded == 0 || f.Exposed != f.Observable+f.Superseded {
				t.Errorf("exposed %d = observable %d + superseded %d; recorded %d", f.Exposed, f.Observable, f.Superseded, f.Recorded)
			}
			if f.DupDiffID != 0 || len(f.Invented) != 0 || f.MaxStartErr != 0 || f.MaxEndErr != 0 || f.RunObservableMissed != 0 {
				t.Errorf("different-id duplicates %d, invented %v, time errors %v/%v, run phases missed %d",
					f.DupDiffID, f.Invented, f.MaxStartErr, f.MaxEndErr, f.RunObservableMissed)
			}
			for _, m := range f.Missed {
				if strings.HasPrefix(m.Cause, causeObservable) || m.Cause == causeNotListed {
					t.Errorf("unexplained miss: %s", m)
				}
			}
			if s := f.Sensors; len(s.Wrong) != 0 || (kind == event.SourceAirflow && s.Knowable == 0) {
				t.Errorf("rescheduled sensor tries %+v: want some a committed poll dated, every one from its first poke", s)
			}
		})
	}
}

func TestSimulatedTimeLabel(t *testing.T) {
	for d, want := range map[time.Duration]string{24 * time.Hour: "a simulated day (24h)", 2 * time.Hour: "2h of simulated time", 40 * time.Minute: "40m of simulated time", 90 * time.Minute: "1h30m of simulated time"} {
		if got := simulatedTime(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}
