package argosim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SimulatorHeader is set on every answer so nobody mistakes the simulator for a real Argo Server.
const SimulatorHeader = "X-Farm-Simulator"

// Version is what GET /api/v1/version reports: the Argo version whose behaviour is simulated,
// with build metadata saying it is a simulation.
const Version = "v3.7.18+farm-simulator"

type route struct {
	ep        Endpoint
	namespace string
	name      string // workflow name, or archived uid
}

// parseRoute maps a path to an endpoint. An empty namespace lists every namespace.
func parseRoute(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return route{ep: EndpointOther}, false
	}
	parts := strings.Split(rest, "/")
	switch {
	case parts[0] == "workflows" && len(parts) <= 2:
		r := route{ep: EndpointList}
		if len(parts) == 2 {
			r.namespace = parts[1]
		}
		return r, true
	case parts[0] == "workflows" && len(parts) == 3 && parts[1] != "" && parts[2] != "":
		return route{ep: EndpointGet, namespace: parts[1], name: parts[2]}, true
	case parts[0] == "archived-workflows" && (len(parts) == 1 || len(parts) == 2 && parts[1] == ""):
		return route{ep: EndpointArchivedList}, true
	case parts[0] == "archived-workflows" && len(parts) == 2:
		return route{ep: EndpointArchivedGet, name: parts[1]}, true
	case rest == "version":
		return route{ep: EndpointOther, name: "version"}, true
	}
	return route{ep: EndpointOther}, false
}

// countingWriter counts body bytes and remembers the status.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// ServeHTTP answers the Argo Server endpoints FARM reads.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, known := parseRoute(r.URL.Path)
	cw := &countingWriter{ResponseWriter: w}
	cw.Header().Set(SimulatorHeader, "argo")
	defer func() {
		c := s.stats.get(rt.ep)
		c.calls.Add(1)
		c.bytes.Add(cw.n)
		if cw.status == 0 || cw.status >= 400 {
			c.errors.Add(1)
		}
	}()
	s.beforeRequest()
	if f, ok := s.faults.take(rt.ep); ok {
		s.serveFault(cw, r, rt, f)
		return
	}
	if r.URL.Path == "/" { // the UI's place: say what this is
		cw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = cw.Write([]byte(Banner + "\n"))
		return
	}
	if s.opts.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
		writeError(cw, errUnauthenticated)
		return
	}
	switch {
	case !known:
		http.Error(cw, "Not Found", http.StatusNotFound)
	case r.Method != http.MethodGet:
		http.Error(cw, "Method Not Allowed", http.StatusMethodNotAllowed)
	case rt.ep == EndpointList:
		s.serveList(cw, r, rt.namespace)
	case rt.ep == EndpointGet:
		s.serveGet(cw, r, rt.namespace, rt.name)
	case rt.ep == EndpointArchivedList:
		s.serveArchivedList(cw, r)
	case rt.ep == EndpointArchivedGet:
		s.serveArchivedGet(cw, rt.name)
	default:
		writeJSON(cw, versionInfo)
	}
}

var versionInfo = map[string]string{
	"version":      Version,
	"buildDate":    "simulated",
	"gitCommit":    "simulated",
	"gitTag":       Version,
	"gitTreeState": "simulated",
	"goVersion":    "simulated",
	"compiler":     "gc",
	"platform":     "farm/argosim",
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.httpStatus())
	b, _ := json.Marshal(e)
	_, _ = w.Write(b)
}

