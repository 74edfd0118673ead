package airflow

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/event"
)

// Node types of Airflow events.
const (
	TypeTask       = "Task"
	TypeTaskGroup  = "TaskGroup"
	TypeMappedTask = "MappedTask"
)

// StateNull is the state FARM reports for Airflow's null (no state yet, or cleared).
const StateNull = "none"

// NodeID is a task instance's node: task_id, or task_id[map_index] for a mapped instance.
func NodeID(taskID string, mapIndex int) string {
	if mapIndex < 0 {
		return taskID
	}
	return taskID + "[" + strconv.Itoa(mapIndex) + "]"
}

// groupOf returns the task group of a dotted id ("etl.load" is in "etl"), "" at the top level.
func groupOf(id string) string {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		return id[:i]
	}
	return ""
}

// timesFor keeps the times a state gives meaning to. A task instance keeps its last try's start
// and end while it waits for the next try (null, scheduled, queued): reporting them would date the
// new try with the old one's times.
func timesFor(state string, start, end *time.Time) (*time.Time, *time.Time) {
	switch state {
	case "", "scheduled", "queued":
		return nil, nil
	case "running", "deferred", "restarting":
		return start, nil
	}
	return start, end
}

func reportState(s string) string {
	if s == "" {
		return StateNull
	}
	return s
}

// attemptOf is the try a row speaks of. A row with no state that has run before was cleared: on
// 2.10+ it keeps the try number of the try that ended (that try's outcome is in the tries history)
// until the scheduler starts the next one, so the reset belongs to the next try.
func attemptOf(t *TaskInstance) int {
	if t.State == "" && (t.Start != nil || t.End != nil) {
		return t.TryNumber + 1
	}
	return t.TryNumber
}

// parentOf is the node a task instance nests in: its mapped task, else its task group.
func parentOf(taskID string, mapIndex int) string {
	if mapIndex >= 0 {
		return taskID
	}
	return groupOf(taskID)
}

// taskEvent maps one task-instance row (current or from its tries) to FARM's event.
func taskEvent(t *TaskInstance, runState string) event.TaskEvent {
	st := reportState(t.State)
	start, end := timesFor(t.State, t.Start, t.End)
	e := event.TaskEvent{
		NodeID: NodeID(t.TaskID, t.MapIndex), Name: t.TaskID, Type: TypeTask, ParentID: parentOf(t.TaskID, t.MapIndex),
		Attempt: attemptOf(t), State: st, Status: StatusOf(st), StartedAt: start, FinishedAt: end,
		Airflow: &event.AirflowTask{
			DagID: t.DagID, DagRunID: t.RunID, TaskID: t.TaskID, MapIndex: t.MapIndex, TryNumber: t.TryNumber,
			MaxTries: t.MaxTries, Operator: t.Operator, Pool: t.Pool, Queue: t.Queue, Hostname: t.Hostname,
			Executor: t.Executor, PriorityWeight: t.PriorityWeight, QueuedAt: t.QueuedWhen, ScheduledAt: t.ScheduledWhen,
			TaskInstanceID: t.ID, RunState: runState,
		},
	}
	if t.DisplayName != "" && t.DisplayName != t.TaskID {
		e.DisplayName = t.DisplayName
	}
	// Queue time: from queued (else scheduled) to the start of this try.
	if start != nil {
		from := t.QueuedWhen
		if from == nil {
			from = t.ScheduledWhen
		}
		if from != nil && !start.Before(*from) {
			q := start.Sub(*from).Seconds()
			e.Airflow.QueueSeconds = &q
		}
	}
	return e
}

// keep reports whether a row says anything: a task instance with no state that never started
// is a task not reached yet, not a transition.
func keep(t *TaskInstance) bool { return t.State != "" || t.Start != nil || t.End != nil }

// runEvents maps a run's task instances and synthesises their group parents. Instances not
// reached yet are no event, but their groups are not finished.
func runEvents(tis []TaskInstance, run *Run) []event.TaskEvent {
	out := make([]event.TaskEvent, 0, len(tis)+4)
	var pending []event.TaskEvent
	for i := range tis {
		e := taskEvent(&tis[i], run.State)
		if keep(&tis[i]) {
			out = append(out, e)
		} else {
			pending = append(pending, e)
		}
	}
	return withParents(out, run, pending)
}

// isParentType reports whether e was synthesised by withParents.
func isParentType(e *event.TaskEvent) bool {
	return e.Type == TypeTaskGroup || e.Type == TypeMappedTask
}

// attempt is one known attempt of a task node.
type attempt struct {
	state      string
	start, end *time.Time
	try        int
}

