package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/farmobs/farm/internal/bench"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/logging"
)

// largeRounds lets runs of the large configuration get far enough to show about half of their
// nodes (argosim: TasksPerRun 100 with InitialRounds 45 shows ~465k-500k nodes over 10,000 runs).
const largeRounds = 45

// benchPlan is what `farm bench` measures.
type benchPlan struct {
	argoRuns    []int
	churns      []float64
	tasks       int
	largeTasks  int  // one more Argo configuration at the largest run count, of this many tasks
	scaleRuns   int  // one more Argo configuration of this many runs at 1% churn (issue 13); 0: none
	estate      bool // the Airflow estate of issue 13: 10,000 DAGs, 5,000 active runs of 20 tasks
	compare     bool
	polls       int
	airflowRuns int
	dags        []int
	interval    time.Duration
	seed        uint64
	// freshness is how long the local runner is watched for the freshness figures (0: not
	// measured), polling every freshInterval.
	freshness, freshInterval time.Duration
}

// cmdBench measures polls against simulated estates (each served by a child process, so the
// figures are the poll's alone), prints them with the targets, then the trace and sink encoding
// rates. `farm bench sim` is the child.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "sim" {
		return cmdBenchSim(ctx, args[1:], stdout, stderr)
	}
	plan, err := parseBench(args, stderr)
	if err != nil {
		return err
	}
	// The Trace function is deployed without the tracer's health metrics (terraform's trace_env);
	// the tracer reads that switch once per process, so it is set before any tracer starts.
	if _, set := os.LookupEnv("DD_TRACE_INTERNAL_METRICS_ENABLED"); !set {
		if err := os.Setenv("DD_TRACE_INTERNAL_METRICS_ENABLED", "false"); err != nil {
			return err
		}
	}
	level, err := logging.ParseLevel(envOr("FARM_LOG_LEVEL", "warn"))
	if err != nil {
		return fmt.Errorf("FARM_LOG_LEVEL %w", err)
	}
	log := logging.New(stderr, level)
	if os.Getenv(bench.EmulatorEnv) == "" {
		fmt.Fprintln(stdout, "!!! "+bench.EmulatorEnv+" is not set: the state store is a FILE store, so the Firestore figures are")
		fmt.Fprintln(stdout, "!!! the engine's operation counts only, not the emulator's. Run `make bench` to use the emulator.")
	}
	writeMachine(stdout)
	var reports []*bench.Report
	for _, c := range plan.configs() {
		rep, err := runConfig(ctx, c, log, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		rep.WritePolls(stdout)
		reports = append(reports, rep)
	}
	return writeVerdicts(ctx, stdout, plan, reports)
}

func parseBench(args []string, stderr io.Writer) (benchPlan, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.String("runs", "1000,10000", "active Argo runs per configuration (comma-separated)")
	churn := fs.String("churn", "0.01,0.10", "shares of runs changing per poll (comma-separated)")
	p := benchPlan{}
	fs.IntVar(&p.tasks, "tasks", 50, "tasks per run")
	fs.IntVar(&p.largeTasks, "large-tasks", 100, "one more Argo configuration at the largest -runs, with runs of this many tasks further along (about 50 nodes shown per run: 500,000 for 10,000 runs); 0: none")
	fs.IntVar(&p.scaleRuns, "scale-runs", 100_000, "one more Argo configuration of this many active runs at 1% churn (0: none)")
	fs.BoolVar(&p.estate, "airflow-estate", true, "three more Airflow configurations: 5,000 active runs of 20 tasks over 10,000 DAGs at 1% churn on Airflow 3, the same on Airflow 2.10, and 500 over 1,000 DAGs at 10% on Airflow 2.10 (as many changed runs a poll), whose calls per poll are compared with the second's")
	fs.BoolVar(&p.compare, "compare", true, "poll Argo configurations of up to 10,000 runs also with an engine that lists in full, at the same instants")
	fs.IntVar(&p.polls, "polls", 3, "measured polls per configuration (after a cold and a warm-up poll)")
	fs.IntVar(&p.airflowRuns, "airflow-runs", 1000, "active Airflow runs")
	dags := fs.String("dags", "100,1000", "Airflow DAGs the runs are spread over (comma-separated; two values compare API calls)")
	fs.DurationVar(&p.interval, "interval", time.Minute, "simulated time between polls")
	fs.Uint64Var(&p.seed, "seed", 1, "estate seed")
	fs.DurationVar(&p.freshness, "freshness", 2*time.Minute, "watch the local runner (farm serve on simulated orchestrators) this long for the freshness figures; 0: skip")
	fs.DurationVar(&p.freshInterval, "freshness-interval", 10*time.Second, "the local runner's poll interval while freshness is measured")
	quick := fs.Bool("quick", false, "a small run for a smoke test: 200 Argo runs, 100 Airflow runs over 10 and 100 DAGs, 2 polls, 45s of freshness")
	if err := fs.Parse(args); err != nil {
		return p, err
	}
	if err := noArgs("bench", fs.Args()); err != nil {
		return p, err
	}
	if *quick {
		*runs, p.airflowRuns, *dags, p.polls, p.largeTasks, p.scaleRuns, p.estate = "200", 100, "10,100", 2, 0, 0, false
		p.freshness, p.freshInterval = 45*time.Second, 5*time.Second
	}
	var err error
	if p.argoRuns, err = intList("-runs", *runs); err != nil {
		return p, err
	}
	if p.dags, err = intList("-dags", *dags); err != nil {
		return p, err
	}
	if p.churns, err = floatList("-churn", *churn); err != nil {
		return p, err
	}
	if p.freshness < 0 || p.freshInterval <= 0 {
		return p, fmt.Errorf("-freshness must not be negative and -freshness-interval must be positive")
	}
	if p.polls < 1 || p.tasks < 1 {
		return p, fmt.Errorf("-polls and -tasks must be positive")
	}
	return p, nil
}

