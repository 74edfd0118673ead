package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/farmobs/farm/schemas"
)

// The schema says only what ValidateJSON checks: every keyword it uses is one the validation reads
// (or an annotation).
func TestSchemaUsesOnlyCheckedKeywords(t *testing.T) {
	root, err := rundeltaSchema()
	if err != nil {
		t.Fatal(err)
	}
	known := append(slices.Clone(SchemaKeywords), annotations...)
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		for k, v := range s {
			if !slices.Contains(known, k) {
				t.Errorf("%s uses keyword %q, which ValidateJSON does not check", path, k)
			}
			switch k {
			case "properties", "$defs":
				for name, sub := range v.(map[string]any) {
					walk(path+"/"+k+"/"+name, sub.(map[string]any))
				}
			case "items", "additionalProperties":
				if sub, ok := v.(map[string]any); ok {
					walk(path+"/"+k, sub)
				}
			}
		}
	}
	walk("#", root.node)
}

// reference compiles the schema with an independent JSON Schema validator (formats asserted);
// strict keeps additionalProperties: false, otherwise it is removed (see ValidateJSON).
func reference(t *testing.T, strict bool) *jsonschema.Schema {
	t.Helper()
	raw, err := schemas.FS.ReadFile(SchemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !strict {
		var strip func(any)
		strip = func(n any) {
			switch n := n.(type) {
			case map[string]any:
				if n["additionalProperties"] == false {
					delete(n, "additionalProperties")
				}
				for _, v := range n {
					strip(v)
				}
			case []any:
				for _, v := range n {
					strip(v)
				}
			}
		}
		strip(doc)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("rundelta.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("rundelta.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// generate builds a valid instance of schema node s with every property present.
func generate(t *testing.T, defs map[string]any, s map[string]any) any {
	if ref, ok := s["$ref"].(string); ok {
		return generate(t, defs, defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any))
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if e, ok := s["enum"].([]any); ok {
		return e[len(e)-1]
	}
	typ := s["type"]
	if ts, ok := typ.([]any); ok {
		typ = ts[0]
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			out[name] = generate(t, defs, p.(map[string]any))
		}
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			out["key"] = generate(t, defs, ap)
		}
		return out
	case "array":
		return []any{generate(t, defs, s["items"].(map[string]any))}
	case "string":
		if s["format"] == "date-time" {
			return "2026-11-23T10:00:00.123Z"
		}
		return "x"
	case "integer":
		if m, ok := s["minimum"].(float64); ok {
			return m
		}
		return 7.0
	case "number":
		return 1.5
	case "boolean":
		return true
	}
	t.Fatalf("cannot generate an instance of %v", s)
	return nil
}

// A document valid for one validator and not for the other, over every violation the schema
// describes: for each node of a fully populated document, each required property removed, each
// optional one removed, and its value replaced by one of every JSON type and by edge values.
// ValidateJSON and the independent validator must agree on every one, both ways; unknown
// properties, the one documented difference, are refused by the strict schema and accepted here.
func TestValidateJSONAgreesWithTheSchema(t *testing.T) {
	root, err := rundeltaSchema()
	if err != nil {
		t.Fatal(err)
	}
	lenient, strict := reference(t, false), reference(t, true)
	full := generate(t, root.defs, root.node)

	replacements := []any{"x", "", "not-a-time", "2026-11-23T10:00:00Z", 0.0, 1.0, -1.0, 1.5, true, nil, map[string]any{}, []any{}, "argo", "running", "bogus"}
	var cases, refused, unknown int
	check := func(what string, doc any) {
		cases++
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		want := lenient.Validate(inst) == nil
		got := ValidateJSON(raw)
		if got != nil && !errors.Is(got, ErrInvalid) {
			t.Fatalf("%s: %v does not wrap ErrInvalid", what, got)
		}
		if (got == nil) != want {
			t.Errorf("%s: ValidateJSON = %v, the schema says valid = %v\n%s", what, got, want, raw)
		}
		if !want {
			refused++
		}
	}
	// mutate visits every object in doc (a copy is changed and restored around each check).
	var visit func(path string, node any)
	visit = func(path string, node any) {
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
				check(fmt.Sprintf("%s.%s removed", path, k), full)
				for _, r := range replacements {
					n[k] = r
					check(fmt.Sprintf("%s.%s = %v", path, k, r), full)
				}
				n[k] = v
				visit(path+"."+k, v)
			}
			n["zz_added_by_a_newer_release"] = "x"
			check(path+" with an unknown property", full)
			raw, _ := json.Marshal(full)
			inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if strict.Validate(inst) != nil {
				unknown++
			}
			delete(n, "zz_added_by_a_newer_release")
		case []any:
			for i, e := range n {
				visit(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	check("the fully populated document", full)
	visit("$", full)
	if refused == 0 || refused == cases {
		t.Fatalf("%d of %d documents refused: the mutations do not test anything", refused, cases)
	}
	if unknown == 0 {
		t.Errorf("the strict schema accepted every unknown property")
	}
	t.Logf("%d documents, %d refused by both; %d objects take unknown properties only here", cases, refused, unknown)
}
