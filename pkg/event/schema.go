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
	root, err := compiledSchema()
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
		node = root.def(def)
	}
	return validateDocument(node, doc)
}

// validateDocument checks a document read with numbers kept as written (json.Number) against
// node. A valid document is checked once, without paths; a refused one again, to name its
// problems by path in a stable order.
func validateDocument(node *schemaNode, doc any) error {
	if node.valid(doc) {
		return nil
	}
	v := validator{}
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

// compiledRoot is the schema compiled: the top (a version-2 batch) and its definitions.
type compiledRoot struct {
	node *schemaNode
	defs map[string]*schemaNode // read only once compiled
}

// def is the compiled definition name; a name the schema does not define constrains nothing.
func (r compiledRoot) def(name string) *schemaNode {
	if n, ok := r.defs[name]; ok {
		return n
	}
	return &schemaNode{}
}

// compiledSchema is the schema compiled once into a tree of nodes, so that checking a message
// does not look keywords up in the schema's maps.
var compiledSchema = sync.OnceValues(func() (compiledRoot, error) {
	root, err := rundeltaSchema()
	if err != nil {
		return compiledRoot{}, err
	}
	c := &compiler{defs: root.defs, done: map[string]*schemaNode{}}
	node := c.compile(root.node)
	for name := range root.defs {
		c.ref(name)
	}
	return compiledRoot{node: node, defs: c.done}, nil
})

// schemaNode is one schema object with its keywords read.
type schemaNode struct {
	ref *schemaNode // $ref, resolved; a name the schema does not define gives an empty node
	// hasType says the type keyword is present; types are its names ("" for an entry that is not
	// a string, which no value has), so a keyword of another kind makes every value fail it.
	hasType  bool
	types    []string
	typeRaw  any // for the message
	hasConst bool
	constVal any
	hasEnum  bool
	enum     []any
	hasMin   bool
	minimum  float64
	hasMinLn bool
	minLen   float64
	dateTime bool
	required []string
	props    map[string]*schemaNode // only the properties whose schema is an object
	extra    *schemaNode            // additionalProperties, when it is a schema
	items    *schemaNode
}

type compiler struct {
	defs map[string]any
	done map[string]*schemaNode // compiled definitions by name (a definition may refer to itself)
}

// ref is the compiled definition name, compiled on first use.
func (c *compiler) ref(name string) *schemaNode {
	if n, ok := c.done[name]; ok {
		return n
	}
	n := &schemaNode{}
	c.done[name] = n // before compiling it, for a definition that refers to itself
	m, _ := c.defs[name].(map[string]any)
	*n = *c.compile(m)
	return n
}

func (c *compiler) compile(s map[string]any) *schemaNode {
	n := &schemaNode{}
	if ref, ok := s["$ref"].(string); ok {
		n.ref = c.ref(strings.TrimPrefix(ref, "#/$defs/"))
	}
	if t, ok := s["type"]; ok {
		n.hasType, n.typeRaw = true, t
		switch t := t.(type) {
		case string:
			n.types = []string{t}
		case []any:
			n.types = []string{}
			for _, e := range t {
				name, _ := e.(string)
				n.types = append(n.types, name)
			}
		}
	}
	n.constVal, n.hasConst = s["const"]
	n.enum, n.hasEnum = s["enum"].([]any)
	n.minimum, n.hasMin = s["minimum"].(float64)
	n.minLen, n.hasMinLn = s["minLength"].(float64)
	if f, ok := s["format"].(string); ok && f == "date-time" {
		n.dateTime = true
	}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			n.required = append(n.required, r.(string))
		}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		n.props = map[string]*schemaNode{}
		for k, p := range props {
			if p, ok := p.(map[string]any); ok {
				n.props[k] = c.compile(p)
			}
		}
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		n.extra = c.compile(ap)
	}
	if items, ok := s["items"].(map[string]any); ok {
		n.items = c.compile(items)
	}
	return n
}

// valid reports whether x satisfies s: the fast pass, which stops at the first violation and
// builds no path. It asserts exactly what check does.
func (s *schemaNode) valid(x any) bool {
	if s.ref != nil && !s.ref.valid(x) {
		return false
	}
	if s.hasType && !slices.ContainsFunc(s.types, func(t string) bool { return isType(t, x) }) {
		return false
	}
	if s.hasConst && !jsonEqual(s.constVal, x) {
		return false
	}
	if s.hasEnum && !slices.ContainsFunc(s.enum, func(c any) bool { return jsonEqual(c, x) }) {
		return false
	}
	switch x := x.(type) {
	case json.Number:
		if s.hasMin {
			if f, err := x.Float64(); err == nil && f < s.minimum {
				return false
			}
		}
	case string:
		if s.hasMinLn && float64(utf8.RuneCountInString(x)) < s.minLen {
			return false
		}
		if s.dateTime {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				return false
			}
		}
	case map[string]any:
		for _, r := range s.required {
			if _, present := x[r]; !present {
				return false
			}
		}
		for k, val := range x {
			if p, ok := s.props[k]; ok {
				if !p.valid(val) {
					return false
				}
			} else if s.extra != nil && !s.extra.valid(val) {
				return false
			}
		}
	case []any:
		if s.items != nil {
			for _, e := range x {
				if !s.items.valid(e) {
					return false
				}
			}
		}
	}
	return true
}

// validator names the violations of a refused document by path (the reporting pass).
type validator struct {
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

func (v *validator) check(path string, s *schemaNode, x any) {
	if s.ref != nil {
		v.check(path, s.ref, x)
	}
	if s.hasType && !slices.ContainsFunc(s.types, func(t string) bool { return isType(t, x) }) {
		v.fail(path, "is %s, want %s", typeName(x), describeType(s.typeRaw))
		return
	}
	if s.hasConst && !jsonEqual(s.constVal, x) {
		v.fail(path, "is %s, want %s", short(x), short(s.constVal))
	}
	if s.hasEnum && !slices.ContainsFunc(s.enum, func(c any) bool { return jsonEqual(c, x) }) {
		v.fail(path, "is %s, not one of the schema's values", short(x))
	}
	if s.hasMin {
		if n, isNum := x.(json.Number); isNum {
			if f, err := n.Float64(); err == nil && f < s.minimum {
				v.fail(path, "is %s, below the minimum %v", n, s.minimum)
			}
		}
	}
	if s.hasMinLn {
		if str, isStr := x.(string); isStr && float64(utf8.RuneCountInString(str)) < s.minLen {
			v.fail(path, "is %s, shorter than %v characters", short(x), s.minLen)
		}
	}
	if s.dateTime {
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
		if s.items != nil {
			for i, e := range x {
				v.check(fmt.Sprintf("%s[%d]", path, i), s.items, e)
			}
		}
	}
}

func (v *validator) object(path string, s *schemaNode, x map[string]any) {
	for _, r := range s.required {
		if _, present := x[r]; !present {
			v.fail(join(path, r), "is required")
		}
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	slices.Sort(keys) // problems in a stable order
	for _, k := range keys {
		if p, ok := s.props[k]; ok {
			v.check(join(path, k), p, x[k])
			continue
		}
		// additionalProperties: false is not asserted (see ValidateJSON); a schema for them is.
		if s.extra != nil {
			v.check(join(path, k), s.extra, x[k])
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
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
