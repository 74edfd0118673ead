package argo

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeArgo answers like an Argo Server, following upstream's server/workflow/workflow_server.go,
// server/workflowarchive/archived_workflow_server.go, server/utils/list_options.go and
// util/fields, pitfalls included:
//   - list: live rows ordered by status.startedAt (newest first), then, from 3.5.7 on, archived
//     rows as summaries without nodes or resourceVersion; integer offsets in listOptions.continue;
//     only the field selectors upstream accepts; `fields` trimming (drop "metadata" and the
//     continue offset is gone);
//   - compressedNodes are listed as stored; offloaded nodes only come back from a GET;
//   - GET by name rebuilds nodes and, from 3.6 on, falls back to the archive by uid;
//   - an archive that is off answers GET by uid with a 500.
//
// Workflows are kept as generic JSON so that fields the client does not ask for really travel.
type fakeArgo struct {
	t *testing.T

	mu       sync.Mutex
	live     []map[string]any
	archived []map[string]any
	// offloaded holds nodes that the live objects do not carry, by uid.
	offloaded map[string]any

	legacy          bool // before 3.5.7: the list is Kubernetes' (no spec.startedAt, opaque continue tokens, no archive merge)
	noGetFallback   bool // before 3.6: GET by name never looks in the archive
	archiveDisabled bool

	requests []*url.URL
	// fault, when set, may answer a request itself (returning true).
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
	// afterList runs after each list page is written (to change the estate mid-listing).
	afterList func(page int)
	listPages int

	srv *httptest.Server
}

func newFakeArgo(t *testing.T) *fakeArgo {
	f := &fakeArgo{t: t, offloaded: map[string]any{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeArgo) url() *url.URL {
	u, _ := url.Parse(f.srv.URL)
	return u
}

// addLive stores a workflow as the cluster holds it.
func (f *fakeArgo) addLive(wfs ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = append(f.live, wfs...)
}

// archive copies a workflow into the archive and labels the live one Archived, as the controller
// does once the workflow completed.
func (f *fakeArgo) archive(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, wf := range f.live {
		if uidOf(wf) == uid {
			labels(wf)["workflows.argoproj.io/workflow-archiving-status"] = "Archived"
			f.archived = append(f.archived, deepCopy(wf))
			return
		}
	}
	f.t.Fatalf("archive: no live workflow %s", uid)
}

// deleteLive removes a workflow from the cluster (TTL, GC, kubectl delete).
func (f *fakeArgo) deleteLive(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = slices.DeleteFunc(f.live, func(wf map[string]any) bool { return uidOf(wf) == uid })
}

func (f *fakeArgo) requestLog() []*url.URL {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeArgo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.URL)
	n := len(f.requests)
	fault := f.fault
	f.mu.Unlock()
	if fault != nil && fault(w, r, n) {
		return
	}
	if r.Header.Get("Authorization") != "Bearer test-token" {
		argoError(w, http.StatusUnauthorized, 16, "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/")
		return
	}
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, "/api/v1/workflows/"):
		rest := strings.TrimPrefix(path, "/api/v1/workflows/")
		ns, name, isGet := strings.Cut(rest, "/")
		ns, _ = url.PathUnescape(ns)
		name, _ = url.PathUnescape(name)
		if isGet {
			f.getWorkflow(w, r, ns, name)
		} else {
			f.listWorkflows(w, r, ns)
		}
	case path == "/api/v1/archived-workflows":
		f.listArchived(w, r)
	case strings.HasPrefix(path, "/api/v1/archived-workflows/"):
		f.getArchived(w, strings.TrimPrefix(path, "/api/v1/archived-workflows/"))
	default:
		http.NotFound(w, r)
	}
}

func argoError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "details": []any{}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// listOpts are the parsed list parameters, as upstream's BuildListOptions reads them.
type listOpts struct {
	namespace      string
	min, max       time.Time
	labels         []labelReq
	limit, offset  int
	legacyContinue string
}

type labelReq struct {
	key, op, value string
}

