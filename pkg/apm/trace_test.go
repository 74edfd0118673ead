package apm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/deadlettertest"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/pkg/state/firestore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// wantArgo is the trace of nestedArgoDelta.
func wantArgo() []wantSpan {
	node := func(n argoNode, parent string) wantSpan {
		w := wantSpan{key: key(n.id, n.attempt), parent: parent, name: apm.OpArgoNode, resource: n.display,
			start: secs(n.start), end: secs(n.end),
			meta: map[string]string{"task.type": n.typ, "argo.template": n.template, "status": string(argo.StatusOf(n.phase)), "state": n.phase,
				"pod_name": n.pod, "argo.host_node": n.host, "task.name": n.name}}
		if argo.StatusOf(n.phase).IsError() {
			w.errType, w.errMsg = n.phase, n.message
			w.meta["task.message"] = ""
		} else {
			w.meta["task.message"] = n.message
		}
		w.metrics = map[string]float64{"task.attempt": float64(n.attempt)}
		for res, s := range n.resources {
			w.metrics["argo.resources_duration."+res] = float64(s)
		}
		return w
	}
	return []wantSpan{
		{key: "run", name: apm.OpArgoWorkflow, resource: "etl-nightly", start: 0, end: 300, errType: "Failed",
			errMsg: "child '" + nTransform.id + "' failed",
			meta:   map[string]string{"status": "failed", "state": "Failed", "argo.cron_workflow": "etl-nightly", "task.id": "", "run.message": ""}},
		node(nExtract, "run"),
		node(nExtract0, key(nExtract.id, 0)),
		node(nExtract1, key(nExtract.id, 0)),
		node(nTransform, "run"),
		node(nClean, key(nTransform.id, 0)),
		node(nLoad, key(nTransform.id, 0)),
		node(nNotify, "run"),
		node(nReport, "run"),
	}
}

func secs(t *time.Time) float64 { return t.Sub(day0).Seconds() }

