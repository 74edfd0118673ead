package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/testenv"
)

// FreshnessConfig says how to measure freshness: how long after a state change in a simulated
// orchestrator its span is accepted by the agent and its row is written, through the real
// functions of the local runner (`farm serve`: scheduled polls, Pub/Sub, push deliveries to Trace
// and BigQuerySink).
type FreshnessConfig struct {
	// Command starts the local runner: the farm binary and the arguments before serve's own flags
	// (usually {binary, "serve"}).
	Command []string
	// Env is added to the runner's environment (after FARM_*, DD_* and emulator settings of this
	// process are removed, so that it runs on its embedded defaults as `make run` does).
	Env      []string
	Interval time.Duration // the runner's poll interval
	Duration time.Duration // how long to watch
	// Margin is how long before the end a change must have happened to be counted, so that a
	// change has had the time to arrive (default: Interval + 15s). A counted change that has not
	// arrived by the end is reported as Late.
	Margin time.Duration
	Log    *slog.Logger
}

// Lags are the freshness figures of one kind of output.
type Lags struct {
	N             int
	P50, P95, Max time.Duration
	// Uncounted arrived, but changed before the first output (the first poll baselined it) or
	// within the margin before the end.
	Uncounted int
}

// Freshness is what MeasureFreshness measured.
type Freshness struct {
	Interval time.Duration
	Watched  time.Duration
	Spans    Lags // span end (the task's or run's end) → accepted by the agent
	Rows     Lags // the row's latest own time (queued, started, ended) → row written
}

// Target is issue 14's freshness target: p95 within the poll interval plus 10 seconds.
func (f Freshness) Target() time.Duration { return f.Interval + 10*time.Second }

// Checks are the freshness targets.
func (f Freshness) Checks() []Check {
	target := fmt.Sprintf("freshness p95 ≤ poll interval + 10s (%s)", f.Target())
	return []Check{
		check("spans: "+target, f.Spans.N > 0 && f.Spans.P95 <= f.Target(), f.Spans.String()),
		check("rows: "+target, f.Rows.N > 0 && f.Rows.P95 <= f.Target(), f.Rows.String()),
	}
}

