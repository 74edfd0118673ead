package airflow_test

// A sensor in reschedule mode runs one try as several pokes. These tests drive one through the
// simulator (both API versions, both ways a server dates the try), poll it with the real source and
// engine, and hand what was published to the real tracer, sending to the local DataDog receiver,
// and to the BigQuery sink on its emulator: one span per try, from its first start to its end, with
// the pokes inside it, and the same try duration in BigQuery's views.

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/api/iterator"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/sink"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/schemas"
)

// How often the scenario polls while the sensor pokes.
const (
	pollEveryChange = "pokes seen by separate polls"
	pollCollapsed   = "pokes collapsed within one poll interval"
	pollAtEnd       = "try first seen finished"
)

// gotSpan is a received span, its times as offsets from t0.
type gotSpan struct {
	id, parent uint64
	name       string
	start, end time.Duration
	status     string
	isError    bool
}

func (s gotSpan) String() string {
	return fmt.Sprintf("%s %s..%s %s", s.name, s.start, s.end, s.status)
}

// sensorCase is what one scenario must give: the try span and the pokes, as "start..end".
type sensorCase struct {
	polls string
	try   func(o airflowsim.Options) string
	pokes func(o airflowsim.Options) []string
}

func sensorCases() []sensorCase {
	return []sensorCase{
		{
			polls: pollEveryChange,
			try:   func(airflowsim.Options) string { return "5s..5m0s" },
			// Each poke's own start where the server shows it, else its queued time (5 s earlier).
			pokes: func(o airflowsim.Options) []string {
				return []string{"5s..1m0s", perPoke(o, "2m5s", "2m0s") + "..3m0s", perPoke(o, "4m5s", "4m0s") + "..5m0s"}
			},
		},
		{
			polls: pollCollapsed,
			try:   func(airflowsim.Options) string { return "5s..5m0s" },
			// The last poke's own start tells it apart when the server overwrites the start; a
			// server that keeps it shows nothing of the pokes between the two polls.
			pokes: func(o airflowsim.Options) []string {
				if o.SensorStart == airflowsim.StartFirstPoke {
					return nil
				}
				return []string{"4m5s..5m0s"}
			},
		},
		{
			polls: pollAtEnd,
			// Nobody saw the first poke: a server that overwrites the start shows the last one only.
			try:   func(o airflowsim.Options) string { return perPoke(o, "4m5s", "5s") + "..5m0s" },
			pokes: func(airflowsim.Options) []string { return nil },
		},
	}
}

// runSensor plays a run of DAG dag whose only task, the sensor taskID, pokes three times (each
// poke queued at 0, 2m, 4m, running 5 s later and ending a minute after it was queued; the last
// one succeeds), polling as polls says, and hands every published delta to deliver.
// clk is pointed at the scenario's clock.
func runSensor(t *testing.T, simOpts airflowsim.Options, dag, taskID, polls string, clk *laterClock, deliver func(*event.RunDelta)) *env {
	t.Helper()
	e := newEnv(t, envOpts{sim: simOpts})
	clk.c = e.h.Clock
	poll := func(when ...string) {
		if !slices.Contains(when, polls) {
			return
		}
		_, ds := e.poll()
		for _, d := range ds {
			deliver(d)
		}
	}
	e.trigger(dag, "r1", task(taskID, 0))
	e.must(e.sim.SetRunState(dag, "r1", airflowsim.RunRunning))
	wait := e.sim.TI(dag, "r1", taskID)
	for k := range 3 {
		e.must(wait.Advance(airflowsim.Scheduled, airflowsim.Queued))
		e.advance(5 * time.Second)
		e.must(wait.Advance(airflowsim.Running))
		if k == 0 {
			poll(pollEveryChange, pollCollapsed)
		} else {
			poll(pollEveryChange)
		}
		e.advance(55 * time.Second)
		if k < 2 {
			e.must(wait.Advance(airflowsim.UpForReschedule))
			poll(pollEveryChange)
			e.advance(time.Minute)
		}
	}
	e.must(wait.Advance(airflowsim.Success))
	e.must(e.sim.SetRunState(dag, "r1", airflowsim.RunSuccess))
	poll(pollEveryChange, pollCollapsed, pollAtEnd)
	return e
}

