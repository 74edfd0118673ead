package airflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// sampleTIs is a run of 50 task instances in task groups, 10 of them mapped instances.
func sampleTIs() []TaskInstance {
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var out []TaskInstance
	for i := range 50 {
		s, e, q := start.Add(time.Duration(i)*time.Minute), start.Add(time.Duration(i+1)*time.Minute), start.Add(time.Duration(i)*time.Minute-time.Second)
		t := TaskInstance{
			ID: fmt.Sprintf("0190b0c0-%04d", i), DagID: "etl_001", RunID: "scheduled__2026-03-02T10:00:00+00:00",
			TaskID: fmt.Sprintf("stage_%02d.step_%02d", i/5, i%5), MapIndex: -1, State: "success", TryNumber: 1 + i%3,
			MaxTries: 2, Start: &s, End: &e, QueuedWhen: &q, Operator: "PythonOperator", Pool: "default_pool", Queue: "default",
			Hostname: "worker-1", PriorityWeight: 1,
		}
		if i >= 40 {
			t.TaskID, t.MapIndex = "stage_08.partition", i-40
		}
		out = append(out, t)
	}
	return out
}

func BenchmarkDecodeTaskInstancePage(b *testing.B) {
	// A v2 page of 1000 rows, shaped as the server sends it.
	var rows []map[string]any
	for _, t := range sampleTIs() {
		for k := range 20 {
			rows = append(rows, map[string]any{
				"id": t.ID, "task_id": t.TaskID, "dag_id": t.DagID, "dag_run_id": fmt.Sprintf("%s_%d", t.RunID, k), "map_index": t.MapIndex,
				"state": t.State, "try_number": t.TryNumber, "max_tries": t.MaxTries, "start_date": t.Start.Format(time.RFC3339Nano),
				"end_date": t.End.Format(time.RFC3339Nano), "queued_when": t.QueuedWhen.Format(time.RFC3339Nano), "scheduled_when": nil,
				"operator": t.Operator, "operator_name": t.Operator, "pool": t.Pool, "queue": t.Queue, "hostname": t.Hostname,
				"priority_weight": 1, "executor": nil, "task_display_name": t.TaskID, "rendered_fields": map[string]any{},
			})
		}
	}
	raw, err := json.Marshal(map[string]any{"task_instances": rows, "total_entries": len(rows)})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var p tiPage
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&p); err != nil {
			b.Fatal(err)
		}
		if _, err := decodeTIs(p.TaskInstances); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRunEventsAndFingerprint(b *testing.B) {
	tis := sampleTIs()
	run := &Run{RunRef: RunRef{"etl_001", "r"}, State: "running"}
	for b.Loop() {
		evs := runEvents(tis, run)
		if len(evs) < 50 {
			b.Fatal("events missing")
		}
		_ = fingerprint("x", tis)
	}
}
