package argosim

import (
	"fmt"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

// Banner says plainly what the demo server is; the local runner prints it.
const Banner = "SIMULATED Argo Server (FARM's built-in simulator, not a real Argo installation): " +
	"a handful of demo pipelines with nested DAGs, steps, retries, failures and skipped nodes, progressing every few seconds"

// DemoLabel marks every workflow of the demo estate, so simulated runs are recognisable in
// FARM's output too.
const DemoLabel = "farm/simulated"

// Demo is a small, lively estate served by a simulated Argo Server, for the local runner when
// no orchestrator is configured. It advances whenever it is asked something, catching up with
// the clock, so it needs no goroutine.
type Demo struct {
	*Server
	Estate *Estate
}

// DemoEstate is the demo's estate configuration: few runs of about 14 nodes in two namespaces,
// one controller step every 2 s advancing half of them, so a run completes within a minute or
// two; some failed runs are retried with argo retry, completed runs are archived and deleted
// after 5 minutes, and some are stored compressed.
func DemoEstate(seed uint64) EstateConfig {
	return EstateConfig{
		Seed:             seed,
		ActiveRuns:       6,
		TasksPerRun:      14,
		Pipelines:        5,
		Namespaces:       []string{"data", "ml"},
		Labels:           map[string]string{DemoLabel: "true"},
		Tick:             2 * time.Second,
		ChangeShare:      0.5,
		CompressedShare:  0.2,
		LargeFactor:      2,
		FailureRate:      0.08,
		ErrorShare:       0.2,
		RetryRate:        0.25,
		RetryFailureRate: 0.5,
		ManualRetryRate:  0.3,
		RetryDelay:       20 * time.Second,
		SkipRate:         0.15,
		ExitHandlerShare: 0.5,
		InitialRounds:    6,
		TTL:              5 * time.Minute,
	}
}

// NewDemo returns the demo server on clk (clock.Real{} for the local runner).
func NewDemo(clk clock.Clock, seed uint64) (*Demo, error) {
	srv := NewServer(clk, Options{Seed: seed})
	est, err := NewEstate(srv, DemoEstate(seed))
	if err != nil {
		return nil, fmt.Errorf("demo estate: %w", err)
	}
	return &Demo{Server: srv, Estate: est}, nil
}
