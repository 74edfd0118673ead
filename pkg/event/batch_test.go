package event

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// runDeltas returns n version-2 deltas of n runs of one source, with ids that say their run.
func runDeltas(n int) []*RunDelta {
	out := make([]*RunDelta, n)
	for i := range out {
		d := validDelta()
		d.SchemaVersion = SchemaVersion
		d.Run.UID = fmt.Sprintf("run-%03d", i)
		d.ID = "delta-" + d.Run.UID
		out[i] = d
	}
	return out
}

func TestPack(t *testing.T) {
	deltas := runDeltas(50)
	// A run split over three parts: all three under one key, in order.
	for p := 1; p <= 3; p++ {
		d := validDelta()
		d.SchemaVersion, d.Run.UID, d.ID, d.Part, d.Parts = SchemaVersion, "split", fmt.Sprintf("split-%d", p), p, 3
		deltas = append(deltas, d)
	}
	one, err := Encode(deltas[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		lim  BatchLimits
	}{
		{"by count", BatchLimits{MaxDeltas: 7, MaxBytes: 1 << 20, Shards: 3}},
		{"by size", BatchLimits{MaxDeltas: 100, MaxBytes: 4*len(one) + batchOverhead, Shards: 2}},
		{"one key", BatchLimits{MaxDeltas: 100, MaxBytes: 1 << 20, Shards: 1}},
		{"smaller than a delta: one each", BatchLimits{MaxDeltas: 100, MaxBytes: 10, Shards: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, groups, err := Pack(deltas, tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			keyOf := map[string]string{}
			var got []string
			for i, m := range msgs {
				ds, err := DecodeDeltas(m.Data)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if len(ds) != len(groups[i]) || len(ds) > tc.lim.MaxDeltas {
					t.Errorf("message %d holds %d deltas (group %d, limit %d)", i, len(ds), len(groups[i]), tc.lim.MaxDeltas)
				}
				if len(ds) > 1 && len(m.Data) > tc.lim.MaxBytes {
					t.Errorf("message %d is %d bytes, over %d", i, len(m.Data), tc.lim.MaxBytes)
				}
				ids := make([]string, len(ds))
				for j, d := range ds {
					ids[j] = d.ID
					got = append(got, d.ID)
					if k := OrderingKey(d.Run, tc.lim.Shards); k != m.OrderingKey {
						t.Errorf("delta %s of run %s under key %q, want %q", d.ID, d.Run.Key(), m.OrderingKey, k)
					}
					if prev, ok := keyOf[d.Run.Key()]; ok && prev != m.OrderingKey {
						t.Errorf("run %s under two keys: %q and %q", d.Run.Key(), prev, m.OrderingKey)
					}
					keyOf[d.Run.Key()] = m.OrderingKey
				}
				want := map[string]string{AttrSource: "argo", AttrSchemaVersion: "2", AttrTenant: "t", AttrEnvironment: "prod",
					AttrInstance: "i", AttrBatchID: BatchID(ids), AttrDeltas: fmt.Sprint(len(ds))}
				if !reflect.DeepEqual(m.Attributes, want) {
					t.Errorf("message %d attributes %v, want %v", i, m.Attributes, want)
				}
			}
			if len(got) != len(deltas) {
				t.Fatalf("%d deltas packed, want %d", len(got), len(deltas))
			}
			// The split run's parts in order.
			var parts []string
			for _, id := range got {
				if strings.HasPrefix(id, "split-") {
					parts = append(parts, id)
				}
			}
			if !reflect.DeepEqual(parts, []string{"split-1", "split-2", "split-3"}) {
				t.Errorf("split run's parts in the order %v", parts)
			}
			// Deterministic: the same deltas give the same messages.
			again, _, err := Pack(deltas, tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, msgs) {
				t.Error("packing the same deltas twice gave different messages")
			}
		})
	}
}

func TestPackSpreadsRunsOverShards(t *testing.T) {
	msgs, _, err := Pack(runDeltas(200), BatchLimits{MaxDeltas: 1000, MaxBytes: 1 << 30, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Fatalf("%d messages for 200 runs over 4 shards, want 4", len(msgs))
	}
}

func TestDecodeDeltas(t *testing.T) {
	v1, err := Encode(validDelta())
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := Pack(runDeltas(3), BatchLimits{MaxDeltas: 10, MaxBytes: 1 << 20, Shards: 1})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("pack: %d messages, %v", len(msgs), err)
	}
	batch := string(msgs[0].Data)
	tests := []struct {
		name  string
		data  string
		count int
		want  error
	}{
		{"version 1, still read", string(v1), 1, nil},
		{"a batch", batch, 3, nil},
		{"an empty batch", `{"schema_version":2,"id":"b","deltas":[]}`, 0, nil},
		{"a batch without its deltas", `{"schema_version":2,"id":"b"}`, 0, ErrInvalid},
		{"a batch without id", strings.Replace(batch, `"id":"`+msgs[0].Attributes[AttrBatchID]+`",`, "", 1), 0, ErrInvalid},
		{"a poison batch: one delta breaks the schema", strings.Replace(batch, `"uid":"run-001"`, `"uid":""`, 1), 0, ErrInvalid},
		{"a version-1 delta inside a batch", strings.Replace(batch, `"schema_version":2,"id":"delta-run-002"`, `"schema_version":1,"id":"delta-run-002"`, 1), 0, ErrInvalid},
		{"a batch shaped as version 1", strings.Replace(batch, `{"schema_version":2,"id":"`+msgs[0].Attributes[AttrBatchID], `{"schema_version":1,"id":"x`, 1), 0, ErrInvalid},
		{"a version from the future", `{"schema_version":3,"id":"b","deltas":[]}`, 0, ErrUnsupportedVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := DecodeDeltas([]byte(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecodeDeltas error = %v, want %v", err, tc.want)
			}
			if len(ds) != tc.count {
				t.Fatalf("%d deltas, want %d", len(ds), tc.count)
			}
		})
	}
	ds, err := DecodeDeltas(msgs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range runDeltas(3) {
		if !reflect.DeepEqual(&ds[i], d) {
			t.Errorf("delta %d changed on the way:\n got %+v\nwant %+v", i, ds[i], *d)
		}
	}
	if _, err := Decode(msgs[0].Data); !errors.Is(err, ErrInvalid) {
		t.Errorf("Decode of a batch of 3 = %v, want ErrInvalid", err)
	}
}
