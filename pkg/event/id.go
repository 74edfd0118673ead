package event

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"time"
)

// NewID derives a stable id from its parts: the same parts give the same id on any machine, in any
// replay. 128 bits of SHA-256 as hex: short enough for BigQuery insert ids and Firestore keys,
// long enough that collisions do not happen in practice.
func NewID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p)))) // length-prefixed, so ("ab","c") != ("a","bc")
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// TaskEventID is the id of one task transition. It names the state entered and the times that
// identify that entry, not the state left: two observers that saw different previous states
// (a poll that saw Pending, a replay that did not) still agree on the id. The finish time is part of
// it so that a node that finishes twice (Argo `retry` resets a node keeping its id) gets two ids.
func TaskEventID(runKey, nodeID string, attempt int, state string, startedAt, finishedAt *time.Time) string {
	return NewID("task", runKey, nodeID, strconv.Itoa(attempt), state, stamp(startedAt), stamp(finishedAt))
}

// TaskEventIDQueued is TaskEventID for a task that also has a queued time (Airflow): a sensor in
// reschedule mode is queued again for every poke, keeping its try number and start date, so its
// queued time is what tells one entry into "running" from the next. A nil queued time gives
// TaskEventID's id.
func TaskEventIDQueued(runKey, nodeID string, attempt int, state string, startedAt, finishedAt, queuedAt *time.Time) string {
	q := stamp(queuedAt)
	if q == "" {
		return TaskEventID(runKey, nodeID, attempt, state, startedAt, finishedAt)
	}
	return NewID("task", runKey, nodeID, strconv.Itoa(attempt), state, stamp(startedAt), stamp(finishedAt), "queued", q)
}

// DeltaID is the id of a RunDelta (one message): the run, its phase and the ids of its events.
func DeltaID(runKey, phase string, part int, eventIDs []string) string {
	ids := append([]string(nil), eventIDs...)
	sort.Strings(ids)
	parts := append([]string{"delta", runKey, phase, strconv.Itoa(part)}, ids...)
	return NewID(parts...)
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
