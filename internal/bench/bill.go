package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/farmobs/farm/pkg/sink"
)

// ErrNoTaskExecutions says the measured polls saw no task execution reach a final state: there is
// nothing to divide the cost by.
var ErrNoTaskExecutions = errors.New("no task execution reached a final state in the measured polls")

// Function is how terraform deploys one function: what its instance time is billed on.
type Function struct {
	Name        string
	VCPU        float64 // vCPUs of an instance
	GiB         float64 // memory of an instance
	Concurrency int     // max_instance_request_concurrency
}

// Deployed are terraform's defaults (terraform/functions.tf, trace.tf, variables.tf): the poll
// 512Mi, whose default CPU is 1/3 vCPU, one request at a time; the trace function 1 vCPU + 1Gi and
// the sink 1 vCPU + 512Mi (consumer_cpu, function_memory) taking 40 and 80 deliveries at a time
// (consumer_concurrency); the trace service with the DataDog sidecar (datadog_site, the default
// path) runs 1 vCPU + 1Gi for the tracer and 1 vCPU + 512Mi for serverless-init, CPU always
// allocated (instance-based billing).
var Deployed = Deployment{
	Poll:         Function{"poll", 1.0 / 3, 0.5, 1},
	Trace:        Function{"trace", 1, 1, 40},
	Sink:         Function{"sink", 1, 0.5, 80},
	TraceSidecar: Function{"trace+sidecar", 2, 1.5, 40},
}

// Deployment is the functions a bill is computed for.
type Deployment struct {
	Poll, Trace, Sink Function
	TraceSidecar      Function // the trace service in sidecar mode: instance-based billing
}

// BillInput is what one configuration measured, per poll (means over the measured polls; the
// per-delivery figures come from the deliveries the polls published, scaled to all of them).
type BillInput struct {
	Interval          time.Duration // between polls: one Cloud Scheduler request each
	TaskExecs         float64       // task events reaching a final state
	Messages          float64       // published messages: one push delivery to each consumer
	Keys              float64       // ordering keys among them: Pub/Sub delivers one message per key at a time
	PubSubBytes       float64       // billed bytes of one publish or one delivery of every message: max(1,000, size) each
	PollWall          time.Duration // the poll's wall time (one request)
	TraceWall         time.Duration // the trace handler's wall per delivery
	TraceCPU          time.Duration // … and its CPU time
	SinkWall          time.Duration // the sink handler's wall per delivery
	SinkCPU           time.Duration // … and its CPU time
	EgressBytes       float64       // spans sent towards DataDog (the tracer's msgpack payloads)
	PollReads         float64       // Firestore, by the poll
	PollWrites        float64       //
	RunDeletes        float64       // run documents that will expire (TTL): runs reaching a final state
	LedgerReads       float64       // the trace ledger's
	LedgerWrites      float64       //
	LedgerDeletes     float64       // ledger documents that will expire (TTL): one per write, at most
	BigQueryRowBytes  float64       // billed bytes of the streamed rows: max(1 KB, size) each
	Rows              float64       //
	SchedulerJobs     float64       // Cloud Scheduler jobs serving the configuration (one per source)
	PollRequests      float64       // scheduled poll requests (1)
	Consumers         int           // push subscriptions (trace and sink: 2)
	MonthSeconds      float64       // a billing month
	TraceInstanceSecs float64       // sidecar mode: instance seconds of the trace service per poll
}

// Line is one component of a bill: its operations per poll and its cost per 1,000,000 task executions.
type Line struct {
	Component string
	PerPoll   float64 // operations, seconds or bytes per poll
	Unit      string
	USD       float64 // per 1,000,000 task executions
}

// Bill is a configuration's Google Cloud cost per 1,000,000 task executions.
type Bill struct {
	Name      string
	TaskExecs float64 // per poll
	Lines     []Line  // with the trace as a request-based function
	Sidecar   Line    // the trace service with the DataDog sidecar instead of the trace function's CPU, memory and requests
	Total     float64 // trace as a function
	TotalSide float64 // trace with the sidecar (the default deployment)
}

// billedSeconds rounds a request's wall up to Cloud Run's granularity.
func billedSeconds(d time.Duration) float64 {
	g := time.Duration(RunBillingGranularityMs) * time.Millisecond
	n := (d + g - 1) / g
	if n < 1 {
		n = 1
	}
	return time.Duration(int64(n) * int64(g)).Seconds() // n counts periods of g
}

// requestTime is the CPU and memory cost of requests of wall each, on f, one at a time.
func requestTime(f Function, requests float64, wall time.Duration) (secs, usd float64) {
	secs = requests * billedSeconds(wall)
	return secs, secs * (f.VCPU*PriceRunCPU.Each() + f.GiB*PriceRunMemory.Each())
}