// tracerFor starts a local DataDog receiver and a tracer sending to it, on the test's clock.
func tracerFor(t *testing.T, clk *laterClock) (*apm.Tracer, *ddagent.Receiver) {
	t.Helper()
	agent := ddagent.New()
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	tr, err := apm.New(apm.DefaultConfig(), apm.Deps{Clock: clk, Log: quiet,
		Ledger: filestore.New(filepath.Join(t.TempDir(), "ledger.json"), filestore.WithClock(clk)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr, agent
}

// sensorSpans returns the received spans of the sensor and the run's root, checked to form one
// tree: the try span a child of the root, every poke a child of the try span, ids distinct.
func sensorSpans(t *testing.T, agent *ddagent.Receiver) (try gotSpan, pokes []gotSpan) {
	t.Helper()
	var tries []gotSpan
	var root gotSpan
	ids := map[uint64]bool{}
	for _, s := range agent.Spans() {
		g := gotSpan{id: s.SpanID, parent: s.ParentID, name: s.Name, start: s.StartTime().Sub(t0), end: s.EndTime().Sub(t0),
			status: s.Meta["status"], isError: s.Error != 0}
		if ids[g.id] {
			t.Errorf("span id %d received twice", g.id)
		}
		ids[g.id] = true
		switch {
		case s.IsRoot():
			root = g
		case s.Meta["task.id"] != "wait" || s.Resource != "wait":
			t.Errorf("unexpected span %s of %s (resource %s)", g, s.Meta["task.id"], s.Resource)
		case s.Name == apm.OpAirflowTask:
			tries = append(tries, g)
		case s.Name == apm.OpAirflowPoke:
			pokes = append(pokes, g)
		default:
			t.Errorf("span %s: operation %s", g, s.Name)
		}
	}
	if len(tries) != 1 {
		t.Fatalf("the sensor's one try is %d spans, want 1: %v", len(tries), tries)
	}
	try = tries[0]
	if root.id == 0 || try.parent != root.id {
		t.Errorf("try span's parent %d, want the run's root %d", try.parent, root.id)
	}
	for _, p := range pokes {
		if p.parent != try.id {
			t.Errorf("poke %s: parent %d, want the try's span %d", p, p.parent, try.id)
		}
	}
	slices.SortFunc(pokes, func(a, b gotSpan) int { return int(a.start - b.start) })
	return try, pokes
}

func times(s gotSpan) string { return s.start.String() + ".." + s.end.String() }

// TestRescheduledSensorIsOneSpanPerTry: whatever the server does with start_date and however the
// polls fall, the sensor's try is exactly one airflow.task span from its first start to its end,
// succeeded, and its pokes are airflow.poke spans inside it, none dropped as already sent.
func TestRescheduledSensorIsOneSpanPerTry(t *testing.T) {
	for _, c := range sensorCases() {
		t.Run(c.polls, func(t *testing.T) {
			forSensorStarts(t, func(t *testing.T, simOpts airflowsim.Options) {
				clk := &laterClock{}
				tr, agent := tracerFor(t, clk)
				var dups int
				runSensor(t, simOpts, "sensing", "wait", c.polls, clk, func(d *event.RunDelta) {
					res, err := tr.Trace(t.Context(), d)
					if err != nil {
						t.Fatalf("trace: %v", err)
					}
					dups += res.Duplicates
				})
				if dups != 0 {
					t.Errorf("%d spans were not sent as already sent: a span key repeated", dups)
				}
				try, pokes := sensorSpans(t, agent)
				if got, want := times(try), c.try(simOpts); got != want || try.status != string(event.StatusSucceeded) || try.isError {
					t.Errorf("try span %s, error %v; want %s succeeded", try, try.isError, want)
				}
				var got []string
				for _, p := range pokes {
					got = append(got, times(p))
				}
				if want := c.pokes(simOpts); !slices.Equal(got, want) {
					t.Errorf("pokes %q, want %q", got, want)
				}
			})
		})
	}
}

// TestRescheduledSensorDurationAgreesInAPMAndBigQuery: the same deltas to the tracer and to the
// BigQuery sink; the try's duration in APM is the one task_duration_daily reports, counted once.
func TestRescheduledSensorDurationAgreesInAPMAndBigQuery(t *testing.T) {
	const project, dataset = "farm-test", "farm"
	emu := testenv.StartBigQuery(t, project)
	client := emu.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := sink.Setup(ctx, client, dataset, schemas.FS); err != nil {
		t.Fatal(err)
	}
	cfg := sink.DefaultConfig()
	cfg.Mode, cfg.Project, cfg.Dataset, cfg.Endpoint, cfg.Timeout = "bigquery", project, dataset, emu.Endpoint, time.Minute
	bq, err := sink.New(cfg, sink.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bq.Close() })
	apm := map[string]float64{} // by DAG: the try span's seconds
	n, msgs := 0, 0
	for _, c := range sensorCases() {
		t.Run(c.polls, func(t *testing.T) {
			forSensorStarts(t, func(t *testing.T, simOpts airflowsim.Options) {
				n++
				dag := fmt.Sprintf("sensing_%d", n)
				clk := &laterClock{}
				tr, agent := tracerFor(t, clk)
				runSensor(t, simOpts, dag, "wait", c.polls, clk, func(d *event.RunDelta) {
					if _, err := tr.Trace(t.Context(), d); err != nil {
						t.Fatalf("trace: %v", err)
					}
					msgs++
					m := sinktest.Message(t, d, fmt.Sprint(msgs), clk.Now())
					if err := bq.Handle(t.Context(), m); err != nil {
						t.Fatalf("sink: %v", err)
					}
				})
				try, _ := sensorSpans(t, agent)
				apm[dag] = (try.end - try.start).Seconds()
			})
		})
	}
	q := client.Query("SELECT pipeline, attempts, max_seconds FROM farm.task_duration_daily WHERE task = 'wait' ORDER BY pipeline")
	q.DefaultProjectID, q.DefaultDatasetID = project, dataset
	it, err := q.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for {
		var row struct {
			Pipeline   string  `bigquery:"pipeline"`
			Attempts   int64   `bigquery:"attempts"`
			MaxSeconds float64 `bigquery:"max_seconds"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if row.Attempts != 1 {
			t.Errorf("%s: task_duration_daily counts %d attempts of the sensor, want its one try", row.Pipeline, row.Attempts)
		}
		got[row.Pipeline] = row.MaxSeconds
	}
	for dag, secs := range apm {
		if g, ok := got[dag]; !ok || g != secs {
			t.Errorf("%s: BigQuery's try duration %v s (reported: %v), APM's %v s", dag, g, ok, secs)
		}
	}
}

// TestRescheduledSensorInATaskGroup: the group around a rescheduled sensor starts with the try's
// first poke, not with the latest poke the server shows.
func TestRescheduledSensorInATaskGroup(t *testing.T) {
	forSensorStarts(t, func(t *testing.T, simOpts airflowsim.Options) {
		var last *event.TaskEvent
		runSensor(t, simOpts, "sensing", "sense.wait", pollEveryChange, &laterClock{}, func(d *event.RunDelta) {
			for i := range d.Events {
				if d.Events[i].NodeID == "sense" {
					last = &d.Events[i]
				}
			}
		})
		if last == nil || last.State != "success" || !last.StartedAt.Equal(t0.Add(5*time.Second)) || !last.FinishedAt.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("group's last event %+v, want success from 5s to 5m0s", last)
		}
	})
}

// TestRescheduledSensorReplay: a replay, which reads no run state, publishes the sensor's final
// transition with the id it had (the remembered first start is not part of ids), and the tracer
// sends nothing new for it.
func TestRescheduledSensorReplay(t *testing.T) {
	forSensorStarts(t, func(t *testing.T, simOpts airflowsim.Options) {
		clk := &laterClock{}
		tr, agent := tracerFor(t, clk)
		ids := map[string]bool{}
		e := runSensor(t, simOpts, "sensing", "wait", pollEveryChange, clk, func(d *event.RunDelta) {
			for _, ev := range d.Events {
				ids[ev.ID] = true
			}
			if _, err := tr.Trace(t.Context(), d); err != nil {
				t.Fatal(err)
			}
		})
		sent := len(agent.Spans())
		e.advance(time.Minute)
		if _, err := e.engine.Poll(t.Context(), poll.Request{Since: t0, Until: e.h.Clock.Now(), Replay: true}); err != nil {
			t.Fatal(err)
		}
		replayed := e.h.Published()
		final := false
		for _, ev := range polltest.Events(replayed) {
			if ev.NodeID == "wait" && ev.State == "success" {
				final = true
				if !ids[ev.ID] {
					t.Errorf("replayed success has id %s, not one published before", ev.ID)
				}
			}
		}
		if !final {
			t.Fatal("the replay did not publish the sensor's success")
		}
		for _, d := range replayed {
			if res, err := tr.Trace(t.Context(), d); err != nil || res.Sent != 0 {
				t.Errorf("replayed delta traced: %+v, %v; want nothing new", res, err)
			}
		}
		if n := len(agent.Spans()); n != sent {
			t.Errorf("%d spans after the replay, %d before", n, sent)
		}
	})
}
