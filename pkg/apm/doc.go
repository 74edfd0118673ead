// Package apm turns RunDeltas into DataDog APM spans: one trace per workflow run, nested the way
// the workflow is. It is the only package that imports the tracer (dd-trace-go), so moving to
// another tracer version is a change here alone.
//
// # Span model
//
// The run is the root span (operation argo.workflow or airflow.dag_run, resource = pipeline),
// sent when the run reaches a terminal status. Every task event that reached a terminal status
// (event.Status.Terminal) is a span (argo.node or airflow.task, resource = task name) with the
// task's real start and end, child of the span of its ParentID, or of the root when ParentID is
// empty. Argo's root node, whose id is the workflow name, IS the run and is not sent twice. Group
// nodes (Argo DAG, Steps, StepGroup, TaskGroup, Retry; Airflow task groups and mapped tasks) are
// spans like any other node, sent when they finish, so the waterfall nests like the workflow.
// Operation names are five constants: pipelines and tasks live in the resource, where DataDog's
// per-operation limits expect them.
//
// # Sensors in reschedule mode
//
// A sensor in mode="reschedule" runs one try (one try_number) as several pokes: running →
// up_for_reschedule → scheduled → queued → running … → success. The try is ONE airflow.task span,
// from the try's first start to its final end, with its final outcome, like any other try: APM's
// count, error rate and duration of the task are per try, whatever the number of pokes. What a
// server shows as the try's start differs: Airflow 2.0 to 3.2 overwrite start_date with each
// poke's start (upstream issues 15645, 30552, 66784), Airflow 1.10 and 3.x with upstream PR 66790
// keep the first poke's. The poll engine keeps the first start of an open attempt in its run state
// and puts it on the attempt's events (event.TaskEvent.AttemptStartedAt), so the span does not
// depend on the version. Nothing earlier than what some poll saw can be known: a try first seen
// finished on a server that overwrites the start spans its last poke only.
//
// Pokes are shown, as airflow.poke spans (their own operation, so they stay out of the task's
// statistics) that are children of the try's span: one per up_for_reschedule event, and one for
// the poke that ended the try when the try is known to have been rescheduled. Each has its own
// times as far as the API tells them: its end, and its own start when the server overwrites
// start_date; where the server keeps the first start, a later poke starts at its queued time
// (queued_when, the latest instant known before it ran; tag airflow.poke.start_from says which).
// Why shown at all: the gaps between pokes are where a sensor's wait goes, and the waterfall shows
// them; why children and never spans of the try: a second span of one try doubles its count in
// APM and, keyed by the try, collides with the try's own span.
//
// # Identity
//
// Nothing is random, so spans sent by different invocations join one trace and a redelivered or
// replayed message produces the same ids:
//
//	trace id (low 64 bits) = hash(tenant, run key, run start)     = the root span's id
//	trace id (high 64 bits) = run start in Unix seconds << 32      (DataDog's 128-bit layout)
//	span id                = hash(trace id, task key)
//	task key               = node id, plus "#attempt" for an Airflow task-instance try
//	poke span id           = hash(trace id, task key + "/poke@" + the poke's end)
//	parent span id         = hash(trace id, parent node id)       (root id when there is none;
//	                         a poke's parent is its try: hash(trace id, task key))
//
// Argo retries are distinct nodes (…(0), …(1)), so the node id alone is unique per attempt;
// Airflow keeps one task id across tries, so a try adds its number. Pokes of one try are told apart
// by their end, which no two pokes share whichever start the server shows. Groups never have
// tries, so a child can name its parent's span from ParentID alone. The run's start time is part of the trace
// identity because `argo retry` (and an Airflow clear of a finished run) resets it while keeping
// the same node ids: the re-execution becomes a trace of its own instead of colliding, span id for
// span id, with the first. The high bits are what the tracer itself gives a root started at the
// run's start, so every chunk carries the same 128-bit id (the backend also joins on the low bits).
//
// # Delivery
//
// The tracer is process-global: a session serialises on a mutex, starts the tracer, emits, and
// stops it. tracer.Flush does not wait for delivery; tracer.Stop does (it drains the queue and
// waits for the HTTP sends). The tracer's HTTP client records the outcome of every trace request
// (X-Datadog-Trace-Count and the status), and a session fails with ErrDelivery unless the agent
// accepted every span emitted, so Pub/Sub redelivers. Each span is its own locally rooted chunk
// (its parent is given as a remote context), with manual keep, so a span looks the same whichever
// invocation sends it, and counting chunks counts spans. The tracer drops chunks beyond a queue
// of 1,000, so a session sends at most sessionSpans spans.
//
// # Concurrent deliveries: group commit
//
// The function takes many requests at once (its request concurrency) and each delivery goes
// through event.DecodeDeltas and the planner in its own request. The spans then join a queue, and
// one goroutine sends groups while any wait: a group is the queue's head, as many deliveries as fit
// one session (at least one), so deliveries that arrived while a session ran share the next one.
// There is no waiting window: a delivery that finds no session running starts one at once, so
// grouping adds no latency when the function is idle and the group grows with the load. A group
//
//  1. reads the ledger entries of its messages in one call (one document read per message);
//  2. sends every span no entry holds, once even when several deliveries carry it (Pub/Sub may
//     deliver a message again while the first delivery is in flight), in one tracer session, or
//     a few when a large message exceeds sessionSpans;
//  3. records what the agent accepted in one call (one document write per message that sent
//     something);
//  4. answers each delivery with its own outcome.
//
// A session's barrier is the tracer's Stop, so a failed session fails the deliveries whose spans
// it held, and only them; their spans in later sessions are then not sent (the redelivery sends
// whatever is missing), and what earlier sessions sent is recorded. Within a session the tracer
// may split its spans over several payloads, of which the agent might accept some: the session
// still fails, and the redelivery sends the accepted ones again. A short session sends one
// payload, so this is rare. A group's work does not stop when the request that started it is
// cancelled: the other deliveries wait for it.
//
// Throughput (BenchmarkConcurrentDeliveries, the bench's trace line; figures in BENCHMARKS.md):
// per message the cost is decoding (the JSON read into a tree for the schema check, then into the
// struct) and the HTTP request; per session, starting the tracer, most of it its statsd client
// for the tracer's health metrics, whose buffers (about 3 MB) also drive the garbage collector;
// per span, the tracer's encoding. Grouping amortises the session. GOGC=400 and
// DD_TRACE_INTERNAL_METRICS_ENABLED=false in the function's environment about double what a core
// sends.
// # Delivery through the serverless-init sidecar
//
// The deployment's default (terraform/trace.tf) runs the trace function as a Cloud Run service
// with DataDog's serverless-init agent as a sidecar: the tracer sends to localhost:8126. "The agent
// accepted every span" then means the sidecar in the same instance has them in memory, not that
// DataDog's intake has them. What the sidecar does with them, read in DataDog's datadog-agent
// (cmd/serverless-init: main.go, mode/sidecarcontainer_mode.go, log/log.go):
//
//   - Started without arguments it runs in sidecar mode. A ticker flushes its trace agent to the
//     intake every 3 seconds (setupTraceAgent); nothing else sends spans on.
//   - On SIGTERM or SIGINT (RunSidecar) it makes a last flush of traces, metrics and logs, bounded
//     by a 5-second timeout (lastFlush, defaultFlushTimeout). Cloud Run sends SIGTERM when it
//     stops an instance and SIGKILLs it 10 seconds later.
//
// With Cloud Run's default request-based billing (CPU allocated only during requests, start-up
// and shutdown) the sidecar is throttled as soon as the function answers: the ticker and any send
// in flight stall until the next request (an idle instance lives up to 15 minutes) or until the
// shutdown, where one 5-second flush is the last chance. Spans would reach DataDog minutes late,
// or not at all when that flush fails, with the message already acknowledged. So the deployment
// allocates CPU always (cpu_idle = false, instance-based billing): the sidecar forwards within
// about 3 seconds of accepting, and a shutdown only has the last 3 seconds' spans to flush. Its
// cost is in the README ("The DataDog agent").
//
// What the function's answer still does not cover, in either mode: spans the agent accepted and
// then lost before DataDog's intake took them — the agent process crashing or running out of
// memory, an intake outage longer than the agent retries before it is stopped, an instance lost
// without SIGTERM. They are recorded in the ledger as sent and are not sent again. An external
// agent (datadog_agent_url) has the same contract but outlives the function's instances.
//
// A cold start cannot deliver before the sidecar listens: the function's container depends on the
// agent's, which is healthy only once its trace intake accepts connections. Were it not listening,
// the call would fail with ErrDelivery and Pub/Sub would deliver the message again.
//
// # Redelivery and age
//
// The ledger (state.Ledger, namespace LedgerNamespace) keeps one entry per message: its name is
// the message's run executions (the trace ids of its deltas; the trace id itself for a message of
// one run, a hash of the sorted ids for several), its data the ids of the spans sent for them (8
// bytes each, oldest first; beyond state.MaxLedgerData, about 115,000 spans, the oldest are
// forgotten). Before sending, a group reads its messages' entries; after the agent accepted the
// spans, it writes each entry again with the new ids added, expiring MaxAge later (Firestore's TTL
// policy deletes it). A message therefore costs at most one read and one write, whatever its
// number of spans; a message with nothing to send (only open tasks) costs neither.
//
// What that guarantees:
//
//   - a redelivered message sends nothing twice, and a retried partial failure sends only what is
//     missing: the same message names the same entry;
//   - with messages of one run each (today's format), every message about a run execution — a
//     redelivery, a replay (new delta id, same spans), a later delta repeating the finished run —
//     names the same entry, so a span, the finished root among them, is sent once per entry
//     lifetime, and a group that finishes again within one run execution keeps its first span;
//   - with messages of several runs, a message finds only the spans sent by messages of the same
//     runs. A poll that crashed after publishing and publishes the same deltas (same delta and
//     event ids) composed differently, a replay composed differently, or a later poll's message
//     that repeats a finished run among other runs names another entry: their spans are sent
//     again. DataDog then holds the span twice (same trace and span id): the waterfall shows it
//     once per copy and APM counts it twice. Nothing is lost. The poll publishes a delta of a
//     finished run only when a task of it changed, so outside crashes and replays this is rare;
//   - a concurrent redelivery of one message in one instance is sent once (one group); two
//     instances handling copies of a message at the same time may both send it (as before).
//
// Spans that start more than MaxAge (DataDog's 18-hour intake window) in the past, or over 2 hours
// in the future, are not sent: they are logged and counted, and the message is acknowledged.
//
// # Agent and tracer settings
//
// The agent address comes from the tracer's own settings: DD_TRACE_AGENT_URL (http://, https://
// or unix://), else DD_AGENT_HOST and DD_TRACE_AGENT_PORT, else the agent's socket if present,
// else localhost:8126. The deployment sets DD_TRACE_AGENT_URL in both modes (the sidecar's
// http://localhost:8126, or datadog_agent_url), and DataDog's unified service tagging: DD_SERVICE
// (the function's name; the tracer's own service), DD_ENV and DD_VERSION (the source archive). DD_TRACE_SEND_RETRIES and the other DD_* settings apply as usual; New
// refuses DD_TRACE_ENABLED=false, under which no message could ever be delivered. Deployments
// should set DD_INSTRUMENTATION_TELEMETRY_ENABLED=false and DD_REMOTE_CONFIGURATION_ENABLED=false
// in the function's environment: a tracer that lives for one session would otherwise report a
// start and a stop to telemetry per group of deliveries. The tracer reads the telemetry switch once, when the process
// starts, so setting it from code is too late. Propagation settings must keep the datadog or
// tracecontext extraction style (the default keeps both): parents are given to the tracer as
// remote contexts in those headers.
package apm
