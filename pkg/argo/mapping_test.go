package argo

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/event"
)

func decodeWorkflow(t testing.TB, v any) *Workflow {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var wf Workflow
	if err := json.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	return &wf
}

func nodesOf(t testing.TB, wf *Workflow) map[string]Node {
	t.Helper()
	nodes, err := wf.Status.DecodeNodes()
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func tasksByID(ts []event.TaskEvent) map[string]event.TaskEvent {
	out := map[string]event.TaskEvent{}
	for _, e := range ts {
		out[e.NodeID] = e
	}
	return out
}

// want is what one node must map to.
type want struct {
	parent   string
	attempt  int
	template string
	pod      string
}

func checkTasks(t *testing.T, got []event.TaskEvent, wants map[string]want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Errorf("got %d tasks, want %d (every node, the root included)", len(got), len(wants))
	}
	byID := tasksByID(got)
	for id, w := range wants {
		e, ok := byID[id]
		if !ok {
			t.Errorf("%s: missing", id)
			continue
		}
		if e.ParentID != w.parent || e.Attempt != w.attempt || e.Template != w.template || e.Pod != w.pod {
			t.Errorf("%s (%s %s):\n got parent=%q attempt=%d template=%q pod=%q\nwant parent=%q attempt=%d template=%q pod=%q",
				id, e.Type, e.Name, e.ParentID, e.Attempt, e.Template, e.Pod, w.parent, w.attempt, w.template, w.pod)
		}
	}
}

func TestTasksStepsWithRetries(t *testing.T) {
	wf := decodeWorkflow(t, fixture(t, "steps-retries.json"))
	got := Mapper{Instance: "prod"}.Tasks(wf, nodesOf(t, wf))
	const p = "failed-retries-tjjsc"
	checkTasks(t, got, map[string]want{
		p:                 {"", 0, "failed-retries", ""},
		p + "-2095973878": {p, 0, "", ""},                                          // [0]: its boundary, the Steps node
		p + "-844576205":  {p + "-2095973878", 0, "flaky", ""},                     // a step: in its StepGroup
		p + "-2458065308": {p + "-844576205", 0, "flaky", p + "-flaky-2458065308"}, // flaky(0): in its Retry
		p + "-1853923929": {p + "-844576205", 1, "flaky", p + "-flaky-1853923929"},
		p + "-3089148742": {p + "-2095973878", 0, "delayed", p + "-delayed-3089148742"},
		p + "-954948691":  {p, 0, "", ""},                                      // [1]: a child of flaky(1) and delayed, but not nested in them
		p + "-3712318836": {p + "-954948691", 0, "say", p + "-say-3712318836"}, // templateRef names the pod
		p + "-3762651693": {p + "-954948691", 0, "whalesay", p + "-whalesay-3762651693"},
	})
	e := tasksByID(got)[p+"-3762651693"]
	start, end := time.Date(2026, 1, 2, 3, 5, 30, 0, time.UTC), time.Date(2026, 1, 2, 3, 6, 5, 0, time.UTC)
	wantEvent := event.TaskEvent{
		NodeID: p + "-3762651693", Name: p + "[1].hello2b", DisplayName: "hello2b", Type: "Pod", Template: "whalesay",
		ParentID: p + "-954948691", State: "Failed", Status: event.StatusFailed, StartedAt: &start, FinishedAt: &end,
		Message: "OOMKilled (exit code 137)", Pod: p + "-whalesay-3762651693", HostNode: "gke-pool-1-e5f6",
		ResourcesDuration: map[string]int64{"cpu": 1, "memory": 5},
	}
	if !reflect.DeepEqual(e, wantEvent) {
		t.Errorf("hello2b:\n got %+v\nwant %+v", e, wantEvent)
	}
}

