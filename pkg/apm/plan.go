package apm

import (
	"time"

	"github.com/farmobs/farm/pkg/event"
)

// Operation names: few and stable, as DataDog's per-service limits on operations expect. The
// pipeline or task is the resource.
const (
	OpArgoWorkflow  = "argo.workflow"
	OpArgoNode      = "argo.node"
	OpAirflowDagRun = "airflow.dag_run"
	OpAirflowTask   = "airflow.task"
	// OpAirflowPoke is one poke of a sensor in reschedule mode, inside its try's airflow.task span.
	OpAirflowPoke = "airflow.poke"
)

// DataDog's intake limits (characters): longer values are truncated.
const (
	maxResource = 5000
	maxTagValue = 25000
	maxName     = 100 // service, operation and type
)

// maxFuture is how far ahead of now DataDog accepts a span's start.
const maxFuture = 2 * time.Hour

// span is one span to send: everything the tracer is told, derived from the delta alone.
type span struct {
	trace    traceID
	id       uint64
	parentID uint64 // 0 for the root
	name     string
	resource string
	service  string
	start    time.Time
	end      time.Time
	isError  bool
	tags     tags
}

// skips counts the spans a plan leaves out, and the events that are no span yet.
type skips struct {
	tooOld, future, untimed, open int
}

// planner maps deltas to spans.
type planner struct {
	services map[string]string // by event.Source*
	version  string
	maxAge   time.Duration
	with128  bool
}

// plan returns the spans of d that may be sent at now, each once.
func (p planner) plan(d *event.RunDelta, now time.Time) ([]span, skips) {
	tid := traceIDOf(d, p.with128)
	common := p.commonTags(d)
	var (
		out []span
		sk  skips
	)
	for i := range d.Events {
		e := &d.Events[i]
		switch {
		case !e.Status.Terminal():
			sk.open++
		case d.Run.Source == event.SourceArgo && e.NodeID == d.Run.Name:
			// Argo's root node is the workflow itself: the run's span.
		case d.Run.Source == event.SourceAirflow && isAirflowTry(e) && e.Status == event.StatusUpForResched:
			// A poke of a sensor in reschedule mode: its try goes on, so it is a child of the try's
			// span, never a span of the try itself.
			if s, ok := p.pokeSpan(d, tid, e, common); ok {
				out = append(out, s)
			} else {
				sk.untimed++
			}
		default:
			s, ok := p.taskSpan(d, tid, e, common)
			if !ok {
				sk.untimed++
				continue
			}
			out = append(out, s)
			if d.Run.Source == event.SourceAirflow && isAirflowTry(e) && e.AttemptStartedAt != nil {
				// The try was rescheduled: the poke that ended it is shown like the others.
				if s, ok := p.pokeSpan(d, tid, e, common); ok {
					out = append(out, s)
				}
			}
		}
	}
	// The run's span, once it is terminal; split deltas send it with part 1 only.
	if d.Run.Status.Terminal() && d.Part <= 1 {
		if root, ok := p.rootSpan(d, tid, common); ok {
			out = append(out, root)
		} else {
			sk.untimed++
		}
	}
	return p.admit(out, now, &sk), sk
}

// admit drops spans outside DataDog's intake window and repeated span ids.
func (p planner) admit(spans []span, now time.Time, sk *skips) []span {
	oldest, newest := now.Add(-p.maxAge), now.Add(maxFuture)
	seen := make(map[uint64]bool, len(spans))
	out := spans[:0]
	for _, s := range spans {
		switch {
		case s.start.Before(oldest):
			sk.tooOld++
		case s.start.After(newest):
			sk.future++
		case seen[s.id]:
		default:
			seen[s.id] = true
			out = append(out, s)
		}
	}
	return out
}

// taskSpan is the span of a task, or of one try of an Airflow task instance: from the attempt's
// first start when the poll engine remembered one earlier than the event's own start (a
// rescheduled sensor on a server that overwrites start_date per poke).
func (p planner) taskSpan(d *event.RunDelta, tid traceID, e *event.TaskEvent, common tags) (span, bool) {
	first := e.StartedAt
	if e.AttemptStartedAt != nil && !e.AttemptStartedAt.IsZero() && (first == nil || first.IsZero() || e.AttemptStartedAt.Before(*first)) {
		first = e.AttemptStartedAt
	}
	start, end, ok := spanTimes(first, e.FinishedAt)
	if !ok {
		return span{}, false
	}
	s := span{
		trace:    tid,
		id:       spanIDOf(tid, taskKey(d.Run.Source, e)),
		parentID: p.parentOf(d, tid, e),
		name:     OpArgoNode,
		resource: truncate(taskResource(d.Run.Source, e), maxResource),
		service:  p.services[d.Run.Source],
		start:    start,
		end:      end,
		tags:     common.clone(),
	}
	if d.Run.Source == event.SourceAirflow {
		s.name = OpAirflowTask
	}
	s.isError = outcomeTags(s.tags, e.Status, e.State, e.Message, "task.message")
	taskTags(s.tags, d.Run.Source, e)
	if d.Run.Source == event.SourceAirflow && e.AttemptStartedAt != nil {
		s.tags.str("airflow.rescheduled", "true")
	}
	return s, true
}

