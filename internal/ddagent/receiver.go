// Package ddagent is a local stand-in for the DataDog agent's trace intake: it speaks the part of
// the agent's HTTP API that a tracer uses, decodes the msgpack payloads into spans, keeps them for
// inspection and can print every finished trace as an indented waterfall.
//
// Tests point the real tracer at it and inspect what arrived the moment the code under test
// returns: a payload is stored before its request is answered, so a caller that waited for the
// tracer's HTTP response (tracer.Stop does) finds it here, with no waiting or polling. The local
// runner starts it on the agent port when no agent is configured, so traces can be seen without a
// DataDog account.
//
// What it answers, and why:
//
//	PUT|POST /v0.4/traces          decoded and stored; 200 {"rate_by_service":{...}} as the agent
//	                               answers. A payload that does not decode, or whose
//	                               X-Datadog-Trace-Count header disagrees with its content, is
//	                               refused with 400 so a broken encoder cannot go unnoticed.
//	GET /info                      200 with an agent's JSON listing only /v0.4/traces and the
//	                               telemetry proxy: a tracer reads /info to learn the agent's
//	                               features, so it stays on the v0.4 protocol (dd-trace-go moves
//	                               to /v1.0/traces only when /info lists it) and computes no
//	                               client-side stats (no /v0.6/stats). The local runner recognises
//	                               an agent by this answer before sending to it.
//	POST /telemetry/...            202, counted and discarded: instrumentation telemetry
//	                               (DD_INSTRUMENTATION_TELEMETRY_ENABLED) must not disturb traces.
//	PUT|POST /v0.6/stats           200, counted and discarded.
//	anything else                  404 (e.g. /v0.7/config: remote configuration is off).
package ddagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxPayloadBytes bounds a trace payload, above the agent's own 25 MB limit and the tracer's
// 9.5 MB payload cap.
const maxPayloadBytes = 50 << 20

// infoJSON is the agent's /info answer, reduced to what a tracer reads: the endpoints.
const infoJSON = `{"version":"farm-local-receiver","endpoints":["/v0.4/traces","/telemetry/proxy/"],"client_drop_p0s":false,"span_meta_structs":false,"config":{}}`

// Counts says what a Receiver has been sent.
type Counts struct {
	TracePayloads int // accepted trace payloads (requests)
	Chunks        int // traces (chunks) in accepted payloads
	Spans         int // spans in accepted payloads
	Rejected      int // trace payloads refused with 400
	Faults        int // trace payloads refused by the WithFault function
	Info          int // GET /info
	Telemetry     int
	Stats         int
	Other         int // anything answered 404
}

// Trace is the spans received for one trace id (its low 64 bits, which is how the backend joins
// chunks), in arrival order.
type Trace struct {
	ID    uint64
	Spans []Span
}

// Root returns the trace's root span (parent 0), if it has arrived.
func (t Trace) Root() (Span, bool) {
	for _, s := range t.Spans {
		if s.IsRoot() {
			return s, true
		}
	}
	return Span{}, false
}

// Receiver is the agent stand-in. It is an http.Handler; Serve runs it on an address. Safe for
// concurrent use.
type Receiver struct {
	log      *slog.Logger
	out      io.Writer
	maxSpans int
	notify   func(chunks [][]Span)
	fault    func([][]Span) int

	mu     sync.Mutex
	traces map[uint64]*Trace
	order  []uint64 // trace ids, first seen first
	stored int      // spans held in traces
	counts Counts

	printMu sync.Mutex // keeps waterfalls whole when payloads arrive concurrently
}

// Option configures a Receiver.
type Option func(*Receiver)

// WithLogger sets where the receiver logs refused payloads (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(r *Receiver) { r.log = l } }

// PrintTo makes the receiver write the waterfall of a trace to w whenever a payload brings the
// trace's root span (the run finished), with every span received for it so far.
func PrintTo(w io.Writer) Option { return func(r *Receiver) { r.out = w } }

// MaxSpans bounds the spans kept (0, the default, keeps everything): beyond it the oldest traces
// are forgotten whole. The local runner sets it so a long session does not grow without end.
func MaxSpans(n int) Option { return func(r *Receiver) { r.maxSpans = n } }

// Notify calls fn with the spans of every accepted payload, as it is accepted (before the answer
// is written): the freshness benchmark dates arrivals with it. fn must not keep the slices.
func Notify(fn func(chunks [][]Span)) Option { return func(r *Receiver) { r.notify = fn } }

// WithFault makes the receiver ask fault about every trace payload it decoded, before keeping it:
// a status of 400 or more is answered instead, and the payload is not kept (an agent that refused
// it). Tests use it to fail the payloads holding given spans; fault may block to hold a payload.
func WithFault(fault func(chunks [][]Span) (status int)) Option {
	return func(r *Receiver) { r.fault = fault }
}

// New returns a Receiver.
func New(opts ...Option) *Receiver {
	r := &Receiver{log: slog.Default(), traces: map[uint64]*Trace{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// ServeHTTP answers one request of the agent API.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch path := req.URL.Path; {
	case path == "/v0.4/traces":
		if !allow(w, req, http.MethodPut, http.MethodPost) {
			return
		}
		r.traces04(w, req)
	case path == "/info":
		r.count(func(c *Counts) { c.Info++ })
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, infoJSON)
	case strings.HasPrefix(path, "/telemetry/"):
		r.discard(req, func(c *Counts) { c.Telemetry++ })
		w.WriteHeader(http.StatusAccepted)
	case path == "/v0.6/stats":
		if !allow(w, req, http.MethodPut, http.MethodPost) {
			return
		}
		r.discard(req, func(c *Counts) { c.Stats++ })
		w.WriteHeader(http.StatusOK)
	default:
		r.discard(req, func(c *Counts) { c.Other++ })
		http.NotFound(w, req)
	}
}

