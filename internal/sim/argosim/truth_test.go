package argosim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

func TestTruthRecordsScriptedTransitions(t *testing.T) {
	f := newFixture(t, Options{})
	wf := f.put(dagWorkflow("argo", "t", t0))
	pod := NodeID("t", "t.step2")
	// Changed twice before anyone looks: Running was never served.
	f.clock.Advance(time.Minute)
	if err := f.srv.SetNode("argo", "t", pod, NodeFailed, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.list("argo", url.Values{"fields": {"metadata,items.metadata.name"}}) // no nodes: serves nothing
	f.clock.Advance(time.Minute)
	f.list("argo", nil)
	var mine []Transition
	for _, tr := range f.srv.Transitions() {
		if tr.NodeID == pod {
			mine = append(mine, tr)
		}
	}
	if len(mine) != 2 {
		t.Fatalf("transitions of %s: %+v", pod, mine)
	}
	first, second := mine[0], mine[1]
	if first.Phase != "Running" || first.PrevPhase != "" || !first.VisibleAt.Equal(t0) || first.ResourceVersion != 1 || !first.ServedAt.IsZero() {
		t.Errorf("first %+v", first)
	}
	if second.Phase != "Failed" || second.PrevPhase != "Running" || !second.VisibleAt.Equal(t0.Add(time.Minute)) ||
		!second.FinishedAt.Equal(t0.Add(time.Minute)) || !second.ServedAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("second %+v", second)
	}
	if got := f.srv.Transitions()[0]; got.NodeID != "" || got.Phase != WorkflowRunning || got.UID != wf.Metadata.UID {
		t.Errorf("first transition %+v, want the workflow entering Running", got)
	}
	if NewServer(f.clock, Options{NoTruth: true}).Transitions() != nil {
		t.Error("NoTruth still records")
	}
}

// TestTruthMatchesWhatIsServed: for every node an estate serves, the latest recorded
// transition is the served state, and it was visible no later than now.
func TestTruthMatchesWhatIsServed(t *testing.T) {
	f := newEstateFixture(t, smallEstate(21), Options{})
	f.steps(60)
	type key struct{ uid, node string }
	last := map[key]Transition{}
	for _, tr := range f.srv.Transitions() {
		if tr.VisibleAt.After(f.clock.Now()) || tr.NodeID != "" && tr.StartedAt.After(tr.VisibleAt) {
			t.Fatalf("transition from the future: %+v", tr)
		}
		last[key{tr.UID, tr.NodeID}] = tr
	}
	live, _ := allWorkflows(f.srv)
	nodes := 0
	for _, wf := range live {
		if tr := last[key{wf.Metadata.UID, ""}]; tr.Phase != wf.Status.Phase && wf.Status.Phase != "" {
			t.Errorf("%s: workflow phase %s, truth %q", wf.Metadata.Name, wf.Status.Phase, tr.Phase)
		}
		for id, n := range wf.Status.Nodes {
			nodes++
			tr, ok := last[key{wf.Metadata.UID, id}]
			if !ok || tr.Phase != string(n.Phase) || !tr.StartedAt.Equal(n.StartedAt.Time) || !tr.FinishedAt.Equal(n.FinishedAt.Time) {
				t.Errorf("%s %s: served %s %v–%v, truth %+v", wf.Metadata.Name, n.Name, n.Phase, n.StartedAt, n.FinishedAt, tr)
			}
		}
	}
	if nodes < 500 {
		t.Errorf("only %d nodes checked", nodes)
	}
	// A listing marks exactly the states it carried (nodes or compressedNodes) as served.
	items, _ := f.list("", nil)
	carried := map[string]bool{}
	for _, it := range items {
		st := it["status"].(map[string]any)
		// A workflow retried after archiving is listed twice: live, and from the archive.
		uid := path(it, "metadata", "uid").(string)
		carried[uid] = carried[uid] || st["nodes"] != nil || st["compressedNodes"] != nil
	}
	last = map[key]Transition{}
	for _, tr := range f.srv.Transitions() {
		last[key{tr.UID, tr.NodeID}] = tr
	}
	served := 0
	for k, tr := range last {
		if k.node == "" {
			continue
		}
		if want := carried[k.uid]; tr.ServedAt.IsZero() == want {
			t.Errorf("%s %s: ServedAt %v, carried by the listing %v", tr.Workflow, tr.NodeName, tr.ServedAt, want)
		}
		if !tr.ServedAt.IsZero() {
			served++
		}
	}
	if served < 300 {
		t.Errorf("only %d current node states served", served)
	}
}

// One answer is one instant: every state a list answer carried is marked served at the same
// time, the instant its rows were read (they were marked at each row's encoding, one clock
// reading each).
func TestOneAnswerIsServedAtOneInstant(t *testing.T) {
	clk := clock.NewTicking(t0, time.Second)
	demo, err := NewDemo(clk, 3)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(demo)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/workflows/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	served := map[time.Time]int{}
	for _, tr := range demo.Transitions() {
		if !tr.ServedAt.IsZero() {
			served[tr.ServedAt]++
		}
	}
	if len(served) != 1 {
		t.Fatalf("one list answer marked its states served at %d instants: %v", len(served), served)
	}
}
