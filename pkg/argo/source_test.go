package argo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
)

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepLog) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

func newSource(t *testing.T, f *fakeArgo, mod func(*Config)) (*Source, *sleepLog) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL, cfg.Instance, cfg.Token, cfg.PageSize = f.url(), "prod", "test-token", 10
	cfg.HTTPTimeout, cfg.HTTPRetries = 5*time.Second, 2
	if mod != nil {
		mod(&cfg)
	}
	sl := &sleepLog{}
	s, err := New(cfg, Deps{Log: slog.New(slog.DiscardHandler),
		HTTP: []httpx.Option{httpx.WithSleep(sl.sleep), httpx.WithJitter(func(d time.Duration) time.Duration { return d })}})
	if err != nil {
		t.Fatal(err)
	}
	return s, sl
}

func window(since, until time.Time, backfill bool) poll.Window {
	return poll.Window{Since: since, Until: until, Backfill: backfill}
}

func names(snaps []*poll.Snapshot) []string {
	var out []string
	for _, s := range snaps {
		out = append(out, s.Run.Name)
	}
	slices.Sort(out)
	return out
}

func TestListAsksWhatTheServerAccepts(t *testing.T) {
	f := newFakeArgo(t)
	running := synth("argo", "run-aaaa1", t0.Add(-48*time.Hour), 2, "") // old, still running
	recent := synth("etl", "done-bbbb2", t0.Add(10*time.Minute), 2, "Succeeded")
	old := synth("argo", "old-cccc3", t0.Add(-3*time.Hour), 2, "Succeeded")
	other := synth("argo", "team-dddd4", t0.Add(5*time.Minute), 2, "Failed")
	labels(other)["team"] = "ml"
	for _, wf := range []map[string]any{running, recent, old, other} {
		if labels(wf)["team"] == nil {
			labels(wf)["team"] = "data"
		}
	}
	f.addLive(running, recent, old, other)
	s, _ := newSource(t, f, func(c *Config) {
		c.Namespaces = []string{"argo", "etl"}
		c.LabelSelector = "team=data"
	})

	since := t0.Add(500 * time.Millisecond) // not a whole second: rounded down
	snaps, err := s.List(t.Context(), window(since, t0.Add(time.Hour), false))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(snaps); !slices.Equal(got, []string{"done-bbbb2", "run-aaaa1"}) {
		t.Errorf("listed %v, want the active run and the one that finished in the window", got)
	}

	var lists []url.Values
	for _, u := range f.requestLog() {
		lists = append(lists, u.Query())
		if !strings.HasPrefix(u.Path, "/api/v1/workflows/") {
			t.Errorf("unexpected request %s", u)
		}
	}
	if len(lists) != 4 {
		t.Fatalf("made %d requests, want 4 (active + window, per namespace): %v", len(lists), f.requestLog())
	}
	wantActive := url.Values{"fields": {listFields}, "listOptions.limit": {"10"}, "listOptions.labelSelector": {"workflows.argoproj.io/completed!=true,team=data"}}
	wantWindow := url.Values{"fields": {listFields}, "listOptions.limit": {"10"}, "listOptions.labelSelector": {"workflows.argoproj.io/completed=true,team=data"},
		"listOptions.fieldSelector": {"spec.startedAt>2026-01-02T03:00:00Z"}}
	for i, want := range []url.Values{wantActive, wantWindow, wantActive, wantWindow} {
		if fmt.Sprint(lists[i]) != fmt.Sprint(want) {
			t.Errorf("request %d query:\n got %v\nwant %v", i, lists[i], want)
		}
	}
	if p := f.requestLog()[2].Path; p != "/api/v1/workflows/etl" {
		t.Errorf("third request path = %s", p)
	}
	if !strings.HasPrefix(listFields, "metadata,") || !strings.Contains(listFields, "items.status.nodes") {
		t.Errorf("fields %q lose the continue offset or the nodes", listFields)
	}

	byName := map[string]*poll.Snapshot{}
	for _, sn := range snaps {
		byName[sn.Run.Name] = sn
	}
	r := byName["run-aaaa1"]
	if !r.Active || r.Loaded || r.Ref != "argo/run-aaaa1/uid-run-aaaa1" || r.Fingerprint == "" || r.Run.Source != "argo" || r.Run.Instance != "prod" || r.Run.Pipeline != "run" {
		t.Errorf("active snapshot: %+v", r)
	}
	if d := byName["done-bbbb2"]; d.Active || d.Run.Status != "succeeded" {
		t.Errorf("finished snapshot: %+v", d)
	}
}

