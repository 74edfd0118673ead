package sink

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"
)

// A row type's columns are read from its `json` tags, so the load-file encoding (encoding/json)
// and the streaming encoding (Save) cannot drift apart: both name and omit the same columns.

// column is one field of a row struct.
type column struct {
	name  string
	index []int
	kind  columnKind
}

type columnKind int

const (
	kindString  columnKind = iota // "" is NULL
	kindInt                       // int64, always set
	kindBool                      // bool, always set
	kindPointer                   // *int64, *float64, *time.Time: nil is NULL
	kindJSON                      // json.RawMessage: nil is NULL; sent as a JSON string
	kindInts                      // []int64: empty is NULL
)

var (
	typeRawMessage = reflect.TypeFor[json.RawMessage]()
	typeInts       = reflect.TypeFor[[]int64]()
	columnCache    sync.Map // reflect.Type → []column
)

// columnsOf returns the columns of a row struct type, in field order.
func columnsOf(t reflect.Type) []column {
	if cols, ok := columnCache.Load(t); ok {
		return cols.([]column)
	}
	cols := appendColumns(nil, t, nil)
	columnCache.Store(t, cols)
	return cols
}

func appendColumns(cols []column, t reflect.Type, prefix []int) []column {
	for i := range t.NumField() {
		f := t.Field(i)
		index := append(append([]int(nil), prefix...), i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			cols = appendColumns(cols, f.Type, index)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		cols = append(cols, column{name: name, index: index, kind: kindOf(f.Type)})
	}
	return cols
}

func kindOf(t reflect.Type) columnKind {
	switch {
	case t == typeRawMessage:
		return kindJSON
	case t == typeInts:
		return kindInts
	case t.Kind() == reflect.String:
		return kindString
	case t.Kind() == reflect.Int64:
		return kindInt
	case t.Kind() == reflect.Bool:
		return kindBool
	case t.Kind() == reflect.Pointer:
		return kindPointer
	}
	panic(fmt.Sprintf("sink: row field type %s has no column kind", t)) // a programming error, caught by the tests
}

// saveColumns implements bigquery.ValueSaver for a pointer to a row struct. JSON columns travel
// as JSON text, the form the legacy streaming API documents for them.
func saveColumns(row any, insertID string) (map[string]bigquery.Value, string, error) {
	v := reflect.ValueOf(row).Elem()
	cols := columnsOf(v.Type())
	out := make(map[string]bigquery.Value, len(cols))
	for _, c := range cols {
		f := v.FieldByIndex(c.index)
		switch c.kind {
		case kindString:
			if s := f.String(); s != "" {
				out[c.name] = s
			}
		case kindInt:
			out[c.name] = f.Int()
		case kindBool:
			out[c.name] = f.Bool()
		case kindPointer:
			if !f.IsNil() {
				out[c.name] = pointee(f.Elem())
			}
		case kindJSON:
			if f.Len() > 0 {
				out[c.name] = string(f.Bytes())
			}
		case kindInts:
			if f.Len() > 0 {
				out[c.name] = f.Interface()
			}
		}
	}
	return out, insertID, nil
}

// pointee returns the value a pointer column points to, timestamps in RFC 3339 with microseconds.
func pointee(v reflect.Value) bigquery.Value {
	if t, ok := v.Interface().(time.Time); ok {
		return t.UTC().Format(timestampLayout)
	}
	return v.Interface()
}

// timestampLayout is RFC 3339 with BigQuery's microsecond precision.
const timestampLayout = "2006-01-02T15:04:05.999999Z07:00"

// rowSize estimates a row's size in an insert request from its columns, without encoding it:
// strings and JSON by their length plus quoting, other values by a fixed allowance. It sizes
// batches, where encoding every row a second time cost more than the insert encoding itself.
func rowSize(row any) int {
	v := reflect.ValueOf(row)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	n := 0
	for _, c := range columnsOf(v.Type()) {
		f := v.FieldByIndex(c.index)
		n += len(c.name) + 4 // "name":
		switch c.kind {
		case kindString, kindJSON:
			n += f.Len() + 2
		case kindInts:
			n += 21 * f.Len()
		default:
			n += 32 // a number, a boolean or a timestamp
		}
	}
	return n
}
