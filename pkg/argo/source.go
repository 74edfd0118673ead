// Package argo reads Argo Workflows through the Argo Server's HTTP API and maps workflows and
// their nodes to FARM's event model. Source implements poll.Source.
//
// What the server is asked, and why:
//   - every workflow still active, with no time bound: labelSelector
//     workflows.argoproj.io/completed!=true;
//   - every completed workflow that started within the window: labelSelector
//     workflows.argoproj.io/completed=true and fieldSelector spec.startedAt>SINCE (plus
//     spec.startedAt<UNTIL for a backfill). Upstream server/utils/list_options.go accepts exactly
//     these two operators on spec.startedAt, parses the value as time.RFC3339, and the stores
//     compare inclusively (startedat >= / <=), so whole seconds rounded outwards lose nothing;
//   - for a backfill, the archive with the same window too (servers before 3.5.7 do not merge it
//     into the list);
//   - runs active at the last poll that are in neither list are fetched one by one (Fetch).
//
// Rows are de-duplicated by uid: offset paging repeats rows when runs start mid-listing.
//
// # Two listings: full, or changed runs only
//
// A full listing carries every row's nodes: its cost is the estate's size, whatever changed. The
// changed-runs listing asks for slim rows (slimFields: identity, resourceVersion, phase, times;
// ~250 bytes) and then GETs, with `fields`, at most FARM_ARGO_FETCH_PARALLELISM at a time and
// retried like every call, only the runs whose fingerprint differs from the index (Load). Both
// give the same fingerprints, so a poll may take either whatever the previous one took.
//
// With FARM_ARGO_LISTING=auto (the default) each poll chooses, from sizes it measured (mean bytes
// of a full row, from full listings and GETs; GetOverhead per GET for the request and its round
// trip):
//
//   - a poll that knows no fingerprint (the first poll, a replay) lists in full;
//   - otherwise it lists slim, counts the n rows and the c whose fingerprint changed, and
//     reads the c runs by GET when c × (full row + GetOverhead) ≤ n × full row, else lists again
//     in full (while no full row was measured yet: when c ≤ n/2);
//   - a full listing keeps the nodes of changed rows only, gzipped until Load, and only up to
//     FullListingBudget bytes of them: past that, its remaining pages are asked for slim and their
//     changed runs are read by GET, so memory stays bounded whatever the estate's size.
package argo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"golang.org/x/sync/errgroup"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
)

// maxPages stops a listing that never ends (a server that keeps returning a continue offset).
const maxPages = 100_000

// Listing is how a poll lists workflows (FARM_ARGO_LISTING).
type Listing string

// Listings.
const (
	// ListingAuto chooses per poll between the two from measured sizes (see the package doc).
	ListingAuto Listing = "auto"
	// ListingFull lists every row with its nodes.
	ListingFull Listing = "full"
	// ListingChanged lists slim rows and GETs the runs whose fingerprint changed.
	ListingChanged Listing = "changed"
)

// GetOverhead is what one GET costs beyond its body, in bytes of a listing: the request, the
// headers and a round trip. It tips the choice towards one full listing when most runs changed.
const GetOverhead = 1 << 10

// FullListingBudget bounds the nodes a full listing keeps for Load, gzipped (about a tenth of
// their JSON: some 60,000 runs of 50 tasks). The rest of the listing goes slim and its changed
// runs are read one by one: a cold poll of any size holds at most this much of them at once.
const FullListingBudget = 96 << 20

// Source is one Argo Server. It is safe for concurrent use.
type Source struct {
	cfg              Config
	api              *httpx.Client
	mapper           Mapper
	log              *slog.Logger
	fetchParallelism int

	listing    Listing
	fullBudget int64         // FullListingBudget (tests lower it)
	gets       chan struct{} // bounds concurrent GETs (Load and Fetch together)
	sizes      sizes

	pending         pendingNodes // listed workflows awaiting Load, by snapshot
	archiveDisabled atomic.Bool  // the server said it has no archive
	legacyWindow    atomic.Bool  // the server cannot filter live workflows by start time
}

// sizes are the measured mean bytes of a listed row, slim and full (the full one also from GETs).
type sizes struct {
	mu         sync.Mutex
	slim, full float64 // 0: not measured yet
}