func TestListAllNamespacesAndBackfill(t *testing.T) {
	f := newFakeArgo(t)
	done := synth("argo", "arch-eeee5", t0.Add(20*time.Minute), 3, "Succeeded")
	gone := synth("argo", "gone-ffff6", t0.Add(30*time.Minute), 3, "Failed")
	late := synth("argo", "late-gggg7", t0.Add(3*time.Hour), 1, "Succeeded")
	f.addLive(done, gone, late)
	f.archive(uidOf(done))
	f.archive(uidOf(gone))
	f.deleteLive(uidOf(gone))
	f.legacy = false
	s, _ := newSource(t, f, nil)

	until := t0.Add(time.Hour).Add(300 * time.Millisecond) // rounded up
	snaps, err := s.List(t.Context(), window(t0, until, true))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(snaps); !slices.Equal(got, []string{"arch-eeee5", "gone-ffff6"}) {
		t.Errorf("listed %v", got)
	}
	reqs := f.requestLog()
	if len(reqs) != 3 {
		t.Fatalf("requests: %v", reqs)
	}
	if reqs[0].Path != "/api/v1/workflows/" || reqs[1].Path != "/api/v1/workflows/" {
		t.Errorf("all namespaces must list /api/v1/workflows/ with an empty namespace: %v", reqs)
	}
	if got := reqs[1].Query().Get("listOptions.fieldSelector"); got != "spec.startedAt>2026-01-02T03:00:00Z,spec.startedAt<2026-01-02T04:00:01Z" {
		t.Errorf("backfill window selector = %q", got)
	}
	if reqs[2].Path != "/api/v1/archived-workflows" || reqs[2].Query().Get("listOptions.fieldSelector") != "spec.startedAt>2026-01-02T03:00:00Z,spec.startedAt<2026-01-02T04:00:01Z" {
		t.Errorf("archive request = %v", reqs[2])
	}
	for _, sn := range snaps {
		if !strings.HasPrefix(sn.Fingerprint, "h:") {
			t.Errorf("%s: archived row without resourceVersion got fingerprint %q", sn.Run.Name, sn.Fingerprint)
		}
	}

	if _, err := s.List(t.Context(), window(t0.Add(time.Hour), t0, true)); err == nil || !strings.Contains(err.Error(), "before since") {
		t.Errorf("inverted window: %v", err)
	}
}

func TestListArchiveNamespaceSelector(t *testing.T) {
	f := newFakeArgo(t)
	a := synth("argo", "a-hhhh8", t0.Add(time.Minute), 1, "Succeeded")
	b := synth("etl", "b-iiii9", t0.Add(time.Minute), 1, "Succeeded")
	f.addLive(a, b)
	f.archive(uidOf(a))
	f.archive(uidOf(b))
	f.deleteLive(uidOf(a))
	f.deleteLive(uidOf(b))
	f.legacy = true // no archive merge: only the archive endpoint can find them
	s, _ := newSource(t, f, func(c *Config) { c.Namespaces = []string{"etl"} })
	snaps, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), true))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(snaps); !slices.Equal(got, []string{"b-iiii9"}) {
		t.Errorf("listed %v", got)
	}
	last := f.requestLog()[len(f.requestLog())-1]
	if got := last.Query().Get("listOptions.fieldSelector"); !strings.HasPrefix(got, "metadata.namespace=etl,spec.startedAt>") {
		t.Errorf("archive field selector = %q", got)
	}
}

