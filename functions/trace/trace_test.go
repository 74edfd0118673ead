package trace_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	tracefn "github.com/farmobs/farm/functions/trace"
	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/deadlettertest"
	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/pkg/state/firestore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const topic = "projects/farm-test/topics/farm-run-deltas"

// serve runs the registered functions with the functions framework, the way Cloud Run runs the
// deployed source (FUNCTION_TARGET picks the entry point, served at /), and returns its URL.
func serve(t *testing.T) string {
	t.Helper()
	url, err := testenv.FunctionsFramework("Trace", func() { functions.HTTP("Trace", tracefn.Handle) })
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// workflow is a finished Argo workflow of two pods that ended at now minus a minute.
func workflow(uid string, now time.Time) *event.RunDelta {
	ts := func(sec int) *time.Time { t := now.Add(time.Duration(sec-600) * time.Second).UTC(); return &t }
	run := event.Run{Source: event.SourceArgo, Instance: "prod-eu", Namespace: "data", UID: uid, Name: "wf-" + uid,
		Pipeline: "etl", Phase: "Succeeded", Status: event.StatusSucceeded, StartedAt: ts(0), FinishedAt: ts(540)}
	node := func(id, display string, start, end int) event.TaskEvent {
		return event.TaskEvent{
			ID: event.TaskEventID(run.Key(), id, 0, "Succeeded", ts(start), ts(end)), NodeID: id, Name: run.Name + "." + display,
			DisplayName: display, Type: "Pod", ParentID: run.Name, State: "Succeeded", Status: event.StatusSucceeded,
			StartedAt: ts(start), FinishedAt: ts(end),
		}
	}
	d := &event.RunDelta{SchemaVersion: event.SchemaVersion, Tenant: "acme", Environment: "prod", ObservedAt: now, Part: 1, Parts: 1,
		Run: run, Events: []event.TaskEvent{node(run.Name+"-1", "extract", 5, 200), node(run.Name+"-2", "load", 210, 530)}}
	d.ID = event.DeltaID(run.Key(), run.Phase, 1, []string{d.Events[0].ID, d.Events[1].ID})
	return d
}

// push POSTs body to the function as Eventarc pushes a Pub/Sub message: a binary-mode CloudEvent.
func push(t *testing.T, url, id string, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	local.CloudEventHeaders(req.Header, id, topic, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func envelope(t *testing.T, id string, data []byte) []byte {
	t.Helper()
	b, err := event.EnvelopeJSON(event.Message{ID: id, PublishTime: time.Now(), Data: data,
		Attributes: map[string]string{"source": "argo"}, Subscription: "projects/farm-test/subscriptions/farm-trace"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encoded(t *testing.T, d *event.RunDelta) []byte {
	t.Helper()
	m, err := event.MessageOf(d)
	if err != nil {
		t.Fatal(err)
	}
	return m.Data
}

func ok(code int) bool { return code/100 == 2 }

// TestTraceFunction drives the deployed entry point end to end: configuration from the
// environment, the Firestore ledger on the emulator, the real tracer, a local agent.
func TestTraceFunction(t *testing.T) {
	testenv.FirestoreEmulator(t)
	agent := ddagent.New()
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	t.Setenv("FARM_PROJECT_ID", testenv.FirestoreProject(t))
	t.Setenv("FARM_STATE_STORE", "firestore")
	t.Setenv("FARM_TRACE_SERVICE_ARGO", "argo-e2e")
	t.Setenv("DD_VERSION", "9.9.9")
	// The dead-letter topic on the in-process Pub/Sub, which the client library reaches through
	// PUBSUB_EMULATOR_HOST.
	dlq := deadlettertest.New(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", dlq.Server.Addr)
	t.Setenv("FARM_DEAD_LETTER_TOPIC", "projects/"+deadlettertest.Project+"/topics/"+deadlettertest.TopicID)
	url := serve(t)

	first := envelope(t, "m-1", encoded(t, workflow("u1", time.Now())))
	if code := push(t, url, "m-1", first); !ok(code) {
		t.Fatalf("a good message answered %d", code)
	}
	// The agent has the spans the moment the function answered.
	spans := agent.Spans()
	if len(spans) != 3 {
		t.Fatalf("the agent has %d spans, want 3 (the run and two pods)", len(spans))
	}
	for _, s := range spans {
		if s.TraceID != spans[0].TraceID || s.Service != "argo-e2e" || s.Meta["version"] != "9.9.9" || s.Meta["env"] != "prod" {
			t.Errorf("span %s %s: trace %d service %s version %q env %q", s.Name, s.Resource, s.TraceID, s.Service, s.Meta["version"], s.Meta["env"])
		}
	}

	t.Run("redelivery sends nothing", func(t *testing.T) {
		before := agent.Counts()
		if code := push(t, url, "m-1", first); !ok(code) {
			t.Fatalf("the redelivery answered %d", code)
		}
		if agent.Counts() != before {
			t.Errorf("the redelivery reached the agent: %+v, before %+v", agent.Counts(), before)
		}
	})

	t.Run("poison is acknowledged", func(t *testing.T) {
		bad := strings.Replace(string(encoded(t, workflow("u2", time.Now()))), `"schema_version":2`, `"schema_version":3`, 1)
		before := len(dlq.Letters())
		bodies := [][]byte{[]byte("not an envelope"), envelope(t, "m-2", []byte(bad)), envelope(t, "m-3", []byte("{"))}
		for i, body := range bodies {
			if code := push(t, url, fmt.Sprint("p", i), body); !ok(code) {
				t.Errorf("poison message %d answered %d: it would be redelivered forever", i, code)
			}
		}
		if got := len(dlq.Letters()) - before; got != len(bodies) {
			t.Errorf("%d dead letters for %d poison messages", got, len(bodies))
		}
	})

	// Malformed push bodies reach FARM (not the framework's 400): each is answered 2xx at once,
	// without echoing the body, and kept in the dead-letter topic with the reason.
	t.Run("malformed envelopes are dead-lettered, not echoed", func(t *testing.T) {
		huge := append([]byte(`{"message":{"data":"`), bytes.Repeat([]byte("A"), 3<<20)...) // 3 MB, never closed
		for i, body := range [][]byte{[]byte("{"), []byte(`{"message":"x"}`), []byte(`[]`), huge} {
			before := len(dlq.Letters())
			code, answer := testenv.Push(t, url, body)
			if !ok(code) {
				t.Errorf("malformed body %d answered %d: Pub/Sub would redeliver it", i, code)
			}
			if len(answer) > 1024 {
				t.Errorf("malformed body %d: the answer has %d bytes (the body echoed?)", i, len(answer))
			}
			letters := dlq.Letters()[before:]
			if len(letters) != 1 || !strings.Contains(letters[0].Attributes["farm_reason"], "not a Pub/Sub message envelope") {
				t.Errorf("malformed body %d: dead letters %d, want one naming the envelope", i, len(letters))
			} else if !bytes.Equal(letters[0].Data, body) {
				t.Errorf("malformed body %d: the dead letter is not the body delivered", i)
			}
		}
	})

	t.Run("unreachable agent is retried", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("DD_TRACE_AGENT_URL", "http://"+ln.Addr().String())
		ln.Close()
		body := envelope(t, "m-4", encoded(t, workflow("u3", time.Now())))
		if code := push(t, url, "m-4", body); ok(code) {
			t.Fatalf("the function acknowledged (%d) spans the agent never got", code)
		}
		t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
		before := len(agent.Spans())
		if code := push(t, url, "m-4", body); !ok(code) {
			t.Fatalf("the redelivery answered %d", code)
		}
		if got := len(agent.Spans()) - before; got != 3 {
			t.Errorf("the redelivery sent %d spans, want 3", got)
		}
	})
}

// With the ledger's Firestore up but hung, a delivery is answered 5xx (redelivered later) once the
// store's deadline has passed, instead of hanging until the platform's own timeout.
func TestStuckLedgerAnswers5xx(t *testing.T) {
	agent := ddagent.New()
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	client := testenv.StuckFirestoreClient(t)
	tr, err := apm.New(apm.Config{ServiceArgo: "argo", ServiceAirflow: "airflow", MaxAge: 18 * time.Hour, AgentTimeout: 10 * time.Second},
		apm.Deps{Ledger: firestore.New(client, firestore.WithTimeout(500*time.Millisecond)), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fn := httptest.NewServer(tracefn.Handler(tr))
	t.Cleanup(fn.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a watchdog, far above the bound
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fn.URL, bytes.NewReader(envelope(t, "m-stuck", encoded(t, workflow("u9", time.Now())))))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer with the ledger stuck: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 5 {
		t.Errorf("answered %d with the ledger stuck, want 5xx", resp.StatusCode)
	}
	if n := len(agent.Spans()); n != 0 {
		t.Errorf("%d spans sent without the ledger", n)
	}
}

// With the DataDog agent up but hung, a delivery is answered 5xx once the agent deadline
// (FARM_AGENT_TIMEOUT) has passed, and the spans are not recorded as sent.
func TestStuckAgentAnswers5xx(t *testing.T) {
	t.Setenv("DD_TRACE_AGENT_URL", "http://"+testenv.StuckServer(t))
	tr, err := apm.New(apm.Config{ServiceArgo: "argo", ServiceAirflow: "airflow", MaxAge: 18 * time.Hour, AgentTimeout: 500 * time.Millisecond},
		apm.Deps{Ledger: filestore.New(filepath.Join(t.TempDir(), "state.json")), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fn := httptest.NewServer(tracefn.Handler(tr))
	t.Cleanup(fn.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a watchdog, far above the bound
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fn.URL, bytes.NewReader(envelope(t, "m-hung", encoded(t, workflow("u10", time.Now())))))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer with the agent stuck: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 5 {
		t.Errorf("answered %d with the agent stuck, want 5xx", resp.StatusCode)
	}
}

// wideWorkflow is workflow with pods pods: pods+1 spans.
func wideWorkflow(uid string, now time.Time, pods int) *event.RunDelta {
	d := workflow(uid, now)
	tmpl := d.Events[0]
	d.Events = d.Events[:0]
	ids := make([]string, pods)
	for i := range pods {
		e := tmpl
		e.NodeID = fmt.Sprintf("%s-%d", d.Run.Name, i)
		e.DisplayName = fmt.Sprintf("part-%d", i)
		e.ID = event.TaskEventID(d.Run.Key(), e.NodeID, 0, e.State, e.StartedAt, e.FinishedAt)
		d.Events = append(d.Events, e)
		ids[i] = e.ID
	}
	d.ID = event.DeltaID(d.Run.Key(), d.Run.Phase, 1, ids)
	return d
}

// TestConcurrentDeliveriesAreGroupCommitted sends many deliveries at once through the function's
// HTTP handler (request concurrency well above 1). Deliveries that arrive while a tracer session
// runs are sent together by the next; each is answered once its own spans were accepted; and the
// payload the agent refuses fails exactly the deliveries whose spans it held, while the other
// groups succeed. Their redeliveries then send exactly what is missing, and the ledger cost at
// most one read and one write per delivery.
func TestConcurrentDeliveriesAreGroupCommitted(t *testing.T) {
	const (
		n    = 40  // deliveries
		pods = 120 // spans per delivery: about four deliveries fill a session
	)
	now := time.Now()
	var (
		mu        sync.Mutex
		faulted   bool
		refused   = map[string]bool{} // runs whose spans were in the refused payload
		firstIn   = make(chan struct{})
		release   = make(chan struct{})
		holdFirst sync.Once
	)
	agent := ddagent.New(ddagent.WithFault(func(chunks [][]ddagent.Span) int {
		runs := map[string]bool{}
		for _, c := range chunks {
			for _, s := range c {
				runs[s.Meta["run.name"]] = true
			}
		}
		if runs["wf-first"] {
			// The first group's payload waits at the agent until the others arrived, so they
			// queue behind it and form groups of their own.
			holdFirst.Do(func() { close(firstIn); <-release })
			return 0
		}
		mu.Lock()
		defer mu.Unlock()
		if runs["wf-doomed"] && !faulted {
			faulted = true
			maps.Copy(refused, runs)
			return http.StatusServiceUnavailable
		}
		return 0
	}))
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	ledger := filestore.New(filepath.Join(t.TempDir(), "state.json"))
	tr, err := apm.New(apm.Config{ServiceArgo: "argo", ServiceAirflow: "airflow", MaxAge: 18 * time.Hour, AgentTimeout: 10 * time.Second},
		apm.Deps{Ledger: ledger, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	handler := tracefn.Handler(tr)
	var arrived atomic.Int32
	allArrived := make(chan struct{})
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == n {
			close(allArrived)
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(fn.Close)

	uids := []string{"first", "doomed"}
	for i := range n - 2 {
		uids = append(uids, fmt.Sprint("u", i))
	}
	bodies := map[string][]byte{}
	for _, uid := range uids {
		bodies[uid] = envelope(t, "m-"+uid, encoded(t, wideWorkflow(uid, now, pods)))
	}
	post := func(uid string) (int, error) {
		resp, err := http.Post(fn.URL, "application/json", bytes.NewReader(bodies[uid]))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	codes := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Go(func() { codes[0], errs[0] = post(uids[0]) })
	<-firstIn
	for i := 1; i < n; i++ {
		wg.Go(func() { codes[i], errs[i] = post(uids[i]) })
	}
	<-allArrived
	time.Sleep(300 * time.Millisecond) // decoded and queued; only how they group depends on it
	close(release)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	if !refused["wf-doomed"] {
		t.Fatalf("the doomed run's payload was not refused: refused %v", refused)
	}
	var failed []string
	for i, uid := range uids {
		if want := !refused["wf-"+uid]; ok(codes[i]) != want {
			t.Errorf("delivery %s answered %d; its spans were refused by the agent: %v", uid, codes[i], !want)
		}
		if !ok(codes[i]) {
			failed = append(failed, uid)
		}
	}
	if len(failed) == 0 || len(failed) > n/2 {
		t.Errorf("%d of %d deliveries failed (%v): want the doomed one's group alone", len(failed), n, failed)
	}
	t.Logf("failed %v, agent %+v", failed, agent.Counts())
	if c := agent.Counts(); c.TracePayloads < 3 || c.TracePayloads > n/2 {
		t.Errorf("%d trace payloads accepted for %d deliveries: want them grouped, in more than one group", c.TracePayloads, n)
	}

	// Pub/Sub redelivers the failed ones (and, as it may, one that succeeded).
	for _, uid := range append(failed, "u0") {
		if code, err := post(uid); err != nil || !ok(code) {
			t.Fatalf("redelivery of %s: %d, %v", uid, code, err)
		}
	}
	seen := map[[2]uint64]int{}
	for _, s := range agent.Spans() {
		seen[[2]uint64{s.TraceID, s.SpanID}]++
	}
	if len(seen) != n*(pods+1) {
		t.Errorf("the agent has %d distinct spans, want %d", len(seen), n*(pods+1))
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("span %v received %d times", id, k)
		}
	}
	deliveries := int64(n + len(failed) + 1)
	if reads, writes := ledger.Usage(); reads > deliveries || writes > deliveries {
		t.Errorf("the ledger cost %d reads and %d writes for %d deliveries: want at most one of each per delivery", reads, writes, deliveries)
	}
}
