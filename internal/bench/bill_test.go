package bench

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/event"
)

// The bill's arithmetic on numbers computed by hand from the price table.
func TestComputeBill(t *testing.T) {
	in := BillInput{
		Interval: time.Minute, TaskExecs: 100, Messages: 50, PubSubBytes: 50_000,
		PollWall: 250 * time.Millisecond, TraceWall: 20 * time.Millisecond, SinkWall: 150 * time.Millisecond,
		PollReads: 60, PollWrites: 70, RunDeletes: 10, LedgerReads: 200, LedgerWrites: 200, LedgerDeletes: 200,
		BigQueryRowBytes: 102_400, Rows: 100, SchedulerJobs: 1, PollRequests: 1, Consumers: 2,
		MonthSeconds: month.Seconds(), TraceInstanceSecs: 60,
	}
	dep := Deployment{
		Poll:         Function{"poll", 1, 1, 1},
		Trace:        Function{"trace", 0.5, 0.5, 1},
		Sink:         Function{"sink", 1, 2, 2}, // two requests share an instance's billed time
		TraceSidecar: Function{"trace+sidecar", 2, 1, 1},
	}
	// USD per 1,000,000 task executions = cost per poll x 1e6 / 100 task executions.
	want := map[string]float64{
		"Cloud Run requests: scheduled polls":               1 * 0.40e-6 * 1e4,
		"Cloud Run requests: push deliveries (trace, sink)": 100 * 0.40e-6 * 1e4,
		"Cloud Run CPU+memory: poll (1.00 vCPU, 1 GiB)":     0.3 * (0.000024 + 0.0000025) * 1e4,       // 250 ms billed as 300
		"Cloud Run CPU+memory: trace (0.50 vCPU, 0.5 GiB)":  5 * (0.5*0.000024 + 0.5*0.0000025) * 1e4, // 50 x 100 ms
		"Cloud Run CPU+memory: sink (1.00 vCPU, 2 GiB)":     5 * (0.000024 + 2*0.0000025) * 1e4,       // 50 x 200 ms / 2
		"Pub/Sub: publish + each subscription's delivery":   150_000 * 40 / math.Pow(2, 40) * 1e4,
		"Firestore reads: poll":                             60 * 0.03e-5 * 1e4,
		"Firestore writes: poll":                            70 * 0.09e-5 * 1e4,
		"Firestore deletes: run documents (TTL)":            10 * 0.01e-5 * 1e4,
		"Firestore reads: trace ledger":                     200 * 0.03e-5 * 1e4,
		"Firestore writes: trace ledger":                    200 * 0.09e-5 * 1e4,
		"Firestore deletes: trace ledger (TTL)":             200 * 0.01e-5 * 1e4,
		"BigQuery streaming inserts (100.0 rows)":           102_400 * 0.01 / 200e6 * 1e4,
		"Cloud Scheduler (job-months, amortised)":           0.10 / 43_200 * 1e4, // 43,200 one-minute polls in 30 days
		"Network": 0,
	}
	b, err := Compute("hand", in, dep)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Lines) != len(want) {
		t.Errorf("%d lines, want %d", len(b.Lines), len(want))
	}
	for _, l := range b.Lines {
		w, ok := want[l.Component]
		if !ok {
			t.Errorf("unexpected line %q", l.Component)
			continue
		}
		if !near(l.USD, w) {
			t.Errorf("%s: $%.8f, want $%.8f", l.Component, l.USD, w)
		}
	}
	// 0.004 + 0.4 + 0.0795 + 0.6625 + 1.45 + 0.05457 + 0.18 + 0.63 + 0.01 + 0.6 + 1.8 + 0.2 + 0.0512 + 0.02315
	if !near(b.Total, 6.144917828) {
		t.Errorf("total $%.6f, want $6.144918", b.Total)
	}
	// The sidecar replaces the trace function's requests ($0.2) and time ($0.6625): 60 instance
	// seconds x (2 x 0.000018 + 1 x 0.000002) per poll.
	if !near(b.Sidecar.USD, 22.8) || !near(b.TotalSide, 6.144917828-0.8625+22.8) {
		t.Errorf("sidecar $%.6f, total $%.6f; want $22.8 and $%.6f", b.Sidecar.USD, b.TotalSide, 6.144917828-0.8625+22.8)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestComputeBillErrors(t *testing.T) {
	for name, in := range map[string]BillInput{
		"no task execution": {Interval: time.Minute, MonthSeconds: 1, Messages: 3},
		"no interval":       {TaskExecs: 1, MonthSeconds: 1},
	} {
		_, err := Compute(name, in, Deployed)
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
		if name == "no task execution" && !errors.Is(err, ErrNoTaskExecutions) {
			t.Errorf("%s: %v, want ErrNoTaskExecutions", name, err)
		}
	}
}

func TestBilledSeconds(t *testing.T) {
	for _, c := range []struct {
		wall time.Duration
		want float64
	}{{0, 0.1}, {time.Millisecond, 0.1}, {100 * time.Millisecond, 0.1}, {101 * time.Millisecond, 0.2}, {time.Second, 1}} {
		if got := billedSeconds(c.wall); !near(got, c.want) {
			t.Errorf("billedSeconds(%s) = %g, want %g", c.wall, got, c.want)
		}
	}
}

// The counts of a real estate's deliveries: task executions are the final task events, every
// message is billed at least 1,000 bytes, every row at least 1 KB.
func TestBillOfRun(t *testing.T) {
	testenv.FirestoreEmulator(t)
	e := Estate{Kind: event.SourceArgo, Runs: 10, Tasks: 10, Churn: 0.5, Seed: 5, Interval: time.Minute}
	rep, err := Run(t.Context(), Config{Name: "bill", Estate: e, Polls: 2, SimURL: serveSim(t, e)}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c, err := countDeliveries(rep.Sample)
	if err != nil {
		t.Fatal(err)
	}
	final, events := 0, 0
	for _, d := range rep.Sample {
		for _, ev := range d.Delta.Events {
			events++
			if ev.Status.Terminal() {
				final++
			}
		}
	}
	if c.taskExecs != final || final == 0 {
		t.Errorf("%d task executions counted, %d final events of %d published", c.taskExecs, final, events)
	}
	if c.pubsubBytes < int64(len(rep.Sample))*PubSubMinRequestBytes || c.rows != events || c.rowBytes < int64(events)*BigQueryMinRowBytes {
		t.Errorf("counts %+v for %d deliveries and %d events: below the billing minimums", c, len(rep.Sample), events)
	}
	b, err := BillOf(t.Context(), rep, Deployed)
	if err != nil {
		t.Fatal(err)
	}
	if b.Total <= 0 || b.TotalSide <= b.Total || len(b.Lines) == 0 {
		t.Errorf("bill %+v: nothing priced", b)
	}
}
