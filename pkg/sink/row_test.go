package sink_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
)

// schemasDir is the repository's schemas directory, seen from this package.
var schemasDir = os.DirFS("../../schemas")

// bigQueryType is the column type a row field's Go type stands for.
func bigQueryType(t reflect.Type) (typ bigquery.FieldType, repeated bool, ok bool) {
	switch t {
	case reflect.TypeFor[string]():
		return bigquery.StringFieldType, false, true
	case reflect.TypeFor[int64](), reflect.TypeFor[*int64]():
		return bigquery.IntegerFieldType, false, true
	case reflect.TypeFor[*float64]():
		return bigquery.FloatFieldType, false, true
	case reflect.TypeFor[bool](), reflect.TypeFor[*bool]():
		return bigquery.BooleanFieldType, false, true
	case reflect.TypeFor[*time.Time]():
		return bigquery.TimestampFieldType, false, true
	case reflect.TypeFor[json.RawMessage]():
		return bigquery.JSONFieldType, false, true
	case reflect.TypeFor[[]int64]():
		return bigquery.IntegerFieldType, true, true
	}
	return "", false, false
}

type fieldColumn struct {
	typ      bigquery.FieldType
	repeated bool
}

// structColumns reads the columns of a row type from its fields' json tags, embedded structs
// flattened the way encoding/json flattens them.
func structColumns(t *testing.T, rt reflect.Type) map[string]fieldColumn {
	t.Helper()
	out := map[string]fieldColumn{}
	for _, f := range reflect.VisibleFields(rt) {
		if f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		typ, rep, ok := bigQueryType(f.Type)
		if !ok {
			t.Errorf("%s.%s: Go type %s has no BigQuery column type", rt.Name(), f.Name, f.Type)
			continue
		}
		if _, dup := out[name]; dup {
			t.Errorf("%s: column %q appears twice", rt.Name(), name)
		}
		out[name] = fieldColumn{typ, rep}
	}
	return out
}

func TestRowTypesMatchSchemas(t *testing.T) {
	rowTypes := map[string]reflect.Type{
		sink.TableArgo:    reflect.TypeFor[sink.ArgoRow](),
		sink.TableAirflow: reflect.TypeFor[sink.AirflowRow](),
	}
	for _, spec := range sink.Tables {
		t.Run(spec.Name, func(t *testing.T) {
			schema, err := sink.Schema(schemasDir, spec)
			if err != nil {
				t.Fatal(err)
			}
			fields := structColumns(t, rowTypes[spec.Name])
			inSchema := map[string]bool{}
			for _, col := range schema {
				inSchema[col.Name] = true
				if col.Required {
					t.Errorf("column %s is REQUIRED: every column must be NULLABLE so the first FARM tables can be migrated by adding columns", col.Name)
				}
				if col.Description == "" {
					t.Errorf("column %s has no description", col.Name)
				}
				f, ok := fields[col.Name]
				switch {
				case !ok:
					t.Errorf("schema column %s (%s) has no field in the row type", col.Name, col.Type)
				case f.typ != col.Type || f.repeated != col.Repeated:
					t.Errorf("column %s: schema %s (repeated %v), row field %s (repeated %v)", col.Name, col.Type, col.Repeated, f.typ, f.repeated)
				}
			}
			for name, f := range fields {
				if !inSchema[name] {
					t.Errorf("row field %s (%s) is not a column of %s", name, f.typ, spec.SchemaFile)
				}
			}
			for _, c := range append([]string{spec.Partition}, spec.Clustering...) {
				if !inSchema[c] {
					t.Errorf("partitioning/clustering column %s is not in the schema", c)
				}
			}
		})
	}
}

