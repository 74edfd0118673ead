// Package airflowsim is a simulated Apache Airflow web server for FARM's tests, the local runner's
// demonstration and the benchmarks. It serves the REST API of Airflow 2 (/api/v1) or of Airflow 3
// (/api/v2) with payloads shaped like the real ones, including their pitfalls:
//
//   - DAG-run lists silently cap limit at maximum_page_limit (task-instance lists do not on v1; on
//     v2 every GET list is capped, the batch bodies are not), so clients must page to
//     total_entries;
//   - v1 validates query parameters strictly (an unknown one is a 400, so updated_at_gte is refused
//     before 2.6 and order_by on task instances before 2.10.1) while v2 ignores unknown ones;
//   - naive datetimes are refused (400 on v1, 422 on v2); v1 answers "+00:00", v2 "Z";
//   - POST /dags/~/dagRuns/list on v1 silently ignores keys it does not know (updated_at_gte among
//     them) while the task-instance batch refuses them; v2 refuses unknown keys in every body;
//   - v1 task-instance lists have no stable order before 2.10.1: rows come back in their physical
//     order, which an update changes;
//   - the scheduler touches every running run on each loop, and Airflow 3 heartbeats every running
//     task instance into its row: updated_at_gte never excludes a running run, nor on v2 a
//     running task instance;
//   - Airflow 3's /auth/token JWTs expire; 401 and 403 answer in each version's error shape;
//   - faults (status codes, Retry-After, hangs) can be injected per path.
//
// Task instances follow Airflow 2.10+ semantics: the scheduler increments try_number when it
// schedules a new try (not for a sensor reschedule or a deferral), a row only shows its latest try,
// a failed try goes to the history the tries endpoint serves as soon as it is up_for_retry (2.10.0
// to 2.10.3 then list it twice), and a clear resets the state to null keeping the try number. A
// rescheduled sensor's poke overwrites start_date as Airflow 2.0 to 3.2 do, unless SensorStart
// keeps the first poke's; a resumed deferral keeps its start. Runs are scripted exactly (TriggerRun, TI(...).Advance) or generated
// as an estate on an injected clock (Estate). Every transition exposed is kept as ground truth.
package airflowsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

// Auth configures how the simulated server authenticates API calls.
type Auth struct {
	// Mode is none (default), basic, bearer (static tokens, e.g. Composer's Google access tokens)
	// or jwt (Airflow 3's POST /auth/token).
	Mode     string
	Username string
	Password string
	// Tokens are the bearer tokens accepted in bearer mode.
	Tokens []string
	// JWTTTL is the lifetime of tokens from /auth/token ([api_auth] jwt_expiration_time; default
	// 24h).
	JWTTTL time.Duration
}

// Options configure a Server.
type Options struct {
	// API is v1 (Airflow 2, default) or v2 (Airflow 3).
	API string
	// Version is the Airflow release reported by /version and deciding v1 features (default
	// 2.10.5 for v1, 3.0.2 for v2).
	Version string
	// Clock drives every time the server reports (default: the wall clock).
	Clock clock.Clock
	// MaxPageLimit is [api] maximum_page_limit (default 100).
	MaxPageLimit int
	Auth         Auth
	// SensorStart is what a reschedule-mode sensor's start_date shows while its try goes on:
	// StartPerPoke (the default) or StartFirstPoke.
	SensorStart SensorStart
}

// SensorStart is how a server dates a try of a sensor in reschedule mode, which runs as several
// pokes (running → up_for_reschedule → scheduled → queued → running …) under one try number.
type SensorStart int

const (
	// StartPerPoke overwrites start_date with each poke's start, as Airflow 2.0 through 3.2 do
	// (upstream issues 15645, 30552, 66784): the try's first start is no longer shown.
	StartPerPoke SensorStart = iota
	// StartFirstPoke keeps the first poke's start for the whole try, as Airflow 1.10 did and 3.x
	// does with upstream PR 66790.
	StartFirstPoke
)

// Server is a simulated Airflow web server. It is an http.Handler; safe for concurrent use.
type Server struct {
	v        version
	clk      clock.Clock
	maxLimit int
	auth     Auth
	jwtKey   []byte

	mu        sync.Mutex
	w         *world
	estate    *Estate
	faults    []*Fault
	requests  []Request
	forbidden bool
	issued    int
	// at is the instant the answer being built reflects, read once per request (zero outside
	// one): every time in one answer comes from it, so no answer straddles a state change.
	at time.Time
}

