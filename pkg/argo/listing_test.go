package argo_test

// The two listings against the simulated Argo Server: what each asks for, what crosses the wire,
// and when the automatic choice takes which.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
)

// recorder keeps the URL of every request that goes through it.
type recorder struct {
	mu   sync.Mutex
	urls []*url.URL
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.URL)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// take returns the requests since the last take: list pages (by their fields) and GET paths.
func (r *recorder) take() (lists []string, gets []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.urls {
		rest := strings.TrimPrefix(u.Path, "/api/v1/workflows/")
		if strings.Contains(rest, "/") {
			gets = append(gets, rest)
			continue
		}
		lists = append(lists, u.Query().Get("fields"))
	}
	r.urls = nil
	return lists, gets
}

type listingEnv struct {
	sim *argosim.Server
	rec *recorder
	src *argo.Source
	clk *clock.Manual
}

func newListingEnv(t *testing.T, listing argo.Listing) *listingEnv {
	t.Helper()
	clk := clock.NewManual(mins(30))
	sim := argosim.NewServer(clk, argosim.Options{Seed: 42})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	u, _ := url.Parse(srv.URL)
	rec := &recorder{next: http.DefaultTransport}
	cfg := argo.DefaultConfig()
	cfg.URL, cfg.Instance, cfg.Namespaces, cfg.PageSize, cfg.Listing = u, "test", []string{ns}, 4, listing
	cfg.HTTPTimeout, cfg.HTTPRetries = 5*time.Second, 1
	src, err := argo.New(cfg, argo.Deps{Clock: clk, HTTP: []httpx.Option{httpx.WithTransport(rec)}})
	if err != nil {
		t.Fatal(err)
	}
	return &listingEnv{sim: sim, rec: rec, src: src, clk: clk}
}

// put stores a workflow with n pod nodes; done finishes it (labelled completed).
func (e *listingEnv) put(t *testing.T, name string, n int, done bool) {
	t.Helper()
	phase, end := "Running", -1
	if done {
		phase, end = "Succeeded", 20
	}
	all := argosim.Nodes{}
	var kids []string
	for i := range n {
		kid := fmt.Sprintf("step-%d", i)
		kids = append(kids, kid)
		nd := node(name, kid, argosim.NodeTypePod, argosim.NodePhase(phase), 0, end, "")
		nd.BoundaryID = argosim.NodeID(name, name)
		all[nd.ID] = nd
	}
	root := node(name, "", argosim.NodeTypeDAG, argosim.NodePhase(phase), 0, end, "", kids...)
	all[root.ID] = root
	wf := argosim.Workflow{
		Metadata: argosim.ObjectMeta{Name: name, Namespace: ns},
		Status:   argosim.WorkflowStatus{Phase: phase, StartedAt: argosim.NewTime(mins(0)), Nodes: all},
	}
	if done {
		wf.Status.FinishedAt = argosim.NewTime(mins(end))
		wf.Metadata.Labels = map[string]string{argo.LabelCompleted: "true"}
	}
	if _, err := e.sim.Put(wf); err != nil {
		t.Fatal(err)
	}
}