// asAPIError returns err as the gRPC status it carries; anything else is Internal.
func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	return errorf(codeInternal, "%v", err)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errorf(codeInternal, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// page is one answer of the list endpoint: live rows first, then archived rows.
type page struct {
	at       time.Time // the instant the page reflects: read with the rows, under the lock
	meta     ListMeta
	live     []*record
	archived []*record
}

// byStartedDesc orders rows like the stores' "order by startedat desc".
func byStartedDesc(a, b *record) int {
	if c := b.wf.Status.StartedAt.Compare(a.wf.Status.StartedAt.Time); c != 0 {
		return c
	}
	if c := b.wf.Metadata.CreationTimestamp.Compare(a.wf.Metadata.CreationTimestamp.Time); c != 0 {
		return c
	}
	return strings.Compare(a.wf.Metadata.UID, b.wf.Metadata.UID)
}

// listPage selects one page the way workflow_server.go ListWorkflows does: the live store
// (without workflows labelled Archived) and the archive are counted and paged as one sequence,
// live rows first, each ordered by startedAt descending, with an integer offset.
func (s *Server) listPage(o listOptions) page {
	s.mu.RLock()
	defer s.mu.RUnlock()
	live, archived := s.selectLocked(o)
	p := page{at: s.clock.Now(), meta: ListMeta{ResourceVersion: strconv.FormatInt(s.rv, 10)}}
	nLive, total := len(live), len(live)+len(archived)
	if o.limit == 0 {
		// No limit: every row, and the offset is ignored (upstream passes "limit -1 offset -1").
		p.live, p.archived = live, archived
	} else {
		if o.offset < nLive {
			p.live = live[o.offset:min(o.offset+o.limit, nLive)]
		}
		if o.offset+o.limit > nLive {
			aOff, aLim := o.offset-nLive, o.limit
			if aOff < 0 {
				aOff, aLim = 0, o.limit-len(p.live)
			}
			p.archived = archived[min(aOff, len(archived)):min(aOff+aLim, len(archived))]
		}
	}
	n := len(p.live) + len(p.archived)
	remaining := int64(max(total-o.offset-n, 0))
	if remaining > 0 {
		p.meta.Continue = strconv.Itoa(o.offset + n)
	}
	if o.showRemaining {
		p.meta.RemainingItemCount = &remaining
	}
	return p
}

// listCache keeps the rows of the last listing until the next write, so that paging through
// an estate neither sorts nor filters it once per page.
type listCache struct {
	mu                sync.Mutex
	orderAt           int64     // Server.writes when live and archived were sorted
	live, archived    []*record // by startedAt descending
	selKey            string    // the last selection, see selectLocked
	selAt             int64
	selLive, selArchd []*record
}

// orderLocked returns the live and archived records by startedAt descending (caller holds
// s.mu for reading, so records cannot change underneath, and s.cache.mu).
func (s *Server) orderLocked() (live, archived []*record) {
	c := &s.cache
	if c.live == nil || c.orderAt != s.writes {
		c.live = slices.SortedFunc(maps.Values(s.live), byStartedDesc)
		c.archived = slices.SortedFunc(maps.Values(s.archive), byStartedDesc)
		c.orderAt = s.writes
	}
	return c.live, c.archived
}

// selectLocked returns the live rows (without workflows labelled Archived) and the archived
// rows that match o, in listing order.
func (s *Server) selectLocked(o listOptions) (live, archived []*record) {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	key := o.filterKey()
	if c.selKey == key && c.selAt == s.writes {
		return c.selLive, c.selArchd
	}
	liveOrder, archOrder := s.orderLocked()
	for _, r := range liveOrder {
		if r.wf.Metadata.Labels[LabelArchivingStatus] != ArchivingArchived && o.matchesLive(&r.wf) {
			live = append(live, r)
		}
	}
	for _, r := range archOrder {
		if o.matchesArchived(&r.wf) {
			archived = append(archived, r)
		}
	}
	c.selKey, c.selAt, c.selLive, c.selArchd = key, s.writes, live, archived
	return live, archived
}

// item is one row of a page, before encoding.
type item struct {
	rec      *record
	archived bool
}

// workflowLess is upstream's per-page sort (Workflows.Less): unfinished workflows first, newest
// created first; then finished ones, latest finished first.
func workflowLess(a, b *Workflow) int {
	af, bf := a.Status.FinishedAt, b.Status.FinishedAt
	switch {
	case af.IsZero() && bf.IsZero():
		return b.Metadata.CreationTimestamp.Compare(a.Metadata.CreationTimestamp.Time)
	case af.IsZero():
		return -1
	case bf.IsZero():
		return 1
	}
	return bf.Compare(af.Time)
}

func (s *Server) serveList(w *countingWriter, r *http.Request, namespace string) {
	q := r.URL.Query()
	o, err := parseListOptions(q, namespace, "", q.Get("nameFilter"))
	if err != nil {
		writeError(w, asAPIError(err))
		return
	}
	s.beforeList(namespace, o)
	p := s.listPage(o)
	items := make([]item, 0, len(p.live)+len(p.archived))
	for _, r := range p.live {
		items = append(items, item{rec: r})
	}
	for _, r := range p.archived {
		items = append(items, item{rec: r, archived: true})
	}
	slices.SortStableFunc(items, func(a, b item) int { return workflowLess(&a.rec.wf, &b.rec.wf) })
	s.streamList(w, p.at, p.meta, items, parseFields(q.Get("fields")))
}

// streamList writes the list answer one item at a time, so a page of large workflows is never
// held in memory as a whole.
func (s *Server) streamList(w http.ResponseWriter, at time.Time, meta ListMeta, items []item, f fieldFilter) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	metaOut := &meta
	itemsAct := actKeep
	if f.active() {
		if act := f.decide("metadata"); act == actDrop {
			metaOut = &ListMeta{}
		} else if act == actDescend {
			metaOut = trim(f, "metadata", &meta)
		}
		itemsAct = f.decide("items")
	}
	mb, _ := json.Marshal(metaOut)
	bw.WriteString(`{"metadata":`)
	bw.Write(mb)
	bw.WriteString(`,"items":`)
	if len(items) == 0 || itemsAct == actDrop {
		bw.WriteString("null}")
		_ = bw.Flush()
		return
	}
	itemFilter := f
	if itemsAct == actKeep {
		itemFilter = fieldFilter{}
	}
	attachOffloaded := !f.willExclude("items.status.nodes")
	// One encoder over a reused buffer: Encode appends a newline, which is cut so that the
	// bytes are exactly json.Marshal's, as upstream.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	bw.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			bw.WriteByte(',')
		}
		var wf *Workflow
		if it.archived {
			wf = archivedSummary(it.rec)
		} else {
			wf = s.listView(it.rec, attachOffloaded)
		}
		wf = trim(itemFilter, "items", wf)
		buf.Reset()
		if err := enc.Encode(wf); err != nil {
			break // cannot happen with the simulator's types; the client sees truncated JSON
		}
		bw.Write(buf.Bytes()[:buf.Len()-1])
		s.markServed(it.rec, wf, at)
	}
	bw.WriteString("]}")
	_ = bw.Flush()
}