func TestTasksNestedDAG(t *testing.T) {
	wf := decodeWorkflow(t, fixture(t, "dag-nested.json"))
	nodes := nodesOf(t, wf)
	got := Mapper{Instance: "prod"}.Tasks(wf, nodes)
	const p = "dag-nested-8x2kq"
	wants := map[string]want{
		p:                 {"", 0, "main", ""},
		p + "-2253717399": {p, 0, "extract", p + "-extract-2253717399"}, // A: its DAG children B and C are dependents, not members
		p + "-2270495018": {p, 0, "load", ""},                           // B: Retry
		p + "-37742289":   {p + "-2270495018", 0, "load", p + "-load-37742289"},
		p + "-641883668":  {p + "-2270495018", 1, "load", p + "-load-641883668"}, // its child D is a dependent
		p + "-2287272637": {p, 0, "inner", ""},                                   // C: nested DAG
		p + "-3980235203": {p + "-2287272637", 0, "extract", p + "-extract-3980235203"},
		p + "-3963457584": {p + "-2287272637", 0, "transform", p + "-transform-3963457584"},
		p + "-2169829304": {p, 0, "fan", ""}, // D: TaskGroup of withItems
		p + "-1744649020": {p + "-2169829304", 0, "fan", p + "-fan-1744649020"},
		p + "-2934861254": {p + "-2169829304", 0, "fan", ""}, // D(1:b): a Retry inside the TaskGroup
		p + "-3613637317": {p + "-2934861254", 0, "fan", p + "-fan-3613637317"},
		p + "-2186606923": {p, 0, "cleanup", ""},                      // E: Skipped
		p + "-3357907861": {p, 0, "notify", p + "-notify-3357907861"}, // onExit: no boundary, under the root
	}
	checkTasks(t, got, wants)

	byID := tasksByID(got)
	if e := byID[p+"-3357907861"]; e.StartedAt != nil || e.FinishedAt != nil || e.Status != event.StatusPending {
		t.Errorf("onExit not started: %+v", e)
	}
	if e := byID[p+"-2186606923"]; e.State != "Omitted" || e.Status != event.StatusOmitted {
		t.Errorf("omitted node: %+v", e)
	}
	if e := byID[p+"-3963457584"]; e.FinishedAt != nil || e.Status != event.StatusRunning || e.HostNode != "node-c" {
		t.Errorf("running node: %+v", e)
	}
	// Stable order: by start, not-started last, ties by id.
	if got[0].NodeID != p || got[len(got)-1].NodeID != p+"-3357907861" {
		t.Errorf("order: first %s, last %s", got[0].NodeID, got[len(got)-1].NodeID)
	}
	again := Mapper{Instance: "prod"}.Tasks(wf, nodes)
	if !reflect.DeepEqual(got, again) {
		t.Error("mapping is not deterministic")
	}
}

func TestPodNames(t *testing.T) {
	long := strings.Repeat("w", 200)
	tests := []struct {
		name   string
		wf     string
		node   Node
		format string
		want   string
	}{
		// upstream workflow/util/pod_name_v2_test.go: "wfname-templatename-" + fnv32a("nodename")
		{"v2", "wfname", Node{ID: "1", Name: "nodename", Type: "Pod", TemplateName: "templatename"}, "v2", "wfname-templatename-1454367246"},
		{"v2 without template", "wfname", Node{ID: "1", Name: "nodename", Type: "Pod"}, "v2", "wfname-1454367246"},
		{"v2 root pod keeps the workflow name", "wfname", Node{ID: "wfname", Name: "wfname", Type: "Pod", TemplateName: "main"}, "v2", "wfname"},
		{"v1 is the node id", "wfname", Node{ID: "wfname-123", Name: "nodename", Type: "Pod", TemplateName: "t"}, "v1", "wfname-123"},
		{"unknown format is v2", "wfname", Node{ID: "1", Name: "nodename", Type: "Pod", TemplateName: "templatename"}, "v9", "wfname-templatename-1454367246"},
		{"not a pod", "wfname", Node{ID: "1", Name: "nodename", Type: "DAG", TemplateName: "t"}, "v2", ""},
		{"long prefix is cut to 242", long, Node{ID: "1", Name: "nodename", Type: "Pod", TemplateName: strings.Repeat("t", 100)}, "v2",
			(long + "-" + strings.Repeat("t", 100))[:242] + "-1454367246"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := podName(tc.wf, &tc.node, tc.format); got != tc.want {
				t.Errorf("podName = %q, want %q", got, tc.want)
			}
		})
	}

	// The workflow's annotation beats the default; the default beats Argo's own default (v2).
	wf := decodeWorkflow(t, fixture(t, "dag-nested.json"))
	id := "dag-nested-8x2kq-2253717399"
	if e := tasksByID(Mapper{DefaultPodNameFormat: "v1"}.Tasks(wf, nodesOf(t, wf)))[id]; e.Pod != id {
		t.Errorf("default v1: pod = %q", e.Pod)
	}
	wf.Metadata.Annotations = map[string]string{AnnotationPodNameFormat: "v1"}
	if e := tasksByID(Mapper{}.Tasks(wf, nodesOf(t, wf)))[id]; e.Pod != id {
		t.Errorf("annotation v1: pod = %q", e.Pod)
	}
}

