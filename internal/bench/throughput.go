package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// Throughput is how fast the Trace and BigQuerySink functions turn real published deltas into
// spans and rows, per CPU-second (so per core).
type Throughput struct {
	Deltas   int
	Messages int // the deliveries the deltas came in
	Spans    int
	SpanCPU  time.Duration
	Rows     int
	RowCPU   time.Duration
	SpanWall time.Duration
	RowWall  time.Duration
	// SpanBytes is what the tracer sent to the agent (its msgpack trace payloads).
	SpanBytes int64
	// LedgerReads and LedgerWrites are the trace ledger's operations (one per document, as
	// Firestore bills them: at most one of each per message).
	LedgerReads, LedgerWrites int64
	SpansSec                  float64 // spans per CPU-second
	RowsSec                   float64 // rows per CPU-second
}

// TraceConcurrency is the request concurrency of the measured Trace function: how many deliveries
// one instance takes at once, as terraform deploys it (consumer_concurrency.trace).
var TraceConcurrency = Deployed.Trace.Concurrency

// EncodeThroughput traces ds through the real tracer to a local DataDog receiver (msgpack encoding,
// HTTP, the receiver's decoding) and encodes their BigQuery rows as the streaming insert does.
func EncodeThroughput(ctx context.Context, ds []Delivery) (Throughput, error) {
	tp := Throughput{Deltas: len(ds)}
	if len(ds) == 0 {
		return tp, fmt.Errorf("no deltas to encode")
	}
	rows, err := Measure(func() error {
		for _, d := range ds {
			_, rs, err := sink.Rows(d.Message, d.Delta)
			if err != nil {
				return fmt.Errorf("rows of %s: %w", d.Delta.ID, err)
			}
			for _, r := range rs {
				if _, _, err := r.Save(); err != nil {
					return fmt.Errorf("row of %s: %w", d.Delta.ID, err)
				}
			}
			tp.Rows += len(rs)
		}
		return nil
	})
	if err != nil {
		return tp, err
	}
	tp.RowCPU, tp.RowWall = rows.CPU, rows.Wall
	if err := traceAll(ctx, ds, &tp); err != nil {
		return tp, err
	}
	tp.SpansSec = perSecond(tp.Spans, tp.SpanCPU)
	tp.RowsSec = perSecond(tp.Rows, tp.RowCPU)
	return tp, nil
}

// TraceGOGC is the trace function's GC target as terraform deploys it (GOGC in trace_env).
const TraceGOGC = 400

func traceAll(ctx context.Context, ds []Delivery, tp *Throughput) error {
	// Measured as deployed: terraform also turns the tracer's health metrics off, which the
	// tracer reads once per process (farm bench sets DD_TRACE_INTERNAL_METRICS_ENABLED=false).
	defer debug.SetGCPercent(debug.SetGCPercent(TraceGOGC))
	recv := ddagent.New(ddagent.WithLogger(slog.New(slog.DiscardHandler)), ddagent.MaxSpans(10_000))
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/traces") {
			r.Body = countingBody{r.Body, &sent}
		}
		recv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	dir, err := os.MkdirTemp("", "farm-bench-ledger-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	clk := clock.NewManual(ds[len(ds)-1].Delta.ObservedAt)
	ledger := filestore.New(filepath.Join(dir, "ledger.json"), filestore.WithClock(clk))
	cfg := apm.DefaultConfig()
	cfg.AgentAddr = strings.TrimPrefix(srv.URL, "http://")
	tr, err := apm.New(cfg, apm.Deps{Clock: clk, Ledger: ledger, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("tracer: %w", err)
	}
	// The deliveries reach the function as Pub/Sub pushes them to one instance: TraceConcurrency
	// at a time, each through the whole handler (decode, plan, group commit).
	// A delivery is a message: the deltas of a batch share one (decodeAll gives one Delivery per
	// delta, each with its batch's message).
	var msgs []event.Message
	seen := map[string]bool{}
	for _, d := range ds {
		if !seen[d.Message.ID] {
			seen[d.Message.ID] = true
			msgs = append(msgs, d.Message)
		}
	}
	tp.Messages = len(msgs)
	u, err := Measure(func() error {
		next := make(chan event.Message)
		errs := make([]error, TraceConcurrency)
		var wg sync.WaitGroup
		for w := range TraceConcurrency {
			wg.Go(func() {
				for m := range next {
					if err := tr.HandleMessage(ctx, m); err != nil && errs[w] == nil {
						errs[w] = fmt.Errorf("trace message %s: %w", m.ID, err)
					}
				}
			})
		}
		for _, m := range msgs {
			next <- m
		}
		close(next)
		wg.Wait()
		tp.Spans = int(tr.Stats().Sent)
		return errors.Join(errs...)
	})
	tp.SpanCPU, tp.SpanWall, tp.SpanBytes = u.CPU, u.Wall, sent.Load()
	tp.LedgerReads, tp.LedgerWrites = ledger.Usage()
	return err
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// MinSpansPerCore is issue 14's target for the Trace function's throughput.
const MinSpansPerCore = 5000

// Checks are the throughput targets.
func (tp Throughput) Checks() []Check {
	return []Check{check(fmt.Sprintf("Trace throughput >= %d spans/s per core (CPU time, so noisy on a shared machine)", MinSpansPerCore),
		tp.SpansSec >= MinSpansPerCore, fmt.Sprintf("%.0f spans/s per core: %d spans of %d messages in %s CPU", tp.SpansSec, tp.Spans, tp.Messages, tp.SpanCPU.Round(time.Millisecond)))}
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