// listView is a live workflow as the list endpoint shows it: compressed nodes stay compressed;
// offloaded nodes are re-attached unless `fields` excludes them (the version field stays).
func (s *Server) listView(r *record, attachOffloaded bool) *Workflow {
	wf := r.wf
	switch r.storage {
	case StoragePlain:
		wf.Status.Nodes = r.nodes()
	case StorageCompressed:
		wf.Status.CompressedNodes, _ = r.compressedNodes()
	case StorageOffloaded:
		if attachOffloaded {
			wf.Status.Nodes = r.nodes()
		}
	}
	return &wf
}

// hydratedView is a workflow as GET shows it: nodes rebuilt, whatever the storage.
func hydratedView(r *record) *Workflow {
	wf := r.wf
	wf.Status.Nodes = r.nodes()
	wf.Status.OffloadNodeStatusVersion = ""
	return &wf
}

// rawView is a workflow as stored, for a GET whose `fields` excludes status.nodes (the server
// then skips hydration, so a compressed workflow still shows compressedNodes).
func rawView(r *record) *Workflow {
	wf := r.wf
	switch r.storage {
	case StoragePlain:
		wf.Status.Nodes = r.nodes()
	case StorageCompressed:
		wf.Status.CompressedNodes, _ = r.compressedNodes()
	}
	return &wf
}

// archivedSummary is an archived workflow as the archive's list query returns it: name,
// namespace, uid, creationTimestamp, labels (archiving status Persisted) and annotations;
// spec.arguments and spec.suspend; phase, times, progress, message, estimatedDuration and
// resourcesDuration. No resourceVersion, no status.nodes.
func archivedSummary(r *record) *Workflow {
	m, st := &r.wf.Metadata, &r.wf.Status
	return &Workflow{
		Metadata: ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, CreationTimestamp: m.CreationTimestamp,
			Labels: m.Labels, Annotations: m.Annotations,
		},
		Spec: WorkflowSpec{Suspend: r.wf.Spec.Suspend, Arguments: r.wf.Spec.Arguments},
		Status: WorkflowStatus{
			Phase: st.Phase, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, Progress: st.Progress,
			Message: st.Message, EstimatedDuration: st.EstimatedDuration, ResourcesDuration: st.ResourcesDuration,
		},
	}
}

