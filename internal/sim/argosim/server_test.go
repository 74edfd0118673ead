package argosim

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestArchiveDeleteAndFallback(t *testing.T) {
	f := newFixture(t, Options{})
	done := f.put(finished(dagWorkflow("argo", "done-1", t0), WorkflowFailed, t0.Add(time.Hour)))
	uid := done.Metadata.UID
	if err := f.srv.Archive("argo", "done-1"); err != nil {
		t.Fatal(err)
	}
	// Listed from the archive: no nodes, no resourceVersion, labelled Persisted.
	items, _ := f.list("argo", nil)
	if len(items) != 1 {
		t.Fatalf("%d items, want 1 (the live copy labelled Archived is not listed)", len(items))
	}
	it := items[0]
	if path(it, "status", "nodes") != nil || path(it, "metadata", "resourceVersion") != nil ||
		path(it, "metadata", "labels", LabelArchivingStatus) != ArchivingPersisted || path(it, "status", "phase") != "Failed" {
		t.Errorf("archived row %v", it)
	}
	// GET by name still finds the live workflow, nodes included, labelled Archived.
	wf := f.getMap("/api/v1/workflows/argo/done-1", nil, http.StatusOK)
	if path(wf, "metadata", "labels", LabelArchivingStatus) != ArchivingArchived || len(path(wf, "status", "nodes").(map[string]any)) != 6 {
		t.Errorf("live GET %v", path(wf, "metadata", "labels"))
	}
	if err := f.srv.Delete("argo", "done-1"); err != nil {
		t.Fatal(err)
	}
	// Deleted: GET by name falls back to the archive (Argo 3.5.7+).
	wf = f.getMap("/api/v1/workflows/argo/done-1", nil, http.StatusOK)
	if path(wf, "metadata", "labels", LabelArchivingStatus) != ArchivingPersisted || len(path(wf, "status", "nodes").(map[string]any)) != 6 {
		t.Errorf("fallback GET labels %v", path(wf, "metadata", "labels"))
	}
	full := f.getMap("/api/v1/archived-workflows/"+uid, nil, http.StatusOK)
	if path(full, "metadata", "uid") != uid || len(path(full, "status", "nodes").(map[string]any)) != 6 {
		t.Errorf("archived GET %v", path(full, "metadata"))
	}
	status, _, body := f.get("/api/v1/archived-workflows/no-such-uid", nil)
	if status != http.StatusNotFound || string(body) != `{"code":5,"message":"not found"}` {
		t.Errorf("unknown archived uid: %d %s", status, body)
	}
	if err := f.srv.Archive("argo", "done-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Archive of a deleted workflow: %v", err)
	}
	f.put(dagWorkflow("argo", "running", t0))
	if err := f.srv.Archive("argo", "running"); err == nil {
		t.Error("Archive accepted a running workflow")
	}
}