// TestSaveAndFileEncodingAgree checks that the streaming columns (Save) and the load-file columns
// (encoding/json) are the same columns with the same values, NULLs left out of both.
func TestSaveAndFileEncodingAgree(t *testing.T) {
	for _, d := range []*event.RunDelta{sinktest.NestedArgoDelta(), sinktest.RetriedMappedAirflowDelta()} {
		_, rows, err := sink.Rows(sinktest.Message(t, d, "1", sinktest.Day0), d)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			saved, id, err := row.Save()
			if err != nil {
				t.Fatal(err)
			}
			if id == "" || id != saved["event_id"] {
				t.Errorf("insert id %q, event_id column %v: want the event id for both", id, saved["event_id"])
			}
			line, err := json.Marshal(row)
			if err != nil {
				t.Fatal(err)
			}
			var fromFile map[string]any
			if err := json.Unmarshal(line, &fromFile); err != nil {
				t.Fatal(err)
			}
			if got, want := sortedKeys(fromFile), sortedKeys(saved); !slices.Equal(got, want) {
				t.Errorf("row %s: file columns %v, streaming columns %v", id, got, want)
			}
			for k, v := range saved {
				if !sameValue(v, fromFile[k]) {
					t.Errorf("row %s column %s: streaming %#v, file %#v", id, k, v, fromFile[k])
				}
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sameValue compares a streaming value with its decoded file counterpart: JSON columns travel as
// text in one and as a value in the other, timestamps as text in both, numbers as float64 after
// decoding.
func sameValue(saved, file any) bool {
	switch v := saved.(type) {
	case string:
		if s, ok := file.(string); ok {
			return s == v || sameInstant(v, s)
		}
		var decoded any
		if err := json.Unmarshal([]byte(v), &decoded); err != nil {
			return false
		}
		return reflect.DeepEqual(decoded, file)
	case int64:
		f, ok := file.(float64)
		return ok && f == float64(v)
	case float64, bool:
		return saved == file
	case []int64:
		fs, ok := file.([]any)
		if !ok || len(fs) != len(v) {
			return false
		}
		for i := range v {
			if f, ok := fs[i].(float64); !ok || f != float64(v[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func sameInstant(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	return errA == nil && errB == nil && ta.Equal(tb)
}

func saved(t *testing.T, row sink.Row) map[string]bigquery.Value {
	t.Helper()
	m, _, err := row.Save()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func findRow(t *testing.T, rows []sink.Row, column, value string) map[string]bigquery.Value {
	t.Helper()
	for _, r := range rows {
		if m := saved(t, r); m[column] == value {
			return m
		}
	}
	t.Fatalf("no row with %s = %q", column, value)
	return nil
}

func TestArgoRows(t *testing.T) {
	d := sinktest.NestedArgoDelta()
	published := time.Date(2026, 3, 2, 1, 6, 1, 123456789, time.UTC)
	m := sinktest.Message(t, d, "17623514820334", published)
	table, rows, err := sink.Rows(m, d)
	if err != nil {
		t.Fatal(err)
	}
	if table != sink.TableArgo || len(rows) != len(d.Events) {
		t.Fatalf("got table %q with %d rows, want argo with %d", table, len(rows), len(d.Events))
	}
	got := findRow(t, rows, "node_display_name", "extract(0)")
	want := map[string]bigquery.Value{
		"subscription_name":       sinktest.Subscription,
		"message_id":              "17623514820334",
		"publish_time":            "2026-03-02T01:06:01.123456Z",
		"attributes":              `{"batch_id":"` + m.Attributes[event.AttrBatchID] + `","deltas":"1","environment":"prod","instance":"prod-eu","schema_version":"2","source":"argo","tenant":"acme"}`,
		"event_id":                d.Events[2].ID,
		"delta_id":                d.ID,
		"schema_version":          int64(2),
		"tenant":                  "acme",
		"environment":             "prod",
		"instance":                "prod-eu",
		"observed_at":             "2026-03-02T01:06:00Z",
		"replay":                  false,
		"pipeline":                "etl-nightly",
		"run_uid":                 "5b7e0c3e-2a41-4d8e-9f0b-6c1d2e3f4a5b",
		"run_status":              "succeeded",
		"status":                  "failed",
		"previous_status":         "running",
		"name":                    "etl-nightly-7x2kq",
		"normalized_name":         "etl-nightly",
		"namespace":               "data",
		"kind":                    "Workflow",
		"url":                     "https://argo.example.com/workflows/data/etl-nightly-7x2kq",
		"phase":                   "Succeeded",
		"workflow_template":       "etl",
		"labels":                  `{"workflows.argoproj.io/completed":"true","workflows.argoproj.io/cron-workflow":"etl-nightly","workflows.argoproj.io/workflow-template":"etl"}`,
		"annotations":             `{"workflows.argoproj.io/scheduled-time":"2026-03-02T01:00:00Z"}`,
		"creation_timestamp":      "2026-03-02T00:59:58Z",
		"parameters":              `[{"name":"date","value":"2026-03-01"},{"name":"dry-run"}]`,
		"started_at":              "2026-03-02T01:00:00Z",
		"finished_at":             "2026-03-02T01:05:00Z",
		"previous_phase":          "Running",
		"node_id":                 "etl-nightly-7x2kq-2853405663",
		"node_name":               "etl-nightly-7x2kq.extract(0)",
		"node_display_name":       "extract(0)",
		"node_type":               "Pod",
		"node_template":           "extract",
		"node_parent_id":          "etl-nightly-7x2kq-1402196842",
		"node_attempt":            int64(0),
		"node_phase":              "Failed",
		"node_previous_phase":     "Running",
		"node_started_at":         "2026-03-02T01:00:05Z",
		"node_finished_at":        "2026-03-02T01:00:35.25Z",
		"node_duration_seconds":   30.25,
		"node_message":            "Error (exit code 1)",
		"node_pod":                "etl-nightly-7x2kq-extract-2853405663",
		"node_host_node":          "gke-pool-a-1f2e",
		"node_resources_duration": `{"cpu":12,"memory":30}`,
	}
	if !reflect.DeepEqual(got, want) {
		for _, k := range sortedKeys(merge(got, want)) {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("%s: got %#v, want %#v", k, got[k], want[k])
			}
		}
	}
	root := findRow(t, rows, "node_id", "etl-nightly-7x2kq")
	if _, ok := root["node_parent_id"]; ok {
		t.Errorf("root node has node_parent_id %v; want NULL", root["node_parent_id"])
	}
	clean := findRow(t, rows, "node_display_name", "clean")
	if clean["node_duration_seconds"] != 187.000001 {
		t.Errorf("clean duration %v, want 187.000001 (microsecond precision)", clean["node_duration_seconds"])
	}
}

func merge[V any](a, b map[string]V) map[string]V {
	out := map[string]V{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestAirflowRows(t *testing.T) {
	d := sinktest.RetriedMappedAirflowDelta()
	table, rows, err := sink.Rows(sinktest.Message(t, d, "9", sinktest.Day0.Add(7*time.Minute)), d)
	if err != nil {
		t.Fatal(err)
	}
	if table != sink.TableAirflow || len(rows) != 6 {
		t.Fatalf("got table %q with %d rows, want airflow with 6", table, len(rows))
	}
	cases := []struct {
		name  string
		match [2]string
		want  map[string]bigquery.Value
		null  []string
	}{
		{
			name:  "first try ends up_for_retry",
			match: [2]string{"task_state", "up_for_retry"},
			want: map[string]bigquery.Value{
				"dag_id": "daily_sales", "dag_run_id": "scheduled__2026-03-01T00:00:00+00:00", "run_type": "scheduled",
				"state": "success", "previous_state": "running", "logical_date": "2026-03-02T00:00:00Z",
				"start_date": "2026-03-02T01:00:10Z", "end_date": "2026-03-02T01:06:40Z",
				"run_uid": "daily_sales/scheduled__2026-03-01T00:00:00+00:00", "pipeline": "daily_sales", "run_status": "succeeded",
				"task_id": "fetch_orders", "task_type": "Task", "map_index": int64(-1), "try_number": int64(1), "max_tries": int64(2),
				"task_previous_state": "running", "status": "up_for_retry", "previous_status": "running",
				"task_queued_at": "2026-03-02T01:00:11Z", "task_start_date": "2026-03-02T01:00:13.5Z", "task_end_date": "2026-03-02T01:00:43.5Z",
				"task_duration_seconds": 30.0, "queue_seconds": 2.5, "operator": "PythonOperator", "pool": "default_pool",
				"queue": "default", "hostname": "airflow-worker-0", "executor": "CeleryExecutor", "priority_weight": int64(3),
				"task_message":        "ConnectionError: orders API timed out",
				"data_interval_start": "2026-03-02T00:00:00Z", "data_interval_end": "2026-03-03T00:00:00Z",
				"last_scheduling_decision": "2026-03-02T01:06:40.5Z", "external_trigger": false,
				"note": "rerun after the orders API outage",
			},
			null: []string{"parent_id", "task_scheduled_at", "missed_tries", "task_instance_id", "run_queued_at"},
		},
		{
			name:  "mapped task instance",
			match: [2]string{"task_instance_id", "0195a3c4-7d2e-7f41-9c3b-2a1f0e9d8c7b"},
			want: map[string]bigquery.Value{
				"task_id": "enrich.score", "task_type": "MappedTask", "parent_id": "enrich", "map_index": int64(2),
				"try_number": int64(1), "task_state": "success", "status": "succeeded", "task_duration_seconds": 12.5,
				"queue_seconds": 4.0, "pool": "scoring", "missed_tries": []int64{1},
			},
			null: []string{"priority_weight"},
		},
		{
			name:  "task group without task-instance fields",
			match: [2]string{"task_type", "TaskGroup"},
			want: map[string]bigquery.Value{
				"task_id": "enrich", "dag_id": "daily_sales", "try_number": int64(0), "task_duration_seconds": 17.0,
			},
			null: []string{"map_index", "max_tries", "pool", "queue_seconds", "operator"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := findRow(t, rows, tc.match[0], tc.match[1])
			for k, v := range tc.want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s: got %#v, want %#v", k, got[k], v)
				}
			}
			for _, k := range tc.null {
				if v, ok := got[k]; ok {
					t.Errorf("%s: got %#v, want NULL", k, v)
				}
			}
		})
	}
}

func TestRowsRefuseUnknownSource(t *testing.T) {
	d := sinktest.NestedArgoDelta()
	d.Run.Source = "luigi"
	_, _, err := sink.Rows(sinktest.Message(t, sinktest.NestedArgoDelta(), "1", sinktest.Day0), d)
	if !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("got %v, want an error wrapping event.ErrInvalid", err)
	}
}

func TestRowsNullPublishTime(t *testing.T) {
	d := sinktest.NestedArgoDelta()
	m := sinktest.Message(t, d, "1", time.Time{})
	m.Attributes = nil
	_, rows, err := sink.Rows(m, d)
	if err != nil {
		t.Fatal(err)
	}
	got := saved(t, rows[0])
	for _, k := range []string{"publish_time", "attributes"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %#v, want NULL when the delivery has none", k, v)
		}
	}
	line, err := json.Marshal(rows[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(line, []byte(`"publish_time"`)) || bytes.Contains(line, []byte(`null`)) {
		t.Errorf("file row %s: NULL columns must be left out", line)
	}
}

// BenchmarkEncodeRows measures rows encoded per second, both ways, from a decoded RunDelta.
func BenchmarkEncodeRows(b *testing.B) {
	d := benchDelta(200)
	m := sinktest.Message(b, d, "1", sinktest.Day0)
	for _, mode := range []string{"streaming", "file"} {
		b.Run(mode, func(b *testing.B) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			rowsDone := 0
			for b.Loop() {
				_, rows, err := sink.Rows(m, d)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range rows {
					if mode == "streaming" {
						if _, _, err := r.Save(); err != nil {
							b.Fatal(err)
						}
					} else if err := enc.Encode(r); err != nil {
						b.Fatal(err)
					}
				}
				buf.Reset()
				rowsDone += len(rows)
			}
			b.ReportMetric(float64(rowsDone)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// benchDelta is an Argo run of n pod nodes, the size of a large workflow's poll.
func benchDelta(n int) *event.RunDelta {
	d := sinktest.NestedArgoDelta()
	tmpl := d.Events[2]
	d.Events = d.Events[:0]
	for i := range n {
		e := tmpl
		e.NodeID = tmpl.NodeID + "-" + string(rune('a'+i%26)) + time.Duration(i).String()
		e.ID = event.NewID("bench", e.NodeID)
		d.Events = append(d.Events, e)
	}
	return d
}