func (f *fakeArgo) parseListOpts(w http.ResponseWriter, q url.Values, ns string, kube bool) (listOpts, bool) {
	o := listOpts{namespace: ns}
	if l := q.Get("listOptions.limit"); l != "" {
		o.limit, _ = strconv.Atoi(l)
	}
	if c := q.Get("listOptions.continue"); c != "" {
		if kube {
			o.legacyContinue = c
		} else {
			off, err := strconv.Atoi(c)
			if err != nil {
				argoError(w, 400, 3, "listOptions.continue must be int")
				return o, false
			}
			o.offset = off
		}
	}
	for _, sel := range strings.Split(q.Get("listOptions.fieldSelector"), ",") {
		var err error
		switch {
		case sel == "":
		case strings.HasPrefix(sel, "metadata.namespace="):
			o.namespace = strings.TrimPrefix(sel, "metadata.namespace=")
		case kube && strings.HasPrefix(sel, "spec.startedAt"):
			// Kubernetes' own field selector parser, which knows no ">".
			argoError(w, 400, 3, fmt.Sprintf("invalid selector: '%s'; can't understand '%s'", sel, sel))
			return o, false
		case strings.HasPrefix(sel, "spec.startedAt>"):
			o.min, err = time.Parse(time.RFC3339, strings.TrimPrefix(sel, "spec.startedAt>"))
		case strings.HasPrefix(sel, "spec.startedAt<"):
			o.max, err = time.Parse(time.RFC3339, strings.TrimPrefix(sel, "spec.startedAt<"))
		default:
			argoError(w, 400, 3, "unsupported requirement "+sel)
			return o, false
		}
		if err != nil {
			argoError(w, 500, 13, err.Error())
			return o, false
		}
	}
	for _, req := range strings.Split(q.Get("listOptions.labelSelector"), ",") {
		if req == "" {
			continue
		}
		var lr labelReq
		for _, op := range []string{"!=", "==", "="} {
			if k, v, ok := strings.Cut(req, op); ok {
				lr = labelReq{k, op, v}
				break
			}
		}
		if lr.op == "" {
			argoError(w, 400, 3, "unable to parse requirement: "+req)
			return o, false
		}
		o.labels = append(o.labels, lr)
	}
	return o, true
}

func (o listOpts) matches(wf map[string]any) bool {
	md := wf["metadata"].(map[string]any)
	if o.namespace != "" && md["namespace"] != o.namespace {
		return false
	}
	started := startedAt(wf)
	if !o.min.IsZero() && started.Before(o.min) { // upstream: startedat >= min
		return false
	}
	if !o.max.IsZero() && (started.IsZero() || started.After(o.max)) {
		return false
	}
	l := labels(wf)
	for _, r := range o.labels {
		v, has := l[r.key]
		if (r.op == "!=") == (has && v == r.value) {
			return false
		}
	}
	return true
}

func (f *fakeArgo) listWorkflows(w http.ResponseWriter, r *http.Request, ns string) {
	o, ok := f.parseListOpts(w, r.URL.Query(), ns, f.legacy)
	if !ok {
		return
	}
	f.mu.Lock()
	var rows []map[string]any
	for _, wf := range sortedByStart(f.live) {
		if !o.matches(wf) {
			continue
		}
		if !f.legacy && labels(wf)["workflows.argoproj.io/workflow-archiving-status"] == "Archived" {
			continue // the live store skips archived workflows; their rows come from the archive
		}
		rows = append(rows, deepCopy(wf))
	}
	if !f.legacy {
		for _, wf := range sortedByStart(f.archived) {
			if o.matches(wf) {
				rows = append(rows, summary(wf))
			}
		}
	}
	f.listPages++
	page := f.listPages
	after := f.afterList
	f.mu.Unlock()

	offset := o.offset
	if f.legacy && o.legacyContinue != "" {
		b, err := base64.StdEncoding.DecodeString(o.legacyContinue)
		if err != nil {
			argoError(w, 400, 3, "continue key is not valid")
			return
		}
		offset, _ = strconv.Atoi(strings.TrimPrefix(string(b), "k8s-offset:"))
	}
	end := len(rows)
	if o.limit > 0 {
		end = min(offset+o.limit, len(rows))
	}
	offset = min(offset, len(rows))
	meta := map[string]any{"resourceVersion": "99999"}
	if end < len(rows) {
		if f.legacy {
			meta["continue"] = base64.StdEncoding.EncodeToString([]byte("k8s-offset:" + strconv.Itoa(end)))
		} else {
			meta["continue"] = strconv.Itoa(end)
		}
	}
	var items any // null when empty, as Argo sends it
	if offset < end {
		items = anySlice(rows[offset:end])
	}
	writeJSON(w, clean(map[string]any{"metadata": meta, "items": items}, r.URL.Query().Get("fields")))
	if after != nil {
		after(page)
	}
}

