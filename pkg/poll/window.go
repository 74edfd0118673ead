package poll

import (
	"time"

	"github.com/farmobs/farm/pkg/event"
)

// covers reports whether a backfill's window covers run r. A backfill is its window: it publishes
// the runs that overlap it, begun (created, queued or started) by until and not finished before
// since. Sources list every active run whatever its age — the incremental poll needs them — so a
// run begun after until is listed too, and left out here.
func (w Window) covers(r *event.Run) bool {
	begun := earliest(r.CreatedAt, r.QueuedAt, r.StartedAt)
	if !w.Until.IsZero() && begun != nil && begun.After(w.Until) {
		return false
	}
	return r.FinishedAt == nil || r.FinishedAt.IsZero() || !r.FinishedAt.Before(w.Since)
}

func earliest(ts ...*time.Time) *time.Time {
	var out *time.Time
	for _, t := range ts {
		if t != nil && !t.IsZero() && (out == nil || t.Before(*out)) {
			out = t
		}
	}
	return out
}

// keepWindow drops from a backfill's snapshots the runs its window does not cover.
func keepWindow(snaps map[string]*Snapshot, w Window) {
	if !w.Backfill {
		return
	}
	for k, s := range snaps {
		if !w.covers(&s.Run) {
			delete(snaps, k)
		}
	}
}
