package argosim

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

type estateFixture struct {
	*fixture
	est *Estate
	cfg EstateConfig
}

func newEstateFixture(t *testing.T, cfg EstateConfig, opts Options) *estateFixture {
	t.Helper()
	f := newFixture(t, opts)
	est, err := NewEstate(f.srv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &estateFixture{fixture: f, est: est, cfg: cfg}
}

// steps moves the clock n ticks, the estate following at each request.
func (f *estateFixture) steps(n int) {
	for range n {
		f.clock.Advance(f.cfg.Tick)
		if got := f.est.Sync(); got != 1 {
			f.t.Fatalf("Sync performed %d steps for one tick", got)
		}
	}
}

func smallEstate(seed uint64) EstateConfig {
	cfg := DefaultEstate()
	cfg.Seed, cfg.ActiveRuns, cfg.TasksPerRun, cfg.Tick = seed, 40, 25, 10*time.Second
	cfg.Namespaces = []string{"data", "ml"}
	cfg.ChangeShare, cfg.FailureRate, cfg.RetryRate, cfg.SkipRate = 0.3, 0.1, 0.3, 0.15
	cfg.CompressedShare, cfg.ExitHandlerShare, cfg.TTL = 0.2, 0.5, 10*time.Minute
	return cfg
}

// allWorkflows returns every live workflow, hydrated, and every archived one.
func allWorkflows(srv *Server) (live, archived []Workflow) {
	srv.mu.RLock()
	var uids, auids []string
	for uid := range srv.live {
		uids = append(uids, uid)
	}
	for uid := range srv.archive {
		auids = append(auids, uid)
	}
	srv.mu.RUnlock()
	for _, uid := range uids {
		srv.mu.RLock()
		r := srv.live[uid]
		srv.mu.RUnlock()
		if r != nil {
			live = append(live, *hydratedView(r))
		}
	}
	for _, uid := range auids {
		wf, _ := srv.ArchivedWorkflow(uid)
		archived = append(archived, wf)
	}
	return live, archived
}

var stepGroupName = regexp.MustCompile(`\[(\d+)\]$`)

// retriedUIDs returns the workflows that went from a final phase back to Running (argo retry).
func retriedUIDs(srv *Server) map[string]bool {
	out := map[string]bool{}
	for _, tr := range srv.Transitions() {
		if tr.NodeID == "" && terminalPhase(tr.PrevPhase) {
			out[tr.UID] = true
		}
	}
	return out
}

// checkInvariants verifies a workflow's node graph the way Argo builds it. After an argo
// retry, reset group nodes start again later than the children they kept, and old
// dependency edges point at nodes created before the re-run: those time checks are skipped.
func checkInvariants(t *testing.T, wf Workflow, retried bool) {
	t.Helper()
	name := wf.Metadata.Name
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	nodes := wf.Status.Nodes
	terminal := terminalPhase(wf.Status.Phase)
	if wf.Metadata.Labels[LabelCompleted] != strconv.FormatBool(terminal) && wf.Status.Phase != "" {
		fail("completed label %q for phase %s", wf.Metadata.Labels[LabelCompleted], wf.Status.Phase)
	}
	if terminal != !wf.Status.FinishedAt.IsZero() {
		fail("phase %s with finishedAt %v", wf.Status.Phase, wf.Status.FinishedAt)
	}
	if wf.Status.Phase == "" {
		if len(nodes) != 0 || !wf.Status.StartedAt.IsZero() {
			fail("unreconciled workflow has nodes or a start")
		}
		return
	}
	root, ok := nodes[name]
	if !ok || root.BoundaryID != "" || (root.Type != NodeTypeDAG && root.Type != NodeTypeSteps) || !root.StartedAt.Equal(wf.Status.StartedAt.Time) {
		fail("root node %+v", root)
	}
	for id, n := range nodes {
		if id != n.ID || id != NodeID(name, n.Name) {
			fail("node %q has id %q, want %q", n.Name, id, NodeID(name, n.Name))
		}
		if n.StartedAt.IsZero() || n.Phase.Fulfilled() == n.FinishedAt.IsZero() || !n.Phase.Fulfilled() && terminal {
			fail("node %s: phase %s started %v finished %v in a %s workflow", n.Name, n.Phase, n.StartedAt, n.FinishedAt, wf.Status.Phase)
		}
		if n.Phase.Fulfilled() && n.FinishedAt.Before(n.StartedAt.Time) {
			fail("node %s finished before it started", n.Name)
		}
		bname := ""
		if n.BoundaryID != "" {
			b, ok := nodes[n.BoundaryID]
			if !ok {
				fail("node %s: boundary %s missing", n.Name, n.BoundaryID)
				continue
			}
			bname = b.Name
			if b.Type != NodeTypeDAG && b.Type != NodeTypeSteps {
				fail("node %s: boundary %s is a %s", n.Name, b.Name, b.Type)
			}
			if !retried && n.StartedAt.Before(b.StartedAt.Time) || b.Phase.Fulfilled() && (!n.Phase.Fulfilled() || n.FinishedAt.After(b.FinishedAt.Time)) {
				fail("node %s (%s) outside its boundary %s (%s) in time", n.Name, n.Phase, b.Name, b.Phase)
			}
		} else if id != name && !strings.HasSuffix(n.Name, ".onExit") {
			fail("node %s has no boundary", n.Name)
		}
		if want := displayName(n.Name, bname); n.DisplayName != want {
			fail("node %s displayName %q, want %q", n.Name, n.DisplayName, want)
		}
		for _, c := range append(append([]string{}, n.Children...), n.OutboundNodes...) {
			child, ok := nodes[c]
			if !ok {
				fail("node %s: child/outbound %s missing", n.Name, c)
				continue
			}
			// A dependency edge from a finished execution node: the dependent started after it.
			if !retried && n.Type == NodeTypePod && child.StartedAt.Before(n.FinishedAt.Time) {
				fail("node %s started before its dependency %s finished", child.Name, n.Name)
			}
		}
		switch n.Type {
		case NodeTypeRetry:
			for k, c := range n.Children {
				a := nodes[c]
				if a.Name != n.Name+"("+strconv.Itoa(k)+")" || a.NodeFlag == nil || !a.NodeFlag.Retried || a.BoundaryID != n.BoundaryID {
					fail("retry %s child %d is %q flag %+v", n.Name, k, a.Name, a.NodeFlag)
				}
				if k < len(n.Children)-1 && !a.Phase.FailedOrError() {
					fail("retry %s: attempt %d %s but was retried", n.Name, k, a.Phase)
				}
			}
			if n.Phase == NodeSucceeded && nodes[n.Children[len(n.Children)-1]].Phase != NodeSucceeded {
				fail("retry %s succeeded without a successful attempt", n.Name)
			}
		case NodeTypeStepGroup:
			if m := stepGroupName.FindStringSubmatch(n.Name); m == nil || !strings.HasPrefix(n.Name, bname+"[") {
				fail("step group %s in boundary %s", n.Name, bname)
			}
		case NodeTypeSkipped:
			if n.Phase != NodeSkipped && n.Phase != NodeOmitted || n.Message == "" {
				fail("skipped-type node %s: %s %q", n.Name, n.Phase, n.Message)
			}
		case NodeTypePod:
			if n.Phase.Fulfilled() && (n.ResourcesDuration == nil || n.HostNodeName == "" || n.Outputs == nil && n.Phase != NodeError) {
				fail("finished pod %s lacks resources, host or exit code", n.Name)
			}
		}
	}
}

func TestEstateInvariants(t *testing.T) {
	f := newEstateFixture(t, smallEstate(7), Options{})
	for range 8 {
		f.steps(25)
		live, archived := allWorkflows(f.srv)
		retried := retriedUIDs(f.srv)
		for _, wf := range append(live, archived...) {
			checkInvariants(t, wf, retried[wf.Metadata.UID])
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestEstateCoversArgoShapes checks that an estate shows what FARM must handle.
func TestEstateCoversArgoShapes(t *testing.T) {
	f := newEstateFixture(t, smallEstate(3), Options{})
	f.steps(200)
	types, phases := map[NodeType]int{}, map[NodePhase]int{}
	wfPhases := map[string]int{}
	var exits, retried, compressed, nested, cron, tmpl int
	live, archived := allWorkflows(f.srv)
	for _, wf := range append(live, archived...) {
		wfPhases[wf.Status.Phase]++
		if wf.Metadata.Labels[LabelCronWorkflow] != "" {
			cron++
		}
		if wf.Metadata.Labels[LabelWorkflowTemplate] != "" {
			tmpl++
		}
		for _, n := range wf.Status.Nodes {
			types[n.Type]++
			phases[n.Phase]++
			if strings.HasSuffix(n.Name, ".onExit") && n.NodeFlag != nil && n.NodeFlag.Hooked {
				exits++
			}
			if n.Type == NodeTypeRetry && len(n.Children) > 1 {
				retried++
			}
			if (n.Type == NodeTypeDAG || n.Type == NodeTypeSteps) && n.BoundaryID != "" {
				nested++
			}
		}
	}
	// Compressed runs are the large workflows.
	var nodes [3]int
	var runs [3]int
	f.srv.mu.RLock()
	for _, r := range f.srv.live {
		nodes[r.storage] += len(r.nodes())
		runs[r.storage]++
	}
	f.srv.mu.RUnlock()
	compressed = runs[StorageCompressed]
	if compressed > 0 && nodes[StorageCompressed]/compressed < 2*nodes[StoragePlain]/runs[StoragePlain] {
		t.Errorf("compressed runs average %d nodes, plain ones %d: want the large ones compressed",
			nodes[StorageCompressed]/compressed, nodes[StoragePlain]/runs[StoragePlain])
	}
	for _, typ := range []NodeType{NodeTypeDAG, NodeTypeSteps, NodeTypeStepGroup, NodeTypeRetry, NodeTypePod, NodeTypeSkipped} {
		if types[typ] == 0 {
			t.Errorf("no %s node", typ)
		}
	}
	for _, ph := range []NodePhase{NodePending, NodeRunning, NodeSucceeded, NodeFailed, NodeError, NodeSkipped, NodeOmitted} {
		if phases[ph] == 0 {
			t.Errorf("no %s node", ph)
		}
	}
	for _, ph := range []string{WorkflowRunning, WorkflowSucceeded, WorkflowFailed} {
		if wfPhases[ph] == 0 {
			t.Errorf("no %s workflow (phases %v)", ph, wfPhases)
		}
	}
	if exits == 0 || retried == 0 || compressed == 0 || nested == 0 || cron == 0 || tmpl == 0 {
		t.Errorf("exit handlers %d, retried tasks %d, compressed %d, nested groups %d, cron %d, template %d", exits, retried, compressed, nested, cron, tmpl)
	}
}

// listAll returns the bytes of a full listing.
func listAll(t *testing.T, h http.Handler) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/workflows/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("list: %d", rec.Code)
	}
	return rec.Body.Bytes()
}

func TestEstateIsDeterministic(t *testing.T) {
	run := func(seed uint64) []byte {
		clk := clock.NewManual(t0)
		srv := NewServer(clk, Options{Seed: seed})
		cfg := smallEstate(seed)
		if _, err := NewEstate(srv, cfg); err != nil {
			t.Fatal(err)
		}
		var out []byte
		for range 6 {
			clk.Advance(5 * cfg.Tick)
			out = append(out, listAll(t, srv)...)
		}
		return out
	}
	a, b, c := run(11), run(11), run(12)
	if !bytes.Equal(a, b) {
		t.Error("two estates with the same seed differ")
	}
	if bytes.Equal(a, c) {
		t.Error("estates with different seeds are identical")
	}
}

func TestEstateKeepsActiveRunsAndChurn(t *testing.T) {
	cfg := smallEstate(5)
	cfg.ActiveRuns, cfg.ChangeShare, cfg.ManualRetryRate = 100, 0.1, 0 // retries would add active runs
	f := newEstateFixture(t, cfg, Options{})
	active := url.Values{"listOptions.labelSelector": {LabelCompleted + "!=true"}, "fields": {"metadata,items.metadata.uid,items.metadata.resourceVersion"}}
	versions := func() map[string]string {
		items, _ := f.list("", active)
		out := map[string]string{}
		for _, it := range items {
			out[path(it, "metadata", "uid").(string)] = path(it, "metadata", "resourceVersion").(string)
		}
		return out
	}
	before := versions()
	for range 20 {
		c0 := f.est.Counters()
		f.steps(1)
		c1 := f.est.Counters()
		now := versions()
		if len(now) != cfg.ActiveRuns {
			t.Fatalf("%d active workflows listed, want %d", len(now), cfg.ActiveRuns)
		}
		changed := 0
		for uid, rv := range now {
			if before[uid] != rv {
				changed++
			}
		}
		// Every change the counters report is visible as a new resourceVersion (runs that
		// completed leave the active listing; their replacements are new).
		if want := (c1.Advanced - (c1.Completed - c0.Completed)) - c0.Advanced + (c1.Created - c0.Created); changed != want {
			t.Errorf("step %d: %d active workflows changed, counters say %d", c1.Steps, changed, want)
		}
		if adv := c1.Advanced - c0.Advanced; adv < 10 {
			t.Errorf("step advanced %d runs, want at least 10%% of 100", adv)
		}
		before = now
	}
}

func TestEstateArchivesAndDeletes(t *testing.T) {
	cfg := smallEstate(9)
	cfg.ActiveRuns, cfg.TTL, cfg.ArchiveTTL = 30, 5*time.Minute, 20*time.Minute
	f := newEstateFixture(t, cfg, Options{})
	f.steps(300)
	c := f.est.Counters()
	if c.Completed == 0 || c.Archived == 0 || c.Deleted == 0 {
		t.Fatalf("counters %+v", c)
	}
	live, archived := allWorkflows(f.srv)
	for _, wf := range live {
		if terminalPhase(wf.Status.Phase) && f.clock.Now().Sub(wf.Status.FinishedAt.Time) > cfg.TTL+cfg.Tick {
			t.Errorf("%s finished at %v is still live", wf.Metadata.Name, wf.Status.FinishedAt)
		}
	}
	for _, wf := range archived {
		if f.clock.Now().Sub(wf.Status.FinishedAt.Time) > cfg.ArchiveTTL+cfg.Tick {
			t.Errorf("%s is still archived past the archive TTL", wf.Metadata.Name)
		}
	}
	if len(archived) == 0 {
		t.Error("nothing archived")
	}
}

func TestEstateReleasesRunsATestEdits(t *testing.T) {
	cfg := smallEstate(4)
	cfg.ChangeShare, cfg.ManualRetryRate = 1, 0
	f := newEstateFixture(t, cfg, Options{})
	items, _ := f.list("", url.Values{"listOptions.labelSelector": {LabelCompleted + "=false"}})
	ns, name := path(items[0], "metadata", "namespace").(string), path(items[0], "metadata", "name").(string)
	edited, err := f.srv.Update(ns, name, func(wf *Workflow) error {
		wf.Status.Message = "edited by hand"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.steps(3)
	now, _ := f.srv.Workflow(ns, name)
	if now.Metadata.ResourceVersion != edited.Metadata.ResourceVersion || f.est.Counters().Released != 1 {
		t.Errorf("estate kept driving an edited run (rv %s → %s, released %d)", edited.Metadata.ResourceVersion, now.Metadata.ResourceVersion, f.est.Counters().Released)
	}
	if got := f.est.Active(); got != cfg.ActiveRuns {
		t.Errorf("%d active runs, want the released one replaced (%d)", got, cfg.ActiveRuns)
	}
}

func TestEstateConfigValidation(t *testing.T) {
	tests := map[string]func(*EstateConfig){
		"negative runs":      func(c *EstateConfig) { c.ActiveRuns = -1 },
		"one task":           func(c *EstateConfig) { c.TasksPerRun = 1 },
		"no namespace":       func(c *EstateConfig) { c.Namespaces = nil },
		"bad namespace":      func(c *EstateConfig) { c.Namespaces = []string{"Not Valid"} },
		"sub-second tick":    func(c *EstateConfig) { c.Tick = 1500 * time.Millisecond },
		"share above 1":      func(c *EstateConfig) { c.ChangeShare = 1.5 },
		"negative rate":      func(c *EstateConfig) { c.FailureRate = -0.1 },
		"negative TTL":       func(c *EstateConfig) { c.TTL = -time.Second },
		"negative rounds":    func(c *EstateConfig) { c.InitialRounds = -1 },
		"negative pipelines": func(c *EstateConfig) { c.Pipelines = -2 },
	}
	for name, mutate := range tests {
		cfg := DefaultEstate()
		mutate(&cfg)
		if _, err := NewEstate(NewServer(clock.NewManual(t0), Options{}), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewEstate(NewServer(clock.NewManual(t0), Options{}), DefaultEstate()); err != nil {
		t.Errorf("default estate: %v", err)
	}
}

func TestSyncCatchesUpWithTheClock(t *testing.T) {
	cfg := smallEstate(2)
	f := newEstateFixture(t, cfg, Options{})
	f.clock.Advance(5*cfg.Tick + cfg.Tick/2)
	f.get("/api/v1/workflows/", nil) // the request makes the estate catch up
	if got := f.est.Counters().Steps; got != 5 {
		t.Errorf("%d steps after 5.5 ticks, want 5", got)
	}
	if f.est.Sync() != 0 {
		t.Error("a second Sync at the same time stepped again")
	}
}

func TestEstateArgoRetry(t *testing.T) {
	cfg := smallEstate(13)
	cfg.ManualRetryRate, cfg.RetryDelay, cfg.FailureRate = 1, 2*cfg.Tick, 0.2
	f := newEstateFixture(t, cfg, Options{})
	f.steps(150)
	if c := f.est.Counters(); c.Retried == 0 {
		t.Fatalf("no argo retry: %+v", c)
	}
	retried := retriedUIDs(f.srv)
	type key struct{ uid, node string }
	ends := map[key][]Transition{}
	for _, tr := range f.srv.Transitions() {
		if tr.NodeID != "" && retried[tr.UID] && NodePhase(tr.Phase).Fulfilled() {
			k := key{tr.UID, tr.NodeID}
			ends[k] = append(ends[k], tr)
		}
	}
	twice := 0
	for _, trs := range ends {
		if len(trs) > 1 && trs[0].Phase != trs[1].Phase || len(trs) > 1 && !trs[0].FinishedAt.Equal(trs[1].FinishedAt) {
			twice++
		}
	}
	if twice == 0 {
		t.Error("no node of a retried workflow finished twice")
	}
	live, archived := allWorkflows(f.srv)
	for _, wf := range append(live, archived...) {
		checkInvariants(t, wf, retried[wf.Metadata.UID])
	}
}
