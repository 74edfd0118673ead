package airflowsim

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

// Banner says plainly what the demo server is; the local runner prints it.
const Banner = "SIMULATED Airflow (FARM's built-in simulator, not a real Airflow installation): " +
	"a few demo DAGs with task groups, mapped tasks, a rescheduling sensor, retries, failures and skipped tasks, " +
	"plus Composer's airflow_monitoring DAG (excluded by default), progressing every few seconds"

// DemoEstate is the demo's estate: a handful of DAGs of 8 tasks whose runs change every few
// seconds, so a run completes within a couple of minutes, and finished runs purged after an hour.
// It starts three minutes in the past, its runs staggered over them, so the first poll already
// finds finished runs and the next ones find more: the local runner shows Airflow traces at once.
func DemoEstate(seed uint64) EstateSpec {
	return EstateSpec{
		DAGs: 4, ActiveRuns: 6, TasksPerRun: 8, MappedWidth: 3, StepEvery: 4 * time.Second,
		RetryRate: 0.2, FailRate: 0.1, SkipRate: 0.3, Monitoring: true, Retention: time.Hour, Seed: seed,
		Backdate: 3 * time.Minute,
	}
}

// NewDemo returns a demo server speaking api (v1: Airflow 2.10, v2: Airflow 3) on clk
// (clock.Real{} for the local runner). The estate advances whenever the server is asked
// something, so it needs no goroutine.
func NewDemo(clk clock.Clock, api string, seed uint64) (*Server, error) {
	s, err := New(Options{API: api, Clock: clk})
	if err != nil {
		return nil, err
	}
	if _, err := s.StartEstate(DemoEstate(seed)); err != nil {
		return nil, fmt.Errorf("demo estate: %w", err)
	}
	return s, nil
}

// Simulator starts a demo server on the wall clock, in the shape the local runner's
// Options.Simulators expects.
func Simulator(api string) func(ctx context.Context) (http.Handler, func(), error) {
	return func(context.Context) (http.Handler, func(), error) {
		s, err := NewDemo(clock.Real{}, api, uint64(time.Now().UnixNano()))
		if err != nil {
			return nil, nil, err
		}
		return s, func() {}, nil
	}
}
