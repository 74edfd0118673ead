package argo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecodeListPage decodes one page of 200 running workflows of 50 nodes each (~4 MB), the
// shape of a large estate's active listing. Nodes stay raw: Load decodes them only for runs whose
// fingerprint changed.
func BenchmarkDecodeListPage(b *testing.B) {
	items := make([]any, 200)
	for i := range items {
		items[i] = synth("argo", fmt.Sprintf("wf-%05d", i), t0.Add(time.Duration(i)*time.Second), 50, "")
	}
	page, err := json.Marshal(map[string]any{"metadata": map[string]any{"continue": "200"}, "items": items})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		wfs, next, err := decodeList(bytes.NewReader(page))
		if err != nil || len(wfs) != 200 || next != "200" {
			b.Fatalf("decoded %d, %q, %v", len(wfs), next, err)
		}
	}
}

func benchmarkMap(b *testing.B, n int) {
	wf := decodeWorkflow(b, synth("argo", "wf-bench", t0, n-1, "Succeeded"))
	nodes := nodesOf(b, wf)
	m := Mapper{Instance: "prod"}
	b.ReportAllocs()
	for b.Loop() {
		if ts := m.Tasks(wf, nodes); len(ts) != n {
			b.Fatalf("%d tasks", len(ts))
		}
	}
}

func BenchmarkMapTasks50(b *testing.B)   { benchmarkMap(b, 50) }
func BenchmarkMapTasks5000(b *testing.B) { benchmarkMap(b, 5000) }

// BenchmarkLoad5000 is what Load costs for a changed 5,000-node run: decode its nodes, map them.
func BenchmarkLoad5000(b *testing.B) {
	wf := decodeWorkflow(b, synth("argo", "wf-bench", t0, 4999, "Succeeded"))
	m := Mapper{Instance: "prod"}
	b.SetBytes(int64(len(wf.Status.Nodes)))
	b.ReportAllocs()
	for b.Loop() {
		nodes, err := wf.Status.DecodeNodes()
		if err != nil {
			b.Fatal(err)
		}
		if ts := m.Tasks(wf, nodes); len(ts) != 5000 {
			b.Fatalf("%d tasks", len(ts))
		}
	}
}