func (p benchPlan) configs() []bench.Config {
	var out []bench.Config
	for _, runs := range p.argoRuns {
		for _, ch := range p.churns {
			e := bench.Estate{Kind: event.SourceArgo, Runs: runs, Tasks: p.tasks, Churn: ch, Seed: p.seed, Interval: p.interval}
			out = append(out, bench.Config{Name: fmt.Sprintf("argo-%d-%g%%", runs, ch*100), Estate: e, Polls: p.polls, CompareFull: p.compare && runs <= 10_000})
		}
	}
	if p.largeTasks > 0 {
		runs, ch := slices.Max(p.argoRuns), p.churns[0]
		e := bench.Estate{Kind: event.SourceArgo, Runs: runs, Tasks: p.largeTasks, Churn: ch, Seed: p.seed, Interval: p.interval, InitialRounds: largeRounds}
		out = append(out, bench.Config{Name: fmt.Sprintf("argo-%dx%d-%g%%", runs, p.largeTasks, ch*100), Estate: e, Polls: p.polls})
	}
	if p.scaleRuns > 0 {
		e := bench.Estate{Kind: event.SourceArgo, Runs: p.scaleRuns, Tasks: p.tasks, Churn: 0.01, Seed: p.seed, Interval: p.interval}
		out = append(out, bench.Config{Name: fmt.Sprintf("argo-%d-1%%", p.scaleRuns), Estate: e, Polls: p.polls})
	}
	if p.estate {
		e := bench.Estate{Kind: event.SourceAirflow, Runs: 5000, Tasks: 20, Churn: 0.01, DAGs: 10_000, Seed: p.seed, Interval: p.interval}
		out = append(out, bench.Config{Name: estateName, Estate: e, Polls: p.polls})
		// On Airflow 2.10, whose running tasks do not rewrite their rows, and a tenth of it
		// changing as many runs a poll: its calls per poll are the yardstick.
		e.AirflowAPI = "v1"
		out = append(out, bench.Config{Name: estateNameV1, Estate: e, Polls: p.polls})
		e.Runs, e.DAGs, e.Churn = 500, 1000, 0.1
		out = append(out, bench.Config{Name: smallEstateNameV1, Estate: e, Polls: p.polls})
	}
	if p.airflowRuns > 0 {
		for _, dags := range p.dags {
			for _, ch := range p.churns {
				e := bench.Estate{Kind: event.SourceAirflow, Runs: p.airflowRuns, Tasks: p.tasks, Churn: ch, DAGs: dags, Seed: p.seed, Interval: p.interval}
				out = append(out, bench.Config{Name: fmt.Sprintf("airflow-%d-%ddags-%g%%", p.airflowRuns, dags, ch*100), Estate: e, Polls: p.polls})
			}
		}
	}
	return out
}

// runConfig serves the estate from a child process and measures the polls here.
func runConfig(ctx context.Context, c bench.Config, log *slog.Logger, stderr io.Writer) (*bench.Report, error) {
	sim, err := startSim(ctx, c.Estate, stderr)
	if err != nil {
		return nil, err
	}
	defer sim.Stop()
	c.SimURL = sim.URL
	return bench.Run(ctx, c, log)
}

