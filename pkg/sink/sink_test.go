package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"

	"github.com/farmobs/farm/internal/deadlettertest"
	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
)

// TestPoisonMessagesAreAcknowledged feeds messages that can never be processed: each is logged
// with its cause, kept in the dead-letter topic with the cause as an attribute and acknowledged
// (nil), and nothing is written.
func TestPoisonMessagesAreAcknowledged(t *testing.T) {
	good := sinktest.NestedArgoDelta()
	withData := func(data string) []byte {
		m := sinktest.Message(t, good, "41", sinktest.Day0)
		m.Data = []byte(data)
		return sinktest.Envelope(t, m)
	}
	// batchOf wraps delta documents in a version-2 batch.
	batchOf := func(deltas ...any) []byte {
		b, err := json.Marshal(map[string]any{"schema_version": event.SchemaVersion, "id": "b1", "deltas": deltas})
		if err != nil {
			t.Fatal(err)
		}
		return withData(string(b))
	}
	withDelta := func(mod func(*event.RunDelta)) []byte {
		d := sinktest.NestedArgoDelta()
		mod(d)
		return batchOf(d)
	}
	withoutKey := func(key string) []byte {
		b, err := json.Marshal(sinktest.NestedArgoDelta())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, key)
		return batchOf(m)
	}
	// A version-1 message still in flight, broken the same way.
	v1 := func(mod func(*event.RunDelta)) []byte {
		d := sinktest.NestedArgoDelta()
		mod(d)
		return sinktest.Envelope(t, sinktest.MessageV1(t, d, "41", sinktest.Day0))
	}
	// A poison batch: good deltas of other runs beside one that breaks the schema. The batch is
	// refused whole (kept as delivered in the dead-letter topic, where it can be replayed once
	// fixed); nothing of it is written.
	poisonBatch := func() []byte {
		good, other, bad := sinktest.NestedArgoDelta(), sinktest.NestedArgoDelta(), sinktest.NestedArgoDelta()
		other.Run.UID, bad.Run.UID = "other", "bad"
		bad.Events[2].Status = "exploded"
		return batchOf(good, bad, other)
	}
	cases := []struct {
		name  string
		body  []byte
		cause string
		is    error
	}{
		{"envelope is not JSON", []byte(`{"message":`), "not a Pub/Sub message envelope", event.ErrBadEnvelope},
		{"envelope has no message", []byte(`{"subscription":"s"}`), `no "message" field`, event.ErrBadEnvelope},
		{"message has no id", []byte(`{"message":{"data":"e30="}}`), "no messageId", event.ErrBadEnvelope},
		{"data is not JSON", withData("<html>502 Bad Gateway</html>"), "invalid RunDelta", event.ErrInvalid},
		{"no schema version", withData(`{"id":"x"}`), "no schema_version", event.ErrInvalid},
		{"unknown schema version", withData(`{"schema_version":3,"id":"x"}`), "unsupported RunDelta schema version: 3", event.ErrUnsupportedVersion},
		{"a poison batch: one bad delta among good ones", poisonBatch(), `deltas[1].events[2].status is "exploded"`, event.ErrInvalid},
		{"a version-1 message that breaks the schema", v1(func(d *event.RunDelta) { d.Run.Source = "luigi" }), `run.source is "luigi", not one of the schema's values`, event.ErrInvalid},
		{"event without id", withDelta(func(d *event.RunDelta) { d.Events[3].ID = "" }), `events[3].id is "", shorter than 1 characters`, event.ErrInvalid},
		{"unknown source", withDelta(func(d *event.RunDelta) { d.Run.Source = "luigi" }), `run.source is "luigi", not one of the schema's values`, event.ErrInvalid},
		// What the sink used to write although the schema forbids it.
		{"task status outside the enum", withDelta(func(d *event.RunDelta) { d.Events[0].Status = "exploded" }), `events[0].status is "exploded"`, event.ErrInvalid},
		{"no tenant", withoutKey("tenant"), "tenant is required", event.ErrInvalid},
		{"no environment", withoutKey("environment"), "environment is required", event.ErrInvalid},
		{"part 0", withDelta(func(d *event.RunDelta) { d.Part = 0 }), "part is 0, below the minimum 1", event.ErrInvalid},
		{"no observed time", withoutKey("observed_at"), "observed_at is required", event.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			logs := &logBuffer{}
			dlq := deadlettertest.New(t)
			s, err := sink.New(sink.DefaultConfig(), sink.Deps{Writer: sink.NewFileWriter(dir), Log: logs.logger(),
				DeadLetter: deadletter.New(dlq.Publisher, "sink", logs.logger())})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.HandleEnvelope(t.Context(), tc.body); err != nil {
				t.Fatalf("got %v, want nil: a poison message must be acknowledged", err)
			}
			dropped := logs.find(t, "message can never be processed; acknowledged and kept in the dead-letter topic")
			if len(dropped) != 1 {
				t.Fatalf("want one dead-letter log line, got %v", logs.entries(t))
			}
			if msg, _ := dropped[0]["reason"].(string); !strings.Contains(msg, tc.cause) {
				t.Errorf("logged reason %q, want it to name %q", msg, tc.cause)
			}
			if ex, _ := dropped[0]["excerpt"].(string); len(ex) > deadletter.ExcerptBytes+40 {
				t.Errorf("logged excerpt of %d bytes", len(ex))
			}
			letters := dlq.Letters()
			if len(letters) != 1 || !strings.Contains(letters[0].Attributes[deadletter.AttrReason], tc.cause) {
				t.Fatalf("dead letters %v, want one whose reason names %q", letters, tc.cause)
			}
			if dropped[0]["severity"] != "ERROR" {
				t.Errorf("severity %v, want ERROR", dropped[0]["severity"])
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("wrote %v for a poison message", entries)
			}
		})
	}
	// The same errors, straight from the decoder, are what Permanent recognises.
	_, err := event.Decode([]byte(`{"schema_version":9}`))
	if !sink.Permanent(err) || sink.Permanent(context.DeadlineExceeded) {
		t.Errorf("Permanent: unsupported version %v, deadline %v", sink.Permanent(err), sink.Permanent(context.DeadlineExceeded))
	}
}