func allow(w http.ResponseWriter, req *http.Request, methods ...string) bool {
	for _, m := range methods {
		if req.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method "+req.Method+" not allowed", http.StatusMethodNotAllowed)
	return false
}

func (r *Receiver) traces04(w http.ResponseWriter, req *http.Request) {
	chunks, err := r.decode(w, req)
	if err != nil {
		r.count(func(c *Counts) { c.Rejected++ })
		r.log.WarnContext(req.Context(), "local DataDog receiver refused a trace payload", "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.fault != nil {
		if status := r.fault(chunks); status >= 400 {
			r.count(func(c *Counts) { c.Faults++ })
			http.Error(w, "fault injected", status)
			return
		}
	}
	finished := r.store(chunks)
	if r.notify != nil {
		r.notify(chunks)
	}
	r.print(finished)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"rate_by_service":{"service:,env:":1}}`)
}

func (r *Receiver) decode(w http.ResponseWriter, req *http.Request) ([][]Span, error) {
	want, err := traceCount(req.Header.Get("X-Datadog-Trace-Count"))
	if err != nil {
		return nil, err
	}
	return decodeV04(http.MaxBytesReader(w, req.Body, maxPayloadBytes), want)
}

// store keeps the chunks and returns the traces whose root arrived with them.
func (r *Receiver) store(chunks [][]Span) []Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts.TracePayloads++
	r.counts.Chunks += len(chunks)
	var rooted []uint64
	for _, c := range chunks {
		r.counts.Spans += len(c)
		for _, s := range c {
			t, ok := r.traces[s.TraceID]
			if !ok {
				t = &Trace{ID: s.TraceID}
				r.traces[s.TraceID] = t
				r.order = append(r.order, s.TraceID)
			}
			t.Spans = append(t.Spans, s)
			r.stored++
			if s.IsRoot() {
				rooted = append(rooted, s.TraceID)
			}
		}
	}
	var finished []Trace
	if r.out != nil {
		for _, id := range rooted {
			finished = append(finished, copyTrace(r.traces[id]))
		}
	}
	r.evict()
	return finished
}

// evict forgets the oldest traces while more than maxSpans spans are kept.
func (r *Receiver) evict() {
	for r.maxSpans > 0 && r.stored > r.maxSpans && len(r.order) > 1 {
		id := r.order[0]
		r.order = r.order[1:]
		r.stored -= len(r.traces[id].Spans)
		delete(r.traces, id)
	}
}

func (r *Receiver) print(traces []Trace) {
	if r.out == nil || len(traces) == 0 {
		return
	}
	r.printMu.Lock()
	defer r.printMu.Unlock()
	for _, t := range traces {
		if err := WriteWaterfall(r.out, t); err != nil {
			r.log.Warn("local DataDog receiver cannot print a trace", "error", err)
			return
		}
	}
}

func (r *Receiver) discard(req *http.Request, inc func(*Counts)) {
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, maxPayloadBytes))
	r.count(inc)
}

func (r *Receiver) count(inc func(*Counts)) {
	r.mu.Lock()
	inc(&r.counts)
	r.mu.Unlock()
}

// Counts returns what the receiver has been sent so far.
func (r *Receiver) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

// Traces returns a copy of every trace kept, first seen first.
func (r *Receiver) Traces() []Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Trace, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, copyTrace(r.traces[id]))
	}
	return out
}

// Spans returns a copy of every span kept, in trace order then arrival order.
func (r *Receiver) Spans() []Span {
	var out []Span
	for _, t := range r.Traces() {
		out = append(out, t.Spans...)
	}
	return out
}

// Reset forgets every trace and count.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traces = map[uint64]*Trace{}
	r.order = nil
	r.stored = 0
	r.counts = Counts{}
}

// Waterfall writes the waterfall of every trace kept to w.
func (r *Receiver) Waterfall(w io.Writer) error {
	for _, t := range r.Traces() {
		if err := WriteWaterfall(w, t); err != nil {
			return err
		}
	}
	return nil
}

func copyTrace(t *Trace) Trace {
	spans := make([]Span, len(t.Spans))
	for i, s := range t.Spans {
		spans[i] = copySpan(s)
	}
	return Trace{ID: t.ID, Spans: spans}
}

func copySpan(s Span) Span {
	if s.Meta != nil {
		m := make(map[string]string, len(s.Meta))
		for k, v := range s.Meta {
			m[k] = v
		}
		s.Meta = m
	}
	if s.Metrics != nil {
		m := make(map[string]float64, len(s.Metrics))
		for k, v := range s.Metrics {
			m[k] = v
		}
		s.Metrics = m
	}
	return s
}

// Serve listens on addr (host:port; port 0 picks one) and serves r until ctx is done or stop is
// called. It returns once the listener is open, with the address it listens on.
func (r *Receiver) Serve(ctx context.Context, addr string) (listening string, stop func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("local DataDog receiver stopped", "address", ln.Addr().String(), "error", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			<-done
		})
	}
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-done:
		}
	}()
	return ln.Addr().String(), stop, nil
}

// localMaxSpans bounds what a local runner's receiver keeps.
const localMaxSpans = 100_000

// LocalAgent returns what the local runner starts when no DataDog agent is configured
// (local.Options.Agent): a receiver on addr that writes each trace to w as a waterfall when its run
// finishes, keeping the newest 100,000 spans. It returns the address it listens on.
func LocalAgent(w io.Writer) func(ctx context.Context, addr string) (listening string, stop func(), err error) {
	return func(ctx context.Context, addr string) (string, func(), error) {
		return New(PrintTo(w), MaxSpans(localMaxSpans)).Serve(ctx, addr)
	}
}