// pokeSpan is one poke of a sensor in reschedule mode: a child of its try's span, from the
// poke's own start to its end as far as the API tells them. A server that overwrites start_date
// per poke shows the poke's start; one that keeps the try's first start shows, for every poke
// after the first, only when the poke was queued, which is the latest time before it ran.
func (p planner) pokeSpan(d *event.RunDelta, tid traceID, e *event.TaskEvent, common tags) (span, bool) {
	from, startedAt := "start_date", e.StartedAt
	if q := e.Airflow.QueuedAt; q != nil && !q.IsZero() && (startedAt == nil || q.After(*startedAt)) {
		from, startedAt = "queued_when", q
	}
	start, end, ok := spanTimes(startedAt, e.FinishedAt)
	if !ok {
		return span{}, false
	}
	s := span{
		trace:    tid,
		id:       spanIDOf(tid, pokeKey(e)),
		parentID: spanIDOf(tid, taskKey(d.Run.Source, e)),
		name:     OpAirflowPoke,
		resource: truncate(taskResource(d.Run.Source, e), maxResource),
		service:  p.services[d.Run.Source],
		start:    start,
		end:      end,
		tags:     common.clone(),
	}
	s.isError = outcomeTags(s.tags, e.Status, e.State, e.Message, "task.message")
	taskTags(s.tags, d.Run.Source, e)
	s.tags.str("airflow.poke.start_from", from)
	return s, true
}

// parentOf returns the span id of e's parent: the root for top-level tasks (and for Argo nodes
// whose parent is the workflow's root node).
func (p planner) parentOf(d *event.RunDelta, tid traceID, e *event.TaskEvent) uint64 {
	switch {
	case e.ParentID == "", e.ParentID == e.NodeID:
		return tid.low
	case d.Run.Source == event.SourceArgo && e.ParentID == d.Run.Name:
		return tid.low
	}
	return spanIDOf(tid, e.ParentID)
}

// rootSpan returns the run's span; false when the run has no time at all.
func (p planner) rootSpan(d *event.RunDelta, tid traceID, common tags) (span, bool) {
	start, end, ok := spanTimes(d.Run.StartedAt, d.Run.FinishedAt)
	if !ok {
		return span{}, false
	}
	s := span{
		trace:    tid,
		id:       tid.low,
		name:     OpArgoWorkflow,
		resource: truncate(firstOf(d.Run.Pipeline, d.Run.Name), maxResource),
		service:  p.services[d.Run.Source],
		start:    start,
		end:      end,
		tags:     common.clone(),
	}
	if d.Run.Source == event.SourceAirflow {
		s.name = OpAirflowDagRun
	}
	s.isError = outcomeTags(s.tags, d.Run.Status, d.Run.Phase, d.Run.Message, "run.message")
	rootTags(s.tags, d.Run)
	return s, true
}

// spanTimes returns a span's start and end: a missing end gives a zero-length span at the start
// (and the other way round); an end before the start is clamped.
func spanTimes(start, end *time.Time) (time.Time, time.Time, bool) {
	hasStart, hasEnd := start != nil && !start.IsZero(), end != nil && !end.IsZero()
	switch {
	case !hasStart && !hasEnd:
		return time.Time{}, time.Time{}, false
	case !hasStart:
		return *end, *end, true
	case !hasEnd || end.Before(*start):
		return *start, *start, true
	}
	return *start, *end, true
}

// taskResource is the task's name as its orchestrator shows it, stable across runs of the
// pipeline: the Argo display name; the Airflow task id (map index and try are tags), with "[]"
// for a mapped task's aggregate so its metrics do not mix with those of its instances.
func taskResource(source string, e *event.TaskEvent) string {
	name := firstOf(e.DisplayName, e.Name, e.NodeID)
	if source != event.SourceAirflow {
		return name
	}
	if e.Airflow != nil && e.Airflow.TaskID != "" {
		name = e.Airflow.TaskID
	}
	if e.Type == "MappedTask" && !isAirflowTry(e) {
		name += "[]"
	}
	return name
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
