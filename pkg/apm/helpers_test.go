package apm_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
)

const (
	serviceArgo    = "argo-workflows"
	serviceAirflow = "airflow"
	version        = "1.4.2"
	maxAge         = 18 * time.Hour
)

// env is a Tracer sending to a local receiver, with a file ledger and a manual clock.
type env struct {
	agent  *ddagent.Receiver
	url    string
	clock  *clock.Manual
	ledger state.Ledger
	tracer *apm.Tracer
	logs   *testenv.SyncBuffer
}

// testConfig is the tracer configuration of these tests.
func testConfig() apm.Config {
	return apm.Config{ServiceArgo: serviceArgo, ServiceAirflow: serviceAirflow, Version: version, MaxAge: maxAge, AgentTimeout: 5 * time.Second}
}

// newEnv starts a receiver, points the tracer at it (DD_TRACE_AGENT_URL) and returns a Tracer
// whose clock reads day0 + 10 minutes.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{agent: ddagent.New(), clock: clock.NewManual(day0.Add(10 * time.Minute))}
	srv := httptest.NewServer(e.agent)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	e.ledger = filestore.New(filepath.Join(t.TempDir(), "state.json"), filestore.WithClock(e.clock))
	e.tracer = e.newTracer(t, e.ledger)
	return e
}

func (e *env) newTracer(t *testing.T, ledger state.Ledger) *apm.Tracer {
	t.Helper()
	if e.logs == nil {
		e.logs = &testenv.SyncBuffer{}
	}
	tr, err := apm.New(testConfig(), apm.Deps{Ledger: ledger, Clock: e.clock, Log: logging.New(e.logs, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// wantSpan describes one expected span. Spans are named by key: "run" for the root, else
// "<task.id>#<task.attempt>" as tagged on the span.
type wantSpan struct {
	key, parent    string // parent "" for the root
	name, resource string
	start, end     float64 // seconds after day0
	errType        string  // "" when the span is not an error
	errMsg         string
	meta           map[string]string
	metrics        map[string]float64
}

func key(nodeID string, attempt int) string { return nodeID + "#" + strconv.Itoa(attempt) }

func spanKey(s ddagent.Span) string {
	if s.IsRoot() {
		return "run"
	}
	return key(s.Meta["task.id"], int(s.Metrics["task.attempt"]))
}

// checkTree compares the spans received with want: the exact tree (by parent ids), names,
// resources, service, times, errors and tags, and that all share one 128-bit trace id whose high
// bits are runStart's seconds.
func checkTree(t *testing.T, got []ddagent.Span, service string, runStart time.Time, common map[string]string, want []wantSpan) {
	t.Helper()
	byKey := map[string]ddagent.Span{}
	keyOf := map[uint64]string{}
	for _, s := range got {
		k := spanKey(s)
		if _, dup := byKey[k]; dup {
			t.Errorf("span %s received twice", k)
		}
		byKey[k] = s
		keyOf[s.SpanID] = k
	}
	if len(got) != len(want) {
		t.Errorf("received %d spans, want %d: %v", len(got), len(want), keys(got))
	}
	root, ok := byKey["run"]
	if !ok && len(got) > 0 {
		root = got[0]
	}
	wantTID := fmt.Sprintf("%016x%016x", uint64(uint32(runStart.Unix()))<<32, root.TraceID)
	for _, w := range want {
		s, ok := byKey[w.key]
		if !ok {
			t.Errorf("span %s not received", w.key)
			continue
		}
		checkSpan(t, s, w, service, wantTID, keyOf, common)
	}
	if ok && root.SpanID != root.TraceID {
		t.Errorf("root span id %d is not the trace id %d", root.SpanID, root.TraceID)
	}
}

func checkSpan(t *testing.T, s ddagent.Span, w wantSpan, service, wantTID string, keyOf map[uint64]string, common map[string]string) {
	t.Helper()
	errorf := func(format string, args ...any) { t.Errorf("%s: "+format, append([]any{w.key}, args...)...) }
	if got := s.TraceID128(); got != wantTID {
		errorf("trace id %s, want %s", got, wantTID)
	}
	switch parent := keyOf[s.ParentID]; {
	case w.parent == "" && s.ParentID != 0:
		errorf("parent id %d (%s), want none: the root", s.ParentID, parent)
	case w.parent != "" && parent != w.parent:
		errorf("parent %q (id %d), want %q", parent, s.ParentID, w.parent)
	}
	if s.Name != w.name || s.Resource != w.resource || s.Service != service {
		errorf("name/resource/service %s/%s/%s, want %s/%s/%s", s.Name, s.Resource, s.Service, w.name, w.resource, service)
	}
	if start := at(w.start).UnixNano(); s.Start != start {
		errorf("start %s, want %s", s.StartTime(), at(w.start))
	}
	if d := at(w.end).Sub(*at(w.start)); s.Elapsed() != d {
		errorf("duration %s, want %s", s.Elapsed(), d)
	}
	if (s.Error != 0) != (w.errType != "") || s.Meta["error.type"] != w.errType || s.Meta["error.message"] != w.errMsg {
		errorf("error=%d type=%q message=%q, want type %q message %q", s.Error, s.Meta["error.type"], s.Meta["error.message"], w.errType, w.errMsg)
	}
	if p := s.Metrics["_sampling_priority_v1"]; p != 2 || s.Meta["_dd.p.dm"] != "-4" {
		errorf("sampling priority %v decision maker %q, want a manual keep (2, -4)", p, s.Meta["_dd.p.dm"])
	}
	for k, v := range common {
		if s.Meta[k] != v {
			errorf("meta %s = %q, want %q", k, s.Meta[k], v)
		}
	}
	for k, v := range w.meta {
		if got, ok := s.Meta[k]; (v == "" && ok) || (v != "" && got != v) {
			errorf("meta %s = %q, want %q", k, got, v)
		}
	}
	for k, v := range w.metrics {
		if got, ok := s.Metrics[k]; !ok || got != v {
			errorf("metric %s = %v, want %v", k, got, v)
		}
	}
}

func keys(spans []ddagent.Span) string {
	ks := make([]string, len(spans))
	for i, s := range spans {
		ks[i] = spanKey(s)
	}
	return strings.Join(ks, ", ")
}

// commonArgo and commonAirflow are the tags every span of the fixture runs carries.
var (
	commonArgo = map[string]string{
		"env": environment, "version": version, "tenant": tenant, "pipeline": "etl-nightly", "instance": "prod-eu",
		"run.name": argoWF, "run.id": argoUID, "run.url": argoRunURL, "run.type": "cron_workflow", "kube_namespace": "data",
	}
	commonAirflow = map[string]string{
		"env": environment, "version": version, "tenant": tenant, "pipeline": dagID, "instance": "composer-eu",
		"run.name": dagRunID, "run.id": dagID + "/" + dagRunID, "run.type": "scheduled",
		"airflow.dag_id": dagID, "airflow.run_id": dagRunID,
	}
)

// failing wraps h so that its trace requests after the first skip are answered with status, n
// times.
func failing(h http.Handler, skip, n int, status int) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := false
		if strings.HasSuffix(r.URL.Path, "/traces") {
			if skip > 0 {
				skip--
			} else if n > 0 {
				n--
				fail = true
			}
		}
		mu.Unlock()
		if fail {
			http.Error(w, "agent overloaded", status)
			return
		}
		h.ServeHTTP(w, r)
	})
}