// TestPagingShiftedByNewAndDeletedRuns: rows are ordered newest first and paged by offset, so a
// run created between two pages repeats a row and a run deleted between pages would hide one.
func TestPagingShiftedByNewAndDeletedRuns(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(f *fakeArgo)
		offsets []string
	}{
		// Each page starts at the last row of the one before; a new run shifts rows down, so the
		// anchor is found one row later and nothing more is read.
		{"a new run arrives", func(f *fakeArgo) { f.addLive(synth("argo", "new-zzzz0", t0.Add(time.Hour), 1, "")) }, []string{"", "9", "18"}},
		// A deleted run shifts rows up: the anchor is missing at 9, so the page is read again
		// from 7, where it is found.
		{"the newest run is deleted", func(f *fakeArgo) { f.deleteLive("uid-r-00024") }, []string{"", "9", "7", "16"}},
		// Three deleted: the anchor is missing at 9 and at 7, found at 5.
		{"three runs are deleted", func(f *fakeArgo) {
			for _, uid := range []string{"uid-r-00024", "uid-r-00023", "uid-r-00022"} {
				f.deleteLive(uid)
			}
		}, []string{"", "9", "7", "5", "14"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeArgo(t)
			for i := range 25 {
				f.addLive(synth("argo", fmt.Sprintf("r-%05d", i), t0.Add(time.Duration(i)*time.Minute), 1, ""))
			}
			f.afterList = func(page int) {
				if page == 1 {
					tc.change(f)
				}
			}
			s, _ := newSource(t, f, nil)
			snaps, err := s.List(t.Context(), window(t0, t0.Add(2*time.Hour), false))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, sn := range snaps {
				seen[sn.Run.UID]++
			}
			for uid, n := range seen {
				if n != 1 {
					t.Errorf("%s listed %d times", uid, n)
				}
			}
			// Every run that existed throughout is there; the new one may or may not be.
			for i := range 22 {
				if uid := fmt.Sprintf("uid-r-%05d", i); seen[uid] != 1 {
					t.Errorf("%s missing", uid)
				}
			}
			var offsets []string
			for _, u := range f.requestLog() {
				if u.Query().Get("listOptions.labelSelector") == LabelCompleted+"!=true" {
					offsets = append(offsets, u.Query().Get("listOptions.continue"))
				}
			}
			if !slices.Equal(offsets, tc.offsets) {
				t.Errorf("continue offsets %v, want %v", offsets, tc.offsets)
			}
		})
	}
}

func TestPagerAdvance(t *testing.T) {
	for _, tc := range []struct {
		cur, next string
		limit     int
		want      string
		anchored  bool // the next page must hold a row of this one
		err       string
	}{
		{"", "200", 200, "199", true, ""}, // one row of overlap, whatever the page size
		{"199", "399", 200, "398", true, ""},
		{"", "1", 1, "1", false, ""},       // pages of one row: no overlap possible
		{"10", "11", 200, "11", false, ""}, // a page of one row: nothing to re-read
		{"10", "10", 200, "", false, "does not advance"},
		{"", "eyJrIjoiMSJ9", 200, "eyJrIjoiMSJ9", false, ""}, // a Kubernetes token passes through
		{"eyJrIjoiMSJ9", "eyJrIjoiMSJ9", 200, "", false, "same continue token"},
	} {
		p := pager{cont: tc.cur}
		err := p.advance(tc.next, []string{"u1", "u2"}, tc.limit)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("advance(%q → %q, limit %d): error %v, want %q", tc.cur, tc.next, tc.limit, err, tc.err)
			continue
		}
		if err == nil && (p.cont != tc.want || (p.anchors != nil) != tc.anchored) {
			t.Errorf("advance(%q → %q, limit %d) = %q anchored %v; want %q anchored %v", tc.cur, tc.next, tc.limit, p.cont, p.anchors != nil, tc.want, tc.anchored)
		}
	}
}

// TestPagerBack: a page holding no row of the previous one is read again from further back,
// doubling, never before the row after the previous page's first; there nothing is required.
func TestPagerBack(t *testing.T) {
	p := pager{cont: "100"}
	if err := p.advance("300", []string{"u"}, 200); err != nil {
		t.Fatal(err)
	}
	var got []string
	for p.shifted(nil) {
		p.back()
		got = append(got, p.cont)
	}
	want := []string{"297", "295", "291", "283", "267", "235", "171", "101"}
	if !slices.Equal(got, want) {
		t.Errorf("re-reads at %v, want %v", got, want)
	}
}

func TestListLegacyServerFiltersHere(t *testing.T) {
	for _, l := range []Listing{ListingFull, ListingChanged} {
		t.Run(string(l), func(t *testing.T) { testListLegacyServerFiltersHere(t, l) })
	}
}

