package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Batch is a version-2 message: the RunDeltas of several runs of one poll of one source. One
// message per changed run made the per-request prices (a publish, and a push to each consumer)
// the largest part of the bill; a batch carries up to BatchLimits of them.
type Batch struct {
	SchemaVersion int        `json:"schema_version"`
	ID            string     `json:"id"` // deterministic: see BatchID
	Deltas        []RunDelta `json:"deltas"`
}

// BatchID is the id of a batch: the ids of its deltas, in order. A poll that publishes the same
// deltas again (after a crash before its commit) composes the same batches when the same runs
// changed, so the same ids.
func BatchID(deltaIDs []string) string {
	return NewID(append([]string{"batch"}, deltaIDs...)...)
}

// OrderingKey is the Pub/Sub ordering key of r's deltas: its source and instance and one of
// shards shards, chosen by a hash of the run key. Every delta of a run has the same key, so a
// run's deltas are delivered in publish order; runs of different shards are delivered in
// parallel (Pub/Sub delivers one key's messages one at a time). shards < 1 counts as 1.
func OrderingKey(r Run, shards int) string {
	return r.Source + "/" + r.Instance + "/" + strconv.Itoa(Shard(r.Key(), shards))
}

// Shard is the shard of runKey among shards.
func Shard(runKey string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(runKey))
	return int(h.Sum32() % uint32(shards))
}

// BatchLimits bound one message.
type BatchLimits struct {
	// MaxDeltas is the most deltas in a message.
	MaxDeltas int
	// MaxBytes bounds a message's data, far below Pub/Sub's 10 MB; a single delta larger than it
	// (a run's 500 events, each message cut at 4 KiB) still goes, alone.
	MaxBytes int
	// Shards is how many ordering keys a source's deltas are spread over (see OrderingKey).
	Shards int
}

// DefaultBatchLimits are the engine's defaults.
var DefaultBatchLimits = BatchLimits{MaxDeltas: 100, MaxBytes: 2 << 20, Shards: 4}

// Pack makes the messages of deltas (all of one poll of one source): deltas grouped by ordering
// key, in their order within a key, packed in that order up to the limits. The composition
// depends only on the deltas and the limits, so a re-publish of the same deltas gives the same
// messages. It returns the messages and, for each, its deltas.
func Pack(deltas []*RunDelta, lim BatchLimits) ([]Message, [][]*RunDelta, error) {
	if lim.MaxDeltas < 1 {
		lim.MaxDeltas = 1
	}
	var keys []string
	byKey := map[string][]*RunDelta{}
	for _, d := range deltas {
		k := OrderingKey(d.Run, lim.Shards)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], d)
	}
	var msgs []Message
	var groups [][]*RunDelta
	for _, k := range keys {
		var group []*RunDelta
		var encoded [][]byte
		size := 0
		flush := func() {
			if len(group) == 0 {
				return
			}
			msgs = append(msgs, batchMessage(k, group, encoded))
			groups = append(groups, group)
			group, encoded, size = nil, nil, 0
		}
		for _, d := range byKey[k] {
			data, err := Encode(d)
			if err != nil {
				return nil, nil, err
			}
			if len(group) == lim.MaxDeltas || (len(group) > 0 && size+len(data)+1 > lim.MaxBytes-batchOverhead) {
				flush()
			}
			group, encoded = append(group, d), append(encoded, data)
			size += len(data) + 1
		}
		flush()
	}
	return msgs, groups, nil
}

// batchOverhead is the batch's JSON around its deltas: version, id and brackets.
const batchOverhead = 96