// consumerSeconds is the billed instance time of deliveries of wall and cpu each on f: Pub/Sub
// pushes one message per ordering key at a time, so up to min(concurrency, keys) of them are in
// flight together on one instance, a wave, billed once (rounded up to 100 ms) for as long as its
// slowest delivery or as its CPU work takes on f's vCPUs, whichever is longer.
func consumerSeconds(f Function, deliveries, keys float64, wall, cpu time.Duration) float64 {
	if deliveries <= 0 {
		return 0
	}
	wave := max(1, min(float64(max(f.Concurrency, 1)), keys, deliveries))
	waves := math.Ceil(deliveries / wave)
	busy := max(wall, time.Duration(wave*float64(cpu)/max(f.VCPU, 1e-9)))
	return waves * billedSeconds(busy)
}

// consumerTime prices consumerSeconds.
func consumerTime(f Function, deliveries, keys float64, wall, cpu time.Duration) (secs, usd float64) {
	secs = consumerSeconds(f, deliveries, keys, wall, cpu)
	return secs, secs * (f.VCPU*PriceRunCPU.Each() + f.GiB*PriceRunMemory.Each())
}

// Compute prices in for dep. Costs are per poll, then divided by the task executions per poll.
func Compute(name string, in BillInput, dep Deployment) (Bill, error) {
	if in.TaskExecs <= 0 {
		return Bill{Name: name}, fmt.Errorf("%s: %w", name, ErrNoTaskExecutions)
	}
	if in.Interval <= 0 || in.MonthSeconds <= 0 {
		return Bill{Name: name}, fmt.Errorf("%s: poll interval and month must be positive", name)
	}
	per := 1e6 / in.TaskExecs
	pollsPerMonth := in.MonthSeconds / in.Interval.Seconds()
	consumers := float64(in.Consumers)
	b := Bill{Name: name, TaskExecs: in.TaskExecs}
	add := func(c string, n float64, unit string, usd float64) {
		b.Lines = append(b.Lines, Line{c, n, unit, usd * per})
	}
	pushes := in.Messages * consumers
	add("Cloud Run requests: scheduled polls", in.PollRequests, "requests", in.PollRequests*PriceRunRequest.Each())
	add("Cloud Run requests: push deliveries (trace, sink)", pushes, "requests", pushes*PriceRunRequest.Each())
	s, usd := requestTime(dep.Poll, in.PollRequests, in.PollWall)
	add(fmt.Sprintf("Cloud Run CPU+memory: poll (%.2f vCPU, %.2g GiB)", dep.Poll.VCPU, dep.Poll.GiB), s, "billed s", usd)
	s, usd = consumerTime(dep.Trace, in.Messages, in.Keys, in.TraceWall, in.TraceCPU)
	add(fmt.Sprintf("Cloud Run CPU+memory: trace (%.2f vCPU, %.2g GiB, concurrency %d)", dep.Trace.VCPU, dep.Trace.GiB, dep.Trace.Concurrency), s, "billed s", usd)
	traceFn := b.Lines[len(b.Lines)-1].USD + in.Messages*PriceRunRequest.Each()*per
	s, usd = consumerTime(dep.Sink, in.Messages, in.Keys, in.SinkWall, in.SinkCPU)
	add(fmt.Sprintf("Cloud Run CPU+memory: sink (%.2f vCPU, %.2g GiB, concurrency %d)", dep.Sink.VCPU, dep.Sink.GiB, dep.Sink.Concurrency), s, "billed s", usd)
	psBytes := in.PubSubBytes * (1 + consumers)
	add("Pub/Sub: publish + each subscription's delivery", psBytes, "billed bytes", psBytes*PricePubSub.Each())
	add("Firestore reads: poll", in.PollReads, "reads", in.PollReads*PriceFirestoreRead.Each())
	add("Firestore writes: poll", in.PollWrites, "writes", in.PollWrites*PriceFirestoreWrite.Each())
	add("Firestore deletes: run documents (TTL)", in.RunDeletes, "deletes", in.RunDeletes*PriceFirestoreDelete.Each())
	add("Firestore reads: trace ledger", in.LedgerReads, "reads", in.LedgerReads*PriceFirestoreRead.Each())
	add("Firestore writes: trace ledger", in.LedgerWrites, "writes", in.LedgerWrites*PriceFirestoreWrite.Each())
	add("Firestore deletes: trace ledger (TTL)", in.LedgerDeletes, "deletes", in.LedgerDeletes*PriceFirestoreDelete.Each())
	add(fmt.Sprintf("BigQuery streaming inserts (%.1f rows)", in.Rows), in.BigQueryRowBytes, "billed bytes", in.BigQueryRowBytes*PriceBigQueryStreaming.Each())
	jobs := in.SchedulerJobs / pollsPerMonth
	add("Cloud Scheduler (job-months, amortised)", jobs, "job-months", jobs*PriceSchedulerJob.Each())
	add("Network: ingress (API responses; Pub/Sub, Firestore, BigQuery in region)", 0, "bytes", 0)
	add("Network: egress of spans to DataDog (upper bound)", in.EgressBytes, "bytes", in.EgressBytes*PriceInternetEgress.Each())
	for _, l := range b.Lines {
		b.Total += l.USD
	}
	f := dep.TraceSidecar
	if in.TraceInstanceSecs == 0 {
		in.TraceInstanceSecs = max(in.Interval.Seconds(), consumerSeconds(f, in.Messages, in.Keys, in.TraceWall, in.TraceCPU))
	}
	side := in.TraceInstanceSecs * (f.VCPU*PriceRunCPUInstance.Each() + f.GiB*PriceRunMemoryInstance.Each())
	b.Sidecar = Line{fmt.Sprintf("trace service with sidecar (%.0f vCPU, %.2g GiB, CPU always allocated)", f.VCPU, f.GiB), in.TraceInstanceSecs, "instance s", side * per}
	b.TotalSide = b.Total - traceFn + b.Sidecar.USD
	return b, nil
}