func testListLegacyServerFiltersHere(t *testing.T, listing Listing) {
	f := newFakeArgo(t)
	f.legacy = true
	for i := range 12 {
		f.addLive(synth("argo", fmt.Sprintf("c-%05d", i), t0.Add(time.Duration(i-6)*time.Hour), 1, "Succeeded"))
	}
	f.addLive(synth("argo", "live-jjjj1", t0.Add(-time.Hour), 1, ""))
	s, _ := newSource(t, f, func(c *Config) { c.PageSize, c.Listing = 5, listing })
	var snaps []*poll.Snapshot
	for range 2 {
		var err error
		snaps, err = s.List(t.Context(), window(t0, t0.Add(time.Hour), false))
		if err != nil {
			t.Fatal(err)
		}
		// Started at t0 or later: c-00006 … c-00011, plus the active run.
		if got := names(snaps); len(got) != 7 || got[0] != "c-00006" || got[6] != "live-jjjj1" {
			t.Errorf("listed %v", got)
		}
	}
	var rejected int
	for _, u := range f.requestLog() {
		q := u.Query()
		if strings.Contains(q.Get("listOptions.fieldSelector"), "spec.startedAt") {
			rejected++
		}
		noNodes := listFieldsNoNodes
		if listing == ListingChanged {
			noNodes = slimFields
		}
		if q.Get("listOptions.labelSelector") == LabelCompleted+"=true" && q.Get("listOptions.fieldSelector") == "" && q.Get("fields") != noNodes {
			t.Errorf("unfiltered listing asks for nodes: fields=%s", q.Get("fields"))
		}
	}
	for _, sn := range snaps {
		if sn.Run.Name == "c-00011" {
			if err := s.Load(t.Context(), sn); err != nil || len(sn.Tasks) != 2 {
				t.Errorf("Load of a row listed without nodes: %v, %d tasks", err, len(sn.Tasks))
			}
		}
	}
	if rejected != 1 {
		t.Errorf("asked %d times for a field selector the server rejects; want once, then remembered", rejected)
	}
}

func TestLoadListedWithoutNodes(t *testing.T) {
	for _, l := range []Listing{ListingFull, ListingChanged} {
		t.Run(string(l), func(t *testing.T) { testLoadListedWithoutNodes(t, l) })
	}
}

func testLoadListedWithoutNodes(t *testing.T, listing Listing) {
	for _, tc := range []struct {
		name          string
		deleted       bool // the live workflow is gone (TTL)
		noGetFallback bool // server older than 3.6
		wantPaths     []string
	}{
		{"fetched by name", false, false, []string{"/api/v1/workflows/argo/failed-retries-tjjsc"}},
		{"3.6+: GET by name falls back to the archive", true, false, []string{"/api/v1/workflows/argo/failed-retries-tjjsc"}},
		{"older: 404 by name, then the archive by uid", true, true, []string{"/api/v1/workflows/argo/failed-retries-tjjsc", "/api/v1/archived-workflows/5f0a3c1e-8b7d-4c2a-9e61-0d7f3b2a1c44"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeArgo(t)
			f.noGetFallback = tc.noGetFallback
			wf := fixture(t, "steps-retries.json")
			uid := uidOf(wf)
			delete(labels(wf), "workflows.argoproj.io/workflow-archiving-status")
			f.addLive(wf)
			f.archive(uid)
			if tc.deleted {
				f.deleteLive(uid)
			}
			s, _ := newSource(t, f, func(c *Config) { c.Listing = listing })
			snaps, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), false))
			if err != nil {
				t.Fatal(err)
			}
			if len(snaps) != 1 || snaps[0].Run.UID != uid {
				t.Fatalf("listed %v", names(snaps))
			}
			before := len(f.requestLog())
			if err := s.Load(t.Context(), snaps[0]); err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, u := range f.requestLog()[before:] {
				paths = append(paths, u.Path)
			}
			if !slices.Equal(paths, tc.wantPaths) {
				t.Errorf("requests %v, want %v", paths, tc.wantPaths)
			}
			if !snaps[0].Loaded || len(snaps[0].Tasks) != 9 {
				t.Fatalf("loaded %v with %d tasks, want 9", snaps[0].Loaded, len(snaps[0].Tasks))
			}
			if e := tasksByID(snaps[0].Tasks)["failed-retries-tjjsc-1853923929"]; e.Attempt != 1 || e.Pod != "failed-retries-tjjsc-flaky-1853923929" {
				t.Errorf("retry attempt after GET: %+v", e)
			}
			// The archive summary has no generateName; the full workflow names the pipeline.
			if r := snaps[0].Run; r.Pipeline != "failed-retries" || r.Status != "failed" || snaps[0].Active || !strings.HasPrefix(snaps[0].Fingerprint, "h:") {
				t.Errorf("run after Load: %+v, fingerprint %q", r, snaps[0].Fingerprint)
			}
		})
	}
}

