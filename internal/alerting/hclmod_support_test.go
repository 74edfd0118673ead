package alerting

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Module is a terraform root module read the way terraform reads it, far enough to evaluate its
// variables (types, optional attributes, defaults, validations) and its locals. Resources are not
// evaluated: a local that refers to one cannot be evaluated here.
//
// It exists because a root whose provider cannot be installed (DataDog's, on these machines)
// cannot be planned: evaluating its locals is how a test sees what it would send.
type Module struct {
	Dir       string
	variables map[string]*variable
	locals    map[string]hcl.Expression
	// Resources holds each resource block's body, by "type.name".
	Resources map[string]hcl.Body
}

type variable struct {
	name        string
	typ         cty.Type
	defaults    *typeexpr.Defaults
	def         cty.Value // cty.NilVal: required
	nullable    bool
	validations []validation
}

type validation struct {
	condition, message hcl.Expression
}

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "terraform"}, {Type: "provider", LabelNames: []string{"name"}},
		{Type: "variable", LabelNames: []string{"name"}}, {Type: "locals"},
		{Type: "resource", LabelNames: []string{"type", "name"}}, {Type: "data", LabelNames: []string{"type", "name"}},
		{Type: "output", LabelNames: []string{"name"}}, {Type: "module", LabelNames: []string{"name"}},
		{Type: "check", LabelNames: []string{"name"}}, {Type: "moved"}, {Type: "import"}, {Type: "removed"},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "description"}, {Name: "type"}, {Name: "default"}, {Name: "nullable"},
		{Name: "sensitive"}, {Name: "ephemeral"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "condition", Required: true}, {Name: "error_message", Required: true},
}}

// LoadModule parses every .tf file of dir.
func LoadModule(dir string) (*Module, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no .tf file in %s", dir)
	}
	m := &Module{Dir: dir, variables: map[string]*variable{}, locals: map[string]hcl.Expression{}, Resources: map[string]hcl.Body{}}
	p := hclparse.NewParser()
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			return nil, diags
		}
		if err := m.add(f.Body); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return m, nil
}

func (m *Module) add(body hcl.Body) error {
	content, diags := body.Content(rootSchema)
	if diags.HasErrors() {
		return diags
	}
	for _, b := range content.Blocks {
		switch b.Type {
		case "variable":
			v, err := parseVariable(b)
			if err != nil {
				return err
			}
			m.variables[v.name] = v
		case "locals":
			attrs, diags := b.Body.JustAttributes()
			if diags.HasErrors() {
				return diags
			}
			for name, a := range attrs {
				if _, dup := m.locals[name]; dup {
					return fmt.Errorf("local %s is defined twice", name)
				}
				m.locals[name] = a.Expr
			}
		case "resource":
			m.Resources[b.Labels[0]+"."+b.Labels[1]] = b.Body
		}
	}
	return nil
}

func parseVariable(b *hcl.Block) (*variable, error) {
	v := &variable{name: b.Labels[0], typ: cty.DynamicPseudoType, nullable: true, def: cty.NilVal}
	content, diags := b.Body.Content(variableSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	if a, ok := content.Attributes["type"]; ok {
		if v.typ, v.defaults, diags = typeexpr.TypeConstraintWithDefaults(a.Expr); diags.HasErrors() {
			return nil, diags
		}
	}
	if a, ok := content.Attributes["nullable"]; ok {
		val, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, diags
		}
		v.nullable = val.True()
	}
	if a, ok := content.Attributes["default"]; ok {
		val, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, diags
		}
		def, err := v.convert(val)
		if err != nil {
			return nil, fmt.Errorf("variable %s: default: %w", v.name, err)
		}
		v.def = def
	}
	for _, vb := range content.Blocks {
		vc, diags := vb.Body.Content(validationSchema)
		if diags.HasErrors() {
			return nil, diags
		}
		v.validations = append(v.validations, validation{vc.Attributes["condition"].Expr, vc.Attributes["error_message"].Expr})
	}
	return v, nil
}

// convert applies the type's optional-attribute defaults and converts, as terraform does with a
// variable's value.
func (v *variable) convert(val cty.Value) (cty.Value, error) {
	if v.defaults != nil {
		val = v.defaults.Apply(val)
	}
	out, err := convert.Convert(val, v.typ)
	if err != nil {
		return cty.NilVal, fmt.Errorf("variable %s: %w", v.name, err)
	}
	if out.IsNull() && !v.nullable {
		return cty.NilVal, fmt.Errorf("variable %s: must not be null", v.name)
	}
	return out, nil
}

// Variables returns the names of the module's variables.
func (m *Module) Variables() []string { return slices.Sorted(maps.Keys(m.variables)) }

// Defaults returns the default of every variable that has one.
func (m *Module) Defaults() map[string]cty.Value {
	out := map[string]cty.Value{}
	for name, v := range m.variables {
		if v.def != cty.NilVal {
			out[name] = v.def
		}
	}
	return out
}