// poll lists as the engine would with known, loads what changed, and returns the snapshots and
// the next index.
func (e *listingEnv) poll(t *testing.T, known state.Index) (map[string]*poll.Snapshot, state.Index) {
	t.Helper()
	snaps, err := e.src.List(t.Context(), poll.Window{Since: mins(0), Until: e.clk.Now(), Known: known})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*poll.Snapshot{}
	next := state.Index{}
	for _, s := range snaps {
		out[s.Run.Name] = s
		next[s.Key()] = state.IndexEntry{Fingerprint: s.Fingerprint, Active: s.Active}
		if entry, ok := known[s.Key()]; ok && entry.Fingerprint == s.Fingerprint {
			continue
		}
		if err := e.src.Load(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	return out, next
}

func count(fields []string, want string) int {
	n := 0
	for _, f := range fields {
		if f == want {
			n++
		}
	}
	return n
}

func TestChangedListingReadsOnlyChangedRuns(t *testing.T) {
	e := newListingEnv(t, argo.ListingChanged)
	for i := range 6 {
		e.put(t, fmt.Sprintf("wf-%d", i), 10, false)
	}
	e.put(t, "wf-done", 10, true)
	_, idx := e.poll(t, nil)
	lists, gets := e.rec.take()
	if count(lists, argo.SlimFields) != len(lists) || len(gets) != 7 {
		t.Fatalf("cold poll: list fields %q, GETs %v; want slim pages and one GET per run", lists, gets)
	}

	e.put(t, "wf-3", 12, false) // a new resourceVersion, two more nodes
	listed, err := e.src.List(t.Context(), poll.Window{Since: mins(0), Until: e.clk.Now(), Known: idx})
	if err != nil {
		t.Fatal(err)
	}
	if n := argo.PendingLen(e.src); n != 0 || len(listed) != 7 {
		t.Errorf("a slim listing of %d runs keeps %d rows for Load, want none (the changed ones are read by reference)", len(listed), n)
	}
	e.rec.take()
	e.sim.ResetStats()
	snaps, _ := e.poll(t, idx)
	lists, gets = e.rec.take()
	if count(lists, argo.SlimFields) != len(lists) || len(lists) == 0 {
		t.Errorf("list fields %q, want slim pages only", lists)
	}
	if len(gets) != 1 || gets[0] != ns+"/wf-3" {
		t.Errorf("GETs %v, want only the changed run %s/wf-3", gets, ns)
	}
	if got := len(snaps["wf-3"].Tasks); got != 13 {
		t.Errorf("wf-3 has %d tasks after its GET, want 13 (root and 12 pods)", got)
	}
	if s := snaps["wf-done"]; s.Active || s.Loaded {
		t.Errorf("a completed run listed slim: active %v loaded %v, want inactive and not loaded", s.Active, s.Loaded)
	}
	st := e.sim.Stats()
	// Every page after a listing's first (active, then completed in the window) re-reads one row.
	rows := len(snaps) + len(lists) - 2
	if per := st[argosim.EndpointList].Bytes / int64(rows); per > 300 {
		t.Errorf("a slim listing costs %d bytes per row, want at most 300", per)
	}
	if st[argosim.EndpointGet].Bytes < st[argosim.EndpointList].Bytes {
		t.Logf("list %d B for %d runs, one GET %d B", st[argosim.EndpointList].Bytes, len(snaps), st[argosim.EndpointGet].Bytes)
	}
}

func TestAutoListingChoosesFromMeasuredSizes(t *testing.T) {
	e := newListingEnv(t, argo.ListingAuto)
	for i := range 8 {
		e.put(t, fmt.Sprintf("wf-%d", i), 20, false)
	}
	// Cold: nothing known, everything will be read: one full listing, no GET.
	_, idx := e.poll(t, state.Index{})
	lists, gets := e.rec.take()
	if count(lists, argo.ListFields) != len(lists) || len(gets) != 0 {
		t.Fatalf("cold poll: list fields %q, GETs %v; want full pages and no GET", lists, gets)
	}

	// One of eight changed: slim, then one GET.
	e.put(t, "wf-1", 21, false)
	snaps, idx := e.poll(t, idx)
	lists, gets = e.rec.take()
	if count(lists, argo.SlimFields) != len(lists) || len(gets) != 1 {
		t.Errorf("1 of 8 changed: list fields %q, GETs %v; want slim pages and one GET", lists, gets)
	}
	if len(snaps["wf-1"].Tasks) != 22 {
		t.Errorf("wf-1: %d tasks, want 22", len(snaps["wf-1"].Tasks))
	}

	// Seven of eight changed: the GETs would cost more than listing again in full.
	for i := 1; i < 8; i++ {
		e.put(t, fmt.Sprintf("wf-%d", i), 22, false)
	}
	snaps, _ = e.poll(t, idx)
	lists, gets = e.rec.take()
	if count(lists, argo.SlimFields) == 0 || count(lists, argo.ListFields) == 0 || len(gets) != 0 {
		t.Errorf("7 of 8 changed: list fields %q, GETs %v; want slim pages, then full ones, and no GET", lists, gets)
	}
	for i := 1; i < 8; i++ {
		if s := snaps[fmt.Sprintf("wf-%d", i)]; !s.Loaded || len(s.Tasks) != 23 {
			t.Errorf("wf-%d: loaded %v with %d tasks, want 23", i, s.Loaded, len(s.Tasks))
		}
	}
	if s := snaps["wf-0"]; s.Loaded || s.Tasks != nil {
		t.Errorf("the unchanged run was loaded: %+v", s)
	}
}

func TestFullListingStaysWithinItsNodeBudget(t *testing.T) {
	e := newListingEnv(t, argo.ListingFull)
	argo.SetFullListingBudget(e.src, 1) // spent by the first changed row
	for i := range 9 {
		e.put(t, fmt.Sprintf("wf-%d", i), 5, false)
	}
	snaps, _ := e.poll(t, nil)
	lists, gets := e.rec.take()
	if len(lists) < 3 || lists[0] != argo.ListFields || count(lists[1:], argo.SlimFields) != len(lists)-1 {
		t.Errorf("list fields %q: want a full first page, then slim pages once the budget is spent", lists)
	}
	// The first page's rows were listed with their nodes; every other run is read by GET.
	if len(gets) != len(snaps)-4 {
		t.Errorf("%d GETs for %d runs, want one per run past the first page of 4", len(gets), len(snaps))
	}
	for name, s := range snaps {
		if !s.Loaded || len(s.Tasks) != 6 {
			t.Errorf("%s: loaded %v with %d tasks, want 6", name, s.Loaded, len(s.Tasks))
		}
	}
}

// TestFullListingKeepsNodesOnlyUpToTheLimit: a poll that loads at most Window.Limit changed runs
// (the first listed) has the listing keep no nodes past them and go slim: a cold poll of a large
// estate downloads and holds the nodes of the runs it handles, not of the whole estate.
func TestFullListingKeepsNodesOnlyUpToTheLimit(t *testing.T) {
	e := newListingEnv(t, argo.ListingAuto)
	for i := range 12 {
		e.put(t, fmt.Sprintf("wf-%02d", i), 5, false)
	}
	const limit = 5
	listed, err := e.src.List(t.Context(), poll.Window{Since: mins(0), Until: e.clk.Now(), Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	lists, _ := e.rec.take()
	if len(lists) < 3 || lists[0] != argo.ListFields || lists[len(lists)-1] != argo.SlimFields {
		t.Errorf("list fields %q: want full pages, then slim ones past the limit", lists)
	}
	if n := argo.PendingLen(e.src); n == 0 || n > limit {
		t.Errorf("%d listed rows keep their nodes, want between 1 and the limit %d", n, limit)
	}
	// The engine loads the first runs listed: their nodes came with the listing.
	for _, s := range listed[:limit] {
		if err := e.src.Load(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		if len(s.Tasks) != 6 {
			t.Errorf("%s: %d tasks, want 6", s.Run.Name, len(s.Tasks))
		}
	}
	if _, gets := e.rec.take(); len(gets) > 1 {
		t.Errorf("loading the first %d runs listed took GETs %v, want at most one (a page's repeated row counts twice)", limit, gets)
	}
}
