package ddagent

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Span is one span as a tracer sends it in a v0.4 payload. Numeric tags travel in Metrics, string
// tags in Meta; an error span has Error 1 and usually meta error.message and error.type.
type Span struct {
	TraceID  uint64             `msgpack:"trace_id"`
	SpanID   uint64             `msgpack:"span_id"`
	ParentID uint64             `msgpack:"parent_id"`
	Name     string             `msgpack:"name"`
	Resource string             `msgpack:"resource"`
	Service  string             `msgpack:"service"`
	Type     string             `msgpack:"type"`
	Start    int64              `msgpack:"start"`    // Unix nanoseconds
	Duration int64              `msgpack:"duration"` // nanoseconds
	Error    int32              `msgpack:"error"`
	Meta     map[string]string  `msgpack:"meta"`
	Metrics  map[string]float64 `msgpack:"metrics"`
}

// traceIDHighTag is where a 128-bit trace id keeps its high 64 bits (hex), on the first span of
// each chunk.
const traceIDHighTag = "_dd.p.tid"

// StartTime returns the span's start.
func (s Span) StartTime() time.Time { return time.Unix(0, s.Start).UTC() }

// EndTime returns the span's end.
func (s Span) EndTime() time.Time { return time.Unix(0, s.Start+s.Duration).UTC() }

// Elapsed returns the span's duration.
func (s Span) Elapsed() time.Duration { return time.Duration(s.Duration) }

// IsRoot reports whether the span has no parent: it is the trace's root.
func (s Span) IsRoot() bool { return s.ParentID == 0 }

// TraceID128 returns the 32-hex-digit trace id: the high bits from meta _dd.p.tid (zeros when the
// span does not carry them) and the low bits from TraceID.
func (s Span) TraceID128() string {
	high := s.Meta[traceIDHighTag]
	if len(high) != 16 {
		high = "0000000000000000"
	}
	return high + fmt.Sprintf("%016x", s.TraceID)
}

// decodeV04 reads a v0.4 payload: a msgpack array of traces (chunks), each an array of spans.
// want is the X-Datadog-Trace-Count header, or -1 when absent.
func decodeV04(r io.Reader, want int) ([][]Span, error) {
	var chunks [][]Span
	if err := msgpack.NewDecoder(r).Decode(&chunks); err != nil {
		return nil, fmt.Errorf("decode v0.4 msgpack payload: %w", err)
	}
	if want >= 0 && want != len(chunks) {
		return nil, fmt.Errorf("X-Datadog-Trace-Count says %d traces, the payload holds %d", want, len(chunks))
	}
	for i, c := range chunks {
		for j, s := range c {
			if s.TraceID == 0 || s.SpanID == 0 {
				return nil, fmt.Errorf("trace %d span %d (%s): trace_id and span_id must not be 0", i, j, s.Name)
			}
		}
	}
	return chunks, nil
}

// traceCount parses the X-Datadog-Trace-Count header; -1 when absent.
func traceCount(v string) (int, error) {
	if v == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("X-Datadog-Trace-Count %q is not a count", v)
	}
	return n, nil
}