// Eval evaluates the module with the given variable values, given as JSON (as in a
// terraform.tfvars.json file); the others take their defaults. A variable with no default and no
// value is unknown: a local that depends on it cannot be evaluated.
type Eval struct {
	m      *Module
	vars   map[string]cty.Value
	locals map[string]cty.Value
	active map[string]bool // locals being evaluated: cycle detection
}

// With returns an evaluation of the module for values.
func (m *Module) With(values map[string]string) (*Eval, error) {
	e := &Eval{m: m, vars: map[string]cty.Value{}, locals: map[string]cty.Value{}, active: map[string]bool{}}
	for name := range values {
		if _, ok := m.variables[name]; !ok {
			return nil, fmt.Errorf("no variable %q in %s", name, m.Dir)
		}
	}
	for name, v := range m.variables {
		raw, given := values[name]
		switch {
		case given:
			val, err := fromJSON(raw)
			if err != nil {
				return nil, fmt.Errorf("variable %s: %w", name, err)
			}
			if e.vars[name], err = v.convert(val); err != nil {
				return nil, err
			}
		case v.def != cty.NilVal:
			e.vars[name] = v.def
		default:
			e.vars[name] = cty.UnknownVal(v.typ)
		}
	}
	return e, nil
}

func fromJSON(raw string) (cty.Value, error) {
	t, err := ctyjson.ImpliedType([]byte(raw))
	if err != nil {
		return cty.NilVal, fmt.Errorf("value %s is not JSON: %w", raw, err)
	}
	return ctyjson.Unmarshal([]byte(raw), t)
}

// Validate runs every variable's validation blocks, like terraform plan, and returns each failed
// one's error message.
func (e *Eval) Validate() error {
	var errs []error
	for _, name := range e.m.Variables() {
		for _, val := range e.m.variables[name].validations {
			ctx := e.context(map[string]cty.Value{})
			ok, diags := val.condition.Value(ctx)
			if diags.HasErrors() {
				errs = append(errs, fmt.Errorf("variable %s: validation: %w", name, diags))
				continue
			}
			if !ok.IsKnown() || ok.IsNull() || ok.True() {
				continue
			}
			msg, diags := val.message.Value(ctx)
			if diags.HasErrors() || msg.Type() != cty.String {
				errs = append(errs, fmt.Errorf("variable %s: invalid value", name))
				continue
			}
			errs = append(errs, fmt.Errorf("variable %s: %s", name, msg.AsString()))
		}
	}
	return errors.Join(errs...)
}

// Local evaluates a local value (and the locals it refers to). The result must be wholly known.
func (e *Eval) Local(name string) (cty.Value, error) {
	if v, ok := e.locals[name]; ok {
		return v, nil
	}
	expr, ok := e.m.locals[name]
	if !ok {
		return cty.NilVal, fmt.Errorf("no local %q in %s", name, e.m.Dir)
	}
	if e.active[name] {
		return cty.NilVal, fmt.Errorf("local %s refers to itself", name)
	}
	e.active[name] = true
	defer delete(e.active, name)
	v, err := e.eval(expr, nil)
	if err != nil {
		return cty.NilVal, fmt.Errorf("local %s: %w", name, err)
	}
	e.locals[name] = v
	return v, nil
}

// ResourceAttr evaluates one argument of a resource block ("type.name") for the instance each
// ({key, value} of its for_each), as terraform would plan it. It fails if the argument refers to
// another resource.
func (e *Eval) ResourceAttr(resource, attr string, each cty.Value) (cty.Value, error) {
	body, ok := e.m.Resources[resource]
	if !ok {
		return cty.NilVal, fmt.Errorf("no resource %s in %s", resource, e.m.Dir)
	}
	content, _, diags := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: attr, Required: true}}})
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("%s: %w", resource, diags)
	}
	v, err := e.eval(content.Attributes[attr].Expr, map[string]cty.Value{"each": each})
	if err != nil {
		return cty.NilVal, fmt.Errorf("%s.%s: %w", resource, attr, err)
	}
	return v, nil
}

// eval evaluates expr after the locals it refers to; extra adds variables such as each.
func (e *Eval) eval(expr hcl.Expression, extra map[string]cty.Value) (cty.Value, error) {
	deps := map[string]cty.Value{}
	for _, tr := range expr.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		attr, ok := tr[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		v, err := e.Local(attr.Name)
		if err != nil {
			return cty.NilVal, err
		}
		deps[attr.Name] = v
	}
	ctx := e.context(deps)
	maps.Copy(ctx.Variables, extra)
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, errors.New("depends on a variable with no value")
	}
	return v, nil
}

func (e *Eval) context(locals map[string]cty.Value) *hcl.EvalContext {
	dir := cty.StringVal(e.m.Dir)
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   cty.ObjectVal(e.vars),
			"local": cty.ObjectVal(locals),
			"path":  cty.ObjectVal(map[string]cty.Value{"module": dir, "root": dir, "cwd": dir}),
		},
		Functions: functions(e.m.Dir),
	}
}