func TestLoadVanishedRun(t *testing.T) {
	f := newFakeArgo(t)
	f.noGetFallback = true
	wf := fixture(t, "steps-retries.json")
	f.addLive(wf)
	f.archive(uidOf(wf))
	s, _ := newSource(t, f, nil)
	snaps, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), false))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("%v %v", snaps, err)
	}
	f.deleteLive(uidOf(wf))
	f.mu.Lock()
	f.archived = nil
	f.mu.Unlock()
	if err := s.Load(t.Context(), snaps[0]); err != nil {
		t.Fatal(err)
	}
	if !snaps[0].Loaded || len(snaps[0].Tasks) != 0 {
		t.Errorf("a run gone from both places loads empty: %+v", snaps[0])
	}
}

func TestLoadDecodesListedNodesWithoutCalls(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, wf map[string]any)
	}{
		{"nodes", func(*testing.T, map[string]any) {}},
		{"compressedNodes", func(t *testing.T, wf map[string]any) {
			st := wf["status"].(map[string]any)
			raw := mustJSON(t, st["nodes"])
			delete(st, "nodes")
			st["compressedNodes"] = compress(t, raw)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeArgo(t)
			wf := fixture(t, "dag-nested.json")
			tc.mutate(t, wf)
			f.addLive(wf)
			s, _ := newSource(t, f, nil)
			snaps, err := s.List(t.Context(), window(t0, t0.Add(2*time.Hour), false))
			if err != nil || len(snaps) != 1 {
				t.Fatalf("%v %v", names(snaps), err)
			}
			calls, _ := s.APIStats()
			if err := s.Load(t.Context(), snaps[0]); err != nil {
				t.Fatal(err)
			}
			if after, _ := s.APIStats(); after != calls {
				t.Errorf("Load made %d API calls; the listing had the nodes", after-calls)
			}
			if len(snaps[0].Tasks) != 14 {
				t.Errorf("%d tasks, want 14", len(snaps[0].Tasks))
			}
			if s.pending.len() != 0 {
				t.Errorf("%d listed workflows still pending after Load", s.pending.len())
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadOffloadedNodes(t *testing.T) {
	for _, l := range []Listing{ListingFull, ListingChanged} {
		t.Run(string(l), func(t *testing.T) { testLoadOffloadedNodes(t, l) })
	}
}

func testLoadOffloadedNodes(t *testing.T, listing Listing) {
	f := newFakeArgo(t)
	wf := fixture(t, "dag-nested.json")
	st := wf["status"].(map[string]any)
	f.offloaded[uidOf(wf)] = st["nodes"]
	delete(st, "nodes")
	st["offloadNodeStatusVersion"] = "fnv:1234567"
	f.addLive(wf)
	s, _ := newSource(t, f, func(c *Config) { c.Listing = listing })
	snaps, err := s.List(t.Context(), window(t0, t0.Add(2*time.Hour), false))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("%v %v", names(snaps), err)
	}
	if err := s.Load(t.Context(), snaps[0]); err != nil {
		t.Fatal(err)
	}
	if len(snaps[0].Tasks) != 14 {
		t.Errorf("%d tasks, want 14 rebuilt by the GET", len(snaps[0].Tasks))
	}
	last := f.requestLog()[len(f.requestLog())-1]
	if last.Path != "/api/v1/workflows/etl/dag-nested-8x2kq" || last.Query().Get("uid") != uidOf(wf) || last.Query().Get("fields") != getFields {
		t.Errorf("GET = %v", last)
	}
}

func TestLoadPendingWorkflowWithoutNodesMakesNoCall(t *testing.T) {
	f := newFakeArgo(t)
	wf := synth("argo", "new-kkkk2", t0, 0, "Pending")
	st := wf["status"].(map[string]any)
	delete(st, "nodes")
	st["startedAt"] = nil
	f.addLive(wf)
	s, _ := newSource(t, f, nil)
	snaps, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), false))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("%v %v", names(snaps), err)
	}
	calls, _ := s.APIStats()
	if err := s.Load(t.Context(), snaps[0]); err != nil || !snaps[0].Loaded || len(snaps[0].Tasks) != 0 {
		t.Fatalf("Load: %v %+v", err, snaps[0])
	}
	if after, _ := s.APIStats(); after != calls {
		t.Errorf("Load of a workflow not yet started made %d calls", after-calls)
	}
}