func TestEmptyDeltaWritesNothing(t *testing.T) {
	dir := t.TempDir()
	d := sinktest.NestedArgoDelta()
	d.Events = nil
	if err := writeWith(sink.NewFileWriter(dir), nil).HandleEnvelope(t.Context(), sinktest.Envelope(t, sinktest.Message(t, sinktest.Finish(d), "1", sinktest.Day0))); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("wrote %v for a delta without events", entries)
	}
}

// TestRejectedRowsAreAcknowledged writes to an airflow table that lacks the map_index column (a
// table created before that column existed): BigQuery refuses the rows that carry it, keeps the
// one that does not, and the message is acknowledged with each refusal logged.
func TestRejectedRowsAreAcknowledged(t *testing.T) {
	env := newBQEnv(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	schema, err := sink.Schema(schemasDir, tableSpec(t, sink.TableAirflow))
	if err != nil {
		t.Fatal(err)
	}
	schema = slices.DeleteFunc(schema, func(f *bigquery.FieldSchema) bool { return f.Name == "map_index" })
	ds := env.client.Dataset(testDataset)
	if err := ds.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := ds.Table(sink.TableAirflow).Create(ctx, &bigquery.TableMetadata{Schema: schema}); err != nil {
		t.Fatal(err)
	}

	d := sinktest.RetriedMappedAirflowDelta()
	if err := env.deliver(t, sinktest.Message(t, d, "6001", sinktest.Day0)); err != nil {
		t.Fatalf("got %v, want nil: refused rows must not be retried", err)
	}

	got := env.query(t, "SELECT event_id, task_type FROM farm.airflow")
	if len(got) != 1 || got[0]["task_type"] != "TaskGroup" {
		t.Errorf("table holds %v, want only the task group row (the one without map_index)", got)
	}
	logged := env.logs.find(t, "rows rejected by the destination; message acknowledged")
	if len(logged) != 1 {
		t.Fatalf("want one rejection log line, got %v", env.logs.entries(t))
	}
	var wantIDs []string
	for _, e := range d.Events {
		if e.Type != "TaskGroup" {
			wantIDs = append(wantIDs, e.ID)
		}
	}
	var gotIDs []string
	for _, r := range logged[0]["rejections"].([]any) {
		r := r.(map[string]any)
		gotIDs = append(gotIDs, r["event_id"].(string))
		if reasons := r["reasons"].([]any); len(reasons) == 0 || !strings.Contains(reasons[0].(string), "map_index") {
			t.Errorf("rejection of %s gives reasons %v, want the missing column named", r["event_id"], reasons)
		}
	}
	slices.Sort(gotIDs)
	slices.Sort(wantIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("logged rejected event ids %v, want %v", gotIDs, wantIDs)
	}
	if logged[0]["rejected"] != 5.0 || logged[0]["rows"] != 6.0 || logged[0]["delta_id"] != d.ID {
		t.Errorf("rejection log line %v: want 5 of 6 rows and the delta id", logged[0])
	}
}

// googleAPI is an HTTP server answering every BigQuery call with one error, in the JSON shape
// Google APIs use, and recording the insertAll requests it received.
type googleAPI struct {
	srv  *httptest.Server
	mu   sync.Mutex
	rows [][]string // insert ids per insertAll request
}

func newGoogleAPI(t *testing.T, code int, status, reason, message string) *googleAPI {
	g := &googleAPI{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/insertAll") {
			var req struct {
				Rows []struct {
					InsertID string `json:"insertId"`
				} `json:"rows"`
			}
			body, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(body, &req); err != nil {
				t.Errorf("insertAll body is not JSON: %v", err)
			}
			var ids []string
			for _, row := range req.Rows {
				ids = append(ids, row.InsertID)
			}
			g.mu.Lock()
			g.rows = append(g.rows, ids)
			g.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"code": code, "message": message, "status": status,
			"errors": []map[string]any{{"message": message, "domain": "global", "reason": reason}},
		}})
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *googleAPI) requests() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.rows)
}

