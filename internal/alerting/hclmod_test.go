package alerting_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/farmobs/farm/internal/alerting"
)

// module writes files into a temporary module directory and loads it.
func module(t *testing.T, files map[string]string) *alerting.Module {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, err := alerting.LoadModule(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const testModule = `
variable "name" {
  type    = string
  default = "farm"
  validation {
    condition     = can(regex("^[a-z]+$", var.name))
    error_message = "The name must be lowercase letters."
  }
}
variable "knobs" {
  type = object({
    on    = optional(bool, true)
    level = optional(number)
  })
  default  = {}
  nullable = false
}
variable "required" { type = string }
locals {
  greeting = templatefile("${path.module}/t.json", { name = var.name, level = coalesce(var.knobs.level, 3) })
  doc      = jsondecode(local.greeting)
  picked   = { for k, v in { a = 1, b = null } : k => v if v != null }
  needs    = "x-${var.required}"
  loop_a   = local.loop_b
  loop_b   = local.loop_a
  unknown  = notafunction(1)
  missing  = templatefile("${path.module}/t.json", { name = "x" })
}
resource "thing" "one" {
  for_each = { k = 1 }
  name     = "${var.name}-${each.key}"
  nested {
    other = 1
  }
}
`

func TestModuleEvaluation(t *testing.T) {
	m := module(t, map[string]string{"main.tf": testModule, "t.json": `{"hello": "${name}", "level": ${level}}`})
	ev, err := m.With(map[string]string{"knobs": `{"level": 7}`})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ev.Local("doc")
	if err != nil {
		t.Fatal(err)
	}
	if doc.GetAttr("hello").AsString() != "farm" || !doc.GetAttr("level").RawEquals(cty.NumberIntVal(7)) {
		t.Errorf("doc = %#v", doc)
	}
	if v, err := ev.Local("picked"); err != nil || len(v.AsValueMap()) != 1 {
		t.Errorf("picked = %#v, %v", v, err)
	}
	name, err := ev.ResourceAttr("thing.one", "name", cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal("k"), "value": cty.NumberIntVal(1)}))
	if err != nil || name.AsString() != "farm-k" {
		t.Errorf("resource name = %#v, %v", name, err)
	}

	defaults, _ := m.With(nil)
	if d, err := defaults.Local("doc"); err != nil || !d.GetAttr("level").RawEquals(cty.NumberIntVal(3)) {
		t.Errorf("optional attribute default not applied: %#v, %v", d, err)
	}
	for local, want := range map[string]string{
		"needs":   "no value",
		"loop_a":  "refers to itself",
		"unknown": "unknown function",
		"missing": "vars lack level",
	} {
		if _, err := ev.Local(local); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("local %s: got %v, want an error saying %q", local, err, want)
		}
	}
}

func TestModuleVariables(t *testing.T) {
	m := module(t, map[string]string{"main.tf": testModule, "t.json": `{}`})
	ev, err := m.With(map[string]string{"name": `"Farm"`})
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(); err == nil || !strings.Contains(err.Error(), "variable name: The name must be lowercase letters.") {
		t.Errorf("validation: %v", err)
	}
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"knobs": "null"}, "must not be null"},
		{map[string]string{"knobs": `{"level": "x"}`}, "a number is required"},
		{map[string]string{"nope": "1"}, `no variable "nope"`},
	} {
		if _, err := m.With(c.vars); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error saying %q", c.vars, err, c.want)
		}
	}
}
