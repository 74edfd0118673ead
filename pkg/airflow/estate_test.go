package airflow_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/event"
)

// Polling a generated estate (task groups, mapped tasks, sensors rescheduling, retries,
// failures, branches) every minute while each run changes every 15 seconds on average: every try of
// every task instance ends up recorded in the state the simulator last exposed, with its times,
// and nothing is recorded that the simulator did not expose.
func TestEstateEveryTryRecorded(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		spec := airflowsim.EstateSpec{DAGs: 4, ActiveRuns: 8, TasksPerRun: 9, StepEvery: 15 * time.Second, RetryRate: 0.25, FailRate: 0.2, Seed: 11}
		if _, err := e.sim.StartEstate(spec); err != nil {
			t.Fatal(err)
		}
		recorded := map[string]event.TaskEvent{} // by run/node#attempt: the last event
		for range 60 {
			e.advance(time.Minute)
			_, deltas := e.poll()
			for _, d := range deltas {
				for _, ev := range d.Events {
					if ev.Type == airflow.TypeTask {
						recorded[d.Run.UID+"/"+ev.NodeID+"#"+strconv.Itoa(ev.Attempt)] = ev
					}
				}
			}
		}
		type try struct {
			state      string
			start, end time.Time
		}
		truth := map[string]try{}
		for _, tr := range e.sim.Truth() {
			if tr.IsRun() || tr.To == airflowsim.None || tr.At.After(e.h.Clock.Now()) {
				continue
			}
			truth[tr.DagID+"/"+tr.RunID+"/"+airflow.NodeID(tr.TaskID, tr.MapIndex)+"#"+strconv.Itoa(tr.Try)] = try{tr.To, tr.Start, tr.End}
		}
		var retried int
		for key, want := range truth {
			got, ok := recorded[key]
			if !ok {
				t.Errorf("%s: never recorded (last exposed %s)", key, want.state)
				continue
			}
			if strings.HasSuffix(key, "#2") {
				retried++
			}
			if got.State != want.state {
				t.Errorf("%s: recorded %s, exposed %s", key, got.State, want.state)
				continue
			}
			if got.StartedAt != nil && !got.StartedAt.Equal(want.start.Truncate(time.Microsecond)) ||
				got.FinishedAt != nil && !got.FinishedAt.Equal(want.end.Truncate(time.Microsecond)) {
				t.Errorf("%s: times %v..%v, exposed %v..%v", key, got.StartedAt, got.FinishedAt, want.start, want.end)
			}
		}
		for key := range recorded {
			if _, ok := truth[key]; !ok {
				t.Errorf("%s: recorded but never exposed", key)
			}
		}
		if len(truth) < 500 || retried < 10 {
			t.Fatalf("the estate exposed %d tries (%d second tries): too few to mean anything", len(truth), retried)
		}
	})
}

// The active listing shrinks while it is paged (runs finish between two pages): rows move to
// earlier pages and would be skipped; the walk starts over and misses none.
func TestPagingSurvivesAShrinkingListing(t *testing.T) {
	var served atomic.Int32
	var e *env
	e = newEnv(t, envOpts{
		sim: airflowsim.Options{API: "v1", MaxPageLimit: 10},
		handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				if r.URL.Query().Get("state") != "" && served.Add(1) == 1 {
					// Right after the first page: the first three runs finish.
					for i := range 3 {
						_ = e.sim.SetRunState("etl", fmt.Sprintf("r%02d", i), airflowsim.RunSuccess)
					}
				}
			})
		},
	})
	for i := range 25 {
		e.trigger("etl", fmt.Sprintf("r%02d", i), task("a", 0))
	}
	runs, err := e.src.Client().ListRuns(t.Context(), airflow.RunFilter{States: []string{"queued", "running"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range runs {
		got[r.RunID] = true
	}
	for i := 3; i < 25; i++ {
		if !got[fmt.Sprintf("r%02d", i)] {
			t.Errorf("active run r%02d skipped", i)
		}
	}
	if served.Load() < 4 {
		t.Errorf("%d pages served: the walk did not start over", served.Load())
	}
}
