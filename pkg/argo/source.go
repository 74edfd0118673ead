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
package argo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"golang.org/x/sync/errgroup"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
)

// maxPages stops a listing that never ends (a server that keeps returning a continue offset).
const maxPages = 100_000

// Source is one Argo Server. It is safe for concurrent use.
type Source struct {
	cfg              config.Argo
	api              *httpx.Client
	mapper           Mapper
	log              *slog.Logger
	fetchParallelism int

	pending         pendingNodes // listed workflows awaiting Load, by snapshot
	archiveDisabled atomic.Bool  // the server said it has no archive
	legacyWindow    atomic.Bool  // the server cannot filter live workflows by start time
}

var (
	_ poll.Source     = (*Source)(nil)
	_ poll.APICounter = (*Source)(nil)
)

type options struct {
	http             []httpx.Option
	log              *slog.Logger
	fetchParallelism int
	podNameFormat    string
}

// Option configures a Source.
type Option func(*options)

// WithHTTPClient sends requests through hc (tests, or a custom transport stack).
func WithHTTPClient(hc *http.Client) Option { return WithHTTPOptions(httpx.WithHTTPClient(hc)) }

// WithTransport sends requests through rt.
func WithTransport(rt http.RoundTripper) Option { return WithHTTPOptions(httpx.WithTransport(rt)) }

// WithClock sets the clock (Retry-After dates).
func WithClock(c clock.Clock) Option { return WithHTTPOptions(httpx.WithClock(c)) }

// WithSleep replaces the wait between retries, so tests do not wait.
func WithSleep(fn httpx.SleepFunc) Option { return WithHTTPOptions(httpx.WithSleep(fn)) }

// WithTokenFile re-reads the bearer token from path before every request (a Kubernetes projected
// service-account token rotates). It takes precedence over config.Argo.Token.
func WithTokenFile(path string) Option { return WithHTTPOptions(httpx.WithTokenFile(path)) }

