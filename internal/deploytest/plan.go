package deploytest

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Plan is the part of `tofu show -json PLAN` the checks read.
type Plan struct {
	Variables     map[string]struct{ Value json.RawMessage } `json:"variables"`
	PlannedValues struct {
		RootModule struct {
			Resources []PlannedResource `json:"resources"`
		} `json:"root_module"`
	} `json:"planned_values"`
	Configuration struct {
		RootModule struct {
			Resources []ConfigResource `json:"resources"`
		} `json:"root_module"`
	} `json:"configuration"`
}

// PlannedResource is one resource instance of the plan; Values holds what is known before apply.
type PlannedResource struct {
	Address string          `json:"address"`
	Mode    string          `json:"mode"` // "managed", or "data" for a data source
	Type    string          `json:"type"`
	Name    string          `json:"name"`
	Index   any             `json:"index"`
	Values  json.RawMessage `json:"values"`
}

// ConfigResource is one resource block of the configuration, with its expressions' references.
type ConfigResource struct {
	Address     string                     `json:"address"`
	Expressions map[string]json.RawMessage `json:"expressions"`
}

// ReadPlan reads a plan's JSON representation.
func ReadPlan(file string) (*Plan, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode the plan %s: %w", file, err)
	}
	return &p, nil
}

// Resources decodes the values of every planned instance of resource type typ into a new T each;
// data sources of that type are not resources the plan creates.
func Resources[T any](p *Plan, typ string) (map[string]*T, error) {
	out := map[string]*T{}
	for _, r := range p.PlannedValues.RootModule.Resources {
		if r.Type != typ || r.Mode == "data" {
			continue
		}
		v := new(T)
		if err := json.Unmarshal(r.Values, v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", r.Address, err)
		}
		out[r.Address] = v
	}
	return out, nil
}

// References returns what the configuration expression at path (attribute names, blocks
// included: "dead_letter_policy", "dead_letter_topic") of the resource block at address refers
// to, e.g. ["google_pubsub_topic.dead_letter.id", "google_pubsub_topic.dead_letter"].
func (p *Plan) References(address string, path ...string) []string {
	for _, r := range p.Configuration.RootModule.Resources {
		if r.Address != address || len(path) == 0 {
			continue
		}
		raw := r.Expressions[path[0]]
		for _, key := range path[1:] {
			var blocks []map[string]json.RawMessage
			if json.Unmarshal(raw, &blocks) != nil || len(blocks) == 0 {
				return nil
			}
			raw = blocks[0][key]
		}
		var expr struct{ References []string }
		if json.Unmarshal(raw, &expr) != nil {
			return nil
		}
		return expr.References
	}
	return nil
}

// Registration is a function the root package registers with the Functions Framework.
type Registration struct {
	Name string
	Kind string // "HTTP" or "CloudEvent"
}

const functionsImport = "github.com/GoogleCloudPlatform/functions-framework-go/functions"

// RegisteredFunctions reads the non-test Go files of the package in dir (the module root) for
// functions.HTTP("Name", …) and functions.CloudEvent("Name", …) calls: the entry points a
// deployment may name.
func RegisteredFunctions(dir string) (map[string]Registration, error) {
	fset := token.NewFileSet()
	files, err := parseNonTestFiles(fset, dir, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse the root package: %w", err)
	}
	regs := map[string]Registration{}
	for _, f := range files {
		name := importName(f, functionsImport)
		if name == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != name || (sel.Sel.Name != "HTTP" && sel.Sel.Name != "CloudEvent") {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if fn, err := strconv.Unquote(lit.Value); err == nil {
					regs[fn] = Registration{Name: fn, Kind: sel.Sel.Name}
				}
			}
			return true
		})
	}
	return regs, nil
}

// parseNonTestFiles parses the non-test Go files of dir (parser.ParseDir, which did this, is
// deprecated). Build tags are not considered: the directories read here have none.
func parseNonTestFiles(fset *token.FileSet, dir string, mode parser.Mode) ([]*ast.File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, mode)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func importName(f *ast.File, importPath string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == importPath {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return path.Base(importPath)
		}
	}
	return ""
}

// EnvReadsInSource returns the environment variables that the given Go files (relative to root)
// read directly with os.Getenv or os.LookupEnv and a constant name.
func EnvReadsInSource(root string, files []string) (map[string]bool, error) {
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, rel := range files {
		if !strings.HasSuffix(rel, ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(root, filepath.FromSlash(rel)), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", rel, err)
		}
		osName := importName(f, "os")
		if osName == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv") {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != osName {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if name, err := strconv.Unquote(lit.Value); err == nil {
					names[name] = true
				}
			}
			return true
		})
	}
	return names, nil
}
