package argosim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// farmFields is the field set FARM's Argo client asks for.
const farmFields = "metadata,items.metadata.uid,items.metadata.name,items.metadata.namespace,items.metadata.labels," +
	"items.metadata.resourceVersion,items.status.phase,items.status.startedAt,items.status.finishedAt,items.status.nodes"

func sortedKeys(v any) []string {
	m, _ := v.(map[string]any)
	k := keys(m)
	slices.Sort(k)
	return k
}

func TestFieldsTrimListLikeUpstream(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 3)
	items, meta := f.list("argo", url.Values{"fields": {farmFields}, "listOptions.limit": {"2"}})
	if meta["continue"] != "2" || meta["resourceVersion"] == nil {
		t.Errorf("metadata %v, want continue and resourceVersion kept", meta)
	}
	it := items[0]
	if got := sortedKeys(it); !slices.Equal(got, []string{"metadata", "spec", "status"}) {
		t.Errorf("item keys %v", got)
	}
	// Dropped struct fields come back as zero values: the server re-encodes its Go types.
	if spec, ok := it["spec"].(map[string]any); !ok || len(spec) != 1 || spec["arguments"] == nil {
		t.Errorf(`spec = %#v, want {"arguments":{}}`, it["spec"])
	}
	if got := sortedKeys(it["metadata"]); !slices.Equal(got, []string{"creationTimestamp", "labels", "name", "namespace", "resourceVersion", "uid"}) {
		t.Errorf("metadata keys %v", got)
	}
	if v, ok := path(it, "metadata").(map[string]any)["creationTimestamp"]; !ok || v != nil {
		t.Errorf("creationTimestamp = %#v, want null (trimmed, re-encoded)", v)
	}
	if got := sortedKeys(it["status"]); !slices.Equal(got, []string{"finishedAt", "nodes", "phase", "startedAt"}) {
		t.Errorf("status keys %v", got)
	}
	node := path(it, "status", "nodes").(map[string]any)[path(it, "metadata", "name").(string)].(map[string]any)
	if node["templateName"] != "main" || node["children"] == nil {
		t.Errorf("nodes were trimmed: %v", node)
	}
}

func TestFieldsQuirks(t *testing.T) {
	f := newFixture(t, Options{})
	seed(f, "argo", 2)
	t.Run("without metadata the continue offset is dropped", func(t *testing.T) {
		_, _, body := f.get("/api/v1/workflows/argo", url.Values{"fields": {"items.metadata.name"}, "listOptions.limit": {"1"}})
		var top map[string]any
		_ = json.Unmarshal(body, &top)
		if md := top["metadata"].(map[string]any); len(md) != 0 {
			t.Errorf(`metadata = %v, want {}`, md)
		}
	})
	t.Run("a field is kept when it is a string prefix of a listed one", func(t *testing.T) {
		items, _ := f.list("argo", url.Values{"fields": {"items.metadata.namespace"}})
		md := items[0]["metadata"].(map[string]any)
		if md["name"] == nil || md["namespace"] != "argo" || md["uid"] != nil {
			t.Errorf("metadata %v: want namespace, and name too (\"name\" prefixes \"namespace\"), but not uid", md)
		}
	})
	t.Run("exclusion", func(t *testing.T) {
		items, _ := f.list("argo", url.Values{"fields": {"-items.status.nodes,items.spec"}})
		st := items[0]["status"].(map[string]any)
		if _, ok := st["nodes"]; ok || st["phase"] != "Running" || items[0]["metadata"].(map[string]any)["uid"] == nil {
			t.Errorf("status %v", st)
		}
		if spec := items[0]["spec"].(map[string]any); len(spec) != 1 {
			t.Errorf("spec %v, want only arguments (entrypoint dropped)", spec)
		}
	})
	t.Run("without items", func(t *testing.T) {
		_, _, body := f.get("/api/v1/workflows/argo", url.Values{"fields": {"metadata"}})
		if string(body) != `{"metadata":{"resourceVersion":"2"},"items":null}` {
			t.Errorf("body %s", body)
		}
	})
	t.Run("node fields by map key", func(t *testing.T) {
		id := NodeID("wf-00", "wf-00.step2")
		items, _ := f.list("argo", url.Values{"fields": {"items.status.nodes." + id + ".phase"}, "listOptions.fieldSelector": {"metadata.name=wf-00"}})
		nodes := path(items[0], "status", "nodes").(map[string]any)
		if got := sortedKeys(nodes[id]); !slices.Equal(got, []string{"finishedAt", "id", "name", "phase", "startedAt", "type"}) {
			t.Errorf("node keys %v, want phase plus the never-omitted id, name, type and null times", got)
		}
		// The root node's id "wf-00" is a string prefix of the listed path: it stays, emptied.
		root, _ := json.Marshal(nodes["wf-00"])
		if len(nodes) != 2 || string(root) != `{"finishedAt":null,"id":"","name":"","startedAt":null,"type":""}` {
			t.Errorf("nodes %v, root %s", keys(nodes), root)
		}
	})
	t.Run("GET", func(t *testing.T) {
		wf := f.getMap("/api/v1/workflows/argo/wf-00", url.Values{"fields": {"status.phase"}}, http.StatusOK)
		b, _ := json.Marshal(wf)
		want := `{"metadata":{"creationTimestamp":null},"spec":{"arguments":{}},"status":{"finishedAt":null,"phase":"Running","startedAt":null}}`
		if string(b) != want {
			t.Errorf("GET trimmed = %s\nwant %s", b, want)
		}
	})
}

func TestFieldFilterUnits(t *testing.T) {
	tests := []struct {
		fields, path string
		exclude      bool
	}{
		{"", "items.status.nodes", false},
		{"metadata,items.metadata.uid", "items.status.nodes", true},
		{"items.status", "items.status.nodes", false},
		{"items.status.nodes.x", "items.status.nodes", false},
		{"-items.status.nodes", "items.status.nodes", true},
		{"-items.spec", "items.status.nodes", false},
	}
	for _, tc := range tests {
		if got := parseFields(tc.fields).willExclude(tc.path); got != tc.exclude {
			t.Errorf("fields %q: willExclude(%q) = %v, want %v", tc.fields, tc.path, got, tc.exclude)
		}
	}
	// Trimming never touches the original.
	wf := dagWorkflow("argo", "orig", t0)
	before, _ := json.Marshal(wf)
	_ = trim(parseFields("metadata.name,status.nodes.orig.id"), "", &wf)
	after, _ := json.Marshal(wf)
	if string(before) != string(after) {
		t.Error("trim modified its input")
	}
}