// withParents adds the synthetic nodes of tasks: one per task group (every prefix of a dotted task
// id) and one per mapped task, each the parent of what it contains, so the trace nests like the
// DAG. A parent's start is the earliest start of any attempt below it, its state is derived from
// the latest attempt of each task below it (pending ones, not reached yet, count as null), and it
// ends when they all have. Parents nothing below has reached yet are left out.
func withParents(tasks []event.TaskEvent, run *Run, pending []event.TaskEvent) []event.TaskEvent {
	nodes := map[string][]attempt{} // by real node id
	for _, e := range slices.Concat(tasks, pending) {
		nodes[e.NodeID] = append(nodes[e.NodeID], attempt{e.State, e.StartedAt, e.FinishedAt, e.Attempt})
	}
	parents := map[string]string{} // parent id -> type
	children := map[string][]string{}
	for _, e := range slices.Concat(tasks, pending) {
		for child, p := e.NodeID, e.ParentID; p != ""; child, p = p, groupOf(p) {
			if _, isReal := nodes[p]; isReal {
				break // a task whose id is also a prefix: nothing to synthesise
			}
			typ := TypeTaskGroup
			if strings.HasSuffix(child, "]") && strings.HasPrefix(child, p+"[") {
				typ = TypeMappedTask
			}
			if _, ok := parents[p]; !ok {
				parents[p] = typ
			}
			if !slices.Contains(children[p], child) {
				children[p] = append(children[p], child)
			}
		}
	}
	out := slices.Clone(tasks)
	ids := make([]string, 0, len(parents))
	for p := range parents {
		ids = append(ids, p)
	}
	slices.Sort(ids)
	for _, p := range ids {
		pe := parentEvent(p, parents[p], run, leavesOf(p, children, nodes), nodes)
		if pe.State != StateNull {
			out = append(out, pe)
		}
	}
	return out
}

func leavesOf(p string, children map[string][]string, nodes map[string][]attempt) []string {
	var out []string
	for _, c := range children[p] {
		if _, ok := nodes[c]; ok {
			out = append(out, c)
			continue
		}
		out = append(out, leavesOf(c, children, nodes)...)
	}
	return out
}

func parentEvent(id, typ string, run *Run, leaves []string, nodes map[string][]attempt) event.TaskEvent {
	var latest []string
	var start, end *time.Time
	for _, l := range leaves {
		atts := nodes[l]
		last := atts[0]
		for _, a := range atts {
			if a.try > last.try {
				last = a
			}
			if a.start != nil && (start == nil || a.start.Before(*start)) {
				start = a.start
			}
		}
		latest = append(latest, last.state)
		if last.end != nil && (end == nil || last.end.After(*end)) {
			end = last.end
		}
	}
	st := deriveState(latest, run.Active())
	status := StatusOf(st)
	if !status.Terminal() {
		end = nil
	}
	task := id
	if typ == TypeTaskGroup {
		task = ""
	}
	return event.TaskEvent{
		NodeID: id, Name: id, Type: typ, ParentID: groupOf(id), State: st, Status: status,
		StartedAt: start, FinishedAt: end,
		Airflow: &event.AirflowTask{DagID: run.DagID, DagRunID: run.RunID, TaskID: task, MapIndex: -1, RunState: run.State},
	}
}

// deriveState reads a group's state from its tasks' latest attempts: running while any is in
// flight (or, in an active run, while some have not started), else failed, upstream_failed,
// skipped (all skipped), removed (all removed) or success.
func deriveState(states []string, runActive bool) string {
	var started, null int
	has := map[string]bool{}
	for _, s := range states {
		if s == StateNull {
			null++
			continue
		}
		started++
		has[s] = true
		switch s {
		case "scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "restarting":
			return "running"
		}
	}
	switch {
	case started == 0:
		return StateNull
	case null > 0 && runActive:
		return "running"
	case has["failed"]:
		return "failed"
	case has["upstream_failed"]:
		return "upstream_failed"
	case len(has) == 1 && has["skipped"]:
		return "skipped"
	case len(has) == 1 && has["removed"]:
		return "removed"
	}
	return "success"
}

// runPart is the hash of the run-level fields that can change what FARM publishes: when it and
// the task instances are unchanged, the run needs no reading. Left out on purpose:
// last_scheduling_decision, which moves on every scheduler loop over an active run (it would make
// every poll read every active run's task instances), and the data interval and external_trigger,
// which never change. They travel in the events all the same.
func runPart(r *event.Run) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%s|%s|%s|%s|%s", r.Phase, r.RunType, ts(r.StartedAt), ts(r.FinishedAt), ts(r.LogicalDate), ts(r.QueuedAt), ts(r.RunAfter), r.Message)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// fingerprint covers the run part and every field of every task instance that the dedupe rules
// (pkg/poll/diff.go) compare: state, try, start, end and queued time. A rescheduled sensor running
// again differs from what the last poll saw only in its queued time.
func fingerprint(rp string, tis []TaskInstance) string {
	rows := make([]string, 0, len(tis))
	for i := range tis {
		t := &tis[i]
		rows = append(rows, fmt.Sprintf("%s|%d|%d|%s|%s|%s|%s", t.TaskID, t.MapIndex, t.TryNumber, t.State, ts(t.Start), ts(t.End), ts(t.QueuedWhen)))
	}
	slices.Sort(rows)
	h := sha256.New()
	for _, r := range rows {
		h.Write([]byte(r))
		h.Write([]byte{'\n'})
	}
	return rp + ":" + hex.EncodeToString(h.Sum(nil)[:12])
}

func ts(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