func sinkAt(endpoint string, logs *logBuffer) *sink.Sink {
	return writeWith(sink.NewBigQueryWriter(sink.Config{
		Project: testProject, Dataset: testDataset, Endpoint: endpoint, Timeout: 2 * time.Second,
	}), logs.logger())
}

// TestBigQueryFailuresAreRetried checks that a BigQuery that cannot take the rows now makes the
// sink return an error, so Pub/Sub redelivers the message.
func TestBigQueryFailuresAreRetried(t *testing.T) {
	d := sinktest.NestedArgoDelta()
	t.Run("503 unavailable", func(t *testing.T) {
		api := newGoogleAPI(t, http.StatusServiceUnavailable, "UNAVAILABLE", "backendError", "The service is currently unavailable.")
		err := sinkAt(api.srv.URL, &logBuffer{}).HandleEnvelope(t.Context(), sinktest.Envelope(t, sinktest.Message(t, d, "7001", sinktest.Day0)))
		var apiErr *googleapi.Error
		if !errors.As(err, &apiErr) || apiErr.Code != http.StatusServiceUnavailable || sink.Permanent(err) {
			t.Fatalf("got %v, want a retryable error carrying the 503", err)
		}
		reqs := api.requests()
		if len(reqs) == 0 {
			t.Fatal("the server saw no insertAll request")
		}
		var want []string
		for _, e := range d.Events {
			want = append(want, e.ID)
		}
		if !slices.Equal(reqs[0], want) {
			t.Errorf("insert ids sent %v, want the event ids %v", reqs[0], want)
		}
	})
	t.Run("emulator stopped", func(t *testing.T) {
		env := newBQEnv(t, true)
		s := sinkAt(env.emu.Endpoint, &logBuffer{})
		if err := s.HandleEnvelope(t.Context(), sinktest.Envelope(t, sinktest.Message(t, d, "7002", sinktest.Day0))); err != nil {
			t.Fatalf("while the emulator runs: %v", err)
		}
		env.emu.Stop()
		err := s.HandleEnvelope(t.Context(), sinktest.Envelope(t, sinktest.Message(t, sinktest.RetriedMappedAirflowDelta(), "7003", sinktest.Day0)))
		if err == nil || sink.Permanent(err) {
			t.Fatalf("got %v, want a retryable error once BigQuery is unreachable", err)
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error %q does not say why", err)
		}
	})
	t.Run("table missing", func(t *testing.T) {
		env := newBQEnv(t, false)
		err := env.deliver(t, sinktest.Message(t, d, "7004", sinktest.Day0))
		var apiErr *googleapi.Error
		if !errors.As(err, &apiErr) || apiErr.Code != http.StatusNotFound || sink.Permanent(err) {
			t.Fatalf("got %v, want a retryable 404: the tables may be deployed after the function", err)
		}
	})
}