// functions are the terraform functions the modules use, with terraform's behaviour. A module
// calling another one fails to evaluate with "Call to unknown function": add it here.
func functions(dir string) map[string]function.Function {
	f := map[string]function.Function{
		"alltrue":    boolFold(true),
		"anytrue":    boolFold(false),
		"can":        tryfunc.CanFunc,
		"coalesce":   coalesceFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"file":       fileFunc(dir),
		"flatten":    stdlib.FlattenFunc,
		"floor":      stdlib.FloorFunc,
		"format":     stdlib.FormatFunc,
		"formatlist": stdlib.FormatListFunc,
		"join":       stdlib.JoinFunc,
		"jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"fileexists": fileExistsFunc(dir),
		"length":     lengthFunc,
		"lookup":     stdlib.LookupFunc,
		"lower":      stdlib.LowerFunc,
		"max":        stdlib.MaxFunc,
		"merge":      stdlib.MergeFunc,
		"min":        stdlib.MinFunc,
		"regex":      stdlib.RegexFunc,
		"replace":    replaceFunc,
		"split":      stdlib.SplitFunc,
		"tonumber":   convertFunc(cty.Number),
		"tostring":   convertFunc(cty.String),
		"toset":      convertFunc(cty.Set(cty.DynamicPseudoType)),
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"try":        tryfunc.TryFunc,
		"values":     stdlib.ValuesFunc,
	}
	f["templatefile"] = templateFileFunc(dir, f)
	return f
}

func boolFold(all bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for it := args[0].ElementIterator(); it.Next(); {
				_, v := it.Element()
				if v.IsNull() || !v.IsKnown() {
					return cty.False, nil
				}
				if v.True() != all {
					return cty.BoolVal(!all), nil
				}
			}
			return cty.BoolVal(all), nil
		},
	})
}

// coalesceFunc is terraform's coalesce: the first argument that is neither null nor "".
var coalesceFunc = function.New(&function.Spec{
	VarParam: &function.Parameter{Name: "vals", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true},
	Type: func(args []cty.Value) (cty.Type, error) {
		types := make([]cty.Type, len(args))
		for i, a := range args {
			types[i] = a.Type()
		}
		t, _ := convert.UnifyUnsafe(types)
		if t == cty.NilType {
			return cty.NilType, errors.New("coalesce: all arguments must have the same type")
		}
		return t, nil
	},
	Impl: func(args []cty.Value, t cty.Type) (cty.Value, error) {
		for _, a := range args {
			if !a.IsKnown() {
				return cty.UnknownVal(t), nil
			}
			if a.IsNull() || (a.Type() == cty.String && a.AsString() == "") {
				continue
			}
			return convert.Convert(a, t)
		}
		return cty.NilVal, errors.New("coalesce: no non-null, non-empty argument")
	},
})

// replaceFunc is terraform's replace: a substring in slashes is a regular expression.
var replaceFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "substr", Type: cty.String}, {Name: "replace", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		sub := args[1].AsString()
		if len(sub) > 1 && strings.HasPrefix(sub, "/") && strings.HasSuffix(sub, "/") {
			return stdlib.RegexReplace(args[0], cty.StringVal(sub[1:len(sub)-1]), args[2])
		}
		return stdlib.Replace(args[0], args[1], args[2])
	},
})

func convertFunc(to cty.Type) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType, AllowNull: true}},
		Type:   function.StaticReturnType(to),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return convert.Convert(args[0], to)
		},
	})
}

// lengthFunc is terraform's length: of a collection, or of a string in characters.
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if args[0].Type() == cty.String {
			return stdlib.Strlen(args[0])
		}
		return stdlib.Length(args[0])
	},
})

func fileExistsFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			fi, err := os.Stat(path)
			return cty.BoolVal(err == nil && fi.Mode().IsRegular()), nil
		},
	})
}

func readRelative(dir, path string) ([]byte, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	return os.ReadFile(path)
}

func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b, err := readRelative(dir, args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

// templateFileFunc renders a file as an HCL template, as terraform's templatefile does: every
// variable the template refers to must be given, and the template may call the other functions.
func templateFileFunc(dir string, funcs map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}, {Name: "vars", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			src, err := readRelative(dir, path)
			if err != nil {
				return cty.NilVal, err
			}
			expr, diags := hclsyntax.ParseTemplate(src, path, hcl.Pos{Line: 1, Column: 1})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			vars := args[1]
			if !vars.Type().IsObjectType() && !vars.Type().IsMapType() {
				return cty.NilVal, errors.New("templatefile: vars must be an object or a map")
			}
			given := vars.AsValueMap()
			var missing []string
			for _, tr := range expr.Variables() {
				if _, ok := given[tr.RootName()]; !ok {
					missing = append(missing, tr.RootName())
				}
			}
			if len(missing) > 0 {
				return cty.NilVal, fmt.Errorf("templatefile %s: vars lack %s", path, strings.Join(slices.Compact(slices.Sorted(slices.Values(missing))), ", "))
			}
			inner := maps.Clone(funcs)
			delete(inner, "templatefile") // terraform forbids recursion too
			out, diags := expr.Value(&hcl.EvalContext{Variables: given, Functions: inner})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			return convert.Convert(out, cty.String)
		},
	})
}