func TestNestedArgoWorkflowWithRetriesAndFailures(t *testing.T) {
	e := newEnv(t)
	res, err := e.tracer.Trace(t.Context(), nestedArgoDelta())
	if err != nil {
		t.Fatal(err)
	}
	// Checked the moment Trace returns: no waiting, no polling.
	checkTree(t, e.agent.Spans(), serviceArgo, day0, commonArgo, wantArgo())
	if want := (apm.Result{Sent: 9}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	if got := len(e.agent.Traces()); got != 1 {
		t.Errorf("%d traces, want 1", got)
	}
	if c := e.agent.Counts(); c.Rejected != 0 || c.Chunks != 9 {
		t.Errorf("receiver counts %+v: want 9 chunks (one per span), none rejected", c)
	}
}

func wantAirflow() []wantSpan {
	task := func(tr airflowTry, parent, errType, errMsg string) wantSpan {
		nodeID := tr.taskID
		if tr.mapped {
			nodeID = fmt.Sprintf("%s[%d]", tr.taskID, tr.mapIndex)
		}
		w := wantSpan{key: key(nodeID, tr.try), parent: parent, name: apm.OpAirflowTask, resource: tr.taskID,
			start: secs(tr.start), end: secs(tr.end), errType: errType, errMsg: errMsg,
			meta:    map[string]string{"state": tr.state, "airflow.task_id": tr.taskID, "airflow.pool": firstNonEmpty(tr.pool, "default_pool"), "airflow.executor": "CeleryExecutor", "airflow.queue": "default", "airflow.hostname": tr.hostname},
			metrics: map[string]float64{"task.attempt": float64(tr.try), "airflow.try_number": float64(tr.try), "airflow.max_tries": float64(tr.maxTries), "airflow.priority_weight": 3}}
		if tr.mapped {
			w.metrics["airflow.map_index"] = float64(tr.mapIndex)
		} else {
			w.metrics["airflow.map_index"] = -1
		}
		if tr.queueSeconds != nil {
			w.metrics["airflow.queue_seconds"] = *tr.queueSeconds
			w.meta["airflow.queued_at"] = tr.queued.Format(time.RFC3339Nano)
		}
		return w
	}
	fetch1 := task(tFetch1, "run", "up_for_retry", tFetch1.message)
	fetch1.meta["status"] = "up_for_retry"
	fetch1.meta["airflow.operator"] = "PythonOperator"
	score2 := task(tScore2, key("enrich.score", 1), "", "")
	score2.meta["airflow.missed_tries"] = "1"
	score2.meta["airflow.task_instance_id"] = tScore2.taskInstanceID
	mappedAggregate := task(tScore, key("enrich", 0), "", "")
	mappedAggregate.resource = "enrich.score[]"
	cleanup := task(tClean, "run", "", "")
	cleanup.meta["status"] = "skipped"
	return []wantSpan{
		{key: "run", name: apm.OpAirflowDagRun, resource: dagID, start: 10, end: 421, errType: "failed", errMsg: "the run failed (the orchestrator gave no message)",
			meta: map[string]string{"status": "failed", "airflow.logical_date": "2026-03-02T00:00:00Z"}},
		fetch1,
		task(tFetch2, "run", "", ""),
		{key: key("enrich", 0), parent: "run", name: apm.OpAirflowTask, resource: "enrich", start: 381, end: 398,
			meta: map[string]string{"task.type": "TaskGroup", "status": "succeeded", "airflow.task_id": ""}},
		mappedAggregate,
		task(tScore0, key("enrich.score", 1), "", ""),
		task(tScore1, key("enrich.score", 1), "", ""),
		score2,
		task(tMerge, key("enrich", 0), "", ""),
		task(tLoad, "run", "failed", tLoad.message),
		task(tPub, "run", "upstream_failed", "not run: an upstream task failed"),
		cleanup,
	}
}

func TestAirflowRunWithGroupsMappedAndRetriedTasks(t *testing.T) {
	e := newEnv(t)
	res, err := e.tracer.Trace(t.Context(), groupedAirflowDelta())
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, e.agent.Spans(), serviceAirflow, *at(10), commonAirflow, wantAirflow())
	if want := (apm.Result{Sent: 12}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
}

// TestSpansOfThreeInvocationsJoinOneTrace sends a run in three deltas, as three polls publish it,
// each through a message of its own: the spans share one trace id and nest as if sent at once.
func TestSpansOfThreeInvocationsJoinOneTrace(t *testing.T) {
	e := newEnv(t)
	deltas := []*event.RunDelta{
		argoDelta("Running", nil, nRoot.running(), nExtract.running(), nExtract0, nExtract1.running(), nTransform.running(), nClean.running()),
		argoDelta("Running", nil, nExtract, nExtract1, nClean, nLoad.running()),
		argoDelta("Failed", at(300), nRoot, nTransform, nLoad, nNotify, nReport),
	}
	wantSent := []int{1, 3, 5} // extract(0); extract, extract(1), clean; transform, load, notify, report, run
	for i, d := range deltas {
		before := len(e.agent.Spans())
		if err := e.tracer.HandleMessage(t.Context(), message(t, d, fmt.Sprint(100+i))); err != nil {
			t.Fatalf("invocation %d: %v", i+1, err)
		}
		if got := len(e.agent.Spans()) - before; got != wantSent[i] {
			t.Errorf("invocation %d sent %d spans, want %d", i+1, got, wantSent[i])
		}
	}
	checkTree(t, e.agent.Spans(), serviceArgo, day0, commonArgo, wantArgo())
	if n := len(e.agent.Traces()); n != 1 {
		t.Errorf("the three invocations made %d traces, want 1", n)
	}
	if s := e.tracer.Stats(); s.Messages != 3 || s.Sent != 9 || s.Failed != 0 {
		t.Errorf("stats %+v, want 3 messages, 9 spans sent", s)
	}
}

// TestArgoRetryStartsAnotherTrace: `argo retry` resets the workflow's start and re-runs the failed
// nodes under their old ids. The re-execution must not reuse the first one's span ids.
func TestArgoRetryStartsAnotherTrace(t *testing.T) {
	e := newEnv(t)
	if _, err := e.tracer.Trace(t.Context(), nestedArgoDelta()); err != nil {
		t.Fatal(err)
	}
	retried := argoDelta("Succeeded", at(900), nRoot, nTransform, nLoad)
	retried.Run.StartedAt = at(600)
	for i := range retried.Events {
		ev := &retried.Events[i]
		ev.State, ev.Status, ev.Message, ev.StartedAt = "Succeeded", event.StatusSucceeded, "", at(601+float64(i))
		ev.FinishedAt = at(899)
	}
	res, err := e.tracer.Trace(t.Context(), finish(retried))
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3 || res.Duplicates != 0 {
		t.Fatalf("the retried execution sent %+v, want 3 new spans (transform, load, run)", res)
	}
	traces := e.agent.Traces()
	if len(traces) != 2 {
		t.Fatalf("%d traces, want one per execution", len(traces))
	}
	ids := map[uint64]bool{}
	for _, s := range e.agent.Spans() {
		if ids[s.SpanID] {
			t.Errorf("span id %d sent twice", s.SpanID)
		}
		ids[s.SpanID] = true
	}
	second := traces[1].Spans
	root, _ := traces[1].Root()
	for _, s := range second {
		if s.IsRoot() {
			continue
		}
		if s.Meta["task.id"] == nLoad.id && s.ParentID != spanOf(t, second, nTransform.id).SpanID {
			t.Errorf("load does not nest under the re-run transform")
		}
		if s.Meta["task.id"] == nTransform.id && s.ParentID != root.SpanID {
			t.Errorf("transform does not nest under the re-run's root")
		}
	}
}

func spanOf(t *testing.T, spans []ddagent.Span, taskID string) ddagent.Span {
	t.Helper()
	for _, s := range spans {
		if s.Meta["task.id"] == taskID {
			return s
		}
	}
	t.Fatalf("no span of task %s", taskID)
	return ddagent.Span{}
}

func TestRedeliveredMessageSendsNothingNew(t *testing.T) {
	e := newEnv(t)
	m := message(t, nestedArgoDelta(), "7001")
	if err := e.tracer.HandleMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	first := e.agent.Counts()
	if err := e.tracer.HandleMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if got := e.agent.Counts(); got != first {
		t.Errorf("the redelivery reached the agent: counts %+v, before %+v", got, first)
	}
	// A replay publishes the same transitions under a new delta id; a later delta repeats the
	// finished run: neither sends a span twice.
	replay := nestedArgoDelta()
	replay.Replay, replay.Events = true, replay.Events[3:]
	res, err := e.tracer.Trace(t.Context(), finish(replay))
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 0 || res.Duplicates != 7 {
		t.Errorf("replay result %+v, want 7 duplicates (6 nodes and the run), none sent", res)
	}
	if s := e.tracer.Stats(); s.Sent != 9 || s.Duplicates != 9+7 {
		t.Errorf("stats %+v, want 9 sent, 16 duplicates", s)
	}
}

// TestRedeliveryWithFirestoreLedger is the production ledger, on the Firestore emulator.
func TestRedeliveryWithFirestoreLedger(t *testing.T) {
	e := newEnv(t)
	ledger := firestore.New(testenv.Firestore(t), firestore.WithClock(e.clock))
	tr := e.newTracer(t, ledger)
	d := groupedAirflowDelta()
	if res, err := tr.Trace(t.Context(), d); err != nil || res.Sent != 12 {
		t.Fatalf("first delivery: %+v, %v; want 12 spans sent", res, err)
	}
	before := e.agent.Counts()
	res, err := tr.Trace(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 0 || res.Duplicates != 12 || e.agent.Counts() != before {
		t.Errorf("redelivery: %+v, agent %+v (before %+v); want nothing sent", res, e.agent.Counts(), before)
	}
}

func TestUnreachableAgentFailsAndNothingIsRecorded(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close()
	t.Setenv("DD_TRACE_AGENT_URL", closed)

	d := nestedArgoDelta()
	_, err = e.tracer.Trace(t.Context(), d)
	if !errors.Is(err, apm.ErrDelivery) {
		t.Fatalf("error %v, want ErrDelivery", err)
	}
	if err := e.tracer.HandleMessage(t.Context(), message(t, d, "1")); !errors.Is(err, apm.ErrDelivery) {
		t.Fatalf("the handler returned %v, want ErrDelivery so that Pub/Sub redelivers", err)
	}
	// Once the agent is back, the redelivered message sends everything: nothing was recorded.
	t.Setenv("DD_TRACE_AGENT_URL", e.url)
	res, err := e.tracer.Trace(t.Context(), d)
	if err != nil || res.Sent != 9 {
		t.Fatalf("after the agent came back: %+v, %v; want 9 spans sent", res, err)
	}
	checkTree(t, e.agent.Spans(), serviceArgo, day0, commonArgo, wantArgo())
}

func TestAgentErrorAnswerFails(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusTooManyRequests, http.StatusRequestEntityTooLarge} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t)
			srv := httptest.NewServer(failing(e.agent, 0, 1, status))
			t.Cleanup(srv.Close)
			t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
			d := groupedAirflowDelta()
			_, err := e.tracer.Trace(t.Context(), d)
			if !errors.Is(err, apm.ErrDelivery) || !strings.Contains(err.Error(), fmt.Sprint(status)) {
				t.Fatalf("error %v, want ErrDelivery naming status %d", err, status)
			}
			if res, err := e.tracer.Trace(t.Context(), d); err != nil || res.Sent != 12 {
				t.Fatalf("second delivery: %+v, %v; want all 12 spans sent", res, err)
			}
			checkTree(t, e.agent.Spans(), serviceAirflow, *at(10), commonAirflow, wantAirflow())
		})
	}
}

