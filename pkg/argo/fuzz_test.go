package argo

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets of the decoders of the Argo Server's answers: the workflow list (streamed), one
// workflow, status.nodes and status.compressedNodes, each followed by the mapping a poll applies.
// Seeds are the real workflow documents of testdata/; `go test` runs them, `make fuzz` mutates.

// testWorkflows returns the raw workflows of testdata/.
func testWorkflows(f *testing.F) [][]byte {
	f.Helper()
	paths, err := filepath.Glob("testdata/*.json")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed workflows in testdata/: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// seedNodes returns the status.nodes object of each seed workflow.
func seedNodes(f *testing.F) [][]byte {
	var out [][]byte
	for _, b := range testWorkflows(f) {
		var wf struct {
			Status struct {
				Nodes json.RawMessage `json:"nodes"`
			} `json:"status"`
		}
		if err := json.Unmarshal(b, &wf); err != nil {
			f.Fatal(err)
		}
		out = append(out, wf.Status.Nodes)
	}
	return out
}

// mapAll runs what a poll runs on a decoded workflow; it must never panic.
func mapAll(wf *Workflow) {
	m := Mapper{Instance: "fuzz", UIURL: &url.URL{Scheme: "https", Host: "argo.example.com"}, DefaultPodNameFormat: "v2"}
	_ = m.Run(wf)
	_, _, _ = Active(wf), Ref(wf), Pipeline(wf)
	nodes, err := wf.Status.DecodeNodes()
	if err != nil {
		return
	}
	_ = Fingerprint(wf, len(nodes))
	_ = m.Tasks(wf, nodes)
}

func FuzzDecodeList(f *testing.F) {
	wfs := testWorkflows(f)
	f.Add([]byte(`{"metadata":{"continue":"abc","resourceVersion":"1"},"items":[` + string(bytes.Join(wfs, []byte(","))) + `]}`))
	for _, wf := range wfs {
		f.Add([]byte(`{"metadata":{},"items":[` + string(wf) + `]}`))
	}
	f.Add([]byte(`{"metadata":{},"items":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, _, err := decodeList(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, wf := range items {
			if wf != nil {
				mapAll(wf)
			}
		}
	})
}

func FuzzDecodeWorkflow(f *testing.F) {
	for _, wf := range testWorkflows(f) {
		f.Add(wf)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var wf Workflow
		if json.Unmarshal(data, &wf) == nil {
			mapAll(&wf)
		}
	})
}

func FuzzDecodeNodes(f *testing.F) {
	for _, n := range seedNodes(f) {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st := WorkflowStatus{Nodes: data}
		nodes, err := st.DecodeNodes()
		if err != nil {
			return
		}
		wf := &Workflow{Status: st}
		wf.Metadata.Name, wf.Metadata.Namespace, wf.Metadata.UID = "wf", "ns", "uid"
		_ = Mapper{Instance: "fuzz"}.Tasks(wf, nodes)
		_ = Parents("wf", nodes)
	})
}

func FuzzDecodeCompressedNodes(f *testing.F) {
	for _, n := range seedNodes(f) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(n)
		_ = zw.Close()
		f.Add(base64.StdEncoding.EncodeToString(buf.Bytes()))
	}
	f.Add("not base64")
	f.Fuzz(func(t *testing.T, b64 string) {
		nodes, err := decodeCompressedNodes(b64)
		if err != nil {
			return
		}
		wf := &Workflow{Status: WorkflowStatus{CompressedNodes: b64}}
		wf.Metadata.Name = "wf"
		_ = Mapper{Instance: "fuzz"}.Tasks(wf, nodes)
	})
}
