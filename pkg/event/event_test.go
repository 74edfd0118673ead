package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func ptr(t time.Time) *time.Time { return &t }

func TestNewIDIsStableAndUnambiguous(t *testing.T) {
	// The golden value pins the id scheme: changing it would give every replayed transition a new
	// id, breaking deduplication downstream.
	if got, want := NewID("a", "b"), NewID("a", "b"); got != want {
		t.Fatalf("not deterministic: %s != %s", got, want)
	}
	if got, want := NewID("task", "argo/prod/ns/uid", "node-1"), "9790dd87089a6612ffe2e3fb5a2270c5"; got != want {
		t.Fatalf("NewID changed: got %s, want %s", got, want)
	}
	if NewID("ab", "c") == NewID("a", "bc") {
		t.Fatal("parts are not length-prefixed: (ab,c) == (a,bc)")
	}
}

func TestTaskEventID(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	end1, end2 := start.Add(time.Minute), start.Add(2*time.Minute)
	base := TaskEventID("k", "n", 0, "Failed", &start, &end1)
	tests := []struct {
		name string
		id   string
		same bool
	}{
		{"same transition, other time zone", TaskEventID("k", "n", 0, "Failed", ptr(start.In(time.FixedZone("x", 3600))), &end1), true},
		{"finishes again later (argo retry)", TaskEventID("k", "n", 0, "Failed", &start, &end2), false},
		{"other state", TaskEventID("k", "n", 0, "Succeeded", &start, &end1), false},
		{"other attempt", TaskEventID("k", "n", 1, "Failed", &start, &end1), false},
		{"other node", TaskEventID("k", "m", 0, "Failed", &start, &end1), false},
		{"other run", TaskEventID("j", "n", 0, "Failed", &start, &end1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.id == base) != tc.same {
				t.Errorf("id equal to base = %v, want %v", tc.id == base, tc.same)
			}
		})
	}
	if TaskEventID("k", "n", 0, "Running", nil, nil) != TaskEventID("k", "n", 0, "Running", &time.Time{}, nil) {
		t.Error("a nil time and a zero time give different ids")
	}
}

func TestDeltaIDIgnoresEventOrder(t *testing.T) {
	if DeltaID("k", "Running", 1, []string{"a", "b"}) != DeltaID("k", "Running", 1, []string{"b", "a"}) {
		t.Fatal("delta id depends on event order")
	}
	if DeltaID("k", "Running", 1, []string{"a"}) == DeltaID("k", "Succeeded", 1, []string{"a"}) {
		t.Fatal("delta id ignores the run phase")
	}
}

// validDelta is a version-1 message's delta.
func validDelta() *RunDelta {
	s := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &RunDelta{
		SchemaVersion: SchemaVersion1, ID: "d1", Tenant: "t", Environment: "prod", ObservedAt: s, Part: 1, Parts: 1,
		Run:    Run{Source: SourceArgo, Instance: "i", Namespace: "ns", UID: "u", Name: "wf", Pipeline: "p", Phase: "Running", Status: StatusRunning, StartedAt: &s},
		Events: []TaskEvent{{ID: "e1", NodeID: "wf", Name: "wf", Type: "DAG", State: "Running", Status: StatusRunning, StartedAt: &s}},
	}
}

