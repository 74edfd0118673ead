package event

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// Fuzz targets of the decoders of what consumers receive: the Pub/Sub push envelope and the
// RunDelta. Seeds are deltas the way FARM publishes them and envelopes the way Pub/Sub pushes them;
// `go test` runs the seeds, `make fuzz` mutates them.

func seedDeltas() [][]byte {
	s := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mi := 2.5
	airflow := &RunDelta{
		SchemaVersion: SchemaVersion1, ID: "d2", Tenant: "t", Environment: "prod", ObservedAt: s, Part: 1, Parts: 2, Replay: true,
		Run: Run{Source: SourceAirflow, Instance: "composer", UID: "etl/scheduled__1", Name: "scheduled__1", Pipeline: "etl",
			Phase: "failed", Status: StatusFailed, StartedAt: &s, FinishedAt: &s, RunType: "scheduled", LogicalDate: &s},
		Events: []TaskEvent{{ID: "e2", NodeID: "load[3]", Name: "load", Type: "MappedTask", Attempt: 2, State: "up_for_retry",
			PrevState: "running", Status: StatusUpForRetry, PrevStatus: StatusRunning, StartedAt: &s,
			Airflow: &AirflowTask{DagID: "etl", DagRunID: "scheduled__1", TaskID: "load", MapIndex: 3, TryNumber: 2, MaxTries: 3, QueueSeconds: &mi, MissedTries: []int{1}}}},
	}
	var out [][]byte
	for _, d := range []*RunDelta{validDelta(), airflow} {
		b, _ := Encode(d)
		out = append(out, b)
	}
	// The same two as a version-2 batch.
	v2, v2b := *validDelta(), *airflow
	v2.SchemaVersion, v2b.SchemaVersion = SchemaVersion, SchemaVersion
	v2b.Run.Instance = v2.Run.Instance
	msgs, _, _ := Pack([]*RunDelta{&v2, &v2b}, BatchLimits{MaxDeltas: 10, MaxBytes: 1 << 20, Shards: 1})
	for _, m := range msgs {
		out = append(out, m.Data)
	}
	return out
}

// FuzzDecode: a message either decodes into deltas that satisfy the schema and pack back into a
// message that decodes the same, or is refused with ErrInvalid or ErrUnsupportedVersion — the
// errors consumers dead-letter — never anything else, never a panic.
func FuzzDecode(f *testing.F) {
	for _, b := range seedDeltas() {
		f.Add(b)
	}
	f.Add([]byte(`{"schema_version":2}`))
	f.Add([]byte(`{"schema_version":2,"id":"b","deltas":[]}`))
	f.Add([]byte(`{"schema_version":1,"id":5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := DecodeDeltas(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("DecodeDeltas(%q) = %v: neither ErrInvalid nor ErrUnsupportedVersion", data, err)
			}
			return
		}
		ptrs := make([]*RunDelta, len(ds))
		for i := range ds {
			if err := ds[i].Validate(); err != nil {
				t.Fatalf("a decoded delta is not valid: %v", err)
			}
			ds[i].SchemaVersion = SchemaVersion
			ptrs[i] = &ds[i]
			_ = ds[i].Run.Key()
		}
		msgs, _, err := Pack(ptrs, BatchLimits{MaxDeltas: 1000, MaxBytes: 1 << 30})
		if err != nil {
			t.Fatalf("decoded deltas do not pack: %v", err)
		}
		for _, m := range msgs {
			if _, err := DecodeDeltas(m.Data); err != nil {
				t.Fatalf("decoded deltas, packed again, are refused: %v\n%s", err, m.Data)
			}
		}
	})
}

// FuzzParseMessage: an envelope either parses (and round-trips through EnvelopeJSON) or is refused
// with ErrBadEnvelope.
func FuzzParseMessage(f *testing.F) {
	for i, d := range seedDeltas() {
		b, _ := EnvelopeJSON(Message{ID: "1" + string(rune('0'+i)), PublishTime: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Data: d,
			Attributes: map[string]string{"source": "argo"}, OrderingKey: "argo/i/ns/u", Subscription: "projects/p/subscriptions/s"})
		f.Add(b)
	}
	f.Add([]byte(`{"message":{"data":"!!","messageId":"1"}}`))
	f.Add([]byte(`{"message":{"messageId":"1","publishTime":"yesterday"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseMessage(body)
		if err != nil {
			if !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("ParseMessage = %v, not ErrBadEnvelope", err)
			}
			return
		}
		b, err := EnvelopeJSON(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMessage(b)
		if err != nil || m2.ID != m.ID || string(m2.Data) != string(m.Data) || !m2.PublishTime.Equal(m.PublishTime) && !m.PublishTime.IsZero() {
			t.Fatalf("envelope round trip: %+v, %v; want %+v", m2, err, m)
		}
	})
}

// FuzzValidateJSON: the schema check never panics and only ever refuses with ErrInvalid.
func FuzzValidateJSON(f *testing.F) {
	for _, b := range seedDeltas() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := ValidateJSON(data); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("ValidateJSON = %v, not ErrInvalid", err)
		}
		var v any
		_ = json.Unmarshal(data, &v)
	})
}
