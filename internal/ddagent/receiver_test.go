package ddagent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/testenv"
)

// The payloads here are encoded the way the tracer encodes them (a msgpack array of arrays of
// span maps, with fields the receiver does not read); pkg/trace's tests send from the real tracer.

var t0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)

// wireSpan is a span map as the tracer writes it, meta_struct and span_links included.
func wireSpan(traceID, spanID, parentID uint64, name, resource string, startSec, durSec float64, meta map[string]string) map[string]any {
	return map[string]any{
		"trace_id": traceID, "span_id": spanID, "parent_id": parentID,
		"name": name, "resource": resource, "service": "argo-workflows", "type": "",
		"start":    t0.Add(time.Duration(startSec * float64(time.Second))).UnixNano(),
		"duration": int64(durSec * float64(time.Second)),
		"error":    int32(map[bool]int{true: 1}[meta["error.type"] != ""]),
		"meta":     meta, "metrics": map[string]float64{"_sampling_priority_v1": 2},
		"meta_struct": map[string][]byte{"x": {1}}, "span_links": []any{},
	}
}

func encode(t *testing.T, chunks ...[]map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(chunks)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, h http.Handler, method, path string, body []byte, count string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/msgpack")
	if count != "" {
		req.Header.Set("X-Datadog-Trace-Count", count)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// A run of three spans sent in two payloads, as two invocations would.
func twoPayloads(t *testing.T) (first, second []byte) {
	first = encode(t,
		[]map[string]any{wireSpan(7, 11, 10, "argo.node", "extract(0)", 5, 30.25, map[string]string{"error.type": "Failed", "error.message": "Error (exit code 1)\nmore", "_dd.p.tid": "69a5e0c400000000"})},
		[]map[string]any{wireSpan(7, 12, 7, "argo.node", "notify", 291, 0, map[string]string{"status": "skipped"})},
	)
	second = encode(t,
		[]map[string]any{wireSpan(7, 10, 7, "argo.node", "extract", 5, 90, nil)},
		[]map[string]any{wireSpan(7, 7, 0, "argo.workflow", "etl-nightly", 0, 300, map[string]string{"_dd.p.tid": "69a5e0c400000000"})},
	)
	return first, second
}

func TestReceivesV04Payloads(t *testing.T) {
	r := ddagent.New()
	first, second := twoPayloads(t)
	for i, p := range []struct {
		method string
		body   []byte
	}{{http.MethodPut, first}, {http.MethodPost, second}} {
		w := post(t, r, p.method, "/v0.4/traces", p.body, "2")
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "rate_by_service") {
			t.Fatalf("payload %d: %d %s", i, w.Code, w.Body)
		}
	}
	traces := r.Traces()
	if len(traces) != 1 || traces[0].ID != 7 || len(traces[0].Spans) != 4 {
		t.Fatalf("traces %+v, want one trace 7 of 4 spans", traces)
	}
	root, ok := traces[0].Root()
	if !ok || root.SpanID != 7 || root.Resource != "etl-nightly" || root.Elapsed() != 300*time.Second || !root.StartTime().Equal(t0) {
		t.Errorf("root %+v", root)
	}
	failed := traces[0].Spans[0]
	if failed.Error != 1 || failed.Meta["error.type"] != "Failed" || failed.Metrics["_sampling_priority_v1"] != 2 {
		t.Errorf("error span decoded as %+v", failed)
	}
	if got := failed.TraceID128(); got != "69a5e0c4000000000000000000000007" {
		t.Errorf("128-bit trace id %s", got)
	}
	if got := traces[0].Spans[1].TraceID128(); got != "00000000000000000000000000000007" {
		t.Errorf("a span without _dd.p.tid: trace id %s, want the low bits only", got)
	}
	if c := r.Counts(); c != (ddagent.Counts{TracePayloads: 2, Chunks: 4, Spans: 4}) {
		t.Errorf("counts %+v", c)
	}
}

func TestRefusesBadPayloads(t *testing.T) {
	r := ddagent.New(ddagent.WithLogger(slog.New(slog.DiscardHandler)))
	good, _ := twoPayloads(t)
	tests := []struct {
		name  string
		body  []byte
		count string
		want  string
	}{
		{"not msgpack", []byte("{}"), "", "decode"},
		{"count says more", good, "3", "says 3 traces"},
		{"count not a number", good, "two", "not a count"},
		{"zero span id", encode(t, []map[string]any{wireSpan(7, 0, 0, "x", "y", 0, 1, nil)}), "1", "must not be 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := post(t, r, http.MethodPut, "/v0.4/traces", tc.body, tc.count)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("answer %d %q, want 400 saying %q", w.Code, w.Body, tc.want)
			}
		})
	}
	if c := r.Counts(); c.Rejected != len(tests) || c.Spans != 0 || len(r.Spans()) != 0 {
		t.Errorf("counts %+v, spans %d: want every payload rejected, none stored", c, len(r.Spans()))
	}
}