func (f *fakeArgo) getWorkflow(w http.ResponseWriter, r *http.Request, ns, name string) {
	uid := r.URL.Query().Get("uid")
	f.mu.Lock()
	var found map[string]any
	for _, wf := range f.live {
		md := wf["metadata"].(map[string]any)
		if md["namespace"] == ns && md["name"] == name {
			found = deepCopy(wf)
		}
	}
	if !f.noGetFallback && (found == nil || (uid != "" && uidOf(found) != uid)) {
		found = nil
		for _, wf := range f.archived {
			if uidOf(wf) == uid {
				found = deepCopy(wf)
			}
		}
	}
	if found != nil {
		f.hydrate(found)
	}
	f.mu.Unlock()
	if found == nil {
		argoError(w, 404, 5, fmt.Sprintf("workflows.argoproj.io %q not found", name))
		return
	}
	writeJSON(w, clean(found, r.URL.Query().Get("fields")))
}

// hydrate rebuilds nodes the way GET does: offloaded nodes from the database, compressed ones
// decompressed.
func (f *fakeArgo) hydrate(wf map[string]any) {
	st := wf["status"].(map[string]any)
	if nodes, ok := f.offloaded[uidOf(wf)]; ok {
		st["nodes"] = deepCopy(nodes)
		delete(st, "offloadNodeStatusVersion")
	}
	if c, ok := st["compressedNodes"].(string); ok {
		nodes, err := decodeCompressedNodes(c)
		if err != nil {
			f.t.Errorf("fake server: bad compressedNodes: %v", err)
		}
		b, _ := json.Marshal(nodes)
		var generic any
		_ = json.Unmarshal(b, &generic)
		st["nodes"] = generic
		delete(st, "compressedNodes")
	}
}

func (f *fakeArgo) listArchived(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o, ok := f.parseListOpts(w, q, q.Get("namespace"), false)
	if !ok {
		return
	}
	f.mu.Lock()
	var rows []map[string]any
	for _, wf := range sortedByStart(f.archived) {
		if o.matches(wf) {
			rows = append(rows, summary(wf))
		}
	}
	f.mu.Unlock()
	end := len(rows)
	meta := map[string]any{}
	if o.limit > 0 && o.offset+o.limit < len(rows) {
		end = o.offset + o.limit
		meta["continue"] = strconv.Itoa(end)
	}
	var items any
	if o.offset < end {
		items = anySlice(rows[o.offset:end])
	}
	writeJSON(w, map[string]any{"metadata": meta, "items": items})
}

func (f *fakeArgo) getArchived(w http.ResponseWriter, uid string) {
	if f.archiveDisabled {
		argoError(w, 500, 13, "getting archived workflows not supported")
		return
	}
	f.mu.Lock()
	var found map[string]any
	for _, wf := range f.archived {
		if uidOf(wf) == uid {
			found = deepCopy(wf)
		}
	}
	f.mu.Unlock()
	if found == nil {
		argoError(w, 404, 5, "not found")
		return
	}
	writeJSON(w, found)
}

// summary is an archived row as the archive lists it: no nodes, no resourceVersion.
func summary(wf map[string]any) map[string]any {
	md := wf["metadata"].(map[string]any)
	st := wf["status"].(map[string]any)
	keep := func(m map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			if v, ok := m[k]; ok {
				out[k] = deepCopy(v)
			}
		}
		return out
	}
	return map[string]any{
		"metadata": keep(md, "name", "namespace", "uid", "creationTimestamp", "labels", "annotations"),
		"spec":     map[string]any{},
		"status":   keep(st, "phase", "startedAt", "finishedAt", "progress", "message", "estimatedDuration", "resourcesDuration"),
	}
}