// WithHTTPOptions passes options to the underlying httpx client.
func WithHTTPOptions(opts ...httpx.Option) Option {
	return func(o *options) { o.http = append(o.http, opts...) }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithFetchParallelism bounds concurrent GETs in Fetch (default 4).
func WithFetchParallelism(n int) Option { return func(o *options) { o.fetchParallelism = n } }

// WithDefaultPodNameFormat is the controller's POD_NAMES ("v1" or "v2", Argo's default), used for
// workflows that lack the pod-name-format annotation.
func WithDefaultPodNameFormat(v string) Option { return func(o *options) { o.podNameFormat = v } }

// New returns a Source for the Argo Server in cfg. Nothing is dialled until the first call.
func New(cfg config.Argo, common config.Common, opts ...Option) (*Source, error) {
	if cfg.URL == nil {
		return nil, errors.New("argo: FARM_ARGO_URL is not set")
	}
	if cfg.Instance == "" {
		return nil, errors.New("argo: instance name is empty (FARM_ARGO_INSTANCE)")
	}
	if cfg.PageSize < 1 {
		return nil, fmt.Errorf("argo: page size must be positive, got %d", cfg.PageSize)
	}
	o := options{log: slog.Default(), fetchParallelism: 4}
	for _, opt := range opts {
		opt(&o)
	}
	if o.fetchParallelism < 1 {
		return nil, fmt.Errorf("argo: fetch parallelism must be positive, got %d", o.fetchParallelism)
	}
	if f := o.podNameFormat; f != "" && f != "v1" && f != "v2" {
		return nil, fmt.Errorf("argo: pod name format %q is not v1 or v2", f)
	}
	hopts := []httpx.Option{httpx.WithUserAgent("farm-argo"), httpx.WithLogger(o.log), httpx.WithBearerToken(cfg.Token)}
	if common.HTTPTimeout > 0 {
		hopts = append(hopts, httpx.WithTimeout(common.HTTPTimeout))
	}
	hopts = append(hopts, httpx.WithRetries(common.HTTPRetries))
	if cfg.CAFile != "" {
		hopts = append(hopts, httpx.WithCAFile(cfg.CAFile))
	}
	api, err := httpx.New(cfg.URL, append(hopts, o.http...)...)
	if err != nil {
		return nil, fmt.Errorf("argo: %w", err)
	}
	return &Source{
		cfg:              cfg,
		api:              api,
		mapper:           Mapper{Instance: cfg.Instance, UIURL: cfg.UIURL, DefaultPodNameFormat: o.podNameFormat},
		log:              o.log,
		fetchParallelism: o.fetchParallelism,
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

// List returns every active workflow and every workflow that started within w.
func (s *Source) List(ctx context.Context, w poll.Window) ([]*poll.Snapshot, error) {
	if !w.Until.IsZero() && w.Until.Before(w.Since) {
		return nil, fmt.Errorf("argo: window until %s is before since %s", w.Until.Format(time.RFC3339), w.Since.Format(time.RFC3339))
	}
	set := newRunSet()
	for _, ns := range s.namespaces() {
		if err := s.listLive(ctx, ns, s.selector(LabelCompleted+"!=true"), "", listFields, nil, set); err != nil {
			return nil, fmt.Errorf("argo: list active workflows%s: %w", inNamespace(ns), err)
		}
		if err := s.listWindow(ctx, ns, w, set); err != nil {
			return nil, fmt.Errorf("argo: list workflows started since %s%s: %w", w.Since.UTC().Format(time.RFC3339), inNamespace(ns), err)
		}
		if w.Backfill {
			if err := s.listArchived(ctx, ns, w, set); err != nil {
				return nil, fmt.Errorf("argo: list archived workflows%s: %w", inNamespace(ns), err)
			}
		}
	}
	out := make([]*poll.Snapshot, 0, len(set.order))
	for _, uid := range set.order {
		wf := set.byUID[uid]
		snap := s.snapshot(wf, 0)
		s.pending.put(snap, wf)
		out = append(out, snap)
	}
	return out, nil
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
func (s *Source) listWindow(ctx context.Context, ns string, w poll.Window, set *runSet) error {
	label := s.selector(LabelCompleted + "=true")
	if !s.legacyWindow.Load() {
		err := s.listLive(ctx, ns, label, windowSelector(w), listFields, nil, set)
		if !fieldSelectorUnsupported(err) {
			return err
		}
		s.legacyWindow.Store(true)
		s.log.WarnContext(ctx, "the Argo Server cannot filter workflows by start time (older than 3.5.7): listing completed workflows unfiltered and filtering here", "source", s.Name(), "error", err)
	}
	// Most rows fall outside the window: leave their nodes on the server, Load GETs the few kept.
	return s.listLive(ctx, ns, label, "", listFieldsNoNodes, inWindow(w), set)
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
func (s *Source) listLive(ctx context.Context, ns, labels, fieldSel, fields string, keep func(*Workflow) bool, set *runSet) error {
	q := url.Values{"fields": {fields}}
	if labels != "" {
		q["listOptions.labelSelector"] = []string{labels}
	}
	if fieldSel != "" {
		q["listOptions.fieldSelector"] = []string{fieldSel}
	}
	return s.paginate(ctx, pathWorkflows+url.PathEscape(ns), q, keep, set)
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
	return s.paginate(ctx, pathArchived, q, nil, set)
}

func (s *Source) paginate(ctx context.Context, path string, q url.Values, keep func(*Workflow) bool, set *runSet) error {
	q["listOptions.limit"] = []string{strconv.Itoa(s.cfg.PageSize)}
	cont := ""
	for range maxPages {
		if cont != "" {
			q["listOptions.continue"] = []string{cont}
		}
		items, next, err := s.listPage(ctx, path, q)
		if err != nil {
			return err
		}
		for _, wf := range items {
			if keep != nil && !keep(wf) {
				continue
			}
			if err := set.add(wf); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		if cont, err = nextContinue(cont, next, s.cfg.PageSize); err != nil {
			return err
		}
	}
	return fmt.Errorf("listing did not end after %d pages", maxPages)
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
	mustGet := wf == nil // not from this source's List: find it by reference
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