func TestAnswersTheRestOfTheAgentAPI(t *testing.T) {
	r := ddagent.New()
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/info", http.StatusOK},
		{http.MethodPost, "/telemetry/proxy/api/v2/apmtelemetry", http.StatusAccepted},
		{http.MethodPut, "/v0.6/stats", http.StatusOK},
		{http.MethodPost, "/v0.7/config", http.StatusNotFound},
		{http.MethodGet, "/v0.4/traces", http.StatusMethodNotAllowed},
		{http.MethodPut, "/v0.5/traces", http.StatusNotFound},
	}
	for _, tc := range tests {
		if w := post(t, r, tc.method, tc.path, []byte(`{"request_type":"app-started"}`), ""); w.Code != tc.want {
			t.Errorf("%s %s answered %d, want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
	if c := r.Counts(); c != (ddagent.Counts{Info: 1, Telemetry: 1, Stats: 1, Other: 2}) {
		t.Errorf("counts %+v", c)
	}
}

func TestSnapshotsAreCopies(t *testing.T) {
	r := ddagent.New()
	first, _ := twoPayloads(t)
	post(t, r, http.MethodPut, "/v0.4/traces", first, "2")
	got := r.Spans()
	got[0].Meta["error.type"] = "changed"
	got[0].Metrics["_sampling_priority_v1"] = 0
	if again := r.Spans(); again[0].Meta["error.type"] != "Failed" || again[0].Metrics["_sampling_priority_v1"] != 2 {
		t.Errorf("changing a snapshot changed the receiver: %+v", again[0])
	}
	r.Reset()
	if len(r.Spans()) != 0 || r.Counts() != (ddagent.Counts{}) {
		t.Errorf("Reset kept %d spans, counts %+v", len(r.Spans()), r.Counts())
	}
}

func TestPrintsATraceWhenItsRootArrives(t *testing.T) {
	var out bytes.Buffer
	r := ddagent.New(ddagent.PrintTo(&out))
	first, second := twoPayloads(t)
	post(t, r, http.MethodPut, "/v0.4/traces", first, "2")
	if out.Len() != 0 {
		t.Fatalf("printed before the run finished:\n%s", out.String())
	}
	post(t, r, http.MethodPut, "/v0.4/traces", second, "2")
	want := `trace 69a5e0c4000000000000000000000007  argo-workflows  4 spans
argo.workflow etl-nightly   +0s     5m0s
├─ argo.node extract        +5s     1m30s
│  └─ argo.node extract(0)  +5s     30.25s  ERROR Failed: Error (exit code 1) …
└─ argo.node notify         +4m51s  0s      [skipped]

`
	if out.String() != want {
		t.Errorf("waterfall:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestWaterfallShowsOrphansAndDuplicates(t *testing.T) {
	tr := ddagent.Trace{ID: 7, Spans: []ddagent.Span{
		{TraceID: 7, SpanID: 7, Name: "airflow.dag_run", Resource: "daily", Start: t0.UnixNano(), Duration: int64(time.Minute)},
		{TraceID: 7, SpanID: 8, ParentID: 7, Name: "airflow.task", Resource: "a", Start: t0.UnixNano(), Duration: 1500},
		{TraceID: 7, SpanID: 8, ParentID: 7, Name: "airflow.task", Resource: "a", Start: t0.UnixNano(), Duration: 1500},
		{TraceID: 7, SpanID: 9, ParentID: 99, Name: "airflow.task", Resource: "b", Start: t0.Add(time.Second).UnixNano(), Error: 1},
	}}
	var b strings.Builder
	if err := ddagent.WriteWaterfall(&b, tr); err != nil {
		t.Fatal(err)
	}
	want := `trace 00000000000000000000000000000007  ` + `  4 spans
airflow.dag_run daily  +0s  1m0s
├─ airflow.task a      +0s  1.5µs
└─ airflow.task a      +0s  1.5µs  (duplicate span id)
airflow.task b         +1s  0s     ERROR  (parent 99 not received)

`
	if b.String() != want {
		t.Errorf("waterfall:\n%q\nwant:\n%q", b.String(), want)
	}
}

func TestMaxSpansForgetsTheOldestTraces(t *testing.T) {
	r := ddagent.New(ddagent.MaxSpans(3))
	for id := uint64(1); id <= 3; id++ {
		body := encode(t, []map[string]any{wireSpan(id, id*10, 0, "x", "r", 0, 1, nil)}, []map[string]any{wireSpan(id, id*10+1, id*10, "x", "r", 0, 1, nil)})
		post(t, r, http.MethodPut, "/v0.4/traces", body, "2")
	}
	traces := r.Traces()
	if len(traces) != 1 || traces[0].ID != 3 {
		t.Errorf("kept traces %v, want only the newest (3)", traces)
	}
}

func TestServeUntilStopped(t *testing.T) {
	r := ddagent.New()
	ctx, cancel := context.WithCancel(t.Context())
	addr, stop, err := r.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	first, _ := twoPayloads(t)
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v0.4/traces", bytes.NewReader(first))
	req.Header.Set("X-Datadog-Trace-Count", "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(r.Spans()) != 2 {
		t.Fatalf("answer %s, %d spans kept", resp.Status, len(r.Spans()))
	}
	if _, _, err := ddagent.New().Serve(t.Context(), addr); err == nil {
		t.Error("a second receiver listened on a taken address")
	}
	cancel()
	stop() // waits for the shutdown that cancel started
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after stop", addr)
	}
}

func ExampleWriteWaterfall() {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	_ = ddagent.WriteWaterfall(osStdout{}, ddagent.Trace{ID: 1, Spans: []ddagent.Span{
		{TraceID: 1, SpanID: 1, Name: "airflow.dag_run", Resource: "daily_sales", Service: "airflow", Start: start, Duration: int64(7 * time.Minute)},
		{TraceID: 1, SpanID: 2, ParentID: 1, Name: "airflow.task", Resource: "fetch_orders", Service: "airflow", Start: start + int64(time.Second), Duration: int64(30 * time.Second),
			Error: 1, Meta: map[string]string{"error.type": "up_for_retry", "error.message": "timed out"}},
	}})
	// Output:
	// trace 00000000000000000000000000000001  airflow  2 spans
	// airflow.dag_run daily_sales   +0s  7m0s
	// └─ airflow.task fetch_orders  +1s  30s   ERROR up_for_retry: timed out
}

type osStdout struct{}

func (osStdout) Write(p []byte) (int, error) { fmt.Print(string(p)); return len(p), nil }

func TestLocalAgentPrintsFinishedRuns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out testenv.SyncBuffer
	_, stop, err := ddagent.LocalAgent(&out)(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	first, second := twoPayloads(t)
	for _, body := range [][]byte{first, second} {
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v0.4/traces", bytes.NewReader(body))
		req.Header.Set("X-Datadog-Trace-Count", "2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := out.String(); !strings.HasPrefix(got, "trace 69a5e0c4000000000000000000000007  argo-workflows  4 spans\n") {
		t.Errorf("printed:\n%s", got)
	}
}

// Mapped Airflow task instances are told apart by their map index (their resource is the task's).
func TestWaterfallShowsMapIndex(t *testing.T) {
	tr := ddagent.Trace{ID: 7, Spans: []ddagent.Span{
		{TraceID: 7, SpanID: 7, Name: "airflow.dag_run", Resource: "etl", Start: t0.UnixNano(), Duration: int64(time.Minute)},
		{TraceID: 7, SpanID: 8, ParentID: 7, Name: "airflow.task", Resource: "stage.partition[]", Start: t0.UnixNano(), Duration: int64(time.Second), Metrics: map[string]float64{"airflow.map_index": -1}},
		{TraceID: 7, SpanID: 9, ParentID: 8, Name: "airflow.task", Resource: "stage.partition", Start: t0.UnixNano(), Duration: int64(time.Second), Metrics: map[string]float64{"airflow.map_index": 0}},
		{TraceID: 7, SpanID: 10, ParentID: 8, Name: "airflow.task", Resource: "stage.partition", Start: t0.UnixNano(), Duration: int64(time.Second), Metrics: map[string]float64{"airflow.map_index": 1}},
	}}
	var out bytes.Buffer
	if err := ddagent.WriteWaterfall(&out, tr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"airflow.task stage.partition[] ", "airflow.task stage.partition[0] ", "airflow.task stage.partition[1] "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("waterfall lacks %q:\n%s", want, out.String())
		}
	}
}