// New returns a simulated server with no runs.
func New(opts Options) (*Server, error) {
	v, err := parseVersion(opts.API, opts.Version)
	if err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.MaxPageLimit <= 0 {
		opts.MaxPageLimit = 100
	}
	if opts.SensorStart != StartPerPoke && opts.SensorStart != StartFirstPoke {
		return nil, fmt.Errorf("airflowsim: sensor start behaviour %d: want StartPerPoke or StartFirstPoke", opts.SensorStart)
	}
	switch opts.Auth.Mode {
	case "":
		opts.Auth.Mode = "none"
	case "none", "basic", "bearer":
	case "jwt":
		if v.api != "v2" {
			return nil, errors.New("airflowsim: jwt auth (/auth/token) exists only on Airflow 3 (v2)")
		}
	default:
		return nil, fmt.Errorf("airflowsim: auth mode %q: want none, basic, bearer or jwt", opts.Auth.Mode)
	}
	if opts.Auth.JWTTTL <= 0 {
		opts.Auth.JWTTTL = 24 * time.Hour
	}
	return &Server{
		v: v, clk: opts.Clock, maxLimit: opts.MaxPageLimit, auth: opts.Auth,
		jwtKey: []byte("airflowsim-signing-key"), w: newWorld(v, opts.SensorStart),
	}, nil
}

// instant is the time the answer being built reflects; outside a request, the clock's. Called
// with the lock held.
func (s *Server) instant() time.Time {
	if !s.at.IsZero() {
		return s.at
	}
	return s.clk.Now().UTC()
}

// API returns v1 or v2.
func (s *Server) API() string { return s.v.api }

// Request is one API call the server received.
type Request struct {
	Method string
	Path   string // unescaped
	Query  url.Values
	Body   []byte
	Status int
}

// Requests returns the calls received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the calls received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

// TokensIssued counts the JWTs /auth/token has issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// SetForbidden makes every API call answer 403 (the credentials are valid, the role lacks the
// permission), or stops doing so.
func (s *Server) SetForbidden(on bool) {
	s.mu.Lock()
	s.forbidden = on
	s.mu.Unlock()
}

// Fault is an injected failure for calls whose path starts with PathPrefix (the unescaped path,
// e.g. "/api/v1/dags/~/dagRuns"; empty matches every call) and, when set, whose method is Method.
type Fault struct {
	Method     string
	PathPrefix string
	// Status answers with this code (500, 502, 429…) and a body in the server's error shape.
	Status int
	// RetryAfter is sent as the Retry-After header when set.
	RetryAfter string
	// Hang holds the call until the client gives up (its context ends).
	Hang bool
	// Times is how many calls fail (0: every call until ClearFaults).
	Times int
	hits  int
}

// InjectFault adds a fault; faults are tried in the order they were added.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

func (s *Server) takeFault(method, path string) *Fault {
	for _, f := range s.faults {
		if (f.Method == "" || f.Method == method) && strings.HasPrefix(path, f.PathPrefix) && (f.Times == 0 || f.hits < f.Times) {
			f.hits++
			cp := *f
			return &cp
		}
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// ServeHTTP serves the simulated API.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	rec := &statusRecorder{ResponseWriter: rw, status: http.StatusOK}
	s.mu.Lock()
	idx := len(s.requests)
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body})
	fault := s.takeFault(r.Method, r.URL.Path)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if idx < len(s.requests) {
			s.requests[idx].Status = rec.status
		}
		s.mu.Unlock()
	}()
	if fault != nil {
		s.serveFault(r.Context(), rec, fault)
		return
	}
	s.route(rec, r, body)
}

