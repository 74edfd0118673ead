package argosim

import (
	"testing"
	"time"
)

func TestBuilderMakesUpstreamShapedWorkflows(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	b := NewWorkflow("argo", "etl-x7k2p", t0)
	extract := b.Pod("extract", NodeSucceeded, at(0), at(1))
	load := b.Retry("load", []Attempt{
		{Phase: NodeFailed, StartedAt: at(1), FinishedAt: at(2), Message: "Error (exit code 1)"},
		{Phase: NodeSucceeded, StartedAt: at(2), FinishedAt: at(3)},
	}, extract)
	report := b.Pod("report", NodeRunning, at(3), time.Time{}, load)
	f := newFixture(t, Options{})
	running := f.put(b.Workflow())
	b.Pod("other-root", NodeSucceeded, at(0), at(1))
	if len(running.Status.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6 (the builder's later changes must not leak)", len(running.Status.Nodes))
	}
	checkInvariants(t, running, false)
	n := running.Status.Nodes
	if got := n["etl-x7k2p"].Children; len(got) != 1 || got[0] != extract {
		t.Errorf("root children %v", got)
	}
	if got := n[n[load].Children[1]].Children; len(got) != 1 || got[0] != report {
		t.Errorf("the successful attempt's children %v, want the dependent task", got)
	}
	if n[load].Phase != NodeSucceeded || n[load].Children[0] != NodeID("etl-x7k2p", "etl-x7k2p.load(0)") {
		t.Errorf("retry node %+v", n[load])
	}
	done := f.put(NewWorkflow("argo", "x", t0).Finish(WorkflowSucceeded, at(1)).Workflow())
	if done.Metadata.Labels[LabelCompleted] != "true" {
		t.Errorf("labels %v", done.Metadata.Labels)
	}
}
