package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/sink"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// Throughput is how fast the Trace and BigQuerySink functions turn real published deltas into
// spans and rows, per CPU-second (so per core).
type Throughput struct {
	Deltas   int
	Spans    int
	SpanCPU  time.Duration
	Rows     int
	RowCPU   time.Duration
	SpanWall time.Duration
	RowWall  time.Duration
	// SpanBytes is what the tracer sent to the agent (its msgpack trace payloads).
	SpanBytes int64
	// LedgerReads and LedgerWrites are the trace ledger's operations (one per id, as Firestore's).
	LedgerReads, LedgerWrites int64
	SpansSec                  float64 // spans per CPU-second
	RowsSec                   float64 // rows per CPU-second
}

// agentEnv is how dd-trace-go finds its agent.
const agentEnv = "DD_TRACE_AGENT_URL"

// EncodeThroughput traces ds through the real tracer to a local DataDog receiver (msgpack encoding,
// HTTP, the receiver's decoding) and encodes their BigQuery rows as the streaming insert does.
// It sets DD_TRACE_AGENT_URL for the duration: the tracer reads its agent from the environment.
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

func traceAll(ctx context.Context, ds []Delivery, tp *Throughput) error {
	recv := ddagent.New(ddagent.WithLogger(slog.New(slog.DiscardHandler)))
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/traces") {
			r.Body = countingBody{r.Body, &sent}
		}
		recv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	prev, had := os.LookupEnv(agentEnv)
	os.Setenv(agentEnv, srv.URL)
	defer func() {
		if had {
			os.Setenv(agentEnv, prev)
		} else {
			os.Unsetenv(agentEnv)
		}
	}()
	dir, err := os.MkdirTemp("", "farm-bench-ledger-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	clk := clock.NewManual(ds[len(ds)-1].Delta.ObservedAt)
	ledger := filestore.New(filepath.Join(dir, "ledger.json"), filestore.WithClock(clk))
	tr, err := apm.New(apm.Options{ServiceArgo: "argo-workflows", ServiceAirflow: "airflow", MaxAge: 18 * time.Hour,
		Clock: clk, Ledger: ledger,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("tracer: %w", err)
	}
	u, err := Measure(func() error {
		for _, d := range ds {
			res, err := tr.Trace(ctx, d.Delta)
			if err != nil {
				return fmt.Errorf("trace %s: %w", d.Delta.ID, err)
			}
			tp.Spans += res.Sent
			recv.Reset()
		}
		return nil
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

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
