package apm

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state/filestore"
)

func TestEntryKey(t *testing.T) {
	a, b, c := traceID{1, 2}, traceID{3, 4}, traceID{5, 6}
	if got := entryKey([]traceID{a}); got != a.String() {
		t.Errorf("the entry of a one-run message is %q, want the trace id %q", got, a)
	}
	ab, ba := entryKey([]traceID{a, b}), entryKey([]traceID{b, a, b})
	if ab != ba {
		t.Errorf("the order or repetition of a message's runs changes its entry: %q, %q", ab, ba)
	}
	for _, other := range []string{entryKey([]traceID{a}), entryKey([]traceID{a, c}), entryKey([]traceID{a, b, c})} {
		if other == ab {
			t.Errorf("messages of other runs share the entry %q", ab)
		}
	}
}

func TestAppendSpanIDs(t *testing.T) {
	ids := func(data []byte) []uint64 {
		var out []uint64
		for i := 0; i+8 <= len(data); i += 8 {
			out = append(out, binary.BigEndian.Uint64(data[i:]))
		}
		return out
	}
	data := appendSpanIDs(nil, []uint64{3, 1, 3})
	data = appendSpanIDs(data, []uint64{1, 2})
	if got := ids(data); !slices.Equal(got, []uint64{3, 1, 2}) {
		t.Errorf("ids %v, want 3 1 2: each once, oldest first", got)
	}
	if set := spanIDSet(append(data, 0xff)); len(set) != 3 { // a torn tail is ignored
		t.Errorf("set %v, want 3 ids", set)
	}
	many := make([]uint64, maxEntrySpans+2)
	for i := range many {
		many[i] = uint64(i + 10)
	}
	full := appendSpanIDs(data, many)
	got := ids(full)
	if len(full) != maxEntrySpans*8 || got[0] != 12 || got[len(got)-1] != uint64(maxEntrySpans+11) {
		t.Errorf("a full entry has %d bytes, first %d last %d: want %d ids, the oldest forgotten", len(full), got[0], got[len(got)-1], maxEntrySpans)
	}
}

// finishedRun is a finished Argo run of pods pods, all spans.
func finishedRun(uid string, pods int) *event.RunDelta {
	start := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)
	end := start.Add(time.Minute)
	d := &event.RunDelta{SchemaVersion: event.SchemaVersion, ID: "d-" + uid, Tenant: "t", Environment: "prod", ObservedAt: end, Part: 1, Parts: 1,
		Run: event.Run{Source: event.SourceArgo, Instance: "i", Namespace: "ns", UID: uid, Name: "wf-" + uid, Pipeline: "p",
			Phase: "Succeeded", Status: event.StatusSucceeded, StartedAt: &start, FinishedAt: &end}}
	for i := range pods {
		d.Events = append(d.Events, event.TaskEvent{ID: fmt.Sprint(uid, i), NodeID: fmt.Sprintf("wf-%s-%d", uid, i), Name: "pod", Type: "Pod",
			State: "Succeeded", Status: event.StatusSucceeded, StartedAt: &start, FinishedAt: &end})
	}
	return d
}

// TestMessageOfSeveralRuns: a message of several runs (the batch format) is one ledger entry: one
// read and one write, its redelivery sends nothing; a message composed of other runs names
// another entry, and what it repeats is sent again (the guarantee pkg/apm's doc states).
func TestMessageOfSeveralRuns(t *testing.T) {
	agent := ddagent.New()
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	t.Setenv("DD_TRACE_AGENT_URL", srv.URL)
	clk := clock.NewManual(time.Date(2026, 3, 2, 1, 10, 0, 0, time.UTC))
	ledger := filestore.New(filepath.Join(t.TempDir(), "state.json"), filestore.WithClock(clk))
	tr, err := New(Config{ServiceArgo: "a", ServiceAirflow: "b", MaxAge: 18 * time.Hour, AgentTimeout: 10 * time.Second},
		Deps{Ledger: ledger, Clock: clk, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := finishedRun("a", 2), finishedRun("b", 3)
	steps := []struct {
		name                string
		deltas              []*event.RunDelta
		sent, dup           int
		reads, writes, seen int64
	}{
		{"both runs", []*event.RunDelta{a, b}, 3 + 4, 0, 1, 1, 7},
		{"redelivered", []*event.RunDelta{b, a}, 0, 7, 1, 0, 7},
		{"run a in a message of its own", []*event.RunDelta{a}, 3, 0, 1, 1, 10},
		{"that message again", []*event.RunDelta{a}, 0, 3, 1, 0, 10},
	}
	for _, st := range steps {
		r0, w0 := ledger.Usage()
		res, err := tr.deliver(t.Context(), st.deltas)
		r1, w1 := ledger.Usage()
		if err != nil || res.Sent != st.sent || res.Duplicates != st.dup {
			t.Errorf("%s: %+v, %v; want %d sent, %d duplicates", st.name, res, err, st.sent, st.dup)
		}
		if r1-r0 != st.reads || w1-w0 != st.writes {
			t.Errorf("%s: %d ledger reads and %d writes, want %d and %d", st.name, r1-r0, w1-w0, st.reads, st.writes)
		}
		if n := len(agent.Spans()); int64(n) != st.seen {
			t.Errorf("%s: the agent has %d spans, want %d", st.name, n, st.seen)
		}
	}
}