func TestParentsEdgeCases(t *testing.T) {
	tests := []struct {
		name  string
		nodes []Node
		want  map[string]parent
	}{
		{
			// steps.go connects an empty StepGroup's successor to the StepGroup itself.
			name: "empty step group lists the next group as its child",
			nodes: []Node{
				{ID: "wf", Name: "wf", Type: "Steps", Children: []string{"sg0"}},
				{ID: "sg0", Name: "wf[0]", Type: "StepGroup", BoundaryID: "wf", Children: []string{"sg1"}},
				{ID: "sg1", Name: "wf[1]", Type: "StepGroup", BoundaryID: "wf", Children: []string{"s"}},
				{ID: "s", Name: "wf[1].s", Type: "Pod", BoundaryID: "wf"},
			},
			want: map[string]parent{"wf": {}, "sg0": {id: "wf"}, "sg1": {id: "wf"}, "s": {id: "sg1"}},
		},
		{
			// dag.go: tasks depending on an empty TaskGroup become its children.
			name: "dependent of an empty task group",
			nodes: []Node{
				{ID: "wf", Name: "wf", Type: "DAG", Children: []string{"tg"}},
				{ID: "tg", Name: "wf.fan", Type: "TaskGroup", BoundaryID: "wf", Children: []string{"next"}},
				{ID: "next", Name: "wf.next", Type: "Pod", BoundaryID: "wf"},
			},
			want: map[string]parent{"wf": {}, "tg": {id: "wf"}, "next": {id: "wf"}},
		},
		{
			name: "retry of a nested steps template",
			nodes: []Node{
				{ID: "wf", Name: "wf", Type: "DAG", Children: []string{"r"}},
				{ID: "r", Name: "wf.sub", Type: "Retry", BoundaryID: "wf", Children: []string{"a0", "a1"}},
				{ID: "a0", Name: "wf.sub(0)", Type: "Steps", BoundaryID: "wf", Children: []string{"a0g"}},
				{ID: "a0g", Name: "wf.sub(0)[0]", Type: "StepGroup", BoundaryID: "a0", Children: []string{"a0s"}},
				{ID: "a0s", Name: "wf.sub(0)[0].s", Type: "Pod", BoundaryID: "a0"},
				{ID: "a1", Name: "wf.sub(1)", Type: "Steps", BoundaryID: "wf"},
			},
			want: map[string]parent{"wf": {}, "r": {id: "wf"}, "a0": {id: "r"}, "a1": {id: "r", attempt: 1}, "a0g": {id: "a0"}, "a0s": {id: "a0g"}},
		},
		{
			name: "unknown boundary, self boundary and odd retry names fall back",
			nodes: []Node{
				{ID: "wf", Name: "wf", Type: "DAG"},
				{ID: "x", Name: "wf.x", Type: "Pod", BoundaryID: "gone"},
				{ID: "y", Name: "wf.y", Type: "DAG", BoundaryID: "y"},
				{ID: "r", Name: "wf.r", Type: "Retry", BoundaryID: "wf", Children: []string{"r0", "missing"}},
				{ID: "r0", Name: "wf.r(zero)", Type: "Pod", BoundaryID: "wf"},
			},
			want: map[string]parent{"wf": {}, "x": {id: "wf"}, "y": {id: "wf"}, "r": {id: "wf"}, "r0": {id: "r"}},
		},
		{
			name: "no root node in the map",
			nodes: []Node{
				{ID: "a", Name: "wf.a", Type: "Pod"},
			},
			want: map[string]parent{"a": {}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodes := map[string]Node{}
			for _, n := range tc.nodes {
				nodes[n.ID] = n
			}
			if got := Parents("wf", nodes); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parents:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPipeline(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		ref    string
		gen    string
		wfName string
		want   string
	}{
		{"cron first", map[string]string{LabelCronWorkflow: "nightly", LabelWorkflowTemplate: "tmpl", LabelClusterWorkflowTemplate: "ctmpl"}, "ref", "g-", "n", "nightly"},
		{"workflow template", map[string]string{LabelWorkflowTemplate: "tmpl", LabelClusterWorkflowTemplate: "ctmpl"}, "ref", "g-", "n", "tmpl"},
		{"cluster workflow template", map[string]string{LabelClusterWorkflowTemplate: "ctmpl"}, "ref", "g-", "n", "ctmpl"},
		{"workflowTemplateRef without labels", nil, "ref", "g-", "n", "ref"},
		{"generateName", nil, "", "failed-retries-", "failed-retries-tjjsc", "failed-retries"},
		{"resubmitted: random suffix", nil, "", "etl-x7k2p-", "etl-x7k2p-abcde", "etl"},
		{"resubmitted cron run: timestamp suffix", nil, "", "report-1767323045-", "report-1767323045-q2w3e", "report"},
		{"a word is not a suffix", nil, "", "etl-daily-", "etl-daily-8fj2k", "etl-daily"},
		{"a short version is not a suffix", nil, "", "train-v2-", "train-v2-9skd8", "train-v2"},
		{"single segment", nil, "", "abc12-", "abc12-xyz12", "abc12"},
		{"dashes only", nil, "", "-", "plain", "plain"},
		{"name", nil, "", "", "hand-made", "hand-made"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wf := &Workflow{Metadata: ObjectMeta{Name: tc.wfName, GenerateName: tc.gen, Labels: tc.labels}}
			if tc.ref != "" {
				wf.Spec.WorkflowTemplateRef = &WorkflowTemplateRef{Name: tc.ref}
			}
			if got := Pipeline(wf); got != tc.want {
				t.Errorf("Pipeline = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	ui, _ := url.Parse("https://argo.example.com/ui/")
	wf := decodeWorkflow(t, fixture(t, "dag-nested.json"))
	start := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	created := time.Date(2026, 1, 2, 3, 59, 58, 0, time.UTC)
	date := "2026-01-01"
	want := event.Run{
		Source: "argo", Instance: "prod", Namespace: "etl", UID: "c6b1f2d4-3e5a-4f60-8a71-92b3c4d5e6f7", Name: "dag-nested-8x2kq",
		Pipeline: "nightly-etl", Phase: "Running", Status: event.StatusRunning, StartedAt: &start,
		URL: "https://argo.example.com/ui/workflows/etl/dag-nested-8x2kq",
		Labels: map[string]string{
			"app":                 "warehouse",
			LabelCronWorkflow:     "nightly-etl",
			LabelWorkflowTemplate: "etl-template",
		},
		CreatedAt:   &created,
		Annotations: map[string]string{"workflows.argoproj.io/scheduled-time": "2026-01-02T04:00:00Z"},
		Parameters:  []event.Parameter{{Name: "date", Value: &date}},
	}
	if got := (Mapper{Instance: "prod", UIURL: ui}).Run(wf); !reflect.DeepEqual(got, want) {
		t.Errorf("Run:\n got %+v\nwant %+v", got, want)
	}
	if got := (Mapper{Instance: "prod"}).Run(wf); got.URL != "" {
		t.Errorf("URL without a UI base = %q", got.URL)
	}

	done := decodeWorkflow(t, fixture(t, "steps-retries.json"))
	r := Mapper{Instance: "prod"}.Run(done)
	if r.Status != event.StatusFailed || r.FinishedAt == nil || r.Message != "child 'failed-retries-tjjsc-3762651693' failed" || r.Pipeline != "failed-retries" {
		t.Errorf("finished run: %+v", r)
	}
	if _, ok := r.Labels["workflows.argoproj.io/phase"]; ok {
		t.Errorf("volatile labels kept: %v", r.Labels)
	}
}

// Annotations keep all but kubectl's copy of the manifest; parameter values are AnyStrings upstream
// (a number or boolean in a hand-written manifest reads as Argo reads it), any other JSON is kept
// as its text instead of failing the page, and a value may be absent.
func TestRunAnnotationsAndParameters(t *testing.T) {
	var wf Workflow
	raw := `{"metadata":{"uid":"u","name":"w","namespace":"n","annotations":{
		"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"argoproj.io/v1alpha1\"}",
		"team":"data"}},
		"spec":{"arguments":{"parameters":[{"name":"n","value":3},{"name":"big","value":1e3},{"name":"dry","value":true},{"name":"s","value":"x"},
			{"name":"o","value":{"a": [1, 2]}},{"name":"unset"}]}},
		"status":{"phase":"Running"}}`
	if err := json.Unmarshal([]byte(raw), &wf); err != nil {
		t.Fatal(err)
	}
	r := Mapper{Instance: "prod"}.Run(&wf)
	if !reflect.DeepEqual(r.Annotations, map[string]string{"team": "data"}) {
		t.Errorf("annotations %v", r.Annotations)
	}
	var got []string
	for _, p := range r.Parameters {
		v := "<none>"
		if p.Value != nil {
			v = *p.Value
		}
		got = append(got, p.Name+"="+v)
	}
	if want := []string{"n=3", "big=1000", "dry=true", "s=x", `o={"a":[1,2]}`, "unset=<none>"}; !slices.Equal(got, want) {
		t.Errorf("parameters %q, want %q", got, want)
	}
	if r.CreatedAt != nil {
		t.Errorf("created_at %v for a workflow without creationTimestamp", r.CreatedAt)
	}
}

func TestActiveAndFingerprint(t *testing.T) {
	mk := func(phase, completed, rv string) *Workflow {
		wf := &Workflow{Metadata: ObjectMeta{UID: "u", ResourceVersion: rv, Labels: map[string]string{}}, Status: WorkflowStatus{Phase: phase}}
		if completed != "" {
			wf.Metadata.Labels[LabelCompleted] = completed
		}
		return wf
	}
	for _, tc := range []struct {
		phase, completed string
		active           bool
	}{
		{"", "", true}, {"Pending", "false", true}, {"Running", "false", true},
		{"Succeeded", "true", false}, {"Failed", "true", false}, {"Error", "true", false},
		{"Failed", "", true}, // `argo retry` removed the label: it will run again
		{"Succeeded", "false", true},
	} {
		if got := Active(mk(tc.phase, tc.completed, "")); got != tc.active {
			t.Errorf("Active(phase %q, completed %q) = %v, want %v", tc.phase, tc.completed, got, tc.active)
		}
	}

	if got := Fingerprint(mk("Running", "false", "12345"), 3); got != "12345" {
		t.Errorf("Fingerprint with resourceVersion = %q", got)
	}
	base := mk("Succeeded", "true", "")
	base.Status.FinishedAt = Time{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	fp := Fingerprint(base, 5)
	if !strings.HasPrefix(fp, "h:") || fp != Fingerprint(base, 5) {
		t.Errorf("hash fingerprint %q is not stable", fp)
	}
	later := *base
	later.Status.FinishedAt = Time{base.Status.FinishedAt.Add(time.Second)}
	failed := *base
	failed.Status.Phase = "Failed"
	for name, other := range map[string]string{"finish": Fingerprint(&later, 5), "phase": Fingerprint(&failed, 5), "nodes": Fingerprint(base, 6)} {
		if other == fp {
			t.Errorf("fingerprint ignores the %s", name)
		}
	}
}

func compress(t testing.TB, nodes json.RawMessage) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(nodes); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestDecodeNodes(t *testing.T) {
	wf := decodeWorkflow(t, fixture(t, "steps-retries.json"))
	plain := nodesOf(t, wf)

	packed := WorkflowStatus{CompressedNodes: compress(t, wf.Status.Nodes)}
	got, err := packed.DecodeNodes()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, plain) {
		t.Error("compressedNodes decode differently from nodes")
	}

	var notJSON bytes.Buffer
	zw := gzip.NewWriter(&notJSON)
	_, _ = zw.Write([]byte("{nope"))
	_ = zw.Close()
	for name, tc := range map[string]struct {
		st   WorkflowStatus
		want string
	}{
		"not base64":        {WorkflowStatus{CompressedNodes: "!!!"}, "not base64 of gzip"},
		"not gzip":          {WorkflowStatus{CompressedNodes: base64.StdEncoding.EncodeToString([]byte("plain"))}, "not base64 of gzip"},
		"gzip of bad JSON":  {WorkflowStatus{CompressedNodes: base64.StdEncoding.EncodeToString(notJSON.Bytes())}, "decode status.compressedNodes"},
		"nodes not a map":   {WorkflowStatus{Nodes: json.RawMessage(`[1,2]`)}, "decode status.nodes"},
		"null nodes":        {WorkflowStatus{Nodes: json.RawMessage(`null`)}, errNoNodes.Error()},
		"nothing":           {WorkflowStatus{}, errNoNodes.Error()},
		"bad time in nodes": {WorkflowStatus{Nodes: json.RawMessage(`{"a":{"id":"a","startedAt":"yesterday"}}`)}, `time "yesterday" is not RFC 3339`},
	} {
		if _, err := tc.st.DecodeNodes(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", name, err, tc.want)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	var v struct{ A, B, C Time }
	if err := json.Unmarshal([]byte(`{"A":null,"B":"","C":"2026-01-02T03:04:05+01:00"}`), &v); err != nil {
		t.Fatal(err)
	}
	if !v.A.IsZero() || !v.B.IsZero() || !v.C.Equal(time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)) || v.C.Location() != time.UTC {
		t.Errorf("decoded %+v", v)
	}
	if v.A.ptr() != nil {
		t.Error("zero time maps to a non-nil pointer")
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"A":null,"B":null,"C":"2026-01-02T02:04:05Z"}` {
		t.Errorf("encoded %s", b)
	}
}