func (s *Server) serveGet(w *countingWriter, r *http.Request, namespace, name string) {
	q := r.URL.Query()
	uid := q.Get("uid")
	s.mu.RLock()
	at := s.clock.Now()
	rec := s.live[s.names[namespace+"/"+name]]
	if rec != nil && uid != "" && rec.wf.Metadata.UID != uid {
		rec = nil
	}
	if rec == nil && !s.opts.NoArchiveFallback {
		rec = s.archivedLocked(uid, namespace, name)
	}
	s.mu.RUnlock()
	if rec == nil {
		writeError(w, errorf(codeNotFound, "workflows.argoproj.io %q not found", name))
		return
	}
	f := parseFields(q.Get("fields"))
	var wf *Workflow
	if f.willExclude("status.nodes") {
		wf = rawView(rec)
	} else {
		wf = hydratedView(rec)
	}
	wf = trim(f, "", wf)
	s.markServed(rec, wf, at)
	writeJSON(w, wf)
}

// archivedLocked finds an archived workflow by uid, else the latest started one with this
// namespace and name.
func (s *Server) archivedLocked(uid, namespace, name string) *record {
	if uid != "" {
		return s.archive[uid]
	}
	var best *record
	for _, r := range s.archive {
		if r.wf.Metadata.Namespace == namespace && r.wf.Metadata.Name == name && (best == nil || byStartedDesc(r, best) < 0) {
			best = r
		}
	}
	return best
}

func (s *Server) serveArchivedGet(w *countingWriter, uid string) {
	s.mu.RLock()
	at := s.clock.Now()
	rec := s.archive[uid]
	s.mu.RUnlock()
	if rec == nil {
		writeError(w, errorf(codeNotFound, "not found"))
		return
	}
	wf := hydratedView(rec)
	s.markServed(rec, wf, at)
	writeJSON(w, wf)
}

// serveArchivedList answers GET /api/v1/archived-workflows: summaries only, an integer offset,
// and a continue value found by asking for one row more than the limit.
func (s *Server) serveArchivedList(w *countingWriter, r *http.Request) {
	q := r.URL.Query()
	o, err := parseListOptions(q, q.Get("namespace"), q.Get("namePrefix"), "")
	if err != nil {
		writeError(w, asAPIError(err))
		return
	}
	s.mu.RLock()
	s.cache.mu.Lock()
	_, archOrder := s.orderLocked()
	s.cache.mu.Unlock()
	var rows []*record
	for _, r := range archOrder {
		if o.matchesArchived(&r.wf) {
			rows = append(rows, r)
		}
	}
	s.mu.RUnlock()
	total := len(rows)
	var meta ListMeta
	if o.limit > 0 { // no limit: every row, offset ignored, as upstream
		rows = rows[min(o.offset, total):]
		if o.showRemaining {
			remaining := int64(max(total-o.offset-o.limit, 0))
			meta.RemainingItemCount = &remaining
		}
		if len(rows) > o.limit {
			rows = rows[:o.limit]
			meta.Continue = strconv.Itoa(o.offset + o.limit)
		}
	}
	list := WorkflowList{Metadata: meta}
	for _, r := range rows {
		list.Items = append(list.Items, *archivedSummary(r))
	}
	slices.SortStableFunc(list.Items, func(a, b Workflow) int { return workflowLess(&a, &b) })
	writeJSON(w, list)
}

// markServed records, for the ground truth, that an answer carried this version's nodes at the
// instant the answer reflects (records never change once stored, so the rows read under the lock
// are that instant's, however long encoding takes).
func (s *Server) markServed(r *record, served *Workflow, at time.Time) {
	if s.truth != nil && (served.Status.Nodes != nil || served.Status.CompressedNodes != "") {
		s.truth.markServed(r.wf.Metadata.UID, r.rv, at)
	}
}
