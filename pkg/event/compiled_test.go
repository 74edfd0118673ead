package event

import (
	"bytes"
	"encoding/json"

	"reflect"
	"sort"
	"testing"
)

// mutations calls f with the JSON of start and of every one-step change of it: each property of
// each object removed, or its value replaced by one of replacements.
func mutations(start any, replacements []any, f func(raw []byte)) {
	emit := func() {
		raw, err := json.Marshal(start)
		if err != nil {
			panic(err)
		}
		f(raw)
	}
	var visit func(node any)
	visit = func(node any) {
		switch n := node.(type) {
		case map[string]any:
			keys := make([]string, 0, len(n))
			for k := range n {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				v := n[k]
				delete(n, k)
				emit()
				for _, r := range replacements {
					n[k] = r
					emit()
				}
				n[k] = v
				visit(v)
			}
		case []any:
			for _, e := range n {
				visit(e)
			}
		}
	}
	emit()
	visit(start)
}

// The fast pass (valid, no paths, first violation only) and the reporting pass (check) of the
// compiled schema assert the same thing, and DecodeDeltas' one-read path (decodeValid) accepts
// exactly what the plain reading (decodeDeltasReporting) accepts, with the same deltas: over every
// one-step mutation of a fully populated batch and of a fully populated version-1 delta.
func TestFastPassAgreesWithTheReport(t *testing.T) {
	root, err := rundeltaSchema()
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := compiledSchema()
	if err != nil {
		t.Fatal(err)
	}
	batch := generate(t, root.defs, root.node).(map[string]any)
	for _, d := range batch["deltas"].([]any) {
		d.(map[string]any)["schema_version"] = float64(SchemaVersion)
	}
	v1 := generate(t, root.defs, root.defs[deltaDef].(map[string]any)).(map[string]any)
	v1["schema_version"] = float64(SchemaVersion1)

	replacements := []any{"x", "", "not-a-time", "2026-11-23T10:00:00Z", 0.0, 1.0, 2.0, -1.0, 1.5, true, nil,
		map[string]any{}, []any{}, []any{"x"}, map[string]any{"": 1.0}, "argo", "running", "bogus"}
	var cases, accepted int
	for _, tc := range []struct {
		name  string
		start map[string]any
		node  *schemaNode
	}{{"batch", batch, compiled.node}, {"version 1", v1, compiled.def(deltaDef)}} {
		mutations(tc.start, replacements, func(raw []byte) {
			cases++
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			var doc any
			if err := dec.Decode(&doc); err != nil {
				t.Fatal(err)
			}
			v := validator{}
			v.check("", tc.node, doc)
			if fast := tc.node.valid(doc); fast != (len(v.problems) == 0) {
				t.Errorf("%s: fast pass says valid = %v, the report %q\n%s", tc.name, fast, v.problems, raw)
			}
			got, ok := decodeValid(raw)
			want, err := decodeDeltasReporting(raw)
			if ok != (err == nil) || ok && !reflect.DeepEqual(got, want) {
				t.Errorf("%s: decodeValid = %v, %v; decodeDeltasReporting = %v, %v\n%s", tc.name, len(got), ok, len(want), err, raw)
			}
			if ok {
				accepted++
			}
		})
	}
	if accepted == 0 || accepted == cases {
		t.Fatalf("%d of %d documents accepted: the mutations do not test anything", accepted, cases)
	}
	t.Logf("%d documents, %d accepted", cases, accepted)
}

// FuzzDecodeValid: whatever DecodeDeltas' one-read path accepts, the plain reading accepts too,
// with the same deltas (the one-read path may give up on a message the plain reading accepts).
func FuzzDecodeValid(f *testing.F) {
	for _, b := range seedDeltas() {
		f.Add(b)
	}
	for _, s := range []string{`{"schema_version":2,"id":"b","deltas":[]}`, `{"schema_version":2,"id":"b","deltas":[]} x`,
		`{"schema_version":"x","schema_version":2,"id":"b","deltas":[]}`, `{"schema_version":2,"SCHEMA_VERSION":null,"id":"b","deltas":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeValid(data)
		if !ok {
			return
		}
		want, err := decodeDeltasReporting(data)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeValid accepted %q (%d deltas); the plain reading: %d deltas, %v", data, len(got), len(want), err)
		}
	})
}
