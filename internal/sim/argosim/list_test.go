package argosim

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"
)

// seed puts n running workflows started a minute apart, the newest last ("wf-00" oldest).
func seed(f *fixture, ns string, n int) []string {
	var names []string
	for i := range n {
		name := fmt.Sprintf("wf-%02d", i)
		f.put(dagWorkflow(ns, name, t0.Add(time.Duration(i)*time.Minute)))
		names = append(names, name)
	}
	return names
}

func names(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, path(it, "metadata", "name").(string))
	}
	return out
}

func TestPagingWithIntegerOffsets(t *testing.T) {
	f := newFixture(t, Options{})
	all := seed(f, "argo", 25)
	var got, conts []string
	cont := ""
	for range 10 {
		items, meta := f.list("argo", url.Values{"listOptions.limit": {"10"}, "listOptions.continue": {cont}})
		got = append(got, names(items)...)
		cont, _ = meta["continue"].(string)
		conts = append(conts, cont)
		if cont == "" {
			break
		}
	}
	if !slices.Equal(conts, []string{"10", "20", ""}) {
		t.Errorf("continue values %v, want 10, 20, then empty", conts)
	}
	// startedAt descending: the newest workflow first.
	want := slices.Clone(all)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Errorf("paged names\n got %v\nwant %v", got, want)
	}
}

// TestNewWorkflowShiftsLaterPages inserts a workflow between two page requests: with integer
// offsets over "startedAt desc", the last row of page 1 comes again on page 2.
func TestNewWorkflowShiftsLaterPages(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 6)
	f.srv.OnList(func(c ListCall) {
		if c.Offset == 3 {
			f.put(dagWorkflow("argo", "newcomer", t0.Add(time.Hour)))
		}
	})
	p1, meta := f.list("argo", url.Values{"listOptions.limit": {"3"}})
	p2, meta2 := f.list("argo", url.Values{"listOptions.limit": {"3"}, "listOptions.continue": {meta["continue"].(string)}})
	if got, want := names(p1), []string{"wf-05", "wf-04", "wf-03"}; !slices.Equal(got, want) {
		t.Fatalf("page 1 = %v, want %v", got, want)
	}
	if got, want := names(p2), []string{"wf-03", "wf-02", "wf-01"}; !slices.Equal(got, want) {
		t.Fatalf("page 2 = %v, want %v (wf-03 again: shifted by the newcomer)", got, want)
	}
	if meta2["continue"] != "6" {
		t.Errorf("page 2 continue = %v, want 6 (one row, wf-00, left)", meta2["continue"])
	}
}

// TestLiveRowsThenArchivedRows: completed workflows that were archived are served from the
// archive, after every live row, without status.nodes and without resourceVersion.
func TestLiveRowsThenArchivedRows(t *testing.T) {
	f := newFixture(t, Options{})
	for i := range 3 {
		f.put(dagWorkflow("argo", fmt.Sprintf("live-%d", i), t0.Add(time.Duration(i)*time.Minute)))
	}
	for i := range 4 {
		name := fmt.Sprintf("old-%d", i)
		f.put(finished(dagWorkflow("argo", name, t0.Add(time.Duration(10+i)*time.Minute)), WorkflowSucceeded, t0.Add(time.Hour+time.Duration(i)*time.Minute)))
		if err := f.srv.Archive("argo", name); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := f.srv.Delete("argo", name); err != nil { // deleted by TTL: only the archive has it
				t.Fatal(err)
			}
		}
	}
	var pages [][]string
	cont := ""
	for {
		items, meta := f.list("argo", url.Values{"listOptions.limit": {"2"}, "listOptions.continue": {cont}})
		pages = append(pages, names(items))
		for _, it := range items {
			archived := path(it, "metadata", "labels", LabelArchivingStatus) == ArchivingPersisted
			_, hasNodes := path(it, "status").(map[string]any)["nodes"]
			_, hasRV := path(it, "metadata").(map[string]any)["resourceVersion"]
			if archived == hasNodes || archived == hasRV {
				t.Errorf("%s: archived row %v, nodes %v, resourceVersion %v", path(it, "metadata", "name"), archived, hasNodes, hasRV)
			}
		}
		if cont, _ = meta["continue"].(string); cont == "" {
			break
		}
	}
	// Live rows by startedAt desc, then archived rows by startedAt desc; each page re-sorted
	// upstream style (unfinished first, then latest finished first).
	want := [][]string{{"live-2", "live-1"}, {"live-0", "old-3"}, {"old-2", "old-1"}, {"old-0"}}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("pages %v, want %v", pages, want)
	}
	// limit 0: everything, offset ignored, no continue.
	items, meta := f.list("argo", url.Values{"listOptions.continue": {"5"}})
	if len(items) != 7 || meta["continue"] != nil {
		t.Errorf("no limit: %d items, continue %v; want 7 and none", len(items), meta["continue"])
	}
}

