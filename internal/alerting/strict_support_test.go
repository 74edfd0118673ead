package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// DecodeStrict decodes data into v, a pointer to a model of datadog-api-client-go, and fails on
// anything the API would not take as written.
//
// The generated models never fail on such input: an unknown field lands in the model's
// AdditionalProperties, and a wrong type, an enum value outside the allowed list, or a missing
// required field inside a nested object makes that object keep its raw JSON in UnparsedObject (a
// oneOf that matches no variant, or several, does the same). DecodeStrict walks the decoded value
// and reports every such place by its JSON path.
func DecodeStrict(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	var errs []error
	walk(reflect.ValueOf(v), "$", &errs)
	return errors.Join(errs...)
}

type validator interface{ IsValid() bool }

// walk checks one value and everything under it.
func walk(v reflect.Value, path string, errs *[]error) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem(), path, errs)
		}
		return
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
		return
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walk(v.MapIndex(k), fmt.Sprintf("%s.%v", path, k), errs)
		}
		return
	case reflect.String:
		// Enums are string types with IsValid; decoding alone never checks them.
		if e, ok := v.Interface().(validator); ok && !e.IsValid() {
			*errs = append(*errs, fmt.Errorf("%s: %q is not a value this field allows", path, v.String()))
		}
		return
	case reflect.Struct:
		walkStruct(v, path, errs)
	}
}

func walkStruct(v reflect.Value, path string, errs *[]error) {
	if nested, ok := nullableValue(v); ok {
		walk(nested, path, errs)
		return
	}
	t := v.Type()
	if f := v.FieldByName("UnparsedObject"); f.IsValid() && !f.IsZero() && !isEmptyMap(f) {
		diagnose(t, f.Interface(), path, errs)
		return
	}
	if f := v.FieldByName("AdditionalProperties"); f.IsValid() && f.Len() > 0 {
		keys := make([]string, 0, f.Len())
		for _, k := range f.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		*errs = append(*errs, fmt.Errorf("%s: %s has no field %s", path, t.Name(), strings.Join(keys, ", ")))
	}
	oneOf := isOneOf(t)
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Name == "UnparsedObject" || sf.Name == "AdditionalProperties" {
			continue
		}
		if oneOf { // the variant is the value itself: no path element of its own
			walk(v.Field(i), path, errs)
			continue
		}
		walk(v.Field(i), path+"."+jsonName(sf), errs)
	}
}

// nullableValue unwraps the client's Nullable* wrappers (unexported value and isSet fields,
// exported Get and IsSet methods).
func nullableValue(v reflect.Value) (reflect.Value, bool) {
	if !v.CanAddr() {
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		v = c
	}
	p := v.Addr()
	isSet, get := p.MethodByName("IsSet"), p.MethodByName("Get")
	if !isSet.IsValid() || !get.IsValid() || get.Type().NumIn() != 0 || get.Type().NumOut() != 1 {
		return reflect.Value{}, false
	}
	if !isSet.Call(nil)[0].Bool() {
		return reflect.Value{}, true
	}
	return get.Call(nil)[0], true
}

func isEmptyMap(v reflect.Value) bool { return v.Kind() == reflect.Map && v.Len() == 0 }

// diagnose says why a model kept its raw JSON: a missing required field or a wrong type at its
// level, or a problem in one of its fields, found by decoding each field on its own (a nested
// model folds any problem of its own into its parent's UnparsedObject, hiding where it was).
func diagnose(t reflect.Type, raw any, path string, errs *[]error) {
	data, err := json.Marshal(raw)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
		return
	}
	if isOneOf(t) {
		if variant, ok := variantByType(t, data); ok {
			diagnose(variant, raw, path, errs)
			return
		}
		*errs = append(*errs, fmt.Errorf("%s: not a valid %s: it matches none of the variants (or more than one): %s", path, t.Name(), abbreviate(data)))
		return
	}
	if err := json.Unmarshal(data, reflect.New(t).Interface()); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: not a valid %s: %w", path, t.Name(), err))
		return
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		*errs = append(*errs, fmt.Errorf("%s: not a valid %s: %s", path, t.Name(), abbreviate(data)))
		return
	}
	before := len(*errs)
	for i := range t.NumField() {
		sf := t.Field(i)
		sub, ok := fields[jsonName(sf)]
		if !ok || !sf.IsExported() || sf.Name == "UnparsedObject" || sf.Name == "AdditionalProperties" {
			continue
		}
		fieldPath := path + "." + jsonName(sf)
		v := reflect.New(sf.Type)
		if err := json.Unmarshal(sub, v.Interface()); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", fieldPath, err))
			continue
		}
		walk(v.Elem(), fieldPath, errs)
	}
	if len(*errs) == before {
		*errs = append(*errs, fmt.Errorf("%s: not a valid %s: %s", path, t.Name(), abbreviate(data)))
	}
}

// variantByType picks the one variant of a oneOf whose "type" field accepts the document's type,
// so that a broken widget is diagnosed as the widget it says it is.
func variantByType(t reflect.Type, data []byte) (reflect.Type, bool) {
	var doc struct {
		Type *string `json:"type"`
	}
	if json.Unmarshal(data, &doc) != nil || doc.Type == nil {
		return nil, false
	}
	var found []reflect.Type
	for i := range t.NumField() {
		vt := t.Field(i).Type
		if vt.Kind() != reflect.Pointer || vt.Elem().Kind() != reflect.Struct {
			continue
		}
		f, ok := vt.Elem().FieldByName("Type")
		if !ok || f.Type.Kind() != reflect.String {
			continue
		}
		if e, ok := reflect.ValueOf(*doc.Type).Convert(f.Type).Interface().(validator); ok && e.IsValid() {
			found = append(found, vt.Elem())
		}
	}
	if len(found) != 1 {
		return nil, false
	}
	return found[0], true
}

// isOneOf tells a oneOf wrapper (only pointer fields to variants, and UnparsedObject any) from a
// model.
func isOneOf(t reflect.Type) bool {
	f, ok := t.FieldByName("UnparsedObject")
	_, hasProps := t.FieldByName("AdditionalProperties")
	return ok && f.Type.Kind() == reflect.Interface && !hasProps
}

func jsonName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
	if name == "" {
		return sf.Name
	}
	return name
}

func abbreviate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