func writeVerdicts(ctx context.Context, w io.Writer, p benchPlan, reps []*bench.Report) error {
	checks := bench.StoreChecks(reps)
	var sample []bench.Delivery
	for _, r := range reps {
		if r.Config.Estate.Kind == event.SourceArgo && r.Config.Estate.Runs == slices.Max(p.argoRuns) {
			checks = append(checks, bench.FloorCheck(r)...)
		}
		checks = append(checks, bench.ScaleChecks(r)...)
		sample = append(sample, r.Sample[:min(len(r.Sample), bench.SampleCap/len(reps))]...)
	}
	if small, big := named(reps, smallEstateNameV1), named(reps, estateNameV1); small != nil && big != nil {
		checks = append(checks, bench.RunsCheck(small, big))
	}
	for _, ch := range p.churns {
		if few, many := find(reps, p.dags[0], ch), find(reps, p.dags[len(p.dags)-1], ch); few != nil && many != nil && few != many {
			checks = append(checks, bench.DAGCheck(few, many))
		}
	}
	if p.freshness > 0 {
		f, err := measureFreshness(ctx, p)
		if err != nil {
			return err
		}
		f.Write(w)
		checks = append(checks, f.Checks()...)
	}
	tp, err := bench.EncodeThroughput(ctx, sample)
	if err != nil {
		return fmt.Errorf("encoding throughput: %w", err)
	}
	fmt.Fprintf(w, "\n== trace and sink, on %d deltas in %d messages the polls above published\n", tp.Deltas, tp.Messages)
	fmt.Fprintf(w, "Trace:        %d spans in %s CPU = %.0f spans/s per core (%d deliveries at a time, GOGC=%d as deployed: decode, group commit, tracer, msgpack, HTTP to a local receiver, ledger)\n", tp.Spans, tp.SpanCPU.Round(time.Millisecond), tp.SpansSec, bench.TraceConcurrency, bench.TraceGOGC)
	fmt.Fprintf(w, "BigQuerySink: %d rows in %s CPU = %.0f rows/s per core (rows built and encoded for the streaming insert)\n", tp.Rows, tp.RowCPU.Round(time.Millisecond), tp.RowsSec)
	checks = append(checks, tp.Checks()...)
	fmt.Fprintln(w, "\n== targets")
	for _, c := range checks {
		fmt.Fprintln(w, c)
	}
	missed := verdict(w, checks)
	if err := writeBills(ctx, w, reps); err != nil {
		return err
	}
	if missed > 0 {
		return fmt.Errorf("%d bench targets missed (MISS above; known trade-offs do not count)", missed)
	}
	return nil
}

// measureFreshness runs this binary's `serve` (the local runner, on its embedded defaults) and
// measures how long a simulated state change takes to become a span and a row.
func measureFreshness(ctx context.Context, p benchPlan) (bench.Freshness, error) {
	self, err := os.Executable()
	if err != nil {
		return bench.Freshness{}, fmt.Errorf("freshness: %w", err)
	}
	f, err := bench.MeasureFreshness(ctx, bench.FreshnessConfig{Command: []string{self, "serve"}, Interval: p.freshInterval, Duration: p.freshness})
	if err != nil {
		return f, fmt.Errorf("freshness: %w", err)
	}
	return f, nil
}

// writeBills prints each configuration's Google Cloud cost per 1,000,000 task executions (issue 14).
func writeBills(ctx context.Context, w io.Writer, reps []*bench.Report) error {
	bench.WriteBillHeader(w)
	for _, r := range reps {
		b, err := bench.BillOf(ctx, r, bench.Deployed)
		if errors.Is(err, bench.ErrNoTaskExecutions) {
			// A small estate at low churn may finish no task in a few polls: nothing to divide by.
			fmt.Fprintf(w, "\n== bill: %s: no bill (%v)\n", r.Config.Name, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("bill: %w", err)
		}
		b.Write(w)
	}
	return nil
}

// verdict prints the count of passes and misses and returns the misses that are not known
// trade-offs: those fail the command (exit 1), as fidelity's do.
func verdict(w io.Writer, checks []bench.Check) int {
	var pass, known, missed int
	for _, c := range checks {
		switch {
		case c.Pass:
			pass++
		case c.Failed():
			missed++
		default:
			known++
		}
	}
	fmt.Fprintf(w, "targets: %d passed, %d missed as known trade-offs, %d missed\n", pass, known, missed)
	return missed
}

// The Airflow estate of issue 13 (on Airflow 3, and on Airflow 2.10), and a tenth of it changing
// as many runs a poll (on Airflow 2.10).
const (
	estateName        = "airflow-5000-10000dags-1%"
	estateNameV1      = "airflow2-5000-10000dags-1%"
	smallEstateNameV1 = "airflow2-500-1000dags-10%"
)

func named(reps []*bench.Report, name string) *bench.Report {
	for _, r := range reps {
		if r.Config.Name == name {
			return r
		}
	}
	return nil
}

func find(reps []*bench.Report, dags int, churn float64) *bench.Report {
	for _, r := range reps {
		e := r.Config.Estate
		if e.Kind == event.SourceAirflow && e.DAGs == dags && e.Churn == churn {
			return r
		}
	}
	return nil
}

// writeMachine notes where the figures come from.
func writeMachine(w io.Writer) {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s %s/%s, %s\n", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format(time.DateOnly))
}

func intList(name, s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: %q is not a non-negative integer", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func floatList(name, s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || v > 1 {
			return nil, fmt.Errorf("%s: %q is not a share in (0, 1]", name, f)
		}
		out = append(out, v)
	}
	return out, nil
}