func TestSpansOlderThanMaxAgeAreSkipped(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(day0.Add(maxAge + 100*time.Second))
	if err := e.tracer.HandleMessage(t.Context(), message(t, nestedArgoDelta(), "42")); err != nil {
		t.Fatalf("handler: %v; old spans are skipped and the message acknowledged", err)
	}
	// Spans starting before 100 s are older than 18 h: the run, extract and its attempts.
	got := map[string]bool{}
	for _, s := range e.agent.Spans() {
		got[spanKey(s)] = true
	}
	want := []string{key(nTransform.id, 0), key(nClean.id, 0), key(nLoad.id, 0), key(nNotify.id, 0), key(nReport.id, 0)}
	if len(got) != len(want) {
		t.Errorf("sent %v, want %v", keys(e.agent.Spans()), want)
	}
	for _, k := range want {
		if !got[k] {
			t.Errorf("%s (younger than 18 h) was not sent", k)
		}
	}
	if s := e.tracer.Stats(); s.TooOld != 4 || s.Sent != 5 {
		t.Errorf("stats %+v, want 4 too old, 5 sent", s)
	}
	if !strings.Contains(e.logs.String(), "outside DataDog's intake window") || !strings.Contains(e.logs.String(), `"too_old":4`) {
		t.Errorf("the skipped spans were not logged:\n%s", e.logs)
	}

	e.clock.Set(day0.Add(maxAge + time.Hour))
	res2, err := e.tracer.Trace(t.Context(), groupedAirflowDelta())
	if err != nil || res2.TooOld != 12 || res2.Sent != 0 {
		t.Errorf("a run entirely older than 18 h: %+v, %v; want 12 too old, none sent", res2, err)
	}
}