func TestFetch(t *testing.T) {
	f := newFakeArgo(t)
	f.noGetFallback = true
	live := synth("argo", "live-llll3", t0, 2, "Succeeded")
	archived := synth("argo", "arch-mmmm4", t0, 3, "Failed")
	reused := synth("argo", "same-nnnn5", t0, 4, "Succeeded")
	f.addLive(live, archived, reused)
	f.archive(uidOf(archived))
	f.archive(uidOf(reused))
	f.deleteLive(uidOf(archived))
	f.deleteLive(uidOf(reused))
	newer := synth("argo", "same-nnnn5", t0.Add(time.Hour), 1, "")
	newer["metadata"].(map[string]any)["uid"] = "uid-newer"
	f.addLive(newer) // same name, another run

	s, _ := newSource(t, f, nil)
	refs := []string{"argo/live-llll3/uid-live-llll3", "argo/arch-mmmm4/uid-arch-mmmm4", "argo/same-nnnn5/uid-same-nnnn5", "argo/vanished/uid-vanished"}
	snaps, err := s.Fetch(t.Context(), refs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*poll.Snapshot{}
	for _, sn := range snaps {
		got[sn.Run.UID] = sn
	}
	for uid, tasks := range map[string]int{"uid-live-llll3": 3, "uid-arch-mmmm4": 4, "uid-same-nnnn5": 5} {
		sn := got[uid]
		if sn == nil {
			t.Errorf("%s not fetched", uid)
			continue
		}
		if !sn.Loaded || len(sn.Tasks) != tasks || sn.Active {
			t.Errorf("%s: loaded %v, %d tasks (want %d), active %v", uid, sn.Loaded, len(sn.Tasks), tasks, sn.Active)
		}
	}
	if len(snaps) != 3 {
		t.Errorf("fetched %d runs, want 3 (the vanished one left out)", len(snaps))
	}

	if _, err := s.Fetch(t.Context(), []string{"argo/only-two"}); err == nil || !strings.Contains(err.Error(), "not namespace/name/uid") {
		t.Errorf("malformed ref: %v", err)
	}
}

func TestFetchWithoutArchive(t *testing.T) {
	f := newFakeArgo(t)
	f.noGetFallback = true
	f.archiveDisabled = true
	s, sl := newSource(t, f, nil)
	for range 2 {
		snaps, err := s.Fetch(t.Context(), []string{"argo/a/uid-a", "argo/b/uid-b"})
		if err != nil || len(snaps) != 0 {
			t.Fatalf("Fetch = %v, %v", snaps, err)
		}
	}
	var archiveCalls int
	for _, u := range f.requestLog() {
		if strings.HasPrefix(u.Path, "/api/v1/archived-workflows/") {
			archiveCalls++
		}
	}
	// One call per ref in flight may race to learn it; after that the answer is remembered.
	if archiveCalls == 0 || archiveCalls > 2 {
		t.Errorf("%d archive lookups; a disabled archive is remembered", archiveCalls)
	}
	if len(sl.waits()) != 0 {
		t.Errorf("retried a disabled archive: %v", sl.waits())
	}
}

func TestFaults(t *testing.T) {
	body := func(status int, b string, hdr ...string) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, _ *http.Request, _ int) bool {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, b)
			return true
		}
	}
	firstThen := func(first func(http.ResponseWriter, *http.Request, int) bool) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, r *http.Request, n int) bool { return n == 1 && first(w, r, n) }
	}
	for _, tc := range []struct {
		name      string
		fault     func(http.ResponseWriter, *http.Request, int) bool
		token     string
		wantErr   string
		wantWaits []time.Duration
	}{
		{name: "500 retried, then fails", fault: body(500, `{"code":13,"message":"rpc error: database is locked"}`),
			wantErr:   "argo: list active workflows in all namespaces: after 3 attempts: GET /api/v1/workflows/: 500 Internal Server Error: rpc error: database is locked",
			wantWaits: []time.Duration{500 * time.Millisecond, time.Second}},
		{name: "503 once, then fine", fault: firstThen(body(503, "upstream connect error")), wantWaits: []time.Duration{500 * time.Millisecond}},
		{name: "429 honours Retry-After", fault: firstThen(body(429, `{"code":8,"message":"too many requests"}`, "Retry-After", "3")), wantWaits: []time.Duration{3 * time.Second}},
		{name: "timeout retried", fault: firstThen(func(_ http.ResponseWriter, r *http.Request, _ int) bool { <-r.Context().Done(); return true }),
			wantWaits: []time.Duration{500 * time.Millisecond}},
		{name: "401 says what to check", token: "stale", wantErr: "argo server rejected the credentials (check FARM_ARGO_TOKEN / FARM_ARGO_TOKEN_FILE): GET /api/v1/workflows/: 401 Unauthorized: token not valid"},
		{name: "403 says what to check", fault: body(403, `{"code":7,"message":"workflows.argoproj.io is forbidden: User \"system:serviceaccount:farm:farm\" cannot list resource \"workflows\""}`),
			wantErr: `argo server denied access (the token's service account needs RBAC to list and get workflows in the namespace): GET /api/v1/workflows/: 403 Forbidden: workflows.argoproj.io is forbidden`},
		{name: "malformed JSON", fault: body(200, `{"metadata":{},"items":[{"metadata":{"name":"x"},"status":{"phase":"Running","startedAt":"soon"}}]}`),
			wantErr: `GET /api/v1/workflows/: decode response: items[0]: time "soon" is not RFC 3339`},
		{name: "truncated JSON", fault: body(200, `{"metadata":{},"items":[{"metadata":{"name":"x"}}`), wantErr: "decode response: the response ended inside the JSON: unexpected EOF"},
		{name: "not a list", fault: body(200, `[1,2]`), wantErr: "decode response: got [, want a workflow list object"},
		{name: "items not an array", fault: body(200, `{"items":{"a":1}}`), wantErr: "items is {, not an array"},
		{name: "row without uid", fault: body(200, `{"metadata":{},"items":[{"metadata":{"name":"x","namespace":"argo"}}]}`), wantErr: "workflow argo/x was listed without metadata.uid"},
		{name: "HTML error page from a proxy", fault: body(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
			wantErr: "after 3 attempts: GET /api/v1/workflows/: 502 Bad Gateway: <html><body><h1>502 Bad Gateway</h1></body></html>", wantWaits: []time.Duration{500 * time.Millisecond, time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeArgo(t)
			f.fault = tc.fault
			f.addLive(synth("argo", "ok-pppp7", t0, 1, ""))
			mod := func(c *Config) {
				if tc.token != "" {
					c.Token = tc.token
				}
				if strings.HasPrefix(tc.name, "timeout") {
					c.HTTPTimeout = 50 * time.Millisecond
				}
			}
			s, sl := newSource(t, f, mod)
			snaps, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), false))
			if tc.wantErr == "" {
				if err != nil || len(snaps) != 1 {
					t.Fatalf("List = %v, %v", names(snaps), err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error:\n got %v\nwant it to contain %q", err, tc.wantErr)
			}
			if got := sl.waits(); fmt.Sprint(got) != fmt.Sprint(tc.wantWaits) {
				t.Errorf("waits %v, want %v", got, tc.wantWaits)
			}
		})
	}
}