// BillAssumptions are printed in the bill's header (and written down in BENCHMARKS.md).
var BillAssumptions = []string{
	"a task execution is a task event whose status is final (an Argo node or an Airflow try), counted in what the measured polls published",
	"a message is a batch of the deltas of several runs of one poll (schema version 2): one Cloud Run request per scheduled poll and per message pushed to each of the 2 consumers (trace, sink); one Cloud Scheduler job per source, month of 30 days",
	"request-based functions as terraform deploys them: the poll (512Mi = 1/3 vCPU, one request at a time) billed its measured wall rounded up to 100 ms; trace (1 vCPU, 1Gi, concurrency 40) and sink (1 vCPU, 512Mi, concurrency 80) billed per wave of deliveries in flight together (at most one per ordering key: min(concurrency, keys)), each wave as long as its mean handler wall or its deliveries' CPU on the instance's vCPU, rounded up to 100 ms",
	"handler walls are in-process (tracer to a local receiver, rows encoded): the round trips to BigQuery, Firestore and DataDog are not in them; below 100 ms they change nothing",
	"Pub/Sub: every message billed max(1,000 B, data + attributes + ordering key) at publish and at each push delivery (the client batches a key's messages into fewer publish requests: an upper bound)",
	"Firestore: the poll's measured reads and writes; the trace ledger at 1 read + 1 write per delivered message (the tracer keeps one ledger entry per message: pkg/apm's group commit); TTL deletes: one per run reaching a final state (runs) and one per ledger write (farm_ledger), an upper bound",
	"BigQuery: the sink's legacy streaming inserts, each row billed max(1 KB, its JSON size)",
	"sidecar mode (the default, datadog_site): instance-based, no request fee; at least one instance all month, or the deliveries' billed waves if longer: a lower bound",
	"network: ingress (orchestrator API responses) is free, and Pub/Sub, Firestore and BigQuery in the functions' region cost no transfer; egress of spans to DataDog billed as Premium Tier internet egress of the tracer's msgpack payloads (an upper bound: the agent compresses, and an agent reached in-region over internal IPs costs none)",
	"list prices, no free tier (2 M Run requests, 10 GiB Pub/Sub, 3 Scheduler jobs a month), Firestore regional",
}

// Write prints b as a table.
func (b Bill) Write(w io.Writer) {
	fmt.Fprintf(w, "\n== bill: %s, %.1f task executions per poll; USD per 1,000,000 task executions\n", b.Name, b.TaskExecs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "component\tper poll\tunit\tUSD / 1M tasks\t")
	for _, l := range b.Lines {
		fmt.Fprintf(tw, "%s\t%.4g\t%s\t%.4f\t\n", l.Component, l.PerPoll, l.Unit, l.USD)
	}
	fmt.Fprintf(tw, "TOTAL, trace as a function (datadog_agent_url)\t\t\t%.4f\t\n", b.Total)
	fmt.Fprintf(tw, "%s\t%.4g\t%s\t%.4f\t\n", b.Sidecar.Component, b.Sidecar.PerPoll, b.Sidecar.Unit, b.Sidecar.USD)
	fmt.Fprintf(tw, "TOTAL, trace with the DataDog sidecar (datadog_site, default)\t\t\t%.4f\t\n", b.TotalSide)
	_ = tw.Flush()
	fmt.Fprintf(w, "%s  bill under $%.2f per 1,000,000 task executions, trace as a function: $%.4f\n", passMiss(b.Total < BillTarget), BillTarget, b.Total)
	fmt.Fprintf(w, "%s  … with the DataDog sidecar: $%.4f (its always-on instance: $%.4f)\n", passMiss(b.TotalSide < BillTarget), b.TotalSide, b.Sidecar.USD)
}

