package apm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/DataDog/dd-trace-go.v1/ddtrace"
	"gopkg.in/DataDog/dd-trace-go.v1/ddtrace/ext"
	"gopkg.in/DataDog/dd-trace-go.v1/ddtrace/tracer"
)

// ErrDelivery marks spans the agent did not accept (unreachable, or it answered an error). It is
// transient: the message should be delivered again.
var ErrDelivery = errors.New("the DataDog agent did not accept the spans")

// sessionSpans bounds the spans one tracer session emits. Each span is a chunk, and the tracer
// queues at most 1,000 finished chunks for its writer, dropping the rest; Stop drains the queue.
const sessionSpans = 500

// sessionMu serialises tracer sessions: the tracer is one per process, and concurrent calls
// within an instance must not start or stop it under each other.
var sessionMu sync.Mutex

// sender sends spans through the tracer and proves the agent accepted them.
type sender struct {
	transport http.RoundTripper // to the agent
	agentAddr string            // host:port of the agent, "": the one DataDog's settings name
	timeout   time.Duration     // per HTTP request to the agent
	service   string            // the tracer's own service
	logger    ddtrace.Logger
}

// session starts the tracer, emits spans (at most sessionSpans) and stops it. Stop returns only
// after the tracer's writer has sent everything and its HTTP requests have been answered, which
// the recorder saw: the session fails with ErrDelivery unless the agent accepted every span.
func (s *sender) session(ctx context.Context, spans []span) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("trace: stopped before sending: %w", err)
	}
	sessionMu.Lock()
	defer sessionMu.Unlock()
	var out deliveries
	opts := []tracer.StartOption{
		tracer.WithHTTPClient(&http.Client{Transport: recorder{next: s.transport, out: &out}, Timeout: s.timeout}),
		tracer.WithService(s.service),
		tracer.WithLogStartup(false), // once per call would flood the log
		tracer.WithLogger(s.logger),
		// FARM serves no requests for AppSec to protect; left undecided, the tracer builds its WAF
		// on every Start in case remote configuration turns it on: most of a session's CPU.
		tracer.WithAppSecEnabled(false),
	}
	if s.agentAddr != "" {
		opts = append(opts, tracer.WithAgentAddr(s.agentAddr))
	}
	tracer.Start(opts...)
	err := emitAll(spans)
	tracer.Stop()
	if err != nil {
		return err
	}
	return out.check(len(spans))
}

func emitAll(spans []span) error {
	for _, s := range spans {
		if err := emit(s); err != nil {
			return err
		}
	}
	return nil
}

// emit starts and finishes one span as a chunk of its own, kept by sampling.
func emit(s span) error {
	opts := []tracer.StartSpanOption{
		tracer.WithSpanID(s.id),
		tracer.StartTime(s.start),
		tracer.ServiceName(s.service),
		tracer.ResourceName(s.resource),
	}
	if s.parentID != 0 {
		parent, err := remoteParent(s.trace, s.parentID)
		if err != nil {
			return fmt.Errorf("trace: span %d: %w", s.id, err)
		}
		opts = append(opts, tracer.ChildOf(parent))
	}
	sp := tracer.StartSpan(s.name, opts...)
	// Before anything else: the keep decision must precede any propagation.
	sp.SetTag(ext.ManualKeep, true)
	for k, v := range s.tags.meta {
		sp.SetTag(k, v)
	}
	for k, v := range s.tags.metrics {
		sp.SetTag(k, v)
	}
	if s.isError {
		sp.SetTag(ext.Error, true) // a bool sets the flag only: error.message/type are tags above
	}
	sp.Finish(tracer.FinishTime(s.end))
	return nil
}

// remoteParent gives the tracer the parent of a span as a context from another process, in the
// datadog headers or, when the extraction style excludes them, the W3C ones. Priority 2 with
// decision maker -4 is a manual keep.
func remoteParent(t traceID, parent uint64) (ddtrace.SpanContext, error) {
	tags := "_dd.p.dm=-4"
	if t.high != 0 {
		tags += fmt.Sprintf(",_dd.p.tid=%016x", t.high)
	}
	ctx, errDD := tracer.Extract(tracer.TextMapCarrier{
		tracer.DefaultTraceIDHeader:  strconv.FormatUint(t.low, 10),
		tracer.DefaultParentIDHeader: strconv.FormatUint(parent, 10),
		tracer.DefaultPriorityHeader: strconv.Itoa(ext.PriorityUserKeep),
		"x-datadog-tags":             tags,
	})
	if errDD == nil {
		return ctx, nil
	}
	ctx, errW3C := tracer.Extract(tracer.TextMapCarrier{
		"traceparent": fmt.Sprintf("00-%s-%016x-01", t, parent),
		"tracestate":  "dd=s:2;t.dm:-4",
	})
	if errW3C == nil {
		return ctx, nil
	}
	return nil, fmt.Errorf("the tracer extracts no parent context from datadog (%w) or W3C headers (%w): "+
		"DD_TRACE_PROPAGATION_STYLE_EXTRACT must keep datadog or tracecontext", errDD, errW3C)
}

// deliveries is what the agent answered to the trace requests of one session.
type deliveries struct {
	mu       sync.Mutex
	accepted int      // traces (chunks) in requests answered 2xx
	failures []string // why the others failed
}

func (d *deliveries) record(req *http.Request, resp *http.Response, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err != nil:
		d.failures = append(d.failures, err.Error())
	case resp.StatusCode/100 != 2:
		d.failures = append(d.failures, fmt.Sprintf("%s %s answered %s", req.Method, req.URL.Path, resp.Status))
	default:
		n, _ := strconv.Atoi(req.Header.Get("X-Datadog-Trace-Count"))
		d.accepted += n
	}
}

// check compares what the agent accepted with the chunks emitted.
func (d *deliveries) check(emitted int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.accepted >= emitted {
		return nil
	}
	why := "no trace request was answered"
	if len(d.failures) > 0 {
		why = strings.Join(d.failures[:min(len(d.failures), 3)], "; ")
	}
	return fmt.Errorf("%w: %d of %d spans accepted: %s", ErrDelivery, d.accepted, emitted, why)
}

// recorder is the tracer's HTTP transport: it passes every request on and records the outcome of
// trace requests (/v0.4/traces, /v1.0/traces).
type recorder struct {
	next http.RoundTripper
	out  *deliveries
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if strings.HasSuffix(req.URL.Path, "/traces") {
		r.out.record(req, resp, err)
	}
	return resp, err
}
