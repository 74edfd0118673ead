package argosim

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Transition is one state change that the simulator exposed through its API: the ground truth
// that a fidelity check compares FARM's events with.
type Transition struct {
	UID       string
	Namespace string
	Workflow  string
	// NodeID is empty for a change of the workflow's own phase.
	NodeID     string
	NodeName   string
	Type       NodeType
	Phase      string
	PrevPhase  string // "" when the node (or workflow) first appeared
	StartedAt  time.Time
	FinishedAt time.Time
	// VisibleAt is the simulated time from which the API showed this state.
	VisibleAt time.Time
	// ResourceVersion is the workflow version that first showed it.
	ResourceVersion int64
	// ServedAt is when an answer first carried this state (list with nodes or compressedNodes,
	// GET, archived GET); zero if no answer did, e.g. because it was superseded between polls.
	ServedAt time.Time
}

type truthLog struct {
	mu     sync.Mutex
	ts     []Transition
	served map[string]map[int64]time.Time // uid → resourceVersion → first served
}

func newTruthLog() *truthLog {
	return &truthLog{served: map[string]map[int64]time.Time{}}
}

// record appends the transitions that next shows compared with prev (nil for a new workflow).
// A node transition is a node appearing, changing phase, or starting again (argo retry).
// Nodes are compared only for status writes (label writes keep them).
func (t *truthLog) record(prev, next *record, at time.Time, statusChange bool) {
	m := &next.wf.Metadata
	base := Transition{UID: m.UID, Namespace: m.Namespace, Workflow: m.Name, VisibleAt: at, ResourceVersion: next.rv}
	var out []Transition
	st := &next.wf.Status
	prevPhase, prevStart := "", Time{}
	if prev != nil {
		prevPhase, prevStart = prev.wf.Status.Phase, prev.wf.Status.StartedAt
	}
	if (prev != nil || st.Phase != "") && (st.Phase != prevPhase || !st.StartedAt.Equal(prevStart.Time)) {
		tr := base
		tr.Phase, tr.PrevPhase, tr.StartedAt, tr.FinishedAt = st.Phase, prevPhase, st.StartedAt.Time, st.FinishedAt.Time
		out = append(out, tr)
	}
	var before, after Nodes
	if statusChange {
		after = next.nodes()
		if prev != nil {
			before = prev.nodes()
		}
	}
	ids := make([]string, 0, len(after))
	for id := range after {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		n := after[id]
		old, existed := before[id]
		if existed && old.Phase == n.Phase && old.StartedAt.Equal(n.StartedAt.Time) {
			continue
		}
		tr := base
		tr.NodeID, tr.NodeName, tr.Type = id, n.Name, n.Type
		tr.Phase, tr.StartedAt, tr.FinishedAt = string(n.Phase), n.StartedAt.Time, n.FinishedAt.Time
		if existed {
			tr.PrevPhase = string(old.Phase)
		}
		out = append(out, tr)
	}
	if len(out) == 0 {
		return
	}
	t.mu.Lock()
	t.ts = append(t.ts, out...)
	t.mu.Unlock()
}

func (t *truthLog) markServed(uid string, rv int64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byRV := t.served[uid]
	if byRV == nil {
		byRV = map[int64]time.Time{}
		t.served[uid] = byRV
	}
	if _, seen := byRV[rv]; !seen {
		byRV[rv] = at
	}
}

// Transitions returns every transition recorded so far, in the order they became visible.
// It is nil when the server was created with NoTruth.
func (s *Server) Transitions() []Transition {
	if s.truth == nil {
		return nil
	}
	return s.truth.snapshot()
}

type servedMark struct {
	rv int64
	at time.Time
}

func (t *truthLog) snapshot() []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.ts)
	marks := map[string][]servedMark{}
	for uid, byRV := range t.served {
		ms := make([]servedMark, 0, len(byRV))
		for rv, at := range byRV {
			ms = append(ms, servedMark{rv, at})
		}
		slices.SortFunc(ms, func(a, b servedMark) int { return cmp.Compare(a.rv, b.rv) })
		marks[uid] = ms
	}
	// A state stays visible until the next transition of the same node (or workflow).
	type key struct{ uid, node string }
	until := map[key]int64{}
	for i := len(out) - 1; i >= 0; i-- {
		k := key{out[i].UID, out[i].NodeID}
		end, ok := until[k]
		if !ok {
			end = math.MaxInt64
		}
		out[i].ServedAt = firstServed(marks[out[i].UID], out[i].ResourceVersion, end)
		until[k] = out[i].ResourceVersion
	}
	return out
}

// firstServed is the earliest serving of any version in [from, to).
func firstServed(ms []servedMark, from, to int64) time.Time {
	var first time.Time
	for i := sort.Search(len(ms), func(i int) bool { return ms[i].rv >= from }); i < len(ms) && ms[i].rv < to; i++ {
		if first.IsZero() || ms[i].at.Before(first) {
			first = ms[i].at
		}
	}
	return first
}
