package argosim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var rfc3339Z = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

func TestTimeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   Time
		want string
	}{
		{"zero is null, not omitted", Time{}, "null"},
		{"UTC with Z", NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), `"2026-01-02T03:04:05Z"`},
		{"other zone converted to Z", NewTime(time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600))), `"2026-01-02T03:04:05Z"`},
		{"sub-second truncated", NewTime(time.Date(2026, 1, 2, 3, 4, 5, 999e6, time.UTC)), `"2026-01-02T03:04:05Z"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.in)
			if err != nil || string(b) != tc.want {
				t.Fatalf("Marshal = %s, %v; want %s", b, err, tc.want)
			}
			var back Time
			if err := json.Unmarshal(b, &back); err != nil || !back.Equal(tc.in.Time) {
				t.Fatalf("round trip = %v, %v; want %v", back, err, tc.in)
			}
		})
	}
	var bad Time
	if err := json.Unmarshal([]byte(`"yesterday"`), &bad); err == nil {
		t.Error("an unparseable time was accepted")
	}
}

// The ids and names below are taken from upstream test data
// (workflow/controller/testdata/*.yaml, cmd/argo/commands/common/get_test.go).
func TestNodeIDMatchesUpstream(t *testing.T) {
	tests := []struct{ wf, node, want string }{
		{"failed-retries-tjjsc", "failed-retries-tjjsc", "failed-retries-tjjsc"},
		{"failed-retries-tjjsc", "failed-retries-tjjsc[0].fail", "failed-retries-tjjsc-20069324"},
		{"failed-retries-tjjsc", "failed-retries-tjjsc[0].fail(1)", "failed-retries-tjjsc-759866442"},
		{"failed-retries-tjjsc", "failed-retries-tjjsc[0]", "failed-retries-tjjsc-2095973878"},
		{"dag-with-retries-4wkh8", "dag-with-retries-4wkh8.step1(1)", "dag-with-retries-4wkh8-1501049017"},
		{"retry-with-dags", "retry-with-dags.sub-dag1.fail", "retry-with-dags-1890550676"},
		{"many-items-z26lj", "many-items-z26lj[0].sleep(9:nine)", "many-items-z26lj-2619926859"},
	}
	for _, tc := range tests {
		if got := NodeID(tc.wf, tc.node); got != tc.want {
			t.Errorf("NodeID(%q, %q) = %q, want %q", tc.wf, tc.node, got, tc.want)
		}
	}
	// A v2 pod name ends with the same hash as the node id, after the template name.
	if got := PodName("dag-with-retries-4wkh8", "dag-with-retries-4wkh8.step1(1)", "randomly-fail"); got != "dag-with-retries-4wkh8-randomly-fail-1501049017" {
		t.Errorf("PodName = %q", got)
	}
}

func TestDisplayNameMatchesUpstream(t *testing.T) {
	tests := []struct{ name, boundary, want string }{
		{"wf", "", "wf"},
		{"wf[0]", "wf", "[0]"},
		{"wf[0].fail", "wf", "fail"},
		{"wf[0].fail(1)", "wf", "fail(1)"},
		{"wf.step1", "wf", "step1"},
		{"wf.sub.x", "wf.sub", "x"},
		{"wf[1].sub[0].y", "wf[1].sub", "y"},
		{"wf.onExit", "", "wf.onExit"},
	}
	for _, tc := range tests {
		if got := displayName(tc.name, tc.boundary); got != tc.want {
			t.Errorf("displayName(%q, %q) = %q, want %q", tc.name, tc.boundary, got, tc.want)
		}
	}
}

// TestListWireFormat decodes a list answer generically and checks field names, types and
// omissions against upstream's JSON: encoding/json over Argo's structs.
func TestListWireFormat(t *testing.T) {
	f := newFixture(t, Options{})
	f.put(dagWorkflow("argo", "dag-abc12", t0))
	status, hdr, body := f.get("/api/v1/workflows/argo", nil)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" || hdr.Get(SimulatorHeader) != "argo" {
		t.Fatalf("status %d, headers %v", status, hdr)
	}
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	if got := keys(top); len(got) != 2 || top["metadata"] == nil || top["items"] == nil {
		t.Fatalf("top-level keys %v, want metadata and items only (no kind/apiVersion)", got)
	}
	if rv, _ := path(top, "metadata", "resourceVersion").(string); rv != "1" {
		t.Errorf("metadata.resourceVersion = %#v, want the string \"1\"", path(top, "metadata", "resourceVersion"))
	}
	if _, ok := top["metadata"].(map[string]any)["continue"]; ok {
		t.Error("metadata.continue present on the only page")
	}
	item := top["items"].([]any)[0].(map[string]any)
	for _, k := range []string{"metadata", "spec", "status"} {
		if _, ok := item[k].(map[string]any); !ok {
			t.Errorf("item.%s is %T, want an object", k, item[k])
		}
	}
	md := item["metadata"].(map[string]any)
	for k, want := range map[string]string{"name": "dag-abc12", "namespace": "argo", "generateName": "dag-", "resourceVersion": "1"} {
		if md[k] != want {
			t.Errorf("metadata.%s = %#v, want %q", k, md[k], want)
		}
	}
	if uid, _ := md["uid"].(string); len(uid) != 36 {
		t.Errorf("metadata.uid = %#v, want a UUID", md["uid"])
	}
	if g, _ := md["generation"].(float64); g != 1 {
		t.Errorf("metadata.generation = %#v, want the number 1", md["generation"])
	}
	if ct, _ := md["creationTimestamp"].(string); !rfc3339Z.MatchString(ct) {
		t.Errorf("creationTimestamp = %#v", md["creationTimestamp"])
	}
	labels := md["labels"].(map[string]any)
	if labels[LabelCompleted] != "false" || labels[LabelPhase] != "Running" || labels[LabelWorkflowTemplate] != "dag-tmpl" {
		t.Errorf("labels = %v, want completed=false, phase=Running and the template label", labels)
	}
	if args, ok := path(item, "spec", "arguments").(map[string]any); !ok || len(args) != 0 {
		t.Errorf("spec.arguments = %#v, want {} (a struct upstream: never omitted)", path(item, "spec", "arguments"))
	}
	st := item["status"].(map[string]any)
	if v, ok := st["finishedAt"]; !ok || v != nil {
		t.Errorf("status.finishedAt = %#v (present %v), want null for a running workflow", v, ok)
	}
	if s, _ := st["startedAt"].(string); !rfc3339Z.MatchString(s) {
		t.Errorf("status.startedAt = %#v", st["startedAt"])
	}
	for _, absent := range []string{"compressedNodes", "offloadNodeStatusVersion", "message"} {
		if _, ok := st[absent]; ok {
			t.Errorf("status.%s present, want omitted", absent)
		}
	}
	nodes := st["nodes"].(map[string]any)
	if len(nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(nodes))
	}
	root := nodes["dag-abc12"].(map[string]any)
	if _, ok := root["boundaryID"]; ok {
		t.Error("root node has a boundaryID, want it omitted")
	}
	if v, ok := root["finishedAt"]; !ok || v != nil {
		t.Errorf("running root node finishedAt = %#v, want null", v)
	}
	retry := nodes[NodeID("dag-abc12", "dag-abc12.step1")].(map[string]any)
	children, _ := retry["children"].([]any)
	if len(children) != 2 || children[0] != NodeID("dag-abc12", "dag-abc12.step1(0)") {
		t.Errorf("retry children = %#v", retry["children"])
	}
	pod := nodes[NodeID("dag-abc12", "dag-abc12.step1(0)")].(map[string]any)
	if rd, _ := pod["resourcesDuration"].(map[string]any); rd["cpu"] != float64(3) {
		t.Errorf("resourcesDuration = %#v, want {cpu: 3 ...} as numbers", pod["resourcesDuration"])
	}
	if nf, _ := pod["nodeFlag"].(map[string]any); nf["retried"] != true {
		t.Errorf("nodeFlag = %#v", pod["nodeFlag"])
	}
	omitted := nodes[NodeID("dag-abc12", "dag-abc12.notify")].(map[string]any)
	if nf, ok := omitted["nodeFlag"].(map[string]any); !ok || len(nf) != 0 {
		t.Errorf("empty nodeFlag = %#v, want {}", omitted["nodeFlag"])
	}
	for _, k := range []string{"id", "name", "displayName", "type", "templateName", "phase", "boundaryID", "startedAt", "finishedAt"} {
		if _, ok := pod[k].(string); !ok {
			t.Errorf("node.%s = %#v, want a string", k, pod[k])
		}
	}
}

func TestEmptyListHasNullItems(t *testing.T) {
	f := newFixture(t, Options{})
	_, _, body := f.get("/api/v1/workflows/nothing-here", nil)
	if got := string(body); got != `{"metadata":{"resourceVersion":"0"},"items":null}` {
		t.Fatalf("empty list = %s", got)
	}
}

func TestRoutesAndVersion(t *testing.T) {
	f := newFixture(t, Options{})
	f.put(dagWorkflow("argo", "wf-1", t0))
	f.put(dagWorkflow("other", "wf-2", t0))
	for _, p := range []string{"/api/v1/workflows", "/api/v1/workflows/"} {
		if m := f.getMap(p, nil, http.StatusOK); len(m["items"].([]any)) != 2 {
			t.Errorf("%s listed %d workflows, want 2 (all namespaces)", p, len(m["items"].([]any)))
		}
	}
	v := f.getMap("/api/v1/version", nil, http.StatusOK)
	if !strings.Contains(v["version"].(string), "simulator") {
		t.Errorf("version %v does not say it is a simulation", v["version"])
	}
	status, _, body := f.get("/", nil)
	if status != http.StatusOK || !strings.Contains(string(body), "SIMULATED") {
		t.Errorf("/ = %d %s", status, body)
	}
	if status, _, body := f.get("/api/v1/nope", nil); status != http.StatusNotFound || string(body) != "Not Found\n" {
		t.Errorf("unknown route = %d %q", status, body)
	}
	req, _ := http.NewRequest(http.MethodDelete, f.http.URL+"/api/v1/workflows/argo/wf-1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE = %d, want 405", resp.StatusCode)
	}
	if _, ok := f.srv.Workflow("argo", "wf-1"); !ok {
		t.Error("DELETE removed the workflow")
	}
}

func TestGetWireFormatAndNotFound(t *testing.T) {
	f := newFixture(t, Options{})
	f.put(dagWorkflow("argo", "dag-x", t0))
	wf := f.getMap("/api/v1/workflows/argo/dag-x", nil, http.StatusOK)
	if got := len(path(wf, "status", "nodes").(map[string]any)); got != 6 {
		t.Errorf("GET returned %d nodes, want 6", got)
	}
	status, hdr, body := f.get("/api/v1/workflows/argo/missing", nil)
	if status != http.StatusNotFound || hdr.Get("Content-Type") != "application/json" ||
		string(body) != `{"code":5,"message":"workflows.argoproj.io \"missing\" not found"}` {
		t.Fatalf("missing workflow = %d %s", status, body)
	}
	// Asking by uid for a name whose live workflow has another uid is not that workflow.
	if status, _, _ := f.get("/api/v1/workflows/argo/dag-x", url.Values{"uid": {"00000000-0000-4000-8000-000000000000"}}); status != http.StatusNotFound {
		t.Errorf("GET with a foreign uid = %d, want 404", status)
	}
}

func TestPutKeepsControllerFieldsConsistent(t *testing.T) {
	f := newFixture(t, Options{})
	a := f.put(dagWorkflow("argo", "a", t0))
	f.clock.Advance(time.Minute)
	b := f.put(finished(dagWorkflow("argo", "a", t0), WorkflowSucceeded, t0.Add(time.Minute)))
	if a.Metadata.UID != b.Metadata.UID || a.Metadata.CreationTimestamp != b.Metadata.CreationTimestamp {
		t.Error("replacing a workflow changed its uid or creationTimestamp")
	}
	if b.Metadata.ResourceVersion != "2" || b.Metadata.Generation != 2 {
		t.Errorf("resourceVersion %s generation %d, want 2 and 2", b.Metadata.ResourceVersion, b.Metadata.Generation)
	}
	if b.Metadata.Labels[LabelCompleted] != "true" || b.Metadata.Labels[LabelPhase] != WorkflowSucceeded {
		t.Errorf("labels %v do not follow the phase", b.Metadata.Labels)
	}
	gen := f.put(Workflow{Metadata: ObjectMeta{Namespace: "argo", GenerateName: "nightly-"}})
	if !regexp.MustCompile(`^nightly-[bcdfghjklmnpqrstvwxz2456789]{5}$`).MatchString(gen.Metadata.Name) {
		t.Errorf("generated name %q", gen.Metadata.Name)
	}
	if _, ok := gen.Metadata.Labels[LabelCompleted]; ok {
		t.Error("a workflow the controller has not seen has a completed label")
	}
	for name, wf := range map[string]Workflow{
		"no namespace":   {Metadata: ObjectMeta{Name: "x"}},
		"no name":        {Metadata: ObjectMeta{Namespace: "argo"}},
		"uid mismatch":   {Metadata: ObjectMeta{Namespace: "argo", Name: "a", UID: "other"}},
		"bad compressed": {Metadata: ObjectMeta{Namespace: "argo", Name: "c"}, Status: WorkflowStatus{CompressedNodes: "!!"}},
	} {
		if _, err := f.srv.Put(wf); err == nil {
			t.Errorf("%s: Put accepted it", name)
		}
	}
	if live, _ := f.srv.Count(); live != 2 {
		t.Errorf("%d live workflows after rejected puts, want 2", live)
	}
}

func TestResourceVersionIsClusterWideAndMonotonic(t *testing.T) {
	f := newFixture(t, Options{})
	var rvs []string
	for _, name := range []string{"a", "b", "c"} {
		rvs = append(rvs, f.put(dagWorkflow("argo", name, t0)).Metadata.ResourceVersion)
	}
	if err := f.srv.SetNode("argo", "a", NodeID("a", "a.step2"), NodeSucceeded, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	a, _ := f.srv.Workflow("argo", "a")
	rvs = append(rvs, a.Metadata.ResourceVersion)
	if !slices.Equal(rvs, []string{"1", "2", "3", "4"}) {
		t.Fatalf("resourceVersions %v, want 1..4 across workflows", rvs)
	}
	if err := f.srv.Delete("argo", "b"); err != nil {
		t.Fatal(err)
	}
	_, meta := f.list("argo", nil)
	if meta["resourceVersion"] != "5" {
		t.Errorf("list resourceVersion %v after a deletion, want 5", meta["resourceVersion"])
	}
	if err := f.srv.SetNode("argo", "a", "no-such-node", NodeFailed, t0, t0); err == nil {
		t.Error("SetNode accepted an unknown node")
	}
}