func (s *Server) serveFault(ctx context.Context, w http.ResponseWriter, f *Fault) {
	if f.Hang {
		<-ctx.Done()
		return
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	s.fail(w, f.Status, http.StatusText(f.Status))
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	path := r.URL.Path
	if path == "/auth/token" {
		s.issueToken(w, r, body)
		return
	}
	prefix := s.v.prefix()
	if !strings.HasPrefix(path, prefix+"/") {
		s.notFoundRoute(w, path)
		return
	}
	if !s.authenticated(r) {
		s.unauthorized(w)
		return
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), prefix)
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	for i, sg := range segs {
		if u, err := url.PathUnescape(sg); err == nil {
			segs[i] = u
		}
	}
	if segs[0] == "version" && len(segs) == 1 && r.Method == http.MethodGet {
		s.writeJSON(w, http.StatusOK, map[string]any{"version": s.v.str, "git_version": nil})
		return
	}
	s.mu.Lock()
	forbidden := s.forbidden
	s.mu.Unlock()
	if forbidden {
		s.forbid(w)
		return
	}
	// The whole answer is built under the lock, from one reading of the clock.
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now().UTC()
	if s.estate != nil {
		s.estate.advance(now)
	}
	s.at = now
	defer func() { s.at = time.Time{} }()
	status, out := s.dispatch(r.Method, segs, r.URL.Query(), body)
	if bad, ok := out.(*badRequest); ok {
		s.failDetail(w, bad.status, bad.detail)
		return
	}
	if status != http.StatusOK {
		s.fail(w, status, fmt.Sprint(out))
		return
	}
	s.writeJSON(w, status, out)
}

// dispatch answers the API routes under the version prefix. It returns a status and either a
// body to encode, a *badRequest, or (for other errors) the message.
func (s *Server) dispatch(method string, segs []string, q url.Values, body []byte) (int, any) {
	n := len(segs)
	if n < 3 || segs[0] != "dags" || segs[2] != "dagRuns" {
		return http.StatusNotFound, "Not Found"
	}
	dag := segs[1]
	switch {
	case n == 3 && method == http.MethodGet:
		return s.listRuns(dag, q)
	case n == 4 && segs[3] == "list" && method == http.MethodPost && dag == "~":
		return s.listRunsBatch(body)
	case n == 4 && method == http.MethodGet:
		return s.getRun(dag, segs[3])
	case n == 5 && segs[4] == "taskInstances" && method == http.MethodGet:
		return s.listTIs(dag, segs[3], q)
	case n == 6 && segs[4] == "taskInstances" && segs[5] == "list" && method == http.MethodPost && dag == "~" && segs[3] == "~":
		return s.listTIsBatch(body)
	case (n == 7 || n == 8) && segs[4] == "taskInstances" && segs[n-1] == "tries" && method == http.MethodGet && s.v.tries():
		mi := -1
		if n == 8 {
			v, err := strconv.Atoi(segs[6])
			if err != nil {
				return http.StatusNotFound, "Not Found"
			}
			mi = v
		}
		return s.tries(tiKey{dag, segs[3], segs[5], mi}, q)
	}
	if method != http.MethodGet && method != http.MethodPost {
		return http.StatusMethodNotAllowed, "Method Not Allowed"
	}
	return http.StatusNotFound, "Not Found"
}

// notFoundRoute answers a path outside the served API as the real servers do: Airflow 3 answers
// {"error": …} for anything under /api (and says /api/v1 is gone); Airflow 2 serves its HTML 404.
func (s *Server) notFoundRoute(w http.ResponseWriter, path string) {
	if s.v.api == "v2" {
		msg := "API route not found"
		if strings.HasPrefix(path, "/api/v1/") {
			msg = "/api/v1 has been removed in Airflow 3, please use its upgraded version /api/v2 instead."
		}
		s.writeJSON(w, http.StatusNotFound, map[string]string{"error": msg})
		return
	}
	if strings.HasPrefix(path, "/api/v1/") {
		s.fail(w, http.StatusNotFound, "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Airflow 404</title></head><body><h1>Airflow 404 = lots of circles</h1></body></html>")
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers an error in the version's shape: RFC 7807 problem JSON on v1, {"detail"} on v2.
func (s *Server) fail(w http.ResponseWriter, status int, detail string) {
	s.failDetail(w, status, detail)
}

// failDetail is fail with a structured detail (v2 validation errors are a list).
func (s *Server) failDetail(w http.ResponseWriter, status int, detail any) {
	if s.v.api == "v2" {
		s.writeJSON(w, status, map[string]any{"detail": detail})
		return
	}
	title := http.StatusText(status)
	body := map[string]any{
		"detail": detail, "status": status, "title": title,
		"type": "https://airflow.apache.org/docs/apache-airflow/" + s.v.str + "/stable-rest-api-ref.html#section/Errors/" + strings.ReplaceAll(title, " ", ""),
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(body)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
