package poll

import (
	"strconv"
	"time"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// The dedupe rules, all in this file:
//
//  1. A task is identified within its run by TaskKey: node id and attempt. Argo retries are
//     separate nodes (attempt = child index); Airflow tries are separate attempts of one task.
//  2. A task produces an event when its state, start, finish or queued time (for a source that
//     has one: Requeuer) differ from what was last published for it — or when it was never published. The times matter because a task
//     can re-enter the same state: `argo retry` resets a failed node, keeping its id, and it can
//     fail again with a later finish time; an Airflow sensor in reschedule mode is queued again for
//     every poke within one try, with the same start date and a new queued time.
//  3. Tasks not in the current snapshot keep their stored state (Airflow shows only the latest
//     try; older tries must not be forgotten, or a later listing of them would publish again).
//  4. The event id (event.TaskEventIDQueued) names the state entered and its times, never the previous
//     state, so every observer of the same transition — a poll, a replay, a crashed poll run
//     again — produces the same id.
//  5. An attempt can run as several executions: an Airflow sensor in reschedule mode goes
//     running → up_for_reschedule → scheduled → queued → running … within one try, and Airflow
//     2.0 to 3.2 overwrite its start_date with each poke's start. While an attempt is open (not
//     terminal, or up_for_reschedule) the stored state keeps its first start (state.Task.TryStart)
//     and whether it was rescheduled; the events of a rescheduled attempt carry that first start
//     (AttemptStartedAt), so its span can cover the whole wait whatever the server's version. It
//     is not part of the event id (rule 4: a replay, which reads no stored state, gives the same
//     ids). A terminal state ends the attempt: `argo retry` and a cleared task start afresh.

// TaskKey identifies a task within its run in the state store.
func TaskKey(e *event.TaskEvent) string { return e.NodeID + "#" + strconv.Itoa(e.Attempt) }

// diff compares the snapshot's tasks with the stored run and returns the events to publish, with
// ID, PrevState and PrevStatus filled in, and the task states to store. prev may be nil.
func diff(prev *state.Run, snap *Snapshot, v vocabulary) ([]event.TaskEvent, map[string]state.Task) {
	runKey := snap.Key()
	tasks := make(map[string]state.Task, len(snap.Tasks))
	if prev != nil {
		for k, t := range prev.Tasks {
			tasks[k] = t
		}
	}
	var events []event.TaskEvent
	for i := range snap.Tasks {
		cur := &snap.Tasks[i]
		cur.StartedAt = normalize(cur.StartedAt)
		cur.FinishedAt = normalize(cur.FinishedAt)
		key := TaskKey(cur)
		queued := v.queuedAt(cur)
		now := state.Task{State: cur.State, StartedAt: deref(cur.StartedAt), FinishedAt: deref(cur.FinishedAt), QueuedAt: deref(queued)}
		before, known := tasks[key]
		if known && sameTask(before, now) {
			continue
		}
		now = carryAttempt(before, known, now, v.status)
		e := *cur
		e.ID = event.TaskEventIDQueued(runKey, e.NodeID, e.Attempt, e.State, e.StartedAt, e.FinishedAt, queued)
		e.AttemptStartedAt = nil
		if now.Rescheduled {
			e.AttemptStartedAt = firstStart(now)
		}
		e.PrevState, e.PrevStatus = "", ""
		if known {
			e.PrevState = before.State
			e.PrevStatus = v.status(before.State)
		}
		events = append(events, e)
		tasks[key] = now
	}
	return events, tasks
}

// carryAttempt completes now, the state an attempt moves to, with what the stored state before
// knew of the attempt (rule 5): its first start while it stays open, and whether it was
// rescheduled.
func carryAttempt(before state.Task, known bool, now state.Task, statusOf func(string) event.Status) state.Task {
	now.Rescheduled = statusOf(now.State) == event.StatusUpForResched
	if !known {
		return now
	}
	was := statusOf(before.State)
	if was.Terminal() && was != event.StatusUpForResched {
		return now // the attempt had ended: what follows starts afresh
	}
	first := before.TryStart
	if first.IsZero() {
		first = before.StartedAt
	}
	// A start that moved later within the open attempt is a later poke's (one that moved earlier
	// corrects a group's start to an attempt found below it).
	now.Rescheduled = now.Rescheduled || before.Rescheduled || was == event.StatusUpForResched ||
		(!first.IsZero() && now.StartedAt.After(first))
	if !first.IsZero() && (now.StartedAt.IsZero() || first.Before(now.StartedAt)) {
		now.TryStart = first
	}
	return now
}

// firstStart is the earliest start known of t's attempt, nil when none is.
func firstStart(t state.Task) *time.Time {
	switch {
	case !t.TryStart.IsZero():
		s := t.TryStart
		return &s
	case !t.StartedAt.IsZero():
		s := t.StartedAt
		return &s
	}
	return nil
}

func sameTask(a, b state.Task) bool {
	return a.State == b.State && a.StartedAt.Equal(b.StartedAt) && a.FinishedAt.Equal(b.FinishedAt) && a.QueuedAt.Equal(b.QueuedAt)
}

// vocabulary is how the engine reads a source's tasks: its states in FARM's common statuses, and
// the queued time where the source has one (see Requeuer).
type vocabulary struct {
	status func(state string) event.Status
	queued func(e *event.TaskEvent) *time.Time // nil: the source has no queued time
}

func vocabularyOf(src Source) vocabulary {
	v := vocabulary{status: src.Status}
	if r, ok := src.(Requeuer); ok {
		v.queued = r.QueuedAt
	}
	return v
}

// queuedAt is the task's queued time where the source has one, normalised like the other times.
func (v vocabulary) queuedAt(e *event.TaskEvent) *time.Time {
	if v.queued == nil {
		return nil
	}
	return normalize(v.queued(e))
}

// normalize keeps times in UTC at microsecond precision: what every store and BigQuery keep, so a
// time read back from storage compares equal to the one observed.
func normalize(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