func TestGetWithoutArchiveFallback(t *testing.T) {
	f := newFixture(t, Options{NoArchiveFallback: true})
	done := f.put(finished(dagWorkflow("argo", "gone", t0), WorkflowSucceeded, t0.Add(time.Hour)))
	if err := f.srv.Archive("argo", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Delete("argo", "gone"); err != nil {
		t.Fatal(err)
	}
	status, _, body := f.get("/api/v1/workflows/argo/gone", nil)
	if status != http.StatusNotFound || string(body) != `{"code":5,"message":"workflows.argoproj.io \"gone\" not found"}` {
		t.Fatalf("GET = %d %s", status, body)
	}
	f.getMap("/api/v1/archived-workflows/"+done.Metadata.UID, nil, http.StatusOK)
}

func TestArchivedListEndpoint(t *testing.T) {
	f := newFixture(t, Options{})
	for i, ns := range []string{"argo", "argo", "argo", "other"} {
		name := []string{"nightly-a", "nightly-b", "adhoc-c", "nightly-d"}[i]
		f.put(finished(dagWorkflow(ns, name, t0.Add(time.Duration(i)*time.Minute)), WorkflowSucceeded, t0.Add(time.Hour)))
		if err := f.srv.Archive(ns, name); err != nil {
			t.Fatal(err)
		}
	}
	m := f.getMap("/api/v1/archived-workflows", url.Values{"namespace": {"argo"}, "listOptions.limit": {"2"}}, http.StatusOK)
	items := m["items"].([]any)
	if len(items) != 2 || path(m, "metadata", "continue") != "2" {
		t.Fatalf("page 1: %d items, metadata %v", len(items), m["metadata"])
	}
	for _, it := range items {
		if path(it.(map[string]any), "status", "nodes") != nil {
			t.Error("archived list carries nodes")
		}
	}
	m = f.getMap("/api/v1/archived-workflows/", url.Values{"namespace": {"argo"}, "listOptions.limit": {"2"}, "listOptions.continue": {"2"}}, http.StatusOK)
	if len(m["items"].([]any)) != 1 || path(m, "metadata", "continue") != nil {
		t.Errorf("page 2: %v", m)
	}
	m = f.getMap("/api/v1/archived-workflows", url.Values{"namePrefix": {"nightly-"}}, http.StatusOK)
	if got := len(m["items"].([]any)); got != 3 {
		t.Errorf("namePrefix: %d items, want 3 across namespaces", got)
	}
}

func TestCompressedNodes(t *testing.T) {
	f := newFixture(t, Options{})
	orig := dagWorkflow("argo", "big", t0)
	f.put(orig)
	if err := f.srv.SetNodeStorage("argo", "big", StorageCompressed); err != nil {
		t.Fatal(err)
	}
	items, _ := f.list("argo", nil)
	st := items[0]["status"].(map[string]any)
	if _, ok := st["nodes"]; ok {
		t.Fatal("list serves status.nodes for a compressed workflow")
	}
	nodes, err := DecodeCompressedNodes(st["compressedNodes"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(nodes, orig.Status.Nodes) {
		t.Errorf("decoded compressedNodes differ from the stored nodes")
	}
	wf := f.getMap("/api/v1/workflows/argo/big", nil, http.StatusOK)
	if path(wf, "status", "compressedNodes") != nil || len(path(wf, "status", "nodes").(map[string]any)) != 6 {
		t.Error("GET did not rebuild the nodes")
	}
	// A GET that excludes nodes skips hydration: compressedNodes as stored.
	wf = f.getMap("/api/v1/workflows/argo/big", url.Values{"fields": {"-status.nodes"}}, http.StatusOK)
	if path(wf, "status", "compressedNodes") == nil {
		t.Error("GET without nodes lost compressedNodes")
	}
	// Put accepts compressed input too.
	in := dagWorkflow("argo", "given", t0)
	in.Status.CompressedNodes, in.Status.Nodes = st["compressedNodes"].(string), nil
	f.put(in)
	if got, _ := f.srv.Workflow("argo", "given"); len(got.Status.Nodes) != 6 {
		t.Error("Put lost compressed nodes")
	}
}

func TestOffloadedNodes(t *testing.T) {
	f := newFixture(t, Options{})
	f.put(dagWorkflow("argo", "huge", t0))
	if err := f.srv.SetNodeStorage("argo", "huge", StorageOffloaded); err != nil {
		t.Fatal(err)
	}
	items, _ := f.list("argo", nil)
	st := items[0]["status"].(map[string]any)
	if v, _ := st["offloadNodeStatusVersion"].(string); len(v) < 5 || v[:4] != "fnv:" || st["nodes"] == nil {
		t.Errorf("list: version %v, nodes attached %v", st["offloadNodeStatusVersion"], st["nodes"] != nil)
	}
	items, _ = f.list("argo", url.Values{"fields": {"metadata,items.metadata.name,items.status.offloadNodeStatusVersion"}})
	if path(items[0], "status", "nodes") != nil {
		t.Error("list attached offloaded nodes that fields excluded")
	}
	wf := f.getMap("/api/v1/workflows/argo/huge", nil, http.StatusOK)
	if path(wf, "status", "offloadNodeStatusVersion") != nil || path(wf, "status", "nodes") == nil {
		t.Error("GET did not hydrate offloaded nodes")
	}
}

func TestRetryResetsFailedNodesWithSameIDs(t *testing.T) {
	f := newFixture(t, Options{})
	name := "flaky"
	id := func(n string) string { return NodeID(name, n) }
	wf := finished(dagWorkflow("argo", name, t0), WorkflowFailed, t0.Add(time.Hour))
	exit := NodeStatus{ID: id(name + ".onExit"), Name: name + ".onExit", DisplayName: name + ".onExit", Type: NodeTypePod,
		Phase: NodeSucceeded, StartedAt: ts(t0.Add(time.Hour)), FinishedAt: ts(t0.Add(time.Hour)), NodeFlag: &NodeFlag{Hooked: true}}
	wf.Status.Nodes[exit.ID] = exit
	f.put(wf)
	if err := f.srv.Archive("argo", name); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour)
	if err := f.srv.Retry("argo", name); err != nil {
		t.Fatal(err)
	}
	got, _ := f.srv.Workflow("argo", name)
	now := ts(f.clock.Now())
	if got.Status.Phase != WorkflowRunning || got.Status.StartedAt != now || !got.Status.FinishedAt.IsZero() {
		t.Errorf("workflow status %+v", got.Status)
	}
	if _, ok := got.Metadata.Labels[LabelCompleted]; ok || got.Metadata.Labels[LabelArchivingStatus] != "" || got.Metadata.Labels[LabelPhase] != "Running" {
		t.Errorf("labels %v", got.Metadata.Labels)
	}
	n := got.Status.Nodes
	failedPod := n[id(name+".step2")]
	if failedPod.Phase != NodePending || failedPod.StartedAt != now || !failedPod.FinishedAt.IsZero() || failedPod.Message != "" {
		t.Errorf("failed pod after retry %+v", failedPod)
	}
	if root := n[name]; root.Phase != NodeRunning || root.StartedAt != now {
		t.Errorf("root after retry %+v", root)
	}
	// The Retry node had succeeded: its failed first attempt is history, not run again.
	if a0 := n[id(name+".step1(0)")]; a0.Phase != NodeFailed {
		t.Errorf("superseded attempt %+v", a0)
	}
	if _, ok := n[exit.ID]; ok {
		t.Error("exit handler node kept")
	}
	// Back in the live listing (no longer Archived), with nodes.
	items, _ := f.list("argo", url.Values{"listOptions.labelSelector": {LabelCompleted + "!=true"}})
	if len(items) != 1 || path(items[0], "status", "nodes") == nil {
		t.Errorf("retried workflow not listed as active with nodes: %d items", len(items))
	}
	// Unfiltered, it is listed twice: live again, and from the archive (dedupe by uid).
	items, _ = f.list("argo", nil)
	if len(items) != 2 || path(items[0], "metadata", "uid") != path(items[1], "metadata", "uid") {
		t.Errorf("unfiltered listing of a retried archived workflow: %d items", len(items))
	}
	// The same node can now finish twice.
	if err := f.srv.SetNode("argo", name, failedPod.ID, NodeSucceeded, now.Time, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var ends []string
	for _, tr := range f.srv.Transitions() {
		if tr.NodeID == failedPod.ID && NodePhase(tr.Phase).Fulfilled() {
			ends = append(ends, tr.Phase)
		}
	}
	if !slices.Equal(ends, []string{"Failed", "Succeeded"}) {
		t.Errorf("terminal transitions of the retried node %v", ends)
	}
	for phase, wantErr := range map[string]bool{WorkflowRunning: true, WorkflowSucceeded: true} {
		w := dagWorkflow("argo", "p-"+phase, t0)
		if phase == WorkflowSucceeded {
			w = finished(w, phase, t0.Add(time.Minute))
		}
		f.put(w)
		if err := f.srv.Retry("argo", w.Metadata.Name); (err != nil) != wantErr {
			t.Errorf("Retry of a %s workflow: %v", phase, err)
		}
	}
}

func TestRetryOfExhaustedRetryNodeRerunsLastAttempt(t *testing.T) {
	name := "wf"
	id := func(n string) string { return NodeID(name, n) }
	s := ts(t0)
	nodes := Nodes{
		name:               {ID: name, Name: name, Type: NodeTypeSteps, Phase: NodeFailed, Children: []string{id("wf[0]")}, StartedAt: s, FinishedAt: s},
		id("wf[0]"):        {ID: id("wf[0]"), Name: "wf[0]", Type: NodeTypeStepGroup, Phase: NodeFailed, BoundaryID: name, Children: []string{id("wf[0].x")}, StartedAt: s, FinishedAt: s},
		id("wf[0].x"):      {ID: id("wf[0].x"), Name: "wf[0].x", Type: NodeTypeRetry, Phase: NodeFailed, BoundaryID: name, Children: []string{id("wf[0].x(0)"), id("wf[0].x(1)")}, StartedAt: s, FinishedAt: s},
		id("wf[0].x(0)"):   {ID: id("wf[0].x(0)"), Name: "wf[0].x(0)", Type: NodeTypePod, Phase: NodeFailed, BoundaryID: name, StartedAt: s, FinishedAt: s},
		id("wf[0].x(1)"):   {ID: id("wf[0].x(1)"), Name: "wf[0].x(1)", Type: NodeTypePod, Phase: NodeError, BoundaryID: name, StartedAt: s, FinishedAt: s},
		id("wf[0].skip"):   {ID: id("wf[0].skip"), Name: "wf[0].skip", Type: NodeTypeSkipped, Phase: NodeSkipped, BoundaryID: name, StartedAt: s, FinishedAt: s},
		id("wf[0].passed"): {ID: id("wf[0].passed"), Name: "wf[0].passed", Type: NodeTypePod, Phase: NodeSucceeded, BoundaryID: name, StartedAt: s, FinishedAt: s},
	}
	later := ts(t0.Add(time.Hour))
	out := retryNodes(name, nodes, later)
	want := map[string]NodePhase{
		name: NodeRunning, id("wf[0]"): NodeRunning, id("wf[0].x"): NodeRunning, id("wf[0].x(0)"): NodeFailed,
		id("wf[0].x(1)"): NodePending, id("wf[0].skip"): NodeSkipped, id("wf[0].passed"): NodeSucceeded,
	}
	for nid, phase := range want {
		if out[nid].Phase != phase {
			t.Errorf("%s: %s, want %s", out[nid].Name, out[nid].Phase, phase)
		}
	}
	if nodes[id("wf[0].x(1)")].Phase != NodeError {
		t.Error("retryNodes modified its input")
	}
}

func TestBearerToken(t *testing.T) {
	f := newFixture(t, Options{Token: "s3cret"})
	f.put(dagWorkflow("argo", "a", t0))
	for _, tc := range []struct {
		token  string
		status int
	}{{"", 401}, {"wrong", 401}, {"s3cret", 200}} {
		status, _, body := f.getWith(t.Context(), "/api/v1/workflows/argo", nil, tc.token)
		if status != tc.status {
			t.Errorf("token %q: %d %s", tc.token, status, body)
		}
		if status == 401 && string(body) != `{"code":16,"message":"token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"}` {
			t.Errorf("401 body %s", body)
		}
	}
}

func TestStatsCountCallsAndBytes(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 3)
	var listBytes int64
	for _, q := range []url.Values{nil, {"listOptions.limit": {"1"}}} {
		_, _, b := f.get("/api/v1/workflows/argo", q)
		listBytes += int64(len(b))
	}
	_, _, b := f.get("/api/v1/workflows/argo/wf-00", nil)
	_, _, nf := f.get("/api/v1/workflows/argo/nope", nil)
	st := f.srv.Stats()
	if got := st[EndpointList]; got.Calls != 2 || got.Bytes != listBytes || got.Errors != 0 {
		t.Errorf("list stats %+v, want 2 calls, %d bytes", got, listBytes)
	}
	if got := st[EndpointGet]; got.Calls != 2 || got.Bytes != int64(len(b)+len(nf)) || got.Errors != 1 {
		t.Errorf("get stats %+v", got)
	}
	if tot := st.Total(); tot.Calls != 4 {
		t.Errorf("total %+v", tot)
	}
	f.srv.ResetStats()
	if len(f.srv.Stats()) != 0 {
		t.Error("ResetStats kept counters")
	}
}

func TestWorkflowAccessorsReturnCopies(t *testing.T) {
	f := newFixture(t, Options{})
	f.put(dagWorkflow("argo", "a", t0))
	got, _ := f.srv.Workflow("argo", "a")
	got.Metadata.Labels["team"] = "mutated"
	for id := range got.Status.Nodes {
		delete(got.Status.Nodes, id)
	}
	again, _ := f.srv.Workflow("argo", "a")
	if again.Metadata.Labels["team"] != "data" || len(again.Status.Nodes) != 6 {
		t.Error("mutating a returned workflow changed the store")
	}
	b, _ := json.Marshal(again)
	var back Workflow
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, again) {
		t.Errorf("Workflow does not round-trip through JSON: %v", err)
	}
}