// TestBadRequestIsAcknowledged: a 400 is BigQuery refusing the request itself; sending it again
// would get the same answer, so it is logged and acknowledged.
func TestBadRequestIsAcknowledged(t *testing.T) {
	api := newGoogleAPI(t, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", "Invalid table ID \"argo$\".")
	logs := &logBuffer{}
	d := sinktest.NestedArgoDelta()
	if err := sinkAt(api.srv.URL, logs).HandleEnvelope(t.Context(), sinktest.Envelope(t, sinktest.Message(t, d, "8001", sinktest.Day0))); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if n := len(api.requests()); n != 1 {
		t.Errorf("the server saw %d insertAll requests, want 1 (no retry of a 400)", n)
	}
	logged := logs.find(t, "rows rejected by the destination; message acknowledged")
	if len(logged) != 1 || logged[0]["rejected"] != float64(len(d.Events)) {
		t.Fatalf("want one rejection line for all %d rows, got %v", len(d.Events), logs.entries(t))
	}
	first := logged[0]["rejections"].([]any)[0].(map[string]any)
	if reasons := first["reasons"].([]any); !strings.Contains(reasons[0].(string), "Invalid table ID") {
		t.Errorf("reason %v does not carry BigQuery's message", reasons)
	}
}

// request is one insertAll request an insertProxy saw.
type request struct {
	rows, bytes int
	tooLarge    bool // answered 400 "payload size exceeds the limit" instead of forwarded
}

