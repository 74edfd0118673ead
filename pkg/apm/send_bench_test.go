package apm

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/pkg/event"
)

// BenchmarkSend measures the tracer alone: spans encoded and accepted by a local agent per
// second, in full sessions of sessionSpans.
func BenchmarkSend(b *testing.B) {
	r := ddagent.New()
	srv := httptest.NewServer(r)
	defer srv.Close()
	b.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	s := sender{transport: agentTransport(""), timeout: 10 * time.Second, service: "farm", logger: tracerLog{slog.New(slog.DiscardHandler)}}
	start := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)
	tid := traceIDOf(&event.RunDelta{Tenant: "t", Run: event.Run{Source: event.SourceArgo, UID: "u", StartedAt: &start}}, true)
	spans := make([]span, sessionSpans)
	for i := range spans {
		tg := newTags()
		tg.str("env", "prod")
		tg.str("task.id", "node")
		tg.str("pod_name", "etl-nightly-7x2kq-part-1234567890")
		tg.num("task.attempt", 0)
		spans[i] = span{trace: tid, id: uint64(i + 2), parentID: tid.low, name: OpArgoNode, resource: "part",
			service: "argo-workflows", start: start, end: start.Add(time.Second), tags: tg}
	}
	sent := 0
	for b.Loop() {
		if err := s.session(b.Context(), spans); err != nil {
			b.Fatal(err)
		}
		sent += len(spans)
		r.Reset()
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "spans/s")
}
