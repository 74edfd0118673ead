package apm

import (
	"fmt"
	"strconv"
	"time"

	"github.com/farmobs/farm/pkg/event"
)

// traceID is a 128-bit trace id.
type traceID struct{ high, low uint64 }

// String returns the 32 hex digits DataDog shows.
func (t traceID) String() string { return fmt.Sprintf("%016x%016x", t.high, t.low) }

// traceIDOf derives the trace of one execution of a run (see the package comment). with128
// mirrors the tracer's DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED.
func traceIDOf(d *event.RunDelta, with128 bool) traceID {
	t := traceID{low: id64(event.NewID("farm.trace", d.Tenant, d.Run.Key(), stamp(d.Run.StartedAt)))}
	if with128 && d.Run.StartedAt != nil {
		// What the tracer sets for a root span started at the run's start: 32 bits of Unix seconds
		// then 32 zero bits.
		t.high = uint64(uint32(d.Run.StartedAt.Unix())) << 32
	}
	return t
}

// spanIDOf derives the id of the span of task key in trace t.
func spanIDOf(t traceID, key string) uint64 {
	return id64(event.NewID("farm.span", t.String(), key))
}

// taskKey names a task within its run for span ids (see the package comment).
func taskKey(source string, e *event.TaskEvent) string {
	if source != event.SourceAirflow || !isAirflowTry(e) {
		return e.NodeID
	}
	return e.NodeID + "#" + strconv.Itoa(e.Attempt)
}

// pokeKey names one poke of a try of a sensor in reschedule mode: the try's key and the poke's end,
// which no other poke of the try shares whichever start the server shows (its start does not tell
// pokes apart on servers that keep the try's first start).
func pokeKey(e *event.TaskEvent) string {
	at := e.FinishedAt
	if at == nil || at.IsZero() {
		at = e.StartedAt
	}
	return e.NodeID + "#" + strconv.Itoa(e.Attempt) + "/poke@" + stamp(at)
}

// isAirflowTry reports whether e is a try of an Airflow task instance (it has tries) rather than a
// group (a task group, or a mapped task aggregating its instances), which children name as parent.
func isAirflowTry(e *event.TaskEvent) bool {
	switch {
	case e.Airflow == nil, e.Type == "TaskGroup":
		return false
	case e.Type == "MappedTask" && e.Airflow.MapIndex < 0:
		return false
	}
	return true
}

// id64 reads the first 63 bits of a hex id: span ids stay positive as signed 64-bit integers,
// which some DataDog tools and tracers assume, and are never 0.
func id64(hexID string) uint64 {
	v, err := strconv.ParseUint(hexID[:16], 16, 64)
	if err != nil {
		panic(fmt.Sprintf("trace: event.NewID returned %q, not hex", hexID)) // event.NewID is hex by contract
	}
	if v &= 1<<63 - 1; v == 0 {
		v = 1
	}
	return v
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
