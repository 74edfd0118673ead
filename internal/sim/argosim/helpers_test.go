package argosim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	clock *clock.Manual
	srv   *Server
	http  *httptest.Server
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	clk := clock.NewManual(t0)
	srv := NewServer(clk, opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return &fixture{t: t, clock: clk, srv: srv, http: hs}
}

// get requests path (with query) and returns the status, headers and body.
func (f *fixture) get(path string, q url.Values) (int, http.Header, []byte) {
	f.t.Helper()
	return f.getWith(context.Background(), path, q, "")
}

func (f *fixture) getWith(ctx context.Context, path string, q url.Values, token string) (int, http.Header, []byte) {
	f.t.Helper()
	u := f.http.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("read %s: %v", u, err)
	}
	return resp.StatusCode, resp.Header, body
}

// getMap requests path and decodes a JSON object, failing unless the status is want.
func (f *fixture) getMap(path string, q url.Values, want int) map[string]any {
	f.t.Helper()
	status, _, body := f.get(path, q)
	if status != want {
		f.t.Fatalf("GET %s?%s: status %d, want %d: %s", path, q.Encode(), status, want, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		f.t.Fatalf("GET %s: not a JSON object: %v: %s", path, err, body)
	}
	return m
}

// list returns the decoded items and metadata of a list request.
func (f *fixture) list(ns string, q url.Values) (items []map[string]any, meta map[string]any) {
	f.t.Helper()
	m := f.getMap("/api/v1/workflows/"+ns, q, http.StatusOK)
	meta, _ = m["metadata"].(map[string]any)
	raw, _ := m["items"].([]any)
	for _, it := range raw {
		items = append(items, it.(map[string]any))
	}
	return items, meta
}

func (f *fixture) put(wf Workflow) Workflow {
	f.t.Helper()
	out, err := f.srv.Put(wf)
	if err != nil {
		f.t.Fatalf("put %s: %v", wf.Metadata.Name, err)
	}
	return out
}

// path walks nested maps: path(m, "status", "nodes").
func path(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func ts(t time.Time) Time { return NewTime(t) }

// dagWorkflow is shaped like upstream testdata dag_retry_succeeded.yaml and
// dag-exhausted-retries-xfail.yaml: a DAG root, a Retry task with two attempts, a dependent
// pod, and an Omitted failure handler. The second task is still running.
func dagWorkflow(ns, name string, started time.Time) Workflow {
	id := func(n string) string { return NodeID(name, n) }
	root, retry := name, name+".step1"
	a0, a1, next, omitted := retry+"(0)", retry+"(1)", name+".step2", name+".notify"
	s := ts(started)
	nodes := Nodes{
		id(root): {ID: id(root), Name: root, DisplayName: root, Type: NodeTypeDAG, TemplateName: "main", Phase: NodeRunning, StartedAt: s,
			Children: []string{id(retry)}},
		id(retry): {ID: id(retry), Name: retry, DisplayName: "step1", Type: NodeTypeRetry, TemplateName: "flaky", Phase: NodeSucceeded,
			BoundaryID: id(root), StartedAt: s, FinishedAt: ts(started.Add(40 * time.Second)), Children: []string{id(a0), id(a1)}},
		id(a0): {ID: id(a0), Name: a0, DisplayName: "step1(0)", Type: NodeTypePod, TemplateName: "flaky", Phase: NodeFailed, BoundaryID: id(root),
			Message: "Error (exit code 1)", StartedAt: s, FinishedAt: ts(started.Add(10 * time.Second)), NodeFlag: &NodeFlag{Retried: true},
			HostNodeName: "node-a", ResourcesDuration: map[string]int64{"cpu": 3, "memory": 1}},
		id(a1): {ID: id(a1), Name: a1, DisplayName: "step1(1)", Type: NodeTypePod, TemplateName: "flaky", Phase: NodeSucceeded, BoundaryID: id(root),
			StartedAt: ts(started.Add(11 * time.Second)), FinishedAt: ts(started.Add(39 * time.Second)), NodeFlag: &NodeFlag{Retried: true},
			Children: []string{id(next), id(omitted)}, HostNodeName: "node-b"},
		id(next): {ID: id(next), Name: next, DisplayName: "step2", Type: NodeTypePod, TemplateName: "work", Phase: NodeRunning, BoundaryID: id(root),
			StartedAt: ts(started.Add(41 * time.Second)), HostNodeName: "node-a"},
		id(omitted): {ID: id(omitted), Name: omitted, DisplayName: "notify", Type: NodeTypeSkipped, TemplateName: "notify", Phase: NodeOmitted,
			BoundaryID: id(root), Message: "omitted: depends condition not met", StartedAt: ts(started.Add(41 * time.Second)),
			FinishedAt: ts(started.Add(41 * time.Second)), NodeFlag: &NodeFlag{}},
	}
	return Workflow{
		Metadata: ObjectMeta{Name: name, Namespace: ns, GenerateName: "dag-", CreationTimestamp: s,
			Labels: map[string]string{LabelWorkflowTemplate: "dag-tmpl", "team": "data"}},
		Spec:   WorkflowSpec{Entrypoint: "main", WorkflowTemplateRef: &WorkflowTemplateRef{Name: "dag-tmpl"}},
		Status: WorkflowStatus{Phase: WorkflowRunning, StartedAt: s, Progress: "2/3", Nodes: nodes},
	}
}

// finished marks a workflow and its running nodes as ended in phase at end.
func finished(wf Workflow, phase string, end time.Time) Workflow {
	wf.Status.Phase, wf.Status.FinishedAt = phase, ts(end)
	nodes := Nodes{}
	for id, n := range wf.Status.Nodes {
		if !n.Phase.Fulfilled() {
			n.Phase, n.FinishedAt = NodeSucceeded, ts(end)
			if phase == WorkflowFailed && n.Type == NodeTypePod {
				n.Phase, n.Message = NodeFailed, "Error (exit code 1)"
			}
			if phase == WorkflowFailed && n.Type == NodeTypeDAG {
				n.Phase = NodeFailed
			}
		}
		nodes[id] = n
	}
	wf.Status.Nodes = nodes
	return wf
}
