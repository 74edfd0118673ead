package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/sink"
)

const (
	testProject = "farm-test"
	testDataset = "farm"
	// callTimeout bounds every call to the emulator: its first query can be slow.
	callTimeout = 60 * time.Second
)

// logBuffer collects what a Sink logs, in the Cloud Logging JSON of pkg/logging.
type logBuffer struct{ bytes.Buffer }

func (l *logBuffer) logger() *slog.Logger { return logging.New(l, slog.LevelDebug) }

// writeWith returns a sink of the default configuration writing with w.
func writeWith(w sink.Writer, log *slog.Logger) *sink.Sink {
	s, err := sink.New(sink.DefaultConfig(), sink.Deps{Writer: w, Log: log})
	if err != nil {
		panic(err) // the default configuration is valid
	}
	return s
}

// entries decodes the log lines.
func (l *logBuffer) entries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(l.Bytes()))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the entries whose message is msg.
func (l *logBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range l.entries(t) {
		if e["message"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// bqEnv is an emulator with FARM's dataset, tables and views, and a Sink writing to it.
type bqEnv struct {
	emu    *testenv.BigQuery
	client *bigquery.Client
	sink   *sink.Sink
	w      *sink.BigQueryWriter // what sink writes with
	logs   *logBuffer
}

func newBQEnv(t *testing.T, setup bool) *bqEnv {
	t.Helper()
	emu := testenv.StartBigQuery(t, testProject)
	e := &bqEnv{emu: emu, client: emu.Client(t), logs: &logBuffer{}}
	if setup {
		ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
		defer cancel()
		if err := sink.Setup(ctx, e.client, testDataset, schemasDir); err != nil {
			t.Fatal(err)
		}
	}
	w := sink.NewBigQueryWriter(sink.Config{
		Project: testProject, Dataset: testDataset, Endpoint: emu.Endpoint, Timeout: callTimeout,
	})
	t.Cleanup(func() { _ = w.Close() })
	e.w, e.sink = w, writeWith(w, e.logs.logger())
	return e
}

// deliver hands a message to the sink the way the function does, from its CloudEvent body.
func (e *bqEnv) deliver(t *testing.T, m event.Message) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	return e.sink.HandleEnvelope(ctx, sinktest.Envelope(t, m))
}

func (e *bqEnv) mustDeliver(t *testing.T, m event.Message) {
	t.Helper()
	if err := e.deliver(t, m); err != nil {
		t.Fatalf("deliver %s: %v", m.ID, err)
	}
}

// query runs sql and returns its rows by column name.
func (e *bqEnv) query(t *testing.T, sql string) []map[string]bigquery.Value {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	q := e.client.Query(sql)
	q.DefaultProjectID = testProject
	q.DefaultDatasetID = testDataset
	it, err := q.Read(ctx)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	var out []map[string]bigquery.Value
	for {
		row := map[string]bigquery.Value{}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("query %q: %v", sql, err)
		}
		out = append(out, row)
	}
}

func (e *bqEnv) count(t *testing.T, sql string) int64 {
	t.Helper()
	rows := e.query(t, sql)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("query %q: got %v, want one value", sql, rows)
	}
	for _, v := range rows[0] {
		return v.(int64)
	}
	return 0
}