// insertProxy stands in front of the emulator, records every insertAll request and, above limit
// bytes (0: none), answers as BigQuery does above its 10 MB: 400, the request refused whole.
func insertProxy(t *testing.T, env *bqEnv, limit int) (*httptest.Server, func() []request) {
	t.Helper()
	target, err := url.Parse(env.emu.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []request
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/insertAll") {
			body, _ := io.ReadAll(r.Body)
			var req struct {
				Rows []json.RawMessage `json:"rows"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				t.Errorf("insertAll body: %v", err)
			}
			rq := request{rows: len(req.Rows), bytes: len(body), tooLarge: limit > 0 && len(body) > limit}
			mu.Lock()
			seen = append(seen, rq)
			mu.Unlock()
			if rq.tooLarge {
				msg := fmt.Sprintf("Request payload size exceeds the limit: %d bytes.", limit)
				w.Header().Set("Content-Type", "application/json; charset=UTF-8")
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
					"code": 400, "message": msg, "status": "INVALID_ARGUMENT",
					"errors": []map[string]any{{"message": msg, "domain": "global", "reason": "badRequest"}},
				}})
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

func writerAt(t *testing.T, endpoint string, batchRows, batchBytes int) *sink.BigQueryWriter {
	w := sink.NewBigQueryWriter(sink.Config{
		Project: testProject, Dataset: testDataset, Endpoint: endpoint, Timeout: callTimeout, BatchRows: batchRows, BatchBytes: batchBytes,
	})
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// storedOnce checks every event of d is in the argo table exactly once.
func storedOnce(t *testing.T, env *bqEnv, d *event.RunDelta) {
	t.Helper()
	if n := env.count(t, "SELECT COUNT(DISTINCT event_id) FROM farm.argo"); n != int64(len(d.Events)) {
		t.Errorf("%d distinct events stored, want %d", n, len(d.Events))
	}
	if n := env.count(t, "SELECT COUNT(*) FROM farm.argo"); n != int64(len(d.Events)) {
		t.Errorf("%d rows stored, want %d", n, len(d.Events))
	}
}

// TestBatches checks that a delta larger than a batch goes in several requests, each row once.
func TestBatches(t *testing.T) {
	env := newBQEnv(t, true)
	srv, seen := insertProxy(t, env, 0)
	d := sinktest.NestedArgoDelta()
	if err := writeWith(writerAt(t, srv.URL, 3, 0), (&logBuffer{}).logger()).HandleEnvelope(t.Context(), sinktest.Envelope(t, sinktest.Message(t, d, "9001", sinktest.Day0))); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range seen() {
		got = append(got, r.rows)
	}
	if !slices.Equal(got, []int{3, 3, 1}) {
		t.Errorf("insertAll requests carried %v rows, want [3 3 1] for 7 events in batches of 3", got)
	}
	storedOnce(t, env, d)
}

// Every row repeats its run's annotations and parameters, so a delta of few events can exceed
// BigQuery's request size. Batches are bounded by size; should BigQuery still refuse a request
// as too large, its halves go in instead — no row is dropped, none is written twice.
func TestBatchesBySize(t *testing.T) {
	const limit = 60 << 10
	big := strings.Repeat("x", 4<<10)
	for _, tc := range []struct {
		name       string
		batchBytes int
		tooLarge   bool // whether the proxy must have refused some request
	}{
		{"estimate keeps requests under the limit", 25 << 10, false},
		{"a request refused as too large is split", 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newBQEnv(t, true)
			srv, seen := insertProxy(t, env, limit)
			d := sinktest.NestedArgoDelta()
			for i := range 5 {
				d.Run.Parameters = append(d.Run.Parameters, event.Parameter{Name: fmt.Sprintf("p%d", i), Value: &big})
			}
			logs := &logBuffer{}
			if err := writeWith(writerAt(t, srv.URL, 500, tc.batchBytes), logs.logger()).HandleEnvelope(t.Context(), sinktest.Envelope(t, sinktest.Message(t, d, "9002", sinktest.Day0))); err != nil {
				t.Fatal(err)
			}
			refused := 0
			for _, r := range seen() {
				if r.tooLarge {
					refused++
				}
			}
			if (refused > 0) != tc.tooLarge {
				t.Errorf("%d requests refused as too large: %+v", refused, seen())
			}
			if got := logs.find(t, "rows rejected by the destination; message acknowledged"); len(got) != 0 {
				t.Errorf("rows dropped: %v", got)
			}
			storedOnce(t, env, d)
		})
	}
}

func TestFileWriterRefusesUnknownTable(t *testing.T) {
	dir := t.TempDir()
	err := sink.NewFileWriter(dir).Write(t.Context(), "../etc/passwd", nil)
	if err == nil {
		t.Fatal("want an error for a table that is not FARM's")
	}
	if _, statErr := os.Stat(filepath.Join(dir, "..", "etc")); statErr == nil {
		t.Error("created a directory outside the sink directory")
	}
}
