package apm_test

import (
	"testing"

	"github.com/farmobs/farm/pkg/event"
)

// TestBatchOfRunsAndVersionOneMessage: one delivered batch traces the deltas of every run it
// carries, its redelivery sends nothing, and a version-1 message still in flight during an upgrade
// is traced as before.
func TestBatchOfRunsAndVersionOneMessage(t *testing.T) {
	e := newEnv(t)
	other := nestedArgoDelta()
	other.Run.UID = "second-run"
	for i := range other.Events {
		ev := &other.Events[i]
		ev.ID = event.TaskEventID(other.Run.Key(), ev.NodeID, ev.Attempt, ev.State, ev.StartedAt, ev.FinishedAt)
	}
	first, second := nestedArgoDelta(), finish(other)
	msgs, _, err := event.Pack([]*event.RunDelta{first, second}, event.BatchLimits{MaxDeltas: 10, MaxBytes: 1 << 20, Shards: 1})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("pack: %d messages, %v", len(msgs), err)
	}
	m := msgs[0]
	m.ID, m.PublishTime = "8001", first.ObservedAt
	if err := e.tracer.HandleMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	c := e.agent.Counts()
	if c.Spans != 18 {
		t.Fatalf("the agent received %d spans, want the 9 of each of the two runs", c.Spans)
	}
	if err := e.tracer.HandleMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if e.agent.Counts() != c {
		t.Errorf("the redelivered batch reached the agent: %+v, before %+v", e.agent.Counts(), c)
	}

	third := nestedArgoDelta()
	third.Run.UID = "third-run"
	for i := range third.Events {
		ev := &third.Events[i]
		ev.ID = event.TaskEventID(third.Run.Key(), ev.NodeID, ev.Attempt, ev.State, ev.StartedAt, ev.FinishedAt)
	}
	v1 := *finish(third)
	v1.SchemaVersion = event.SchemaVersion1
	data, err := event.Encode(&v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.tracer.HandleMessage(t.Context(), event.Message{ID: "8002", PublishTime: v1.ObservedAt, Data: data, Attributes: v1.Attributes(), OrderingKey: v1.Run.Key()}); err != nil {
		t.Fatal(err)
	}
	if got := e.agent.Counts().Spans; got != 27 {
		t.Errorf("the agent received %d spans after the version-1 message, want 27", got)
	}
}