// batchMessage assembles a batch from its deltas' JSON (each encoded once, as sized by Pack).
func batchMessage(key string, ds []*RunDelta, encoded [][]byte) Message {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	id := BatchID(ids)
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"schema_version":%d,"id":%q,"deltas":[`, SchemaVersion, id)
	for i, e := range encoded {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteString("]}")
	first := ds[0]
	return Message{Data: b.Bytes(), OrderingKey: key, Attributes: map[string]string{
		AttrSource:        first.Run.Source,
		AttrSchemaVersion: strconv.Itoa(SchemaVersion),
		AttrTenant:        first.Tenant,
		AttrEnvironment:   first.Environment,
		AttrInstance:      first.Run.Instance,
		AttrBatchID:       id,
		AttrDeltas:        strconv.Itoa(len(ds)),
	}}
}

// DecodeDeltas reads a message of either version this build reads: a version-2 batch gives its
// deltas in publish order, a version-1 message its one delta. Errors are those of Decode: a
// version this build does not read is ErrUnsupportedVersion, anything against the schema is
// ErrInvalid — for the whole message, so a batch with one bad delta is refused whole (consumers
// dead-letter it as delivered, where it can be inspected and replayed).
func DecodeDeltas(data []byte) ([]RunDelta, error) {
	if ds, ok := decodeValid(data); ok {
		return ds, nil
	}
	// Refused, or a version written unusually: the reading that names why, or decides.
	return decodeDeltasReporting(data)
}

// decodeValid is DecodeDeltas for a message it accepts: the JSON read once into a tree for the
// version and the schema check (the fast pass), then once into the structs. It gives up (ok
// false) on anything decodeDeltasReporting would refuse, and also wherever the tree could read
// the version differently from json.Unmarshal (schema_version other than 1 or 2 written plainly,
// or another key that json.Unmarshal could take for it), so that what it accepts is exactly what
// decodeDeltasReporting accepts, decoded by the same json.Unmarshal.
func decodeValid(data []byte) ([]RunDelta, bool) {
	root, err := compiledSchema()
	if err != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, false
	}
	n, _ := obj["schema_version"].(json.Number)
	var v int
	switch n {
	case "1":
		v = SchemaVersion1
	case "2":
		v = SchemaVersion
	default:
		return nil, false
	}
	for k := range obj {
		if k != "schema_version" && mayNameVersion(k) {
			return nil, false
		}
	}
	node := root.node
	if v == SchemaVersion1 {
		node = root.def(deltaDef)
	}
	if !node.valid(doc) {
		return nil, false
	}
	// json.Unmarshal refuses anything but whitespace after the document, as the probe would.
	if v == SchemaVersion1 {
		var d RunDelta
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, false
		}
		return []RunDelta{d}, true
	}
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, false
	}
	for i := range b.Deltas {
		if b.Deltas[i].SchemaVersion != SchemaVersion {
			return nil, false
		}
	}
	return b.Deltas, true
}

// mayNameVersion reports whether json.Unmarshal might read key into schema_version: equal to it
// under case folding, counting '_' and '-' as nothing to be safe.
func mayNameVersion(key string) bool {
	if len(key) < len("schemaversion") {
		return false
	}
	if strings.EqualFold(key, "schema_version") {
		return true
	}
	return strings.EqualFold(separators.Replace(key), "schemaversion")
}

var separators = strings.NewReplacer("_", "", "-", "")

// decodeDeltasReporting is DecodeDeltas read plainly: the version probed, the schema checked,
// the structs decoded, each step with its error.
func decodeDeltasReporting(data []byte) ([]RunDelta, error) {
	v, err := probeVersion(data)
	if err != nil {
		return nil, err
	}
	if err := ValidateJSON(data); err != nil {
		return nil, err
	}
	if v == SchemaVersion1 {
		var d RunDelta
		if err := json.Unmarshal(data, &d); err != nil {
			// Valid by the schema but not decodable (an integer written as 1.0, or beyond int64).
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return []RunDelta{d}, nil
	}
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for i := range b.Deltas {
		if b.Deltas[i].SchemaVersion != SchemaVersion {
			return nil, fmt.Errorf("%w: deltas[%d].schema_version is %d in a version-%d batch", ErrInvalid, i, b.Deltas[i].SchemaVersion, SchemaVersion)
		}
	}
	return b.Deltas, nil
}

// probeVersion reads schema_version and refuses versions this build does not read.
func probeVersion(data []byte) (int, error) {
	var probe struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if probe.SchemaVersion == nil {
		return 0, fmt.Errorf("%w: no schema_version", ErrInvalid)
	}
	if v := *probe.SchemaVersion; v != SchemaVersion && v != SchemaVersion1 {
		return 0, fmt.Errorf("%w: %d (this build reads %d and %d)", ErrUnsupportedVersion, v, SchemaVersion1, SchemaVersion)
	}
	return *probe.SchemaVersion, nil
}

// MessageOf is the message of d alone: a batch of one, as a poll publishes a run's delta when
// no other delta shares its message.
func MessageOf(d *RunDelta) (Message, error) {
	msgs, _, err := Pack([]*RunDelta{d}, BatchLimits{MaxDeltas: 1, MaxBytes: 1, Shards: DefaultBatchLimits.Shards})
	if err != nil {
		return Message{}, err
	}
	return msgs[0], nil
}