func (l Lags) String() string {
	if l.N == 0 {
		return fmt.Sprintf("no change observed (%d outputs of changes before the first output or within the margin)", l.Uncounted)
	}
	s := fmt.Sprintf("n=%d p50 %s, p95 %s, max %s", l.N, round(l.P50), round(l.P95), round(l.Max))
	return s
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

// Write prints the figures.
func (f Freshness) Write(w io.Writer) {
	fmt.Fprintf(w, "\n== freshness: the local runner (`farm serve`) for %s, polls every %s, push deliveries\n", f.Watched.Round(time.Second), f.Interval)
	fmt.Fprintf(w, "state change in the simulator → span accepted by the agent: %s\n", f.Spans)
	fmt.Fprintf(w, "state change in the simulator → BigQuery row written:       %s\n", f.Rows)
}

// sample is one observed output: when the change it shows happened and when it arrived.
type sample struct{ changed, arrived time.Time }

// MeasureFreshness runs the local runner on simulated orchestrators for cfg.Duration, with its own
// DataDog receiver and its rows written to files, and measures each output's delay from the
// change it shows. Only changes dated after the first output arrived count (earlier ones were
// baselined by the first poll), and only those dated at least Margin before the end.
func MeasureFreshness(ctx context.Context, cfg FreshnessConfig) (Freshness, error) {
	if cfg.Margin == 0 {
		cfg.Margin = cfg.Interval + 15*time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Command) == 0 || cfg.Interval <= 0 || cfg.Duration <= cfg.Margin {
		return Freshness{}, fmt.Errorf("freshness: need a command, an interval and a duration longer than the margin (%s)", cfg.Margin)
	}
	dir, err := os.MkdirTemp("", "farm-freshness-")
	if err != nil {
		return Freshness{}, err
	}
	defer os.RemoveAll(dir)

	// The receiver is started before the runner, which finds it listening and sends to it.
	var (
		mu    sync.Mutex
		spans []sample
	)
	recv := ddagent.New(ddagent.WithLogger(cfg.Log), ddagent.MaxSpans(1), ddagent.Notify(func(chunks [][]ddagent.Span) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range chunks {
			for _, s := range c {
				spans = append(spans, sample{changed: s.EndTime(), arrived: now})
			}
		}
	}))
	actx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	agentAddr, stop, err := recv.Serve(actx, "127.0.0.1:0")
	if err != nil {
		return Freshness{}, fmt.Errorf("freshness: agent: %w", err)
	}
	defer stop()
	port, err := testenv.FreePort()
	if err != nil {
		return Freshness{}, fmt.Errorf("freshness: %w", err)
	}
	var stderr tailBuffer
	args := append(slices.Clone(cfg.Command[1:]), "-interval", cfg.Interval.String(), "-port", strconv.Itoa(port))
	cmd := exec.CommandContext(ctx, cfg.Command[0], args...)
	cmd.Dir = dir // the runner keeps its state and rows under ./.farm
	cmd.Env = append(runnerEnv(os.Environ()), "FARM_LOCAL_AGENT_ADDR="+agentAddr, "FARM_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, cfg.Env...)
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 45 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Freshness{}, fmt.Errorf("freshness: start the local runner: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	rows := &rowTail{dir: filepath.Join(dir, ".farm", "bigquery"), offsets: map[string]int64{}}
	var rowSamples []sample
	end := start.Add(cfg.Duration)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return Freshness{}, ctx.Err()
		case err := <-exited:
			return Freshness{}, fmt.Errorf("freshness: the local runner stopped early: %w: %s", err, stderr.String())
		case <-tick.C:
		}
		got, err := rows.read(time.Now())
		if err != nil {
			return Freshness{}, err
		}
		rowSamples = append(rowSamples, got...)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	cfg.Log.Debug("runner stderr", "tail", stderr.String())
	if err := <-exited; err != nil && !isInterrupted(err) {
		cfg.Log.Warn("freshness: the local runner did not stop cleanly", "error", err, "stderr", stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	// The first output marks the end of the first poll: changes before it were baselined.
	first := end
	for _, s := range slices.Concat(spans, rowSamples) {
		if s.arrived.Before(first) {
			first = s.arrived
		}
	}
	counted := end.Add(-cfg.Margin)
	return Freshness{
		Interval: cfg.Interval, Watched: cfg.Duration,
		Spans: lagsOf(spans, first, counted),
		Rows:  lagsOf(rowSamples, first, counted),
	}, nil
}

// lagsOf summarises the samples whose change happened in (from, until].
func lagsOf(samples []sample, from, until time.Time) Lags {
	var l Lags
	var lags []time.Duration
	for _, s := range samples {
		if !s.changed.After(from) || s.changed.After(until) {
			l.Uncounted++
			continue
		}
		lags = append(lags, s.arrived.Sub(s.changed))
	}
	slices.Sort(lags)
	l.N = len(lags)
	if l.N > 0 {
		l.P50, l.P95, l.Max = percentile(lags, 50), percentile(lags, 95), lags[l.N-1]
	}
	return l
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// rowTail reads the rows the file sink appends (one newline-delimited JSON file per table).
type rowTail struct {
	dir     string
	offsets map[string]int64
}

func (t *rowTail) read(now time.Time) ([]sample, error) {
	files, err := filepath.Glob(filepath.Join(t.dir, "*.ndjson"))
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, name := range files {
		got, err := t.readFile(name, now)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (t *rowTail) readFile(name string, now time.Time) ([]sample, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("freshness: rows: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(t.offsets[name], io.SeekStart); err != nil {
		return nil, fmt.Errorf("freshness: rows: %w", err)
	}
	var out []sample
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return out, nil // a partial line is read again, whole, next time
		}
		if err != nil {
			return nil, fmt.Errorf("freshness: rows: %w", err)
		}
		t.offsets[name] += int64(len(line))
		changed, ok, err := rowChange(line)
		if err != nil {
			return nil, fmt.Errorf("freshness: row of %s: %w", filepath.Base(name), err)
		}
		if ok {
			out = append(out, sample{changed: changed, arrived: now})
		}
	}
}

// rowTimes are the columns that date a task's own state changes, in both tables.
var rowTimes = []string{
	"node_started_at", "node_finished_at", // argo
	"task_queued_at", "task_scheduled_at", "task_start_date", "task_end_date", // airflow
}

// rowChange returns when the change a row records happened: the latest of the task's own times.
// A row without any (a pending task) cannot be dated.
func rowChange(line []byte) (time.Time, bool, error) {
	var row map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(line), &row); err != nil {
		return time.Time{}, false, err
	}
	var latest time.Time
	for _, col := range rowTimes {
		raw, ok := row[col]
		if !ok || string(raw) == "null" {
			continue
		}
		var t time.Time
		if err := json.Unmarshal(raw, &t); err != nil {
			return time.Time{}, false, fmt.Errorf("%s: %w", col, err)
		}
		if t.After(latest) {
			latest = t
		}
	}
	return latest, !latest.IsZero(), nil
}

// runnerEnv is this process's environment without what would point the runner elsewhere than its
// embedded defaults.
func runnerEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(name, "FARM_") || strings.HasPrefix(name, "DD_") ||
			strings.HasSuffix(name, "_EMULATOR_HOST") || name == "PORT" || name == "GOOGLE_CLOUD_PROJECT"
	})
}

func isInterrupted(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == 130
}

// tailBuffer keeps the last 4 KiB written to it (a child's stderr, for an error message).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - 4096; over > 0 {
		b.buf = b.buf[over:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}