// clean trims v to the comma-separated fields the way upstream's util/fields does: a listed path
// keeps everything under it, a path leading to a listed one is walked, the rest is removed; arrays
// do not add to the path; a leading "-" inverts the selection.
func clean(v any, fields string) any {
	if fields == "" {
		return v
	}
	exclude := strings.HasPrefix(fields, "-")
	set := map[string]bool{}
	for _, f := range strings.Split(strings.TrimPrefix(fields, "-"), ",") {
		set[f] = true
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				listed := set[p]
				leads := listed
				for f := range set {
					if strings.HasPrefix(f, p) {
						leads = true
					}
				}
				switch {
				case exclude && listed, !exclude && !leads:
					delete(x, k)
				case !listed:
					walk(p, child)
				}
			}
		case []any:
			for _, e := range x {
				walk(path, e)
			}
		}
	}
	walk("", v)
	return v
}

func uidOf(wf map[string]any) string {
	return wf["metadata"].(map[string]any)["uid"].(string)
}

func labels(wf map[string]any) map[string]any {
	md := wf["metadata"].(map[string]any)
	l, ok := md["labels"].(map[string]any)
	if !ok {
		l = map[string]any{}
		md["labels"] = l
	}
	return l
}

func startedAt(wf map[string]any) time.Time {
	s, _ := wf["status"].(map[string]any)["startedAt"].(string)
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

func sortedByStart(wfs []map[string]any) []map[string]any {
	out := slices.Clone(wfs)
	slices.SortStableFunc(out, func(a, b map[string]any) int { return startedAt(b).Compare(startedAt(a)) })
	return out
}

func anySlice(rows []map[string]any) []any {
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = r
	}
	return out
}

func deepCopy[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// fixture loads a testdata workflow as generic JSON.
func fixture(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var wf map[string]any
	if err := json.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	return wf
}

// synth builds a workflow in Argo's shape: a DAG root and n Pod tasks, each depending on the one
// before. Phase "" leaves it Running (completed=false).
func synth(ns, name string, started time.Time, n int, phase string) map[string]any {
	if phase == "" {
		phase = "Running"
	}
	completed := phase != "Running" && phase != "Pending"
	ts := func(t time.Time) any { return t.UTC().Format(time.RFC3339) }
	nodes := map[string]any{}
	root := map[string]any{
		"id": name, "name": name, "displayName": name, "type": "DAG", "templateName": "main",
		"templateScope": "local/" + name, "phase": phase, "startedAt": ts(started), "finishedAt": nil,
		"progress": fmt.Sprintf("%d/%d", n, n),
	}
	nodes[name] = root
	prev := ""
	for i := range n {
		id := fmt.Sprintf("%s-%d", name, 1000+i)
		st := started.Add(time.Duration(i) * time.Second)
		node := map[string]any{
			"id": id, "name": fmt.Sprintf("%s.task-%d", name, i), "displayName": fmt.Sprintf("task-%d", i),
			"type": "Pod", "templateName": "work", "templateScope": "local/" + name, "boundaryID": name,
			"phase": "Succeeded", "startedAt": ts(st), "finishedAt": ts(st.Add(time.Second)),
			"progress": "1/1", "resourcesDuration": map[string]any{"cpu": 1, "memory": 3},
			"podIP": "10.0.0.1", "hostNodeName": "node-1",
			"outputs": map[string]any{"exitCode": "0", "parameters": []any{map[string]any{"name": "out", "value": strings.Repeat("x", 64)}}},
		}
		if prev == "" {
			root["children"] = []any{id}
		} else {
			nodes[prev].(map[string]any)["children"] = []any{id}
		}
		nodes[id] = node
		prev = id
	}
	st := map[string]any{"phase": phase, "startedAt": ts(started), "finishedAt": nil, "progress": "1/1", "nodes": nodes}
	if completed {
		st["finishedAt"] = ts(started.Add(time.Duration(n+1) * time.Second))
		root["finishedAt"] = st["finishedAt"]
	}
	return map[string]any{
		"metadata": map[string]any{
			"name": name, "generateName": strings.TrimSuffix(name, name[strings.LastIndexByte(name, '-')+1:]),
			"namespace": ns, "uid": "uid-" + name, "resourceVersion": strconv.Itoa(int(started.Unix() % 1e6)),
			"creationTimestamp": ts(started),
			"labels": map[string]any{
				"workflows.argoproj.io/completed": strconv.FormatBool(completed),
				"workflows.argoproj.io/phase":     phase,
			},
			"annotations": map[string]any{"workflows.argoproj.io/pod-name-format": "v2"},
		},
		"spec":   map[string]any{"entrypoint": "main", "templates": []any{map[string]any{"name": "main", "dag": map[string]any{}}}},
		"status": st,
	}
}