// TestBigQueryRoundTrip inserts a nested Argo run and an Airflow run with retries and mapped
// tasks through the sink, reads both tables back with SQL and compares every column of every row.
func TestBigQueryRoundTrip(t *testing.T) {
	env := newBQEnv(t, true)
	cases := []struct {
		table string
		delta *event.RunDelta
	}{
		{sink.TableArgo, sinktest.NestedArgoDelta()},
		{sink.TableAirflow, sinktest.RetriedMappedAirflowDelta()},
	}
	for i, tc := range cases {
		t.Run(tc.table, func(t *testing.T) {
			m := sinktest.Message(t, tc.delta, "1000"+string(rune('0'+i)), sinktest.Day0.Add(10*time.Minute+time.Duration(i)*time.Second))
			env.mustDeliver(t, m)
			_, rows, err := sink.Rows(m, tc.delta)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]map[string]bigquery.Value{}
			for _, r := range rows {
				cols, id, _ := r.Save()
				want[id] = cols
			}
			spec := tableSpec(t, tc.table)
			schema, err := sink.Schema(schemasDir, spec)
			if err != nil {
				t.Fatal(err)
			}
			got := env.query(t, "SELECT * FROM `"+testProject+"."+testDataset+"."+tc.table+"`")
			if len(got) != len(want) {
				t.Fatalf("read %d rows back, wrote %d", len(got), len(want))
			}
			for _, row := range got {
				id, _ := row["event_id"].(string)
				w, ok := want[id]
				if !ok {
					t.Errorf("read back a row with unknown event_id %q", id)
					continue
				}
				for _, col := range schema {
					if !storedAs(col, w[col.Name], row[col.Name]) {
						t.Errorf("event %s column %s (%s): wrote %#v, read %#v", id, col.Name, col.Type, w[col.Name], row[col.Name])
					}
				}
			}
		})
	}
	// A few values by hand, so the comparison above is not only encoding against itself.
	got := env.query(t, "SELECT node_duration_seconds, JSON_VALUE(node_resources_duration, '$.memory') AS memory, "+
		"JSON_VALUE(attributes, '$.tenant') AS tenant, publish_time FROM farm.argo WHERE node_display_name = 'extract(1)'")
	want := []map[string]bigquery.Value{{
		"node_duration_seconds": 55.5, "memory": "81", "tenant": "acme",
		"publish_time": sinktest.Day0.Add(10 * time.Minute),
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("extract(1): got %v, want %v", got, want)
	}
	got = env.query(t, "SELECT JSON_VALUE(parameters, '$[0].value') AS date, JSON_VALUE(annotations, '$.\"workflows.argoproj.io/scheduled-time\"') AS scheduled, "+
		"creation_timestamp FROM farm.argo WHERE node_display_name = 'extract(1)'")
	want = []map[string]bigquery.Value{{"date": "2026-03-01", "scheduled": "2026-03-02T01:00:00Z", "creation_timestamp": sinktest.Day0.Add(-2 * time.Second)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("workflow arguments: got %v, want %v", got, want)
	}
	got = env.query(t, "SELECT external_trigger, note, data_interval_end FROM farm.airflow WHERE task_id = 'fetch_orders' AND try_number = 2")
	want = []map[string]bigquery.Value{{"external_trigger": false, "note": "rerun after the orders API outage", "data_interval_end": sinktest.Day0.Add(23 * time.Hour)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DAG run fields: got %v, want %v", got, want)
	}
	got = env.query(t, "SELECT task_id, map_index, try_number, task_state FROM farm.airflow WHERE task_type = 'MappedTask' ORDER BY map_index")
	for i, r := range got {
		if r["task_id"] != "enrich.score" || r["map_index"] != int64(i) || r["try_number"] != int64(1) || r["task_state"] != "success" {
			t.Errorf("mapped instance %d: %v", i, r)
		}
	}
	if len(got) != 3 {
		t.Errorf("got %d mapped task instances, want 3", len(got))
	}
}

func tableSpec(t *testing.T, name string) sink.TableSpec {
	t.Helper()
	for _, s := range sink.Tables {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no table %s", name)
	return sink.TableSpec{}
}

// storedAs reports whether BigQuery's value read back is what the sink wrote in a column.
func storedAs(col *bigquery.FieldSchema, wrote, read bigquery.Value) bool {
	if wrote == nil {
		return read == nil || (col.Repeated && reflect.ValueOf(read).Len() == 0)
	}
	switch col.Type {
	case bigquery.TimestampFieldType:
		w, err := time.Parse(time.RFC3339Nano, wrote.(string))
		r, ok := read.(time.Time)
		return err == nil && ok && w.Equal(r)
	case bigquery.JSONFieldType:
		var w, r any
		s, ok := read.(string)
		return ok && json.Unmarshal([]byte(wrote.(string)), &w) == nil &&
			json.Unmarshal([]byte(s), &r) == nil && reflect.DeepEqual(w, r)
	}
	if col.Repeated {
		ws := reflect.ValueOf(wrote)
		rs, ok := read.([]bigquery.Value)
		if !ok || len(rs) != ws.Len() {
			return false
		}
		for i := range rs {
			if !reflect.DeepEqual(rs[i], ws.Index(i).Interface()) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(wrote, read)
}

// TestReplayLeavesDedupViewUnchanged delivers a delta, then the same delta again — once as a
// Pub/Sub redelivery (same message) and once as a backfill replay (new message, replay flag) —
// and checks that the tables grew while the deduplicated views did not change.
func TestReplayLeavesDedupViewUnchanged(t *testing.T) {
	env := newBQEnv(t, true)
	argo, airflow := sinktest.NestedArgoDelta(), sinktest.RetriedMappedAirflowDelta()
	first := []event.Message{sinktest.Message(t, argo, "2001", sinktest.Day0.Add(10*time.Minute)), sinktest.Message(t, airflow, "2002", sinktest.Day0.Add(10*time.Minute))}
	for _, m := range first {
		env.mustDeliver(t, m)
	}
	snapshot := func() map[string][]map[string]bigquery.Value {
		out := map[string][]map[string]bigquery.Value{}
		for _, v := range []string{"argo_dedup", "airflow_dedup", "task_events", "runs", "task_duration_daily", "run_duration_daily", "failure_rate_daily", "queue_time_daily"} {
			rows := env.query(t, "SELECT * FROM farm."+v)
			sort.Slice(rows, func(i, j int) bool { return canonical(rows[i]) < canonical(rows[j]) })
			out[v] = rows
		}
		return out
	}
	before := snapshot()
	if n := len(before["argo_dedup"]); n != len(argo.Events) {
		t.Fatalf("argo_dedup has %d rows after the first delivery, want %d", n, len(argo.Events))
	}
	for v, rows := range before {
		if len(rows) == 0 {
			t.Fatalf("view %s is empty after the first delivery", v)
		}
	}

	// Redelivery: the very same messages.
	for _, m := range first {
		env.mustDeliver(t, m)
	}
	// Backfill replay: the same events in new messages, published later.
	for i, d := range []*event.RunDelta{sinktest.NestedArgoDelta(), sinktest.RetriedMappedAirflowDelta()} {
		d.Replay = true
		d.ObservedAt = sinktest.Day0.Add(48 * time.Hour)
		env.mustDeliver(t, sinktest.Message(t, d, "3001"+string(rune('0'+i)), sinktest.Day0.Add(48*time.Hour+time.Second)))
	}

	if n := env.count(t, "SELECT COUNT(*) FROM farm.argo"); n != int64(3*len(argo.Events)) {
		t.Fatalf("argo has %d rows, want %d: the emulator keeps every insert", n, 3*len(argo.Events))
	}
	if n := env.count(t, "SELECT COUNT(*) FROM farm.airflow"); n != int64(3*len(airflow.Events)) {
		t.Fatalf("airflow has %d rows, want %d", n, 3*len(airflow.Events))
	}
	after := snapshot()
	for v, rows := range before {
		if !reflect.DeepEqual(rows, after[v]) {
			t.Errorf("view %s changed after redelivery and replay:\nbefore %v\nafter  %v", v, rows, after[v])
		}
	}
}

func canonical(m map[string]bigquery.Value) string {
	b, _ := json.Marshal(m) // map keys are sorted
	return string(b)
}

// TestPrepare builds a sink from settings, as the local runner does, and lets it lay out an empty
// emulator: dataset, both tables partitioned and clustered, every view.
func TestPrepare(t *testing.T) {
	emu := testenv.StartBigQuery(t, testProject)
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	cfg := sink.DefaultConfig()
	cfg.Mode, cfg.Project, cfg.Dataset, cfg.Endpoint, cfg.Timeout = "bigquery", testProject, "farm_local", emu.Endpoint, callTimeout
	s, err := sink.New(cfg, sink.Deps{Log: (&logBuffer{}).logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for range 2 { // a second run finds everything in place
		if err := s.Prepare(ctx, schemasDir); err != nil {
			t.Fatal(err)
		}
	}
	ds := emu.Client(t).Dataset("farm_local")
	for _, spec := range sink.Tables {
		md, err := ds.Table(spec.Name).Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if md.Type != bigquery.RegularTable || md.TimePartitioning == nil || md.TimePartitioning.Field != "publish_time" ||
			md.TimePartitioning.Type != bigquery.DayPartitioningType || md.Clustering == nil ||
			!reflect.DeepEqual(md.Clustering.Fields, []string{"pipeline", "status"}) {
			t.Errorf("table %s: type %s, partitioning %+v, clustering %+v", spec.Name, md.Type, md.TimePartitioning, md.Clustering)
		}
	}
	for _, v := range sink.Views {
		md, err := ds.Table(v).Metadata(ctx)
		if err != nil {
			t.Fatalf("view %s: %v", v, err)
		}
		if md.Type != bigquery.ViewTable || !strings.Contains(md.ViewQuery, "`"+testProject+".farm_local.") {
			t.Errorf("view %s: type %s, query %q", v, md.Type, md.ViewQuery)
		}
	}

	cfg = sink.DefaultConfig()
	cfg.Dir = t.TempDir() + "/out"
	files, err := sink.New(cfg, sink.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := files.Prepare(ctx, schemasDir); err != nil {
		t.Errorf("file sink Prepare: %v", err)
	}
	cfg.Mode = "kafka"
	if _, err := sink.New(cfg, sink.Deps{}); err == nil {
		t.Error("New accepted mode kafka")
	}
}
