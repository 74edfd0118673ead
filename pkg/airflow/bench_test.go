package airflow_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// BenchmarkPollEstate polls an estate of 1,000 active runs of about 50 task instances (in task
// groups, with a mapped task) spread over 100 DAGs, with about 1% and 10% of runs changing per
// one-minute poll, through the real poll path (file state store, in-process Pub/Sub). Run with
// -benchtime=20x; it reports per poll the API calls and bytes, the runs changed and the state-store
// operations, and the bytes of the first (cold) poll, which reads every run.
func BenchmarkPollEstate(b *testing.B) {
	for _, api := range []string{"v1", "v2"} {
		for _, churn := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/runs=1000/churn=%d%%", api, churn), func(b *testing.B) { benchPoll(b, api, 1000, churn) })
		}
	}
}

func benchPoll(b *testing.B, api string, runs, churnPct int) {
	clk := &laterClock{}
	store := filestore.New(filepath.Join(b.TempDir(), "state.json"), filestore.WithClock(clk))
	h := polltest.New(b, store, t0)
	clk.c = h.Clock
	sim, err := airflowsim.New(airflowsim.Options{API: api, Clock: h.Clock})
	if err != nil {
		b.Fatal(err)
	}
	// A run changes once per step: one step every 100/churn minutes changes churn% of runs a minute.
	spec := airflowsim.EstateSpec{DAGs: 100, ActiveRuns: runs, TasksPerRun: 48, MappedWidth: 3, StepEvery: time.Duration(100/churnPct) * time.Minute, Seed: 1}
	if _, err := sim.StartEstate(spec); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	cfg := airflow.DefaultConfig()
	cfg.URL, cfg.Instance, cfg.DagExclude = u, "bench", nil
	src, err := airflow.New(cfg, airflow.Deps{Clock: h.Clock, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := poll.New(polltest.Config(poll.Config{Overlap: 30 * time.Second}),
		poll.Deps{Source: src, Store: store, Publisher: h.Publisher, Clock: h.Clock, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	cold, err := engine.Poll(b.Context(), poll.Request{})
	if err != nil {
		b.Fatal(err)
	}
	// The next poll's overlap still shows the estate's creation: leave it out of the steady state.
	h.Clock.Advance(time.Minute)
	if _, err := engine.Poll(b.Context(), poll.Request{}); err != nil {
		b.Fatal(err)
	}
	var calls, bytes, changed, reads, writes int64
	b.ResetTimer()
	for b.Loop() {
		h.Clock.Advance(time.Minute)
		res, err := engine.Poll(b.Context(), poll.Request{})
		if err != nil {
			b.Fatal(err)
		}
		calls += res.APICalls
		bytes += res.APIBytes
		changed += int64(res.RunsChanged)
		reads += int64(res.StoreReads)
		writes += int64(res.StoreWrites)
	}
	n := float64(b.N)
	b.ReportMetric(float64(cold.APIBytes)/1e6, "cold-poll-MB")
	b.ReportMetric(float64(calls)/n, "api-calls/poll")
	b.ReportMetric(float64(bytes)/n/1e3, "api-kB/poll")
	b.ReportMetric(float64(changed)/n, "runs-changed/poll")
	b.ReportMetric(float64(reads+writes)/n, "store-ops/poll")
}