// observe folds a page or a GET of rows rows and n bytes into a mean that follows the estate.
func observe(mean *float64, n int64, rows int) {
	if rows <= 0 {
		return
	}
	v := float64(n) / float64(rows)
	if *mean == 0 {
		*mean = v
		return
	}
	w := min(float64(rows)/200, 1) * 0.5 // a page of 200 rows moves the mean by half
	*mean += w * (v - *mean)
}

func (z *sizes) observeFull(n int64, rows int) { z.mu.Lock(); observe(&z.full, n, rows); z.mu.Unlock() }
func (z *sizes) observeSlim(n int64, rows int) { z.mu.Lock(); observe(&z.slim, n, rows); z.mu.Unlock() }

func (z *sizes) get() (slim, full float64) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.slim, z.full
}

var (
	_ poll.Source     = (*Source)(nil)
	_ poll.APICounter = (*Source)(nil)
)

// New returns a Source for the Argo Server in cfg. Nothing is dialled until the first call.
func New(cfg Config, deps Deps) (*Source, error) {
	if cfg.URL == nil {
		return nil, errors.New("argo: FARM_ARGO_URL is not set")
	}
	if cfg.Instance == "" {
		cfg.Instance = cfg.URL.Hostname()
	}
	if cfg.UIURL == nil {
		cfg.UIURL = cfg.URL
	}
	if cfg.Listing == "" {
		cfg.Listing = ListingAuto
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("argo: %w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	hopts := []httpx.Option{httpx.WithUserAgent("farm-argo"), httpx.WithLogger(deps.Log), httpx.WithBearerToken(cfg.Token),
		httpx.WithTimeout(cfg.HTTPTimeout), httpx.WithRetries(cfg.HTTPRetries)}
	if deps.Clock != nil {
		hopts = append(hopts, httpx.WithClock(deps.Clock))
	}
	if cfg.TokenFile != "" {
		hopts = append(hopts, httpx.WithTokenFile(cfg.TokenFile))
	}
	if cfg.CAFile != "" {
		hopts = append(hopts, httpx.WithCAFile(cfg.CAFile))
	}
	api, err := httpx.New(cfg.URL, append(hopts, deps.HTTP...)...)
	if err != nil {
		return nil, fmt.Errorf("argo: %w", err)
	}
	return &Source{
		cfg:              cfg,
		api:              api,
		mapper:           Mapper{Instance: cfg.Instance, UIURL: cfg.UIURL, DefaultPodNameFormat: cfg.DefaultPodNameFormat},
		log:              deps.Log,
		fetchParallelism: cfg.FetchParallelism,
		listing:          cfg.Listing,
		fullBudget:       cfg.FullListingBudget,
		gets:             make(chan struct{}, cfg.FetchParallelism),
		pending:          pendingNodes{m: make(map[weak.Pointer[poll.Snapshot]]*Workflow)},
	}, nil
}

// Name identifies the source's state: "argo/" + instance.
func (s *Source) Name() string { return "argo/" + s.cfg.Instance }

// APIStats returns the cumulative API calls and response bytes.
func (s *Source) APIStats() (calls, bytes int64) {
	st := s.api.Stats()
	return st.Calls, st.Bytes
}

// Stats returns the HTTP client's counters, retries included.
func (s *Source) Stats() httpx.Stats { return s.api.Stats() }

// List returns every active workflow and every workflow that started within w, listed in full
// or slim as the package doc says.
func (s *Source) List(ctx context.Context, w poll.Window) ([]*poll.Snapshot, error) {
	if !w.Until.IsZero() && w.Until.Before(w.Since) {
		return nil, fmt.Errorf("argo: window until %s is before since %s", w.Until.Format(time.RFC3339), w.Since.Format(time.RFC3339))
	}
	full := s.listing == ListingFull || (s.listing == ListingAuto && len(w.Known) == 0)
	p := &pass{src: s, known: w.Known, full: full, budget: s.fullBudget, limit: w.Limit}
	set, err := s.listAll(ctx, w, p)
	if err != nil {
		return nil, err
	}
	if !full && s.listing == ListingAuto {
		n, c := len(set.order), p.changed
		if w.Limit > 0 {
			c = min(c, w.Limit) // the poll loads no more
		}
		if slim, row := s.sizes.get(); s.fullCheaper(n, c, row) {
			s.log.DebugContext(ctx, "most listed runs changed: listing again in full", "source", s.Name(),
				"runs", n, "changed", c, "slim_row_bytes", int(slim), "full_row_bytes", int(row))
			p = &pass{src: s, known: w.Known, full: true, budget: s.fullBudget, limit: w.Limit}
			if set, err = s.listAll(ctx, w, p); err != nil {
				return nil, err
			}
		}
	}
	out := make([]*poll.Snapshot, 0, len(set.order))
	for _, uid := range set.order {
		wf := set.byUID[uid]
		delete(set.byUID, uid) // the row goes as its snapshot comes: never all of both at once
		snap := s.snapshot(wf, 0)
		if wf.Status.hasNodeData() {
			// Only rows that carry nodes wait for Load; the others (slim rows, unchanged ones)
			// are read by reference if they must be, and cost nothing more per run meanwhile.
			s.pending.put(snap, wf)
		}
		out = append(out, snap)
	}
	return out, nil
}

// fullCheaper reports whether listing n rows in full costs less than GETting the c that changed,
// given the measured bytes of a full row (0: not measured yet).
func (s *Source) fullCheaper(n, c int, fullRow float64) bool {
	if c == 0 {
		return false
	}
	if fullRow <= 0 {
		return 2*c > n
	}
	return float64(c)*(fullRow+GetOverhead) > float64(n)*fullRow
}

func (s *Source) listAll(ctx context.Context, w poll.Window, p *pass) (*runSet, error) {
	set := newRunSet()
	for _, ns := range s.namespaces() {
		if err := s.listLive(ctx, ns, s.selector(LabelCompleted+"!=true"), "", listFields, false, nil, p, set); err != nil {
			return nil, fmt.Errorf("argo: list active workflows%s: %w", inNamespace(ns), err)
		}
		if err := s.listWindow(ctx, ns, w, p, set); err != nil {
			return nil, fmt.Errorf("argo: list workflows started since %s%s: %w", w.Since.UTC().Format(time.RFC3339), inNamespace(ns), err)
		}
		if w.Backfill {
			if err := s.listArchived(ctx, ns, w, set); err != nil {
				return nil, fmt.Errorf("argo: list archived workflows%s: %w", inNamespace(ns), err)
			}
		}
	}
	return set, nil
}

// pass is one listing of a poll. A full pass keeps the nodes of changed rows until budget is
// spent, then asks for slim pages; the nodes of unchanged rows are dropped at once (they will
// not be loaded).
type pass struct {
	src     *Source
	known   state.Index
	full    bool
	budget  int64
	limit   int // the most changed runs the poll loads (0: all): later ones keep no nodes
	changed int // rows whose fingerprint the index does not know
}

// fields is what to ask a page for: fullFields, or slim rows once the pass is slim.
func (p *pass) fields(fullFields string) string {
	if p.full {
		return fullFields
	}
	return slimFields
}

// isChanged applies the engine's rule: a run is loaded unless the index holds its fingerprint.
func (p *pass) isChanged(wf *Workflow) bool {
	if len(p.known) == 0 {
		return true
	}
	e, ok := p.known[p.src.key(wf)]
	return !ok || e.Fingerprint != Fingerprint(wf, 0)
}

// page accounts for one decoded page, asked with fields, of size bytes.
func (p *pass) page(items []*Workflow, fields string, size int64, completed bool) {
	if fields == slimFields {
		p.src.sizes.observeSlim(size, len(items))
	} else if fields == listFields {
		p.src.sizes.observeFull(size, len(items))
	}
	for _, wf := range items {
		if fields == slimFields && completed && wf.Metadata.Labels == nil {
			// The listing's selector says what the slim row leaves out.
			wf.Metadata.Labels = map[string]string{LabelCompleted: "true"}
		}
		if !p.isChanged(wf) {
			wf.Status.Nodes, wf.Status.CompressedNodes = nil, ""
			continue
		}
		p.changed++
		if p.limit > 0 && p.changed > p.limit {
			// Listed after the runs the poll will load: its next poll reads them again.
			wf.Status.Nodes, wf.Status.CompressedNodes = nil, ""
			if p.full {
				p.full = false
				p.src.log.Info("the listing holds more changed runs than the poll loads: the rest of the listing is slim",
					"source", p.src.Name(), "limit", p.limit)
			}
			continue
		}
		if fields == listFields {
			wf.Status.pack()
			p.budget -= int64(len(wf.Status.packed) + len(wf.Status.CompressedNodes))
			if p.budget <= 0 && p.full {
				p.full = false
				p.src.log.Info("full listing reached its node budget: the rest of the listing is slim, its changed runs are read one by one",
					"source", p.src.Name(), "budget_bytes", p.src.fullBudget)
			}
		}
	}
}

// key is the engine's key of a workflow's run (event.Run.Key).
func (s *Source) key(wf *Workflow) string {
	return event.SourceArgo + "/" + s.cfg.Instance + "/" + wf.Metadata.Namespace + "/" + wf.Metadata.UID
}

// namespaces returns the configured namespaces; "" lists all of them.
func (s *Source) namespaces() []string {
	if len(s.cfg.Namespaces) == 0 {
		return []string{""}
	}
	return s.cfg.Namespaces
}

func inNamespace(ns string) string {
	if ns == "" {
		return " in all namespaces"
	}
	return " in namespace " + ns
}

// selector combines a requirement with the configured label selector.
func (s *Source) selector(req string) string {
	if s.cfg.LabelSelector == "" {
		return req
	}
	return req + "," + s.cfg.LabelSelector
}

// listWindow lists completed workflows that started within w. Active ones are not asked for
// again: the active listing has them all.
func (s *Source) listWindow(ctx context.Context, ns string, w poll.Window, p *pass, set *runSet) error {
	label := s.selector(LabelCompleted + "=true")
	if !s.legacyWindow.Load() {
		err := s.listLive(ctx, ns, label, windowSelector(w), listFields, true, nil, p, set)
		if !fieldSelectorUnsupported(err) {
			return err
		}
		s.legacyWindow.Store(true)
		s.log.WarnContext(ctx, "the Argo Server cannot filter workflows by start time (older than 3.5.7): listing completed workflows unfiltered and filtering here", "source", s.Name(), "error", err)
	}
	// Most rows fall outside the window: leave their nodes on the server, Load GETs the few kept.
	return s.listLive(ctx, ns, label, "", listFieldsNoNodes, true, inWindow(w), p, set)
}

// windowSelector is the field selector of w: inclusive on the server, so since is rounded down and
// until up to whole seconds (the server parses time.RFC3339).
func windowSelector(w poll.Window) string {
	var parts []string
	if !w.Since.IsZero() {
		parts = append(parts, "spec.startedAt>"+w.Since.UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	if w.Backfill && !w.Until.IsZero() {
		u := w.Until.UTC()
		if t := u.Truncate(time.Second); t.Before(u) {
			u = t.Add(time.Second)
		}
		parts = append(parts, "spec.startedAt<"+u.Format(time.RFC3339))
	}
	return strings.Join(parts, ",")
}

// inWindow is windowSelector applied here, for servers that cannot apply it.
func inWindow(w poll.Window) func(*Workflow) bool {
	return func(wf *Workflow) bool {
		t := wf.Status.StartedAt.Time
		if t.IsZero() || t.Before(w.Since.Truncate(time.Second)) {
			return false
		}
		return !w.Backfill || w.Until.IsZero() || !t.After(w.Until)
	}
}

// listLive pages through GET /api/v1/workflows/{ns}, adding rows that keep accepts (nil: all).
// fullFields is what a full page asks for; completed says the selector asks for completed rows.
func (s *Source) listLive(ctx context.Context, ns, labels, fieldSel, fullFields string, completed bool, keep func(*Workflow) bool, p *pass, set *runSet) error {
	q := url.Values{}
	if labels != "" {
		q["listOptions.labelSelector"] = []string{labels}
	}
	if fieldSel != "" {
		q["listOptions.fieldSelector"] = []string{fieldSel}
	}
	return s.paginate(ctx, pathWorkflows+url.PathEscape(ns), q, keep, set, func(q url.Values) func([]*Workflow, int64) {
		fields := p.fields(fullFields)
		q.Set("fields", fields)
		return func(items []*Workflow, size int64) { p.page(items, fields, size, completed) }
	})
}

// listArchived pages through GET /api/v1/archived-workflows for w. The namespace goes in the field
// selector, which every archive-capable server accepts (the namespace parameter came later).
func (s *Source) listArchived(ctx context.Context, ns string, w poll.Window, set *runSet) error {
	var fields []string
	if ns != "" {
		fields = append(fields, "metadata.namespace="+ns)
	}
	if sel := windowSelector(w); sel != "" {
		fields = append(fields, sel)
	}
	q := url.Values{}
	if s.cfg.LabelSelector != "" {
		q["listOptions.labelSelector"] = []string{s.cfg.LabelSelector}
	}
	if len(fields) > 0 {
		q["listOptions.fieldSelector"] = []string{strings.Join(fields, ",")}
	}
	return s.paginate(ctx, pathArchived, q, nil, set, nil)
}

// paginate reads every page of path. perPage, when set, adjusts each page's query before it is
// sent and returns what to do with the rows the page keeps.
//
// With integer offsets each page starts one row early, at the previous page's last row in paging
// order, so it must hold a row of the previous page (which one is not known: the server sorts a
// page's rows its own way). If it does, no row was skipped: new runs only shift rows down, and
// repeats are removed by uid. If it does not, rows shifted up (a run deleted mid-listing) and the
// page is read again from further back, the distance doubling until a row of the previous page
// is found or the whole previous page is re-read. The guard costs one row a page unless a shift
// happened.
func (s *Source) paginate(ctx context.Context, path string, q url.Values, keep func(*Workflow) bool, set *runSet,
	perPage func(url.Values) func([]*Workflow, int64)) error {
	q["listOptions.limit"] = []string{strconv.Itoa(s.cfg.PageSize)}
	var pg pager
	for range maxPages {
		if pg.cont != "" {
			q["listOptions.continue"] = []string{pg.cont}
		}
		var onPage func([]*Workflow, int64)
		if perPage != nil {
			onPage = perPage(q)
		}
		items, next, size, err := s.listPage(ctx, path, q)
		if err != nil {
			return err
		}
		shifted := pg.shifted(items)
		uids := make([]string, len(items))
		for i, wf := range items {
			uids[i] = wf.Metadata.UID
		}
		if keep != nil {
			items = slices.DeleteFunc(items, func(wf *Workflow) bool { return !keep(wf) })
		}
		if onPage != nil {
			onPage(items, size)
		}
		for _, wf := range items {
			if err := set.add(wf); err != nil {
				return err
			}
		}
		if shifted {
			pg.back() // the rows read are real, but some before them may have been skipped
			continue
		}
		if next == "" {
			return nil
		}
		if err := pg.advance(next, uids, s.cfg.PageSize); err != nil {
			return err
		}
	}
	return fmt.Errorf("listing did not end after %d pages", maxPages)
}

// pager is where a listing stands: the continue value to send, and for integer offsets the rows
// of the previous page, one of which the page must hold (see paginate).
type pager struct {
	cont    string
	anchors map[string]bool // uids of the previous page; nil checks nothing
	prev    int             // offset of the previous page
	at      int             // the offset asked, before any step back
	step    int             // how far back the next re-read goes
}

// shifted reports whether the page holds no row of the previous one.
func (p *pager) shifted(items []*Workflow) bool {
	if p.anchors == nil {
		return false
	}
	for _, wf := range items {
		if p.anchors[wf.Metadata.UID] {
			p.anchors = nil // found: the page is complete
			return false
		}
	}
	return true
}

// back sets the next re-read further back, at most to the row after the previous page's first.
func (p *pager) back() {
	off := max(p.at-p.step, p.prev+1)
	if off <= p.prev+1 {
		p.anchors = nil // the whole previous page is re-read: nothing can be skipped before it
	}
	p.step *= 2
	p.cont = strconv.Itoa(off)
}

// advance sets the continue value for the page after the one just read, given the server's next
// and the uids of the page's rows. Argo 3.5.7+ continues by integer offset over rows ordered
// by start time, newest first; older servers send opaque Kubernetes tokens, passed back
// untouched.
func (p *pager) advance(next string, uids []string, limit int) error {
	n, errN := strconv.Atoi(next)
	c := 0
	if p.cont != "" {
		var err error
		if c, err = strconv.Atoi(p.cont); err != nil {
			c = -1
		}
	}
	if errN != nil || c < 0 {
		if next == p.cont {
			return fmt.Errorf("server returned the same continue token %q again", next)
		}
		p.cont, p.anchors = next, nil
		return nil
	}
	if n <= c {
		return fmt.Errorf("server's continue offset %d does not advance past %d", n, c)
	}
	p.prev, p.anchors, p.at, p.step = c, nil, n, 2
	if limit > 1 && len(uids) > 0 && n-1 > c {
		p.anchors, p.at = make(map[string]bool, len(uids)), n-1
		for _, uid := range uids {
			p.anchors[uid] = true
		}
	}
	p.cont = strconv.Itoa(p.at)
	return nil
}

// snapshot maps a workflow; nodeCount only matters for rows without a resourceVersion.
func (s *Source) snapshot(wf *Workflow, nodeCount int) *poll.Snapshot {
	return &poll.Snapshot{
		Run:         s.mapper.Run(wf),
		Ref:         Ref(wf),
		Fingerprint: Fingerprint(wf, nodeCount),
		Active:      Active(wf),
	}
}

// Fetch GETs runs by reference ("namespace/name/uid"): live by name, else from the archive by
// uid. Runs found in neither are left out. The snapshots come back loaded.
func (s *Source) Fetch(ctx context.Context, refs []string) ([]*poll.Snapshot, error) {
	type target struct{ ns, name, uid string }
	targets := make([]target, len(refs))
	for i, ref := range refs {
		ns, name, uid, err := parseRef(ref)
		if err != nil {
			return nil, err
		}
		targets[i] = target{ns, name, uid}
	}
	out := make([]*poll.Snapshot, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.fetchParallelism)
	for i, ref := range refs {
		g.Go(func() error {
			wf, err := s.getFull(gctx, targets[i].ns, targets[i].name, targets[i].uid)
			if err != nil || wf == nil {
				return err
			}
			nodes, err := decodeNodesOf(wf)
			if err != nil {
				return fmt.Errorf("argo: workflow %s: %w", ref, err)
			}
			snap := s.snapshot(wf, len(nodes))
			snap.Tasks, snap.Loaded = s.mapper.Tasks(wf, nodes), true
			out[i] = snap
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	found := out[:0]
	for _, snap := range out {
		if snap != nil {
			found = append(found, snap)
		}
	}
	return found, nil
}

func parseRef(ref string) (ns, name, uid string, err error) {
	parts := strings.Split(ref, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("argo: reference %q is not namespace/name/uid", ref)
	}
	return parts[0], parts[1], parts[2], nil
}

// getFull returns the workflow with its nodes: live by name, else archived by uid; nil when it
// exists in neither place.
func (s *Source) getFull(ctx context.Context, ns, name, uid string) (*Workflow, error) {
	wf, err := s.getWorkflow(ctx, ns, name, uid)
	if err != nil || wf != nil {
		return wf, wrapGet(err, ns, name)
	}
	wf, err = s.getArchived(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("argo: get archived workflow %s (%s/%s): %w", uid, ns, name, err)
	}
	return wf, nil
}

// acquireGet waits for a free slot among the FARM_ARGO_FETCH_PARALLELISM GETs.
func (s *Source) acquireGet(ctx context.Context) error {
	select {
	case s.gets <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Source) releaseGet() { <-s.gets }

func wrapGet(err error, ns, name string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("argo: get workflow %s/%s: %w", ns, name, err)
}

// Load fills s.Tasks. Nodes listed with the run are decoded now, only because its fingerprint
// changed; a run listed without nodes (archived rows from Argo 3.5.7 on, offloaded nodes the
// server did not rebuild) is fetched by name, then from the archive.
func (s *Source) Load(ctx context.Context, snap *poll.Snapshot) error {
	wf := s.pending.take(snap)
	mustGet := wf == nil // listed without nodes, or not by this source: find it by reference
	if mustGet && !snapMayHaveNodes(snap) {
		snap.Tasks, snap.Loaded = nil, true // not started yet: no node to read
		return nil
	}
	if mustGet {
		ns, name, uid, err := parseRef(snap.Ref)
		if err != nil {
			return err
		}
		wf = &Workflow{Metadata: ObjectMeta{Namespace: ns, Name: name, UID: uid}}
	}
	if mustGet || (!wf.Status.hasNodeData() && mayHaveNodes(wf)) {
		full, err := s.getFull(ctx, wf.Metadata.Namespace, wf.Metadata.Name, wf.Metadata.UID)
		if err != nil {
			return err
		}
		if full == nil {
			s.log.WarnContext(ctx, "workflow vanished between listing and loading", "source", s.Name(), "run", snap.Ref)
			snap.Tasks, snap.Loaded = nil, true
			return nil
		}
		// The full workflow says more than an archive summary (which has no generateName, so no
		// pipeline), so the run is published as it says. The fingerprint stays the listed one:
		// it is what the next listing will be compared with.
		wf = full
		snap.Run, snap.Active = s.mapper.Run(wf), Active(wf)
	}
	nodes, err := decodeNodesOf(wf)
	if err != nil {
		return fmt.Errorf("argo: workflow %s: %w", snap.Ref, err)
	}
	snap.Tasks, snap.Loaded = s.mapper.Tasks(wf, nodes), true
	return nil
}

// snapMayHaveNodes is mayHaveNodes of a listed row kept only as its snapshot.
func snapMayHaveNodes(snap *poll.Snapshot) bool {
	p := snap.Run.Phase
	return (p != "" && p != "Pending") || snap.Run.StartedAt != nil
}

// mayHaveNodes: a workflow not yet started has no nodes to fetch; any other one does.
func mayHaveNodes(wf *Workflow) bool {
	p := wf.Status.Phase
	return wf.Status.OffloadNodeStatusVersion != "" || (p != "" && p != "Pending") || !wf.Status.StartedAt.IsZero()
}

// decodeNodesOf decodes the workflow's nodes; a workflow without any has no tasks yet.
func decodeNodesOf(wf *Workflow) (map[string]Node, error) {
	nodes, err := wf.Status.DecodeNodes()
	if errors.Is(err, errNoNodes) {
		return nil, nil
	}
	return nodes, err
}

// runSet collects listed workflows by uid, in first-seen order.
type runSet struct {
	byUID map[string]*Workflow
	order []string
}

func newRunSet() *runSet { return &runSet{byUID: make(map[string]*Workflow)} }

// add keeps the later row of a uid seen twice (it was read later, so it is at least as fresh),
// unless it lacks the nodes the earlier row had for the same phase (an archive summary of a row
// already listed in full).
func (rs *runSet) add(wf *Workflow) error {
	uid := wf.Metadata.UID
	if uid == "" {
		return fmt.Errorf("workflow %s/%s was listed without metadata.uid", wf.Metadata.Namespace, wf.Metadata.Name)
	}
	prev, seen := rs.byUID[uid]
	if !seen {
		rs.order = append(rs.order, uid)
	} else if prev.Status.hasNodeData() && !wf.Status.hasNodeData() && prev.Status.Phase == wf.Status.Phase {
		return nil
	}
	rs.byUID[uid] = wf
	return nil
}

// pendingNodes remembers each listed workflow until Load takes it, keyed weakly by its snapshot:
// when the engine drops a snapshot it never loaded (its run did not change), the workflow and its
// raw nodes go with it instead of staying until the next List.
type pendingNodes struct {
	mu sync.Mutex
	m  map[weak.Pointer[poll.Snapshot]]*Workflow
}

func (p *pendingNodes) put(snap *poll.Snapshot, wf *Workflow) {
	key := weak.Make(snap)
	p.mu.Lock()
	p.m[key] = wf
	p.mu.Unlock()
	runtime.AddCleanup(snap, p.drop, key)
}

func (p *pendingNodes) take(snap *poll.Snapshot) *Workflow {
	key := weak.Make(snap)
	p.mu.Lock()
	defer p.mu.Unlock()
	wf := p.m[key]
	delete(p.m, key)
	return wf
}

func (p *pendingNodes) drop(key weak.Pointer[poll.Snapshot]) {
	p.mu.Lock()
	delete(p.m, key)
	p.mu.Unlock()
}

func (p *pendingNodes) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