func TestDecode(t *testing.T) {
	good, err := Encode(validDelta())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want error
	}{
		{"valid", string(good), nil},
		// A newer poller's optional field, unknown to this build: read as if absent.
		{"unknown field from a newer release", strings.Replace(string(good), `"source":"argo"`, `"source":"argo","owner_team":"data"`, 1), nil},
		{"not json", "{", ErrInvalid},
		{"no version", `{"id":"x"}`, ErrInvalid},
		{"future version", `{"schema_version":99,"id":"x"}`, ErrUnsupportedVersion},
		{"wrong type", `{"schema_version":1,"id":5}`, ErrInvalid},
		{"bad source", strings.Replace(string(good), `"source":"argo"`, `"source":"jenkins"`, 1), ErrInvalid},
		{"event without id", strings.Replace(string(good), `"id":"e1"`, `"id":""`, 1), ErrInvalid},
		// What the consumers used to acknowledge and write although the schema forbids it.
		{"task status outside the enum", strings.Replace(string(good), `"status":"running","started_at":"2026-01-02T03:04:05Z"}]`, `"status":"exploded","started_at":"2026-01-02T03:04:05Z"}]`, 1), ErrInvalid},
		{"no tenant", strings.Replace(string(good), `"tenant":"t",`, ``, 1), ErrInvalid},
		{"no environment", strings.Replace(string(good), `"environment":"prod",`, ``, 1), ErrInvalid},
		{"no observed time", strings.Replace(string(good), `"observed_at":"2026-01-02T03:04:05Z",`, ``, 1), ErrInvalid},
		{"part 0", strings.Replace(string(good), `"part":1`, `"part":0`, 1), ErrInvalid},
		{"observed time not a time", strings.Replace(string(good), `"observed_at":"2026-01-02T03:04:05Z"`, `"observed_at":"yesterday"`, 1), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decode([]byte(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			if tc.want == nil && !reflect.DeepEqual(d, validDelta()) {
				t.Errorf("round trip changed the delta:\n got %+v\nwant %+v", d, validDelta())
			}
			// A consumer's view of the same message: its deltas, with the same errors.
			ds, err := DecodeDeltas([]byte(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecodeDeltas error = %v, want %v", err, tc.want)
			}
			if tc.want == nil && (len(ds) != 1 || !reflect.DeepEqual(&ds[0], validDelta())) {
				t.Errorf("DecodeDeltas = %+v, want the one delta %+v", ds, validDelta())
			}
		})
	}
}

func TestParseMessageRoundTrip(t *testing.T) {
	pt := time.Date(2026, 1, 2, 3, 4, 5, 123000000, time.UTC)
	m := Message{ID: "42", PublishTime: pt, Attributes: map[string]string{"source": "argo"}, Data: []byte(`{"x":1}`), OrderingKey: "k", Subscription: "projects/p/subscriptions/s"}
	body, err := EnvelopeJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	for _, bad := range []string{`[]`, `{}`, `{"message":{"data":"!!"}}`, `{"message":{"messageId":"1","publishTime":"yesterday"}}`, `{"message":{"data":"e30="}}`} {
		if _, err := ParseMessage([]byte(bad)); !errors.Is(err, ErrBadEnvelope) {
			t.Errorf("ParseMessage(%s) = %v, want ErrBadEnvelope", bad, err)
		}
	}
}

func TestStatusClasses(t *testing.T) {
	tests := []struct {
		s              Status
		terminal, fail bool
	}{
		{StatusSucceeded, true, false},
		{StatusFailed, true, true},
		{StatusErrored, true, true},
		{StatusOmitted, true, false},
		{StatusRunning, false, false},
		{StatusUnknown, false, false},
		{StatusUpstreamFailed, true, true},
		{StatusUpForRetry, true, true},
		{StatusUpForResched, true, false},
		{StatusNone, false, false},
		{StatusDeferred, false, false},
	}
	for _, tc := range tests {
		if tc.s.Terminal() != tc.terminal || tc.s.IsError() != tc.fail {
			t.Errorf("%s: got terminal=%v error=%v; want terminal=%v error=%v", tc.s, tc.s.Terminal(), tc.s.IsError(), tc.terminal, tc.fail)
		}
	}
}

// TestSchemaMatchesTypes fails when schemas/rundelta.schema.json and the Go types disagree, in
// either direction, on the properties of any object.
func TestSchemaMatchesTypes(t *testing.T) {
	raw, err := os.ReadFile("../../schemas/rundelta.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	compare(t, "Batch", reflect.TypeFor[Batch](), schema, defs)
	compare(t, "RunDelta", reflect.TypeFor[RunDelta](), defs["run_delta"].(map[string]any), defs)
}

func compare(t *testing.T, path string, typ reflect.Type, obj map[string]any, defs map[string]any) {
	t.Helper()
	props, _ := obj["properties"].(map[string]any)
	fields := map[string]reflect.Type{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	var names []string
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := fields[n]; !ok {
			t.Errorf("%s: schema has %q, the Go type does not", path, n)
		}
	}
	for n, ft := range fields {
		p, ok := props[n].(map[string]any)
		if !ok {
			t.Errorf("%s: Go field %q is missing from the schema", path, n)
			continue
		}
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
			if items, ok := p["items"].(map[string]any); ok {
				p = items
			}
		}
		if ref, ok := p["$ref"].(string); ok {
			p = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() {
			compare(t, path+"."+n, ft, p, defs)
		}
	}
	if req, ok := obj["required"].([]any); ok {
		for _, r := range req {
			if _, ok := fields[r.(string)]; !ok {
				t.Errorf("%s: schema requires %q, which the Go type lacks", path, r)
			}
		}
	}
}

// BenchmarkDecode is a consumer's cost per message before any work: schema check and decode.
func BenchmarkDecode(b *testing.B) {
	d := validDelta()
	for i := range 40 { // a delta of a run with many task changes
		e := d.Events[0]
		e.ID, e.NodeID = fmt.Sprintf("e%d", i+2), fmt.Sprintf("n%d", i+2)
		d.Events = append(d.Events, e)
	}
	data, err := Encode(d)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// decodeAsBefore is Decode as a plain reading of the contract: a probe of schema_version by
// json.Unmarshal, the schema check, the struct (a version-1 delta, or a version-2 batch of one).
func decodeAsBefore(data []byte) (*RunDelta, error) {
	var probe struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if probe.SchemaVersion == nil {
		return nil, fmt.Errorf("%w: no schema_version", ErrInvalid)
	}
	if v := *probe.SchemaVersion; v != SchemaVersion1 && v != SchemaVersion {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedVersion, v)
	}
	if err := ValidateJSON(data); err != nil {
		return nil, err
	}
	if *probe.SchemaVersion == SchemaVersion {
		var b Batch
		if err := json.Unmarshal(data, &b); err != nil || len(b.Deltas) != 1 {
			return nil, fmt.Errorf("%w: not a batch of one (%w)", ErrInvalid, err)
		}
		return &b.Deltas[0], nil
	}
	var d RunDelta
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &d, nil
}

// TestDecodeAcceptsWhatItDidBefore: Decode refuses and accepts exactly what a plain reading of the
// contract does, with the same error, on the documents where the two could part: the
// version's key in other cases or repeated, its value of every kind, data after the document,
// documents that are not objects.
func TestDecodeAcceptsWhatItDidBefore(t *testing.T) {
	good, err := Encode(validDelta())
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(string(good), `{"schema_version":1,`)
	if body == string(good) {
		t.Fatal("the encoded delta does not start with its schema_version")
	}
	docs := []string{string(good), good2(good, " \n\t"), string(good) + " }", string(good) + "]", string(good) + "{}", string(good) + "x",
		"null", "[]", `"x"`, "1", "true", "{}", "", " ", "{", `{"schema_version":null}`}
	for _, v := range []string{"1", "2", "0", "-0", "1.0", "1e0", "99999999999999999999", `"1"`, "true", "null", "[]", "{}", "-1"} {
		for _, k := range []string{"schema_version", "SCHEMA_VERSION", "Schema_Version", "ſchema_version", "schema_versioN", "schema-version"} {
			docs = append(docs, `{"`+k+`":`+v+`,`+body)
			docs = append(docs, `{"schema_version":1,"`+k+`":`+v+`,`+body)
			docs = append(docs, `{"`+k+`":`+v+`,"schema_version":1,`+body)
		}
	}
	for _, doc := range docs {
		want, wantErr := decodeAsBefore([]byte(doc))
		got, gotErr := Decode([]byte(doc))
		for _, class := range []error{ErrInvalid, ErrUnsupportedVersion} {
			if errors.Is(gotErr, class) != errors.Is(wantErr, class) {
				t.Errorf("%.80q: Decode = %v, before %v", doc, gotErr, wantErr)
			}
		}
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%.80q: Decode = %v, %v; before %v, %v", doc, got != nil, gotErr, want != nil, wantErr)
		}
	}
}

func good2(b []byte, suffix string) string { return " " + string(b) + suffix }