func TestSpansFarInTheFutureAreSkipped(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(day0.Add(-3 * time.Hour))
	res, err := e.tracer.Trace(t.Context(), nestedArgoDelta())
	if err != nil || res.Future != 9 || len(e.agent.Spans()) != 0 {
		t.Errorf("%+v, %v, %d spans received; want 9 skipped as future", res, err, len(e.agent.Spans()))
	}
}

// Messages that can never be traced — not a push envelope, not a RunDelta by its schema, a schema
// version this build does not read — are never traced: each is acknowledged and kept in the
// dead-letter topic with the reason as an attribute, and logged with a bounded excerpt. If the
// dead-letter topic does not take one, the delivery fails (it comes back).
func TestPoisonMessagesAreAcknowledged(t *testing.T) {
	e := newEnv(t)
	dlq := deadlettertest.New(t)
	tr, err := apm.New(testConfig(), apm.Deps{Ledger: e.ledger, Clock: e.clock, Log: logging.New(e.logs, slog.LevelDebug),
		DeadLetter: deadletter.New(dlq.Publisher, "trace", logging.New(e.logs, slog.LevelDebug)),
	})
	if err != nil {
		t.Fatal(err)
	}
	goodMsg, err := event.MessageOf(nestedArgoDelta())
	if err != nil {
		t.Fatal(err)
	}
	good := goodMsg.Data
	envelope := func(data []byte) []byte {
		b, err := event.EnvelopeJSON(event.Message{ID: "9", PublishTime: day0, Data: data, Attributes: map[string]string{"source": "argo"}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	broken := func(mod func(*event.RunDelta)) []byte {
		d := nestedArgoDelta()
		mod(d)
		m, err := event.MessageOf(d)
		if err != nil {
			t.Fatal(err)
		}
		return envelope(m.Data)
	}
	tests := []struct {
		name, reason string
		body         []byte
	}{
		{"not json", "not a Pub/Sub message envelope", []byte("{")},
		{"no message", `no "message" field`, []byte(`{"subscription":"s"}`)},
		{"data not base64", "not a Pub/Sub message envelope", []byte(`{"message":{"messageId":"1","data":"!!"}}`)},
		{"data not json", "invalid RunDelta", envelope([]byte("not json"))},
		{"unknown schema version", "unsupported RunDelta schema version", envelope([]byte(strings.Replace(string(good), `"schema_version":2`, `"schema_version":99`, 1)))},
		{"not a run delta", "tenant is required", envelope([]byte(`{"schema_version":1,"id":"x","run":{"source":"jenkins"}}`))},
		{"task status outside the enum", "events[0].status", broken(func(d *event.RunDelta) { d.Events[0].Status = "exploded" })},
		{"no tenant", "tenant is required", envelope(bytes.Replace(good, []byte(`"tenant":"acme",`), nil, 1))},
		{"part 0", "part is 0, below the minimum 1", broken(func(d *event.RunDelta) { d.Part = 0 })},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tr.HandleEnvelope(t.Context(), tc.body); err != nil {
				t.Fatalf("a message that can never be processed returned %v; it must be acknowledged", err)
			}
			if s := tr.Stats(); s.Poison != int64(i+1) {
				t.Errorf("poison count %d, want %d", s.Poison, i+1)
			}
			letters := dlq.Letters()
			if len(letters) != i+1 {
				t.Fatalf("%d dead letters, want %d", len(letters), i+1)
			}
			if r := letters[i].Attributes[deadletter.AttrReason]; !strings.Contains(r, tc.reason) {
				t.Errorf("dead letter reason %q, want it to name %q", r, tc.reason)
			}
		})
	}
	if c := e.agent.Counts(); c.TracePayloads != 0 {
		t.Errorf("poison messages reached the agent: %+v", c)
	}
	if n := strings.Count(e.logs.String(), "kept in the dead-letter topic"); n != len(tests) {
		t.Errorf("%d poison log lines, want %d", n, len(tests))
	}
	if !bytes.Contains(good, []byte(`"tenant":"acme",`)) {
		t.Fatal("the test delta's tenant changed: the no-tenant case tests nothing")
	}

	cfg := testConfig()
	cfg.AgentTimeout = apm.DefaultConfig().AgentTimeout
	lost, err := apm.New(cfg, apm.Deps{Ledger: e.ledger, Clock: e.clock, Log: logging.New(e.logs, slog.LevelDebug),
		DeadLetter: deadletter.New(dlq.Missing, "trace", logging.New(e.logs, slog.LevelDebug)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lost.HandleEnvelope(t.Context(), []byte("{")); err == nil {
		t.Error("a poison message the dead-letter topic did not take was acknowledged: it would be lost")
	}
}

// TestLargeDeltaIsSentInSessions sends more spans than the tracer queues (1,000 chunks): none
// may be dropped.
func TestLargeDeltaIsSentInSessions(t *testing.T) {
	e := newEnv(t)
	const n = 1200
	nodes := []argoNode{nTransform}
	for i := range n {
		nodes = append(nodes, argoNode{id: fmt.Sprintf("%s-%d", argoWF, 10_000+i), name: fmt.Sprintf("%s.transform.part(%d)", argoWF, i),
			display: fmt.Sprintf("part(%d)", i), typ: "Pod", template: "part", parent: nTransform.id, phase: "Succeeded",
			start: at(100 + float64(i)/10), end: at(101 + float64(i)/10)})
	}
	res, err := e.tracer.Trace(t.Context(), argoDelta("Running", nil, nodes...))
	if err != nil {
		t.Fatal(err)
	}
	spans := e.agent.Spans()
	ids := map[uint64]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	if res.Sent != n+1 || len(spans) != n+1 || len(ids) != n+1 {
		t.Fatalf("sent %d, received %d spans (%d distinct), want %d", res.Sent, len(spans), len(ids), n+1)
	}
	if c := e.agent.Counts(); c.TracePayloads < 3 {
		t.Errorf("%d payloads: want one session per 500 spans at least", c.TracePayloads)
	}
}

// TestFailureInALaterSessionKeepsTheEarlierOnes: a large delta is sent in sessions; when the
// agent fails the second, the first stays recorded and the redelivery sends only the rest.
func TestFailureInALaterSessionKeepsTheEarlierOnes(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(failing(e.agent, 1, 1, http.StatusServiceUnavailable))
	t.Cleanup(srv.Close)
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	nodes := []argoNode{nTransform}
	for i := range 1199 {
		nodes = append(nodes, argoNode{id: fmt.Sprintf("%s-%d", argoWF, 10_000+i), display: "part", typ: "Pod", parent: nTransform.id,
			phase: "Succeeded", start: at(100 + float64(i)/10), end: at(101 + float64(i)/10)})
	}
	d := argoDelta("Running", nil, nodes...)
	res, err := e.tracer.Trace(t.Context(), d)
	if !errors.Is(err, apm.ErrDelivery) || res.Sent != 500 {
		t.Fatalf("%+v, %v: want the first session of 500 sent, then ErrDelivery", res, err)
	}
	res, err = e.tracer.Trace(t.Context(), d)
	if err != nil || res.Sent != 700 || res.Duplicates != 500 {
		t.Fatalf("redelivery: %+v, %v; want the other 700 sent", res, err)
	}
	if n := len(e.agent.Spans()); n != 1200 {
		t.Errorf("the agent has %d spans, want 1200", n)
	}
}

func TestUnixSocketAgent(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "apm.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.agent}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	t.Setenv("DD_TRACE_AGENT_URL", "unix://"+sock)
	tr := e.newTracer(t, e.ledger) // the socket is resolved when the Tracer is made
	if _, err := tr.Trace(t.Context(), nestedArgoDelta()); err != nil {
		t.Fatal(err)
	}
	checkTree(t, e.agent.Spans(), serviceArgo, day0, commonArgo, wantArgo())
}

func TestConcurrentCallsShareTheTracer(t *testing.T) {
	e := newEnv(t)
	const runs = 6
	var wg sync.WaitGroup
	errs := make([]error, runs)
	for i := range runs {
		wg.Go(func() {
			d := nestedArgoDelta()
			d.Run.UID = fmt.Sprintf("uid-%d", i)
			_, errs[i] = e.tracer.Trace(context.Background(), finish(d))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	traces := e.agent.Traces()
	if len(traces) != runs {
		t.Fatalf("%d traces, want %d", len(traces), runs)
	}
	for _, tr := range traces {
		if len(tr.Spans) != 9 {
			t.Errorf("trace %d has %d spans, want 9", tr.ID, len(tr.Spans))
		}
	}
}

func TestParentsSurviveW3CExtractionStyle(t *testing.T) {
	e := newEnv(t)
	t.Setenv("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "tracecontext")
	if _, err := e.tracer.Trace(t.Context(), nestedArgoDelta()); err != nil {
		t.Fatal(err)
	}
	checkTree(t, e.agent.Spans(), serviceArgo, day0, commonArgo, wantArgo())
}

func TestNoExtractionStyleIsAClearError(t *testing.T) {
	e := newEnv(t)
	t.Setenv("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "none")
	_, err := e.tracer.Trace(t.Context(), nestedArgoDelta())
	if err == nil || !strings.Contains(err.Error(), "DD_TRACE_PROPAGATION_STYLE_EXTRACT") {
		t.Fatalf("error %v, want one naming DD_TRACE_PROPAGATION_STYLE_EXTRACT", err)
	}
}

func Test64BitTraceIDs(t *testing.T) {
	t.Setenv("DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED", "false")
	e := newEnv(t)
	if _, err := e.tracer.Trace(t.Context(), nestedArgoDelta()); err != nil {
		t.Fatal(err)
	}
	spans := e.agent.Spans()
	for _, s := range spans {
		if tid, ok := s.Meta["_dd.p.tid"]; ok || s.TraceID != spans[0].TraceID {
			t.Errorf("%s: trace %d, _dd.p.tid %q; want one 64-bit trace id", spanKey(s), s.TraceID, tid)
		}
	}
}

// ledgerFault is the file ledger whose writes fail: the spans are delivered but cannot be
// recorded.
type ledgerFault struct{ state.Ledger }

func (ledgerFault) Record(context.Context, string, map[string][]byte, time.Time) error {
	return errors.New("disk full")
}

func TestLedgerFaults(t *testing.T) {
	e := newEnv(t)
	tr := e.newTracer(t, ledgerFault{e.ledger})
	if res, err := tr.Trace(t.Context(), nestedArgoDelta()); err != nil || res.Sent != 9 {
		t.Fatalf("a delivery that cannot be recorded: %+v, %v; want the spans sent and no error", res, err)
	}
	if s := tr.Stats(); s.LedgerErrors != 1 || !strings.Contains(e.logs.String(), "could not be recorded") {
		t.Errorf("the unrecorded delivery was not counted and logged: %+v", s)
	}

	// An unreadable ledger: nothing is known, so nothing is sent and the message is retried.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := (filestore.New(blocker)).Record(t.Context(), "x", map[string][]byte{"y": nil}, day0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	broken := e.newTracer(t, filestore.New(filepath.Join(blocker, "state.json")))
	before := e.agent.Counts()
	_, err := broken.Trace(t.Context(), nestedArgoDelta())
	if err == nil || errors.Is(err, apm.ErrDelivery) || e.agent.Counts() != before {
		t.Errorf("unreadable ledger: error %v, agent %+v; want a ledger error and nothing sent", err, e.agent.Counts())
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		mod  func(*apm.Config, *apm.Deps)
		want string
	}{
		{"no service", func(c *apm.Config, _ *apm.Deps) { c.ServiceArgo = "" }, "FARM_TRACE_SERVICE_ARGO: the Argo service"},
		{"long service", func(c *apm.Config, _ *apm.Deps) { c.ServiceAirflow = strings.Repeat("s", 101) }, "Airflow service"},
		{"no max age", func(c *apm.Config, _ *apm.Deps) { c.MaxAge = 0 }, "maximum span age"},
		{"no agent timeout", func(c *apm.Config, _ *apm.Deps) { c.AgentTimeout = 0 }, "FARM_AGENT_TIMEOUT must be positive"},
		{"no ledger", func(_ *apm.Config, d *apm.Deps) { d.Ledger = nil }, "ledger is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, d := apm.DefaultConfig(), apm.Deps{Ledger: e.ledger}
			tc.mod(&c, &d)
			if _, err := apm.New(c, d); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	t.Run("tracer off", func(t *testing.T) {
		t.Setenv("DD_TRACE_ENABLED", "false")
		_, err := apm.New(apm.DefaultConfig(), apm.Deps{Ledger: e.ledger})
		if err == nil || !strings.Contains(err.Error(), "DD_TRACE_ENABLED") {
			t.Errorf("error %v, want one naming DD_TRACE_ENABLED", err)
		}
	})
}

func TestWaterfallOfAReceivedTrace(t *testing.T) {
	e := newEnv(t)
	if _, err := e.tracer.Trace(t.Context(), nestedArgoDelta()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := e.agent.Waterfall(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	labels := make([]string, 0, len(lines))
	for _, l := range lines[1:] {
		labels = append(labels, strings.Join(strings.Fields(l)[:3], " "))
	}
	want := []string{
		"argo.workflow etl-nightly +0s",
		"├─ argo.node extract",
		"│ ├─ argo.node",
		"│ └─ argo.node",
		"├─ argo.node transform",
		"│ ├─ argo.node",
		"│ └─ argo.node",
		"├─ argo.node report",
		"└─ argo.node notify",
	}
	if !slices.Equal(labels, want) {
		t.Errorf("waterfall:\n%s\nwant the tree %q", b.String(), want)
	}
}

// TestRescheduledSensorTryIsOneSpanWithItsPokes: a sensor in reschedule mode ends two pokes
// up_for_reschedule within one try, then succeeds in that same try, each seen by a delta of its own.
// The try is one airflow.task span from its first start to its end; each poke is an airflow.poke
// span inside it with its own times as the server shows them: its start when the server overwrites
// start_date per poke, else its queued time after the first poke. A redelivery sends nothing.
func TestRescheduledSensorTryIsOneSpanWithItsPokes(t *testing.T) {
	for _, c := range []struct {
		name      string
		starts    [3]float64 // the start_date each poke's event shows
		pokes     [3][2]float64
		startFrom [3]string
	}{
		{"start per poke", [3]float64{20, 80, 140}, [3][2]float64{{20, 21}, {80, 81}, {140, 141.5}}, [3]string{"start_date", "start_date", "start_date"}},
		{"first start kept", [3]float64{20, 20, 20}, [3][2]float64{{20, 21}, {79, 81}, {139, 141.5}}, [3]string{"start_date", "queued_when", "queued_when"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			poke := func(i int, end float64, state string) *event.RunDelta {
				tr := airflowTry{taskID: "wait_for_file", try: 1, maxTries: 1, state: state, queued: at([3]float64{19, 79, 139}[i]),
					start: at(c.starts[i]), end: at(end), operator: "GCSObjectExistenceSensor"}
				d := airflowDelta(tr)
				d.Run.Phase, d.Run.Status, d.Run.FinishedAt = "running", event.StatusRunning, nil
				if i > 0 { // the poll engine knows the try was rescheduled
					d.Events[0].AttemptStartedAt = at(20)
				}
				return d
			}
			deltas := []*event.RunDelta{poke(0, 21, "up_for_reschedule"), poke(1, 81, "up_for_reschedule"), poke(2, 141.5, "success")}
			for i, d := range deltas {
				want := 1 + i/2 // the last delta ends the try: its span and its last poke
				if res, err := e.tracer.Trace(t.Context(), d); err != nil || res.Sent != want {
					t.Fatalf("delta %d: %+v, %v; want %d spans", i, res, err, want)
				}
			}
			var try ddagent.Span
			var pokes []ddagent.Span
			for _, s := range e.agent.Spans() {
				switch s.Name {
				case apm.OpAirflowTask:
					if try.SpanID != 0 {
						t.Fatalf("a second span of the try: %+v", s)
					}
					try = s
				case apm.OpAirflowPoke:
					pokes = append(pokes, s)
				}
			}
			if try.StartTime() != *at(20) || try.EndTime() != *at(141.5) || try.Meta["status"] != "succeeded" || try.Error != 0 ||
				try.Meta["airflow.rescheduled"] != "true" || try.Resource != "wait_for_file" {
				t.Errorf("try span %s..%s status %s error %d rescheduled %q", try.StartTime(), try.EndTime(), try.Meta["status"], try.Error, try.Meta["airflow.rescheduled"])
			}
			if len(pokes) != 3 {
				t.Fatalf("%d pokes, want 3", len(pokes))
			}
			slices.SortFunc(pokes, func(a, b ddagent.Span) int { return int(a.Start - b.Start) })
			for i, p := range pokes {
				if p.ParentID != try.SpanID || p.StartTime() != *at(c.pokes[i][0]) || p.EndTime() != *at(c.pokes[i][1]) ||
					p.Meta["airflow.poke.start_from"] != c.startFrom[i] || p.Error != 0 || p.Resource != "wait_for_file" {
					t.Errorf("poke %d: parent %d (try %d) %s..%s from %s error %d; want %v from %s", i, p.ParentID, try.SpanID,
						p.StartTime(), p.EndTime(), p.Meta["airflow.poke.start_from"], p.Error, c.pokes[i], c.startFrom[i])
				}
			}
			for i, d := range deltas {
				if res, err := e.tracer.Trace(t.Context(), d); err != nil || res.Sent != 0 || res.Duplicates != 1+i/2 {
					t.Errorf("delta %d delivered again: %+v, %v; want nothing sent", i, res, err)
				}
			}
		})
	}
}

// TestConcurrentRedeliveriesSendOnce: Pub/Sub may deliver a message again while the first
// delivery is still in flight. Deliveries of the same spans in one group send them once, and all
// succeed; the ledger holds them for what comes later.
func TestConcurrentRedeliveriesSendOnce(t *testing.T) {
	e := newEnv(t)
	const copies = 8
	var wg sync.WaitGroup
	errs := make([]error, copies)
	m := message(t, nestedArgoDelta(), "7002")
	for i := range copies {
		wg.Go(func() { errs[i] = e.tracer.HandleMessage(t.Context(), m) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkTree(t, e.agent.Spans(), serviceArgo, day0, commonArgo, wantArgo())
	if s := e.tracer.Stats(); s.Sent != 9 || s.Duplicates != 9*(copies-1) {
		t.Errorf("stats %+v: want 9 spans sent once, the other copies duplicates", s)
	}
}
