package argosim

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint names a group of requests, for faults and counters.
type Endpoint string

// Endpoints of the simulated server.
const (
	EndpointAny          Endpoint = ""
	EndpointList         Endpoint = "list"          // GET /api/v1/workflows/{namespace}
	EndpointGet          Endpoint = "get"           // GET /api/v1/workflows/{namespace}/{name}
	EndpointArchivedList Endpoint = "archived-list" // GET /api/v1/archived-workflows
	EndpointArchivedGet  Endpoint = "archived-get"  // GET /api/v1/archived-workflows/{uid}
	EndpointOther        Endpoint = "other"
)

// FaultKind is a way for a request to fail.
type FaultKind int

// Faults the server can inject.
const (
	// FaultInternal answers 500 {"code":13,...}.
	FaultInternal FaultKind = iota + 1
	// FaultUnavailable answers 503 with a plain-text body, as a load balancer in front would.
	FaultUnavailable
	// FaultRateLimited answers 429 with a Retry-After header.
	FaultRateLimited
	// FaultHang answers nothing until the client gives up (its deadline) or the server closes.
	FaultHang
	// FaultMalformed answers 200 with a truncated JSON body.
	FaultMalformed
	// FaultUnauthorized answers 401 as for an invalid token.
	FaultUnauthorized
	// FaultForbidden answers 403 as for missing RBAC permissions.
	FaultForbidden
)

// Fault makes the next Count requests to Endpoint (any, when empty) fail with Kind.
type Fault struct {
	Kind       FaultKind
	Endpoint   Endpoint
	Count      int           // default 1
	RetryAfter time.Duration // FaultRateLimited; default 1s
}

type faultQueue struct {
	mu     sync.Mutex
	queued []Fault
}

// InjectFault queues a fault. Queued faults are used in order: a request takes the first one
// that applies to its endpoint.
func (s *Server) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.queued = append(s.faults.queued, f)
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.queued = nil
}

func (q *faultQueue) take(ep Endpoint) (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.queued {
		f := &q.queued[i]
		if f.Endpoint != EndpointAny && f.Endpoint != ep {
			continue
		}
		got := *f
		if f.Count--; f.Count == 0 {
			q.queued = append(q.queued[:i], q.queued[i+1:]...)
		}
		return got, true
	}
	return Fault{}, false
}

func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, rt route, f Fault) {
	switch f.Kind {
	case FaultInternal:
		writeError(w, errorf(codeInternal, "simulated fault: internal error"))
	case FaultUnavailable:
		http.Error(w, "upstream connect error or disconnect/reset before headers (simulated)", http.StatusServiceUnavailable)
	case FaultRateLimited:
		after := f.RetryAfter
		if after <= 0 {
			after = time.Second
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((after+time.Second-1)/time.Second)))
		writeError(w, errorf(codeResourceExhausted, "simulated fault: too many requests"))
	case FaultHang:
		if s.hangHook != nil {
			s.hangHook()
		}
		select {
		case <-r.Context().Done():
		case <-s.closed:
			writeError(w, errorf(codeUnavailable, "simulated fault: server closed"))
		}
	case FaultMalformed:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"trunc`))
	case FaultUnauthorized:
		writeError(w, errUnauthenticated)
	case FaultForbidden:
		if rt.ep == EndpointList {
			writeError(w, errorf(codePermissionDenied, "Permission denied, you are not allowed to list workflows in namespace %q. Maybe you want to specify a namespace with query parameter `.namespace=%s`?", rt.namespace, rt.namespace))
			return
		}
		writeError(w, errorf(codePermissionDenied, "permission denied"))
	}
}

var errUnauthenticated = errorf(codeUnauthenticated, "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/")

// EndpointStats counts requests to one endpoint.
type EndpointStats struct {
	Calls  int64 // requests received
	Bytes  int64 // response body bytes written
	Errors int64 // answers with a status >= 400, and requests that got no answer
}

// Stats are per-endpoint counters.
type Stats map[Endpoint]EndpointStats

// Total sums every endpoint.
func (st Stats) Total() EndpointStats {
	var t EndpointStats
	for _, e := range st {
		t.Calls += e.Calls
		t.Bytes += e.Bytes
		t.Errors += e.Errors
	}
	return t
}

type counter struct{ calls, bytes, errors atomic.Int64 }

type stats struct {
	mu sync.Mutex
	by map[Endpoint]*counter
}

func (s *stats) get(ep Endpoint) *counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[Endpoint]*counter{}
	}
	c, ok := s.by[ep]
	if !ok {
		c = &counter{}
		s.by[ep] = c
	}
	return c
}

// Stats returns the request counters since the start or the last ResetStats.
func (s *Server) Stats() Stats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := Stats{}
	for ep, c := range s.stats.by {
		out[ep] = EndpointStats{Calls: c.calls.Load(), Bytes: c.bytes.Load(), Errors: c.errors.Load()}
	}
	return out
}

// ResetStats zeroes the request counters.
func (s *Server) ResetStats() {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	s.stats.by = nil
}