// WriteBillHeader prints the prices and assumptions once before the bills.
func WriteBillHeader(w io.Writer) {
	fmt.Fprintln(w, "\n== the bill: Google Cloud cost per 1,000,000 task executions (DataDog's own price excluded)")
	WritePrices(w)
	fmt.Fprintln(w, "assumptions:")
	for _, a := range BillAssumptions {
		fmt.Fprintln(w, "  - "+a)
	}
}

// BillTarget is issue 14's target, in USD per 1,000,000 task executions, DataDog's own price excluded.
const BillTarget = 0.50

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// month is the billing month of the bill.
const month = 30 * 24 * time.Hour

// BillOf measures what r's published messages cost the consumers (the real tracer to a local
// receiver, the sink's rows) and prices r for dep.
func BillOf(ctx context.Context, r *Report, dep Deployment) (Bill, error) {
	s := r.Summarize()
	name := r.Config.Name
	if len(r.Sample) == 0 {
		return Bill{Name: name}, fmt.Errorf("%s: the measured polls published nothing: %w", name, ErrNoTaskExecutions)
	}
	tp, err := EncodeThroughput(ctx, r.Sample)
	if err != nil {
		return Bill{Name: name}, fmt.Errorf("%s: consumers: %w", name, err)
	}
	c, err := countDeliveries(r.Sample)
	if err != nil {
		return Bill{Name: name}, fmt.Errorf("%s: %w", name, err)
	}
	msgs := time.Duration(c.messages)
	scale := s.Messages / float64(c.messages) // per-message figures of the sample, to all the messages of a poll
	in := BillInput{
		Interval:         r.Config.Estate.Interval,
		TaskExecs:        float64(c.taskExecs) * scale,
		Messages:         s.Messages,
		Keys:             min(s.Messages, float64(c.keys)),
		PubSubBytes:      float64(c.pubsubBytes) * scale,
		PollWall:         s.Wall,
		TraceWall:        tp.SpanWall / msgs,
		TraceCPU:         tp.SpanCPU / msgs,
		SinkWall:         tp.RowWall / msgs,
		SinkCPU:          tp.RowCPU / msgs,
		EgressBytes:      float64(tp.SpanBytes) * scale,
		PollReads:        s.Reads,
		PollWrites:       s.Writes,
		RunDeletes:       float64(c.runsFinished) * scale,
		LedgerReads:      s.Messages, // at most 1 read + 1 write per delivered message (see BillAssumptions)
		LedgerWrites:     s.Messages,
		LedgerDeletes:    s.Messages,
		BigQueryRowBytes: float64(c.rowBytes) * scale,
		Rows:             float64(c.rows) * scale,
		SchedulerJobs:    1,
		PollRequests:     1,
		Consumers:        2,
		MonthSeconds:     month.Seconds(),
	}
	return Compute(name, in, dep)
}

// deliveryCounts are what a set of deliveries holds that the bill prices.
type deliveryCounts struct {
	taskExecs, runsFinished, rows int
	messages, keys                int // distinct messages and ordering keys
	pubsubBytes, rowBytes         int64
}

func countDeliveries(ds []Delivery) (deliveryCounts, error) {
	var c deliveryCounts
	seen, keys := map[string]bool{}, map[string]bool{}
	for _, d := range ds {
		for _, e := range d.Delta.Events {
			if e.Status.Terminal() {
				c.taskExecs++
			}
		}
		if d.Delta.Part == d.Delta.Parts && d.Delta.Run.Status.Terminal() && d.Delta.Run.PrevPhase != d.Delta.Run.Phase {
			c.runsFinished++
		}
		if !seen[d.Message.ID] { // a batch's deltas share their message
			seen[d.Message.ID] = true
			keys[d.Message.OrderingKey] = true
			size := len(d.Message.Data) + len(d.Message.OrderingKey)
			for k, v := range d.Message.Attributes {
				size += len(k) + len(v)
			}
			c.pubsubBytes += int64(max(size, PubSubMinRequestBytes))
		}
		_, rows, err := sink.Rows(d.Message, d.Delta)
		if err != nil {
			return c, fmt.Errorf("rows of %s: %w", d.Delta.ID, err)
		}
		for _, r := range rows {
			cols, _, err := r.Save()
			if err != nil {
				return c, fmt.Errorf("row of %s: %w", d.Delta.ID, err)
			}
			j, err := json.Marshal(cols)
			if err != nil {
				return c, fmt.Errorf("row of %s: %w", d.Delta.ID, err)
			}
			c.rows++
			c.rowBytes += int64(max(len(j), BigQueryMinRowBytes))
		}
	}
	c.messages, c.keys = len(seen), len(keys)
	return c, nil
}
