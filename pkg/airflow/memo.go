package airflow

import (
	"slices"
	"time"
)

// What a process remembers of each run between its polls, so that a run whose task instances
// changed is read from the change feed alone (only its changed rows) instead of in full.
//
// The memo of a run is the server's state as of asOf: its run record and a compact row of each
// of its task instances. It is valid for a poll whose window starts at or before asOf: every
// change after asOf then has updated_at within the window, so the change feed shows it. A memo
// older than the window (this process did not poll for a while: another function instance did,
// or it was idle) is not used; the run is read in full again when it next changes. Each poll
// moves the asOf of every valid memo to the poll's own start, and the memos of runs it no longer
// sees are dropped, so the memory stays the size of the active estate.
type memo struct {
	asOf time.Time
	rec  *Run    // nil: not read by this process
	rows []tiRow // nil: not read by this process (a run with no task instance has an empty slice)
	// fp is the fingerprint of rec and rows: equal to the index's, they are what the last commit
	// stored; else this process read the run since (a poll that did not commit, or a dry run).
	fp string
	// tries are the finished earlier tries of its task instances, by node id then try number:
	// they never change once ended, so they stay valid whatever asOf.
	tries map[string]map[int]TaskInstance
}

// forget drops what a memo knows of the run's current state; its finished tries stay.
func (m *memo) forget() { m.rec, m.rows, m.fp, m.asOf = nil, nil, "", time.Time{} }

// tiRow is what a memo keeps of a task instance: what the fingerprint and the group nodes need,
// in 64 bytes and no pointer of its own (times as Unix nanoseconds, 0 for none), since a process
// keeps one per task instance of every active run.
type tiRow struct {
	taskID, state     string
	mapIndex, try     int32
	start, end, queue int64
}

func rowOf(t *TaskInstance) tiRow {
	return tiRow{taskID: t.TaskID, state: t.State, mapIndex: int32(t.MapIndex), try: int32(t.TryNumber),
		start: nanos(t.Start), end: nanos(t.End), queue: nanos(t.QueuedWhen)}
}

// same reports whether t is the row as remembered, in every field the fingerprint covers.
func (r *tiRow) same(t *TaskInstance) bool {
	return r.state == t.State && int(r.try) == t.TryNumber && r.start == nanos(t.Start) && r.end == nanos(t.End) && r.queue == nanos(t.QueuedWhen)
}

func (r *tiRow) instance(ref RunRef) TaskInstance {
	return TaskInstance{DagID: ref.DagID, RunID: ref.RunID, TaskID: r.taskID, MapIndex: int(r.mapIndex), TryNumber: int(r.try),
		State: r.state, Start: fromNanos(r.start), End: fromNanos(r.end), QueuedWhen: fromNanos(r.queue)}
}

func nanos(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := time.Unix(0, n).UTC()
	return &t
}

// memoOf returns the run's memo, creating it. Called with s.mu held.
func (s *Source) memoOf(key string) *memo {
	m := s.memo[key]
	if m == nil {
		m = &memo{}
		s.memo[key] = m
	}
	return m
}

// remember keeps a run's record (when r is not nil), every task instance and their fingerprint,
// as of asOf.
func (s *Source) remember(key string, r *Run, tis []TaskInstance, fp string, asOf time.Time) {
	rows := make([]tiRow, len(tis))
	for i := range tis {
		rows[i] = rowOf(&tis[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memoOf(key)
	m.rows, m.fp, m.asOf = rows, fp, asOf
	if r != nil {
		rec := *r
		m.rec = &rec
	}
}

// recalled returns the run's record, task-instance rows and their fingerprint when they are valid
// for a window starting at since (nil and "" when not).
func (s *Source) recalled(key string, since time.Time) (*Run, []tiRow, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memo[key]
	if m == nil || m.asOf.IsZero() || m.asOf.Before(since) {
		return nil, nil, ""
	}
	return m.rec, m.rows, m.fp
}

// settle ends a poll whose window started at since and which started at now. The memos of runs
// not in keep are dropped. When the poll read the change feed (fed), the valid memos of the runs
// it saw, unchanged or merged, now hold as of now, and the others lose the run's state (their
// tries stay). A poll without the feed (a backfill, which keeps only the active runs' memos, or a
// server before 2.6, on which no memo is ever used) leaves them as they were, or forgets their
// state when the server has no feed at all.
func (s *Source) settle(keep map[string]bool, fed, noFeedAtAll bool, since, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, m := range s.memo {
		switch {
		case !keep[k]:
			delete(s.memo, k)
		case noFeedAtAll || (fed && (m.asOf.IsZero() || m.asOf.Before(since))):
			m.forget()
		case fed:
			m.asOf = now
		}
	}
}

// merged is a run's every task instance now: the remembered rows with the changed ones (from the
// change feed) in their place. A mapped task's unmapped row (map index -1) gives way to its
// expanded instances once the feed shows one: the expansion re-numbers that row, it does not
// add a new one beside it. The other way round, an unmapped row in the feed (a run created again
// under the same id) replaces the expanded instances remembered.
func merged(ref RunRef, rows []tiRow, changed []TaskInstance) []TaskInstance {
	fresh := make(map[string]bool, len(changed))
	expanded, unmapped := map[string]bool{}, map[string]bool{}
	for i := range changed {
		fresh[NodeID(changed[i].TaskID, changed[i].MapIndex)] = true
		if changed[i].MapIndex >= 0 {
			expanded[changed[i].TaskID] = true
		} else {
			unmapped[changed[i].TaskID] = true
		}
	}
	out := make([]TaskInstance, 0, len(rows)+len(changed))
	for i := range rows {
		r := &rows[i]
		if fresh[NodeID(r.taskID, int(r.mapIndex))] || (r.mapIndex < 0 && expanded[r.taskID]) || (r.mapIndex >= 0 && unmapped[r.taskID]) {
			continue
		}
		out = append(out, r.instance(ref))
	}
	return append(out, slices.Clone(changed)...)
}

// sameRun reports whether a listed run is the run remembered under its id, and not one deleted
// and created again (or cleared: queued again) since: the fields no run changes in its life.
func sameRun(a, b *Run) bool {
	return a.RunType == b.RunType && sameTime(a.LogicalDate, b.LogicalDate) && sameTime(a.RunAfter, b.RunAfter) && sameTime(a.QueuedAt, b.QueuedAt)
}

func sameTime(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