func TestShowRemainingItemCount(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 5)
	_, meta := f.list("argo", url.Values{"listOptions.limit": {"2"}, "listOptions.fieldSelector": {"ext.showRemainingItemCount=true"}})
	if meta["remainingItemCount"] != float64(3) {
		t.Errorf("remainingItemCount = %v, want 3", meta["remainingItemCount"])
	}
	_, meta = f.list("argo", url.Values{"listOptions.limit": {"2"}})
	if _, ok := meta["remainingItemCount"]; ok {
		t.Error("remainingItemCount present without ext.showRemainingItemCount")
	}
}

func errorBody(t *testing.T, body []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return e
}

func TestListOptionErrors(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 1)
	tests := []struct {
		name   string
		q      url.Values
		status int
		code   int
		msg    string
	}{
		{"continue not an int", url.Values{"listOptions.continue": {"eyJydiI6MX0"}}, 400, 3, "listOptions.continue must be int"},
		{"negative continue", url.Values{"listOptions.continue": {"-1"}}, 400, 3, "listOptions.continue must >= 0"},
		{"limit not an int", url.Values{"listOptions.limit": {"ten"}}, 400, 3, `strconv.ParseInt: parsing "ten": invalid syntax`},
		{"unsupported field selector", url.Values{"listOptions.fieldSelector": {"status.phase=Running"}}, 400, 3, "unsupported requirement status.phase=Running"},
		{"namespace contradiction", url.Values{"listOptions.fieldSelector": {"metadata.namespace=other"}}, 400, 3,
			`'namespace' query param ("argo") and fieldselector 'metadata.namespace' ("other") are both specified and contradict each other`},
		{"bad startedAt is Internal", url.Values{"listOptions.fieldSelector": {"spec.startedAt>yesterday"}}, 500, 13,
			`parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
		{"bad label selector", url.Values{"listOptions.labelSelector": {"team in data"}}, 400, 3, "unable to parse requirement: found 'data' expected: '('"},
		{"bad createdAfter is Internal", url.Values{"createdAfter": {"2026-13-01"}}, 500, 13, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := f.get("/api/v1/workflows/argo", tc.q)
			e := errorBody(t, body)
			if status != tc.status || e.Code != tc.code || tc.msg != "" && e.Message != tc.msg {
				t.Fatalf("got %d %+v, want %d code %d %q", status, e, tc.status, tc.code, tc.msg)
			}
		})
	}
}

func TestFieldSelectors(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 5) // wf-00 … wf-04 started t0 … t0+4m
	f.put(dagWorkflow("other", "wf-99", t0))
	tests := []struct {
		name, ns string
		q        url.Values
		want     []string
	}{
		{"all namespaces", "", nil, []string{"wf-04", "wf-03", "wf-02", "wf-01", "wf-00", "wf-99"}},
		{"namespace by field", "", url.Values{"listOptions.fieldSelector": {"metadata.namespace=other"}}, []string{"wf-99"}},
		{"same namespace twice", "argo", url.Values{"listOptions.fieldSelector": {"metadata.namespace=argo,metadata.name=wf-01"}}, []string{"wf-01"}},
		{"startedAt bounds are inclusive", "argo", url.Values{"listOptions.fieldSelector": {"spec.startedAt>" + t0.Add(time.Minute).Format(time.RFC3339) + ",spec.startedAt<" + t0.Add(3*time.Minute).Format(time.RFC3339)}}, []string{"wf-03", "wf-02", "wf-01"}},
		{"name contains", "argo", url.Values{"listOptions.fieldSelector": {"metadata.name=-0"}, "nameFilter": {"Contains"}}, []string{"wf-04", "wf-03", "wf-02", "wf-01", "wf-00"}},
		{"name prefix", "argo", url.Values{"listOptions.fieldSelector": {"metadata.name=wf-0"}, "nameFilter": {"Prefix"}}, []string{"wf-04", "wf-03", "wf-02", "wf-01", "wf-00"}},
		{"exact by default", "argo", url.Values{"listOptions.fieldSelector": {"metadata.name=wf-0"}}, nil},
		{"createdAfter", "argo", url.Values{"createdAfter": {t0.Add(3 * time.Minute).Format(time.RFC3339)}}, []string{"wf-04", "wf-03"}},
		// Running workflows have no finishedAt, which upstream stores as the zero time: they
		// match any finishedBefore.
		{"finishedBefore keeps running ones", "argo", url.Values{"finishedBefore": {t0.Format(time.RFC3339)}}, []string{"wf-04", "wf-03", "wf-02", "wf-01", "wf-00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, _ := f.list(tc.ns, tc.q)
			if got := names(items); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLabelSelectors(t *testing.T) {
	f := newFixture(t, Options{})
	mk := func(name string, labels map[string]string, done bool) {
		wf := dagWorkflow("argo", name, t0)
		wf.Metadata.Labels = labels
		if done {
			wf = finished(wf, WorkflowSucceeded, t0.Add(time.Hour))
		}
		f.put(wf)
	}
	mk("a", map[string]string{"team": "data", "tier": "1"}, false)
	mk("b", map[string]string{"team": "ml", "tier": "3"}, true)
	mk("c", map[string]string{"env": "prod"}, false)
	tests := []struct {
		sel  string
		want []string
	}{
		{"", []string{"a", "b", "c"}},
		{LabelCompleted + "!=true", []string{"a", "c"}},
		{LabelCompleted + "=true", []string{"b"}},
		{LabelCompleted + "==false", []string{"a", "c"}},
		{"team=data", []string{"a"}},
		{"team!=data", []string{"b", "c"}}, // absent label matches !=
		{"team in (data, ml)", []string{"a", "b"}},
		{"team notin (data)", []string{"b", "c"}},
		{"team", []string{"a", "b"}},
		{"!team", []string{"c"}},
		{"team,tier>2", []string{"b"}},
		{"tier<2", []string{"a"}},
		{"team=data,env=prod", nil},
		{"notin in (x)", nil}, // keywords are plain keys in key position too
		{"team in (,data)", []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.sel, func(t *testing.T) {
			items, _ := f.list("argo", url.Values{"listOptions.labelSelector": {tc.sel}})
			got := names(items)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLabelSelectorErrors(t *testing.T) {
	tests := []string{
		"team in data", "team in (data", "team=a=b", "=x", "a b", "team>x", "Bad Key=1",
		"example.com/=x", "team=" + string(make([]byte, 64)), "a,", "!a=b", "team notin ()x",
	}
	for _, sel := range tests {
		if _, err := parseSelector(sel); err == nil {
			t.Errorf("parseSelector(%q) accepted it", sel)
		}
	}
	for _, sel := range []string{"a", "a=", "example.com/team=x-1.y_z", "a in ()", "a,b=c , d!=e"} {
		if _, err := parseSelector(sel); err != nil {
			t.Errorf("parseSelector(%q): %v", sel, err)
		}
	}
	// The message is the parser's, as upstream returns it.
	_, err := parseSelector("team=a=b")
	if err == nil || err.Error() != "found '=', expected: ',' or 'end of string'" {
		t.Errorf("message %v", err)
	}
}

func TestContinueValuesAreOffsetsOverTheFilteredRows(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 7)
	q := url.Values{"listOptions.limit": {"3"}, "listOptions.labelSelector": {LabelCompleted + "!=true"}}
	_, meta := f.list("argo", q)
	off, err := strconv.Atoi(meta["continue"].(string))
	if err != nil || off != 3 {
		t.Fatalf("continue %v", meta["continue"])
	}
}
