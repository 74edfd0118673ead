package statetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/state"
)

// BenchmarkPoll measures the store side of one poll that changed n runs of 20 tasks, out of an
// index of 10n runs: Acquire, LoadRuns of the n, Commit of the n. It reports the store's
// operations per poll when it counts them.
func BenchmarkPoll(b *testing.B, s state.Store, n int) {
	ctx := b.Context()
	runs := make([]*state.Run, n)
	keys := make([]string, n)
	idx := make(state.Index, 10*n)
	for i := range runs {
		tasks := make(map[string]state.Task, 20)
		for j := range 20 {
			tasks[fmt.Sprintf("wf-%d-%d", i, 1000000000+j*7919)] = state.Task{State: "Succeeded", StartedAt: t0, FinishedAt: t0.Add(time.Minute)}
		}
		runs[i] = &state.Run{Key: fmt.Sprintf("argo/prod/ns/uid-%06d", i), Fingerprint: "1", Phase: "Running", Tasks: tasks, UpdatedAt: t0}
		keys[i] = runs[i].Key
	}
	for i := range 10 * n {
		idx[fmt.Sprintf("argo/prod/ns/uid-%06d", i)] = state.IndexEntry{Fingerprint: "1", Active: true, Ref: fmt.Sprintf("ns/wf-%d/uid-%06d", i, i)}
	}
	u, counts := s.(usageCounter)
	var r0, w0 int64
	if counts {
		r0, w0 = u.Usage()
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		if _, err := s.Acquire(ctx, src, "bench", now, ttl); err != nil {
			b.Fatal(err)
		}
		if _, err := s.LoadRuns(ctx, src, keys); err != nil {
			b.Fatal(err)
		}
		if err := s.Commit(ctx, src, "bench", runs, now, idx); err != nil {
			b.Fatal(err)
		}
	}
	if counts {
		r1, w1 := u.Usage()
		b.ReportMetric(float64(r1-r0)/float64(b.N), "reads/poll")
		b.ReportMetric(float64(w1-w0)/float64(b.N), "writes/poll")
	}
}
