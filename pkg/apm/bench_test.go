package apm_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// benchTracer is a Tracer sending to a local receiver, with a file ledger.
func benchTracer(b *testing.B) (*apm.Tracer, *ddagent.Receiver) {
	b.Helper()
	r := ddagent.New()
	srv := httptest.NewServer(r)
	b.Cleanup(srv.Close)
	b.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	clk := clock.NewManual(day0.Add(10 * time.Minute))
	tr, err := apm.New(apm.Config{ServiceArgo: serviceArgo, ServiceAirflow: serviceAirflow, MaxAge: maxAge, AgentTimeout: 10 * time.Second}, apm.Deps{Clock: clk,
		Ledger: filestore.New(filepath.Join(b.TempDir(), "state.json"), filestore.WithClock(clk)),
		Log:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return tr, r
}

// wideDelta is a finished DAG run of n pods (n+1 spans with the DAG node, +1 with the run).
func wideDelta(run, n int) *event.RunDelta {
	nodes := []argoNode{nRoot, nTransform}
	for i := range n {
		nodes = append(nodes, argoNode{id: fmt.Sprintf("%s-%d", argoWF, 10_000+i), name: fmt.Sprintf("%s.transform.part(%d)", argoWF, i),
			display: "part", typ: "Pod", template: "part", parent: nTransform.id, phase: "Succeeded",
			start: at(100 + float64(i)/100), end: at(101 + float64(i)/100), pod: fmt.Sprintf("part-%d", i), host: "gke-pool-b-02aa",
			resources: map[string]int64{"cpu": 12, "memory": 30}})
	}
	d := argoDelta("Succeeded", at(300), nodes...)
	d.Run.UID = fmt.Sprintf("bench-%d", run)
	return finish(d)
}

// BenchmarkTrace is the whole path per message: plan, ledger lookup, tracer session (msgpack
// encoding, HTTP to the agent, the agent's decoding), ledger record.
func BenchmarkTrace(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("%dpods", n), func(b *testing.B) {
			tr, r := benchTracer(b)
			deltas := 0
			spans := 0
			for b.Loop() {
				res, err := tr.Trace(b.Context(), wideDelta(deltas, n))
				if err != nil {
					b.Fatal(err)
				}
				deltas++
				spans += res.Sent
				r.Reset()
			}
			b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(deltas), "ms/message")
		})
	}
}

// BenchmarkConcurrentDeliveries is the Trace function under load: messages of small deltas (a
// finished run of two pods, three spans, about what a poll publishes per changed run) handled by
// concurrent requests, as Cloud Run hands them to one instance, through decode, plan, the group's
// ledger read, one tracer session per group, the ledger write. One op is 2,000 messages. It
// reports spans per second of wall time and per CPU-second of the whole process (the in-process
// agent's decoding included, so a lower bound of what the function alone does).
func BenchmarkConcurrentDeliveries(b *testing.B) {
	const messages = 2000
	msgs := make([]event.Message, messages)
	for i := range msgs {
		d := argoDelta("Succeeded", at(300), nRoot, nExtract0, nExtract1)
		d.Run.UID = fmt.Sprintf("bench-%d", i)
		msgs[i] = message(b, finish(d), fmt.Sprint(i))
	}
	for _, conc := range []int{1, 16, 80} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			var spans int64
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				tr, r := benchTracer(b)
				b.StartTimer()
				cpu0 := processCPU(b)
				next := make(chan event.Message)
				var wg sync.WaitGroup
				for range conc {
					wg.Go(func() {
						for m := range next {
							if err := tr.HandleMessage(b.Context(), m); err != nil {
								b.Error(err)
							}
						}
					})
				}
				for _, m := range msgs {
					next <- m
				}
				close(next)
				wg.Wait()
				cpu += processCPU(b) - cpu0
				spans += tr.Stats().Sent
				r.Reset()
			}
			b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(spans)/cpu.Seconds(), "spans/CPU-s")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "GOMAXPROCS")
		})
	}
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
