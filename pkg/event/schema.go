package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/farmobs/farm/schemas"
)

// SchemaFile is the RunDelta JSON Schema in package schemas: the one contract of a message.
const SchemaFile = "rundelta.schema.json"

// SchemaKeywords are the JSON Schema keywords the validation reads (annotations aside). The
// schema's test fails if the file uses any other, so the file cannot say more than FARM checks.
var SchemaKeywords = []string{
	"$ref", "type", "const", "enum", "required", "properties", "additionalProperties", "items", "minimum", "minLength", "format",
}

// annotations are keywords that describe and constrain nothing.
var annotations = []string{"$schema", "$id", "$defs", "title", "description"}

// ValidateJSON checks a message against the schema, the way a JSON Schema (2020-12) validator
// asserting formats would, with one difference the schema itself documents: properties it does
// not name are ignored, because a newer release may add optional ones without a new
// schema_version. A document whose schema_version is 1 is a version-1 message, checked against
// $defs/run_delta; any other against the schema itself (a version-2 batch). The error wraps
// ErrInvalid and names the first few violations by JSON path.
func ValidateJSON(data []byte) error {
	return validate(data, "")
}

// validateDelta checks one RunDelta document against $defs/run_delta.
func validateDelta(data []byte) error {
	return validate(data, deltaDef)
}

// deltaDef is the definition of one RunDelta in the schema.
const deltaDef = "run_delta"

func validate(data []byte, def string) error {
	root, err := rundeltaSchema()
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON document", ErrInvalid)
	}
	node := root.node
	if obj, ok := doc.(map[string]any); def == "" && ok && jsonEqual(float64(SchemaVersion1), obj["schema_version"]) {
		def = deltaDef
	}
	if def != "" {
		node, _ = root.defs[def].(map[string]any)
	}
	v := validator{defs: root.defs}
	v.check("", node, doc)
	if len(v.problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, joinProblems(v.problems))
	}
	return nil
}

type schemaRoot struct {
	node map[string]any
	defs map[string]any
}

var loadSchema = sync.OnceValues(func() (schemaRoot, error) {
	raw, err := schemas.FS.ReadFile(SchemaFile)
	if err != nil {
		return schemaRoot{}, fmt.Errorf("read the RunDelta schema: %w", err)
	}
	var node map[string]any
	if err := json.Unmarshal(raw, &node); err != nil {
		return schemaRoot{}, fmt.Errorf("decode the RunDelta schema: %w", err)
	}
	defs, _ := node["$defs"].(map[string]any)
	return schemaRoot{node: node, defs: defs}, nil
})

func rundeltaSchema() (schemaRoot, error) { return loadSchema() }

type validator struct {
	defs     map[string]any
	problems []string
}

// maxProblems bounds the work on a document that is wrong everywhere.
const maxProblems = 50

func (v *validator) fail(path, format string, args ...any) {
	if len(v.problems) < maxProblems {
		if path == "" {
			path = "(document)"
		}
		v.problems = append(v.problems, path+" "+fmt.Sprintf(format, args...))
	}
}

func (v *validator) check(path string, s map[string]any, x any) {
	if ref, ok := s["$ref"].(string); ok {
		def, _ := v.defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		v.check(path, def, x)
	}
	if t, ok := s["type"]; ok && !hasType(t, x) {
		v.fail(path, "is %s, want %s", typeName(x), describeType(t))
		return
	}
	if c, ok := s["const"]; ok && !jsonEqual(c, x) {
		v.fail(path, "is %s, want %s", short(x), short(c))
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(c any) bool { return jsonEqual(c, x) }) {
		v.fail(path, "is %s, not one of the schema's values", short(x))
	}
	if m, ok := s["minimum"].(float64); ok {
		if n, isNum := x.(json.Number); isNum {
			if f, err := n.Float64(); err == nil && f < m {
				v.fail(path, "is %s, below the minimum %v", n, m)
			}
		}
	}
	if m, ok := s["minLength"].(float64); ok {
		if str, isStr := x.(string); isStr && float64(utf8.RuneCountInString(str)) < m {
			v.fail(path, "is %s, shorter than %v characters", short(x), m)
		}
	}
	if f, ok := s["format"].(string); ok && f == "date-time" {
		if str, isStr := x.(string); isStr {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				v.fail(path, "is %s, not an RFC 3339 date-time", short(x))
			}
		}
	}
	switch x := x.(type) {
	case map[string]any:
		v.object(path, s, x)
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range x {
				v.check(fmt.Sprintf("%s[%d]", path, i), items, e)
			}
		}
	}
}

func (v *validator) object(path string, s map[string]any, x map[string]any) {
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if _, present := x[r.(string)]; !present {
				v.fail(join(path, r.(string)), "is required")
			}
		}
	}
	props, _ := s["properties"].(map[string]any)
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	slices.Sort(keys) // problems in a stable order
	for _, k := range keys {
		if p, ok := props[k].(map[string]any); ok {
			v.check(join(path, k), p, x[k])
			continue
		}
		// additionalProperties: false is not asserted (see ValidateJSON); a schema for them is.
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			v.check(join(path, k), ap, x[k])
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func hasType(t any, x any) bool {
	switch t := t.(type) {
	case string:
		return isType(t, x)
	case []any:
		return slices.ContainsFunc(t, func(e any) bool { s, _ := e.(string); return isType(s, x) })
	}
	return false
}

func isType(t string, x any) bool {
	switch t {
	case "object":
		_, ok := x.(map[string]any)
		return ok
	case "array":
		_, ok := x.([]any)
		return ok
	case "string":
		_, ok := x.(string)
		return ok
	case "boolean":
		_, ok := x.(bool)
		return ok
	case "null":
		return x == nil
	case "number":
		_, ok := x.(json.Number)
		return ok
	case "integer":
		n, ok := x.(json.Number)
		if !ok {
			return false
		}
		f, err := n.Float64()
		return err == nil && f == math.Trunc(f) && !math.IsInf(f, 0)
	}
	return false
}

func typeName(x any) string {
	switch x := x.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case json.Number:
		if isType("integer", x) {
			return "an integer"
		}
		return "a number"
	}
	return fmt.Sprintf("%T", x)
}

func describeType(t any) string {
	if ts, ok := t.([]any); ok {
		var names []string
		for _, e := range ts {
			names = append(names, fmt.Sprint(e))
		}
		return strings.Join(names, " or ")
	}
	return fmt.Sprint(t)
}

// jsonEqual compares a schema value (decoded as float64) with a document value (numbers as
// json.Number).
func jsonEqual(schema, doc any) bool {
	if n, ok := doc.(json.Number); ok {
		f, err := n.Float64()
		s, isNum := schema.(float64)
		return err == nil && isNum && f == s
	}
	switch s := schema.(type) {
	case string, bool, nil:
		return s == doc
	}
	return false
}

// short renders a value for a message, cut so that a huge value cannot make a huge error.
func short(x any) string {
	b, err := json.Marshal(x)
	if err != nil {
		return fmt.Sprintf("%v", x)
	}
	const most = 64
	if len(b) > most {
		return strings.ToValidUTF8(string(b[:most]), "") + "…"
	}
	return string(b)
}