func TestCancelledListStops(t *testing.T) {
	f := newFakeArgo(t)
	f.addLive(synth("argo", "x-qqqq8", t0, 1, ""))
	s, _ := newSource(t, f, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.List(ctx, window(t0, t0.Add(time.Hour), false)); !errors.Is(err, context.Canceled) {
		t.Fatalf("List on a cancelled context = %v", err)
	}
}

func TestAPIStatsCountCallsAndBytes(t *testing.T) {
	f := newFakeArgo(t)
	for i := range 15 {
		f.addLive(synth("argo", fmt.Sprintf("s-%05d", i), t0.Add(time.Duration(i)*time.Minute), 3, ""))
	}
	s, _ := newSource(t, f, nil)
	if _, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), false)); err != nil {
		t.Fatal(err)
	}
	calls, bytes := s.APIStats()
	if calls != int64(len(f.requestLog())) || calls != 3 { // two active pages, one window page
		t.Errorf("calls = %d, server saw %d", calls, len(f.requestLog()))
	}
	if bytes < 15*1000 {
		t.Errorf("bytes = %d, implausibly small for 15 workflows", bytes)
	}
	if s.Name() != "argo/prod" {
		t.Errorf("Name = %q", s.Name())
	}
}

// TestPendingReleasedWithSnapshots: workflows kept for Load go away with the snapshots that the
// engine drops without loading (unchanged runs).
func TestPendingReleasedWithSnapshots(t *testing.T) {
	f := newFakeArgo(t)
	for i := range 5 {
		f.addLive(synth("argo", fmt.Sprintf("g-%05d", i), t0, 2, ""))
	}
	s, _ := newSource(t, f, nil)
	snaps, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), false))
	if err != nil || s.pending.len() != 5 {
		t.Fatalf("pending %d, %v", s.pending.len(), err)
	}
	runtime.KeepAlive(snaps) // the last use: from here the snapshots are garbage
	for i := 0; i < 50 && s.pending.len() > 0; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if n := s.pending.len(); n != 0 {
		t.Errorf("%d workflows still held after their snapshots were dropped", n)
	}
}

