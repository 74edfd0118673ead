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
		Interval: time.Minute, TaskExecs: 100, Messages: 50, Keys: 4, PubSubBytes: 50_000,
		PollWall: 250 * time.Millisecond, TraceWall: 20 * time.Millisecond, TraceCPU: 10 * time.Millisecond,
		SinkWall: 150 * time.Millisecond, SinkCPU: 30 * time.Millisecond, EgressBytes: 1 << 20,
		PollReads: 60, PollWrites: 70, RunDeletes: 10, LedgerReads: 200, LedgerWrites: 200, LedgerDeletes: 200,
		BigQueryRowBytes: 102_400, Rows: 100, SchedulerJobs: 1, PollRequests: 1, Consumers: 2,
		MonthSeconds: month.Seconds(), TraceInstanceSecs: 60,
	}
	dep := Deployment{
		Poll:         Function{"poll", 1, 1, 1},
		Trace:        Function{"trace", 0.5, 0.5, 1},
		Sink:         Function{"sink", 1, 2, 8}, // up to min(8, 4 keys) deliveries share an instance's billed time
		TraceSidecar: Function{"trace+sidecar", 2, 1, 1},
	}
	// USD per 1,000,000 task executions = cost per poll x 1e6 / 100 task executions.
	want := map[string]float64{
		"Cloud Run requests: scheduled polls":                             1 * 0.40e-6 * 1e4,
		"Cloud Run requests: push deliveries (trace, sink)":               100 * 0.40e-6 * 1e4,
		"Cloud Run CPU+memory: poll (1.00 vCPU, 1 GiB)":                   0.3 * (0.000024 + 0.0000025) * 1e4,       // 250 ms billed as 300
		"Cloud Run CPU+memory: trace (0.50 vCPU, 0.5 GiB, concurrency 1)": 5 * (0.5*0.000024 + 0.5*0.0000025) * 1e4, // 50 x 100 ms
		// 13 waves of 4 (50 messages over 4 keys), each 150 ms (longer than 4 x 30 ms of CPU) billed as 200.
		"Cloud Run CPU+memory: sink (1.00 vCPU, 2 GiB, concurrency 8)":             13 * 0.2 * (0.000024 + 2*0.0000025) * 1e4,
		"Pub/Sub: publish + each subscription's delivery":                          150_000 * 40 / math.Pow(2, 40) * 1e4,
		"Firestore reads: poll":                                                    60 * 0.03e-5 * 1e4,
		"Firestore writes: poll":                                                   70 * 0.09e-5 * 1e4,
		"Firestore deletes: run documents (TTL)":                                   10 * 0.01e-5 * 1e4,
		"Firestore reads: trace ledger":                                            200 * 0.03e-5 * 1e4,
		"Firestore writes: trace ledger":                                           200 * 0.09e-5 * 1e4,
		"Firestore deletes: trace ledger (TTL)":                                    200 * 0.01e-5 * 1e4,
		"BigQuery streaming inserts (100.0 rows)":                                  102_400 * 0.01 / 200e6 * 1e4,
		"Cloud Scheduler (job-months, amortised)":                                  0.10 / 43_200 * 1e4, // 43,200 one-minute polls in 30 days
		"Network: ingress (API responses; Pub/Sub, Firestore, BigQuery in region)": 0,
		"Network: egress of spans to DataDog (upper bound)":                        0.12 / 1024 * 1e4, // 1 MiB at $0.12 per GiB
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
	total := 0.0
	for _, usd := range want {
		total += usd
	}
	if !near(b.Total, total) {
		t.Errorf("total $%.6f, want $%.6f", b.Total, total)
	}
	// The sidecar replaces the trace function's requests ($0.2) and time ($0.6625): 60 instance
	// seconds x (2 x 0.000018 + 1 x 0.000002) per poll.
	if !near(b.Sidecar.USD, 22.8) || !near(b.TotalSide, total-0.8625+22.8) {
		t.Errorf("sidecar $%.6f, total $%.6f; want $22.8 and $%.6f", b.Sidecar.USD, b.TotalSide, total-0.8625+22.8)
	}
}

// Waves of concurrent deliveries: Pub/Sub pushes one message per ordering key at a time.
func TestConsumerSeconds(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name             string
		f                Function
		deliveries, keys float64
		wall, cpu        time.Duration
		want             float64
	}{
		{"one at a time", Function{"f", 1, 1, 1}, 10, 4, 30 * ms, 30 * ms, 1.0},
		{"keys bound the wave", Function{"f", 1, 1, 80}, 10, 4, 30 * ms, 10 * ms, 0.3},        // 3 waves (4, 4, 2) of 100 ms
		{"concurrency bounds the wave", Function{"f", 1, 1, 2}, 10, 4, 30 * ms, 10 * ms, 0.5}, // 5 waves of 2
		{"CPU of a wave on one vCPU", Function{"f", 1, 1, 80}, 8, 8, 30 * ms, 30 * ms, 0.3},   // 8 x 30 ms of CPU: 240 ms billed 300
		{"two vCPUs", Function{"f", 2, 1, 80}, 8, 8, 30 * ms, 30 * ms, 0.2},                   // 120 ms billed 200
		{"nothing delivered", Function{"f", 1, 1, 80}, 0, 0, 0, 0, 0},
	} {
		if got := consumerSeconds(c.f, c.deliveries, c.keys, c.wall, c.cpu); !near(got, c.want) {
			t.Errorf("%s: %g billed seconds, want %g", c.name, got, c.want)
		}
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
	ids := map[string]bool{}
	for _, d := range rep.Sample {
		ids[d.Message.ID] = true
	}
	if c.messages != len(ids) || c.messages >= len(rep.Sample) || c.keys == 0 {
		t.Errorf("%d messages (%d ordering keys) counted for %d distinct messages carrying %d deltas: want them distinct, and batches", c.messages, c.keys, len(ids), len(rep.Sample))
	}
	if c.pubsubBytes < int64(c.messages)*PubSubMinRequestBytes || c.rows != events || c.rowBytes < int64(events)*BigQueryMinRowBytes {
		t.Errorf("counts %+v for %d messages and %d events: below the billing minimums", c, c.messages, events)
	}
	b, err := BillOf(t.Context(), rep, Deployed)
	if err != nil {
		t.Fatal(err)
	}
	if b.Total <= 0 || b.TotalSide <= b.Total || len(b.Lines) == 0 {
		t.Errorf("bill %+v: nothing priced", b)
	}
}
