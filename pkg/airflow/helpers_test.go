package airflow_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/pkg/state/firestore"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.DiscardHandler)

// TestMain stops the Firestore emulator the Firestore-backed tests start.
func TestMain(m *testing.M) { testenv.Main(m) }

// env is a simulated Airflow, a Source reading it and a poll engine publishing to the in-process
// Pub/Sub, all on one manual clock.
type env struct {
	t      *testing.T
	h      *polltest.Harness
	sim    *airflowsim.Server
	srv    *httptest.Server
	src    *airflow.Source
	engine *poll.Engine
	store  state.Store

	mu     sync.Mutex
	sleeps []time.Duration
}

type envOpts struct {
	firestore bool // the Firestore store on the emulator instead of the file store
	sim       airflowsim.Options
	simClock  clock.Clock // the simulator's own clock (default: the harness clock)
	source    func(*sourceSetup)
	handler   func(http.Handler) http.Handler // wraps the simulator (faults beyond its own)
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	// The store expires runs on the same manual clock as everything else.
	clk := &laterClock{}
	var store state.Store = filestore.New(filepath.Join(t.TempDir(), "state.json"), filestore.WithClock(clk))
	if o.firestore {
		store = firestore.New(testenv.Firestore(t), firestore.WithClock(clk))
	}
	h := polltest.New(t, store, t0)
	clk.c = h.Clock
	o.sim.Clock = h.Clock
	if o.simClock != nil {
		o.sim.Clock = o.simClock
	}
	sim, err := airflowsim.New(o.sim)
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = sim
	if o.handler != nil {
		handler = o.handler(sim)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	e := &env{t: t, h: h, sim: sim, srv: srv, store: store}
	e.src = e.newSource(o.source)
	e.engine = h.Engine(e.src, poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour})
	return e
}

// sourceSetup is what a test may change of a Source's configuration and dependencies.
type sourceSetup struct {
	airflow.Config
	airflow.Deps
}

// newSource returns a Source on the simulator; retries wait on a recorded, instant sleep.
func (e *env) newSource(mod func(*sourceSetup)) *airflow.Source {
	e.t.Helper()
	u, _ := url.Parse(e.srv.URL)
	o := sourceSetup{Config: airflow.DefaultConfig(), Deps: airflow.Deps{Clock: e.h.Clock, Log: quiet,
		HTTP: []httpx.Option{
			httpx.WithJitter(func(d time.Duration) time.Duration { return d }),
			httpx.WithSleep(func(ctx context.Context, d time.Duration) error {
				e.mu.Lock()
				e.sleeps = append(e.sleeps, d)
				e.mu.Unlock()
				return ctx.Err()
			}),
		}}}
	o.URL, o.Instance, o.PageSize, o.HTTPTimeout, o.HTTPRetries = u, "test", 100, 2*time.Second, 3
	o.DagExclude = nil
	if mod != nil {
		mod(&o)
	}
	src, err := airflow.New(o.Config, o.Deps)
	if err != nil {
		e.t.Fatal(err)
	}
	return src
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// trigger creates a run now (logical date = now unless manual on v2).
func (e *env) trigger(dag, run string, tasks ...airflowsim.TaskSpec) {
	e.t.Helper()
	ld := e.h.Clock.Now()
	e.must(e.sim.TriggerRun(airflowsim.RunSpec{DagID: dag, RunID: run, LogicalDate: &ld, Tasks: tasks}))
}

func (e *env) advance(d time.Duration) { e.h.Clock.Advance(d) }

// poll runs an incremental poll and returns what it published.
func (e *env) poll() (*poll.Result, []*event.RunDelta) {
	e.t.Helper()
	res, err := e.engine.Poll(e.t.Context(), poll.Request{})
	if err != nil {
		e.t.Fatalf("poll: %v", err)
	}
	return res, e.h.Published()
}

// transitions returns the published transitions of node, in order.
func transitions(deltas []*event.RunDelta, node string) []string {
	var out []string
	for _, d := range deltas {
		for _, ev := range d.Events {
			if ev.NodeID == node {
				out = append(out, describe(ev))
			}
		}
	}
	return out
}

// describe is a compact view: "#attempt prev->state start..end" with times as clock offsets.
func describe(ev event.TaskEvent) string {
	off := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Sub(t0).String()
	}
	prev := ev.PrevState
	if prev == "" {
		prev = "·"
	}
	return "#" + strconv.Itoa(ev.Attempt) + " " + prev + "->" + ev.State + " " + off(ev.StartedAt) + ".." + off(ev.FinishedAt)
}

// requests returns the simulator's calls whose path contains part.
func (e *env) requests(part string) []airflowsim.Request {
	var out []airflowsim.Request
	for _, r := range e.sim.Requests() {
		if strings.Contains(r.Path, part) {
			out = append(out, r)
		}
	}
	return out
}

func task(id string, retries int) airflowsim.TaskSpec {
	return airflowsim.TaskSpec{ID: id, Retries: retries}
}

func forAPIs(t *testing.T, f func(t *testing.T, sim airflowsim.Options)) {
	for _, o := range []airflowsim.Options{{API: "v1", Version: "2.10.0"}, {API: "v2", Version: "3.0.2"}} {
		t.Run(o.API, func(t *testing.T) { f(t, o) })
	}
}

// forSensorStarts runs f on both API versions with each way a server dates a rescheduled sensor's
// try: start_date overwritten by every poke (Airflow 2.0–3.2, the simulator's default) or the first
// poke's start kept.
func forSensorStarts(t *testing.T, f func(t *testing.T, sim airflowsim.Options)) {
	for _, o := range []airflowsim.Options{{API: "v1", Version: "2.10.0"}, {API: "v2", Version: "3.0.2"}} {
		for _, b := range []struct {
			name  string
			start airflowsim.SensorStart
		}{{"start per poke", airflowsim.StartPerPoke}, {"first start kept", airflowsim.StartFirstPoke}} {
			o.SensorStart = b.start
			t.Run(o.API+"/"+b.name, func(t *testing.T) { f(t, o) })
		}
	}
}

// perPoke returns own when the server overwrites a rescheduled sensor's start with each poke's,
// else first.
func perPoke(o airflowsim.Options, own, first string) string {
	if o.SensorStart == airflowsim.StartFirstPoke {
		return first
	}
	return own
}

// bodyRewriter holds a response back so a test can alter it (a server misbehaving).
type bodyRewriter struct {
	http.ResponseWriter
	buf    bytes.Buffer
	status int
}

func (b *bodyRewriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bodyRewriter) WriteHeader(code int)        { b.status = code }

// laterClock reads a clock set after it is handed out (the harness creates its clock).
type laterClock struct{ c clock.Clock }

func (l *laterClock) Now() time.Time { return l.c.Now() }
