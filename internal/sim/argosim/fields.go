package argosim

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// fieldFilter is the `fields` query parameter with the Argo Server's semantics
// (util/fields/fields.go), including its quirks:
//   - paths are dot-joined JSON keys; arrays add no segment (items.metadata.name), map keys do
//     (items.status.nodes.<id>.phase);
//   - include mode keeps a key whose path is listed (with everything under it) or is a plain
//     string prefix of a listed path, so "items.metadata.namespace" also keeps
//     items.metadata.name ("name" is a prefix of "namespace");
//   - exclude mode ("-a,b") drops exactly the listed paths;
//   - the trimmed answer is decoded back into the Go types and encoded again, so dropped struct
//     fields come back as their zero value: "metadata":{}, "spec":{}, "creationTimestamp":null.
//
// The simulator reproduces that result by zeroing the dropped fields of a copy of the value,
// which gives the same JSON without the round trips.
type fieldFilter struct {
	exclude bool
	fields  map[string]bool
}

func parseFields(s string) fieldFilter {
	f := fieldFilter{fields: map[string]bool{}}
	if s == "" {
		return f
	}
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		s, f.exclude = rest, true
	}
	for _, p := range strings.Split(s, ",") {
		f.fields[p] = true
	}
	return f
}

func (f fieldFilter) active() bool { return len(f.fields) > 0 }

// willExclude reports whether path will be missing from the answer (upstream WillExclude, used to
// decide whether nodes are worth loading).
func (f fieldFilter) willExclude(path string) bool {
	if !f.active() {
		return false
	}
	for y := range f.fields {
		if strings.HasPrefix(path, y) || strings.HasPrefix(y, path) {
			return f.exclude
		}
	}
	return !f.exclude
}

type fieldAction int

const (
	actDrop fieldAction = iota
	actKeep
	actDescend
)

func (f fieldFilter) decide(path string) fieldAction {
	in := f.fields[path]
	parentIn := in
	if !parentIn {
		for k := range f.fields {
			if strings.HasPrefix(k, path) {
				parentIn = true
				break
			}
		}
	}
	if f.exclude && !in || !f.exclude && parentIn {
		if in {
			return actKeep
		}
		return actDescend
	}
	return actDrop
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// trim applies the filter to v (a pointer to a struct) at path and returns a trimmed copy; v
// itself, and anything it shares with the store, is never modified.
func trim[T any](f fieldFilter, path string, v *T) *T {
	if !f.active() {
		return v
	}
	out := f.clean(path, reflect.ValueOf(v).Elem())
	res := out.Interface().(T)
	return &res
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

// clean returns a copy of v with the filter applied below path. Containers are copied only
// when something in them changes.
func (f fieldFilter) clean(path string, v reflect.Value) reflect.Value {
	if v.Type().Implements(marshalerType) {
		return v // a leaf on the wire, such as Time
	}
	switch v.Kind() {
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for _, fi := range jsonFields(v.Type()) {
			p := joinPath(path, fi.name)
			switch f.decide(p) {
			case actDrop:
				out.Field(fi.index).SetZero()
			case actDescend:
				out.Field(fi.index).Set(f.clean(p, out.Field(fi.index)))
			}
		}
		return out
	case reflect.Map:
		return f.cleanMap(path, v)
	case reflect.Slice:
		if v.IsNil() || !descends(v.Type().Elem()) {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(f.clean(path, v.Index(i)))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(f.clean(path, v.Elem()))
		return out
	}
	return v
}

func (f fieldFilter) cleanMap(path string, v reflect.Value) reflect.Value {
	if v.IsNil() || v.Type().Key().Kind() != reflect.String {
		return v
	}
	var out reflect.Value
	own := func() {
		if !out.IsValid() {
			out = reflect.MakeMapWithSize(v.Type(), v.Len())
			for it := v.MapRange(); it.Next(); {
				out.SetMapIndex(it.Key(), it.Value())
			}
		}
	}
	deep := descends(v.Type().Elem())
	for it := v.MapRange(); it.Next(); {
		p := joinPath(path, it.Key().String())
		switch f.decide(p) {
		case actDrop:
			own()
			out.SetMapIndex(it.Key(), reflect.Value{})
		case actDescend:
			if deep {
				own()
				out.SetMapIndex(it.Key(), f.clean(p, it.Value()))
			}
		}
	}
	if out.IsValid() {
		return out
	}
	return v
}

// descends reports whether values of t have keys below them.
func descends(t reflect.Type) bool {
	if t.Implements(marshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Pointer, reflect.Slice:
		return true
	}
	return false
}

type jsonField struct {
	index int
	name  string
}

var fieldCache sync.Map // reflect.Type → []jsonField

func jsonFields(t reflect.Type) []jsonField {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]jsonField)
	}
	var fs []jsonField
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, jsonField{index: i, name: name})
	}
	fieldCache.Store(t, fs)
	return fs
}