func TestNewValidates(t *testing.T) {
	u, _ := url.Parse("https://argo.example.com")
	ok := DefaultConfig()
	ok.URL, ok.Instance, ok.PageSize = u, "i", 10
	with := func(mod func(*Config)) Config { c := ok; mod(&c); return c }
	for name, tc := range map[string]struct {
		cfg  Config
		http []httpx.Option
	}{
		"no URL":           {with(func(c *Config) { c.URL = nil }), nil},
		"zero page size":   {with(func(c *Config) { c.PageSize = 0 }), nil},
		"bad listing":      {with(func(c *Config) { c.Listing = "some" }), nil},
		"bad pod format":   {with(func(c *Config) { c.DefaultPodNameFormat = "v3" }), nil},
		"zero parallelism": {with(func(c *Config) { c.FetchParallelism = 0 }), nil},
		"missing CA file":  {with(func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }), nil},
		"client plus CA":   {with(func(c *Config) { c.CAFile = "x" }), []httpx.Option{httpx.WithHTTPClient(http.DefaultClient)}},
	} {
		if _, err := New(tc.cfg, Deps{HTTP: tc.http}); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if _, err := New(with(func(c *Config) { c.DefaultPodNameFormat = "v1" }), Deps{HTTP: []httpx.Option{httpx.WithTransport(http.DefaultTransport)}}); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
	if s, err := New(with(func(c *Config) { c.Instance = "" }), Deps{}); err != nil || s.Name() != "argo/"+u.Hostname() {
		t.Errorf("no instance: %v, want the URL's host as instance", err)
	}
}

// The run fields of the first FARM table (creation time, annotations, parameters) survive the
// `fields` selection of every request that reads a workflow: the live listing, a GET by name,
// and the archive once the workflow is gone from the cluster.
func TestRunFieldsSurviveFieldSelection(t *testing.T) {
	f := newFakeArgo(t)
	wf := synth("etl", "args-eeee5", t0.Add(time.Minute), 2, "Succeeded")
	wf["metadata"].(map[string]any)["annotations"] = map[string]any{
		"team.example.com/owner":                           "data",
		"kubectl.kubernetes.io/last-applied-configuration": `{"kind":"Workflow"}`,
	}
	wf["spec"].(map[string]any)["arguments"] = map[string]any{"parameters": []any{
		map[string]any{"name": "date", "value": "2026-01-02"}, map[string]any{"name": "unset"},
	}}
	f.addLive(wf)
	s, _ := newSource(t, f, nil)
	check := func(how string, snaps []*poll.Snapshot) {
		t.Helper()
		if len(snaps) != 1 {
			t.Fatalf("%s: %d runs", how, len(snaps))
		}
		r := snaps[0].Run
		if r.CreatedAt == nil || !r.CreatedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("%s: created_at %v", how, r.CreatedAt)
		}
		if len(r.Annotations) != 1 || r.Annotations["team.example.com/owner"] != "data" {
			t.Errorf("%s: annotations %v", how, r.Annotations)
		}
		if len(r.Parameters) != 2 || r.Parameters[0].Name != "date" || r.Parameters[0].Value == nil || *r.Parameters[0].Value != "2026-01-02" || r.Parameters[1].Value != nil {
			t.Errorf("%s: parameters %+v", how, r.Parameters)
		}
	}
	listed, err := s.List(t.Context(), window(t0, t0.Add(time.Hour), false))
	if err != nil {
		t.Fatal(err)
	}
	check("listed", listed)
	ref := listed[0].Ref
	got, err := s.Fetch(t.Context(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	check("read by name", got)
	f.archive("uid-args-eeee5")
	f.deleteLive("uid-args-eeee5")
	got, err = s.Fetch(t.Context(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	check("read from the archive", got)
}
