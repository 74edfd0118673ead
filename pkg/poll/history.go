package poll

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/farmobs/farm/pkg/state"
)

// HistoryFiller is implemented by sources whose tasks show only their latest attempt (an Airflow
// task instance shows its latest try). Between two polls a task may have moved on by more than one
// attempt; only the source can fetch the attempts in between, and only the engine knows which
// attempts it already stored.
//
// The engine calls FillHistory once per changed run, after Load and LoadRuns and before the diff,
// with the attempts stored for that run (nil on a replay or for a run never stored, which asks
// for every earlier attempt). The source appends the missing attempts to s.Tasks, or records the
// gap when it cannot fetch them, and may re-derive what depends on earlier attempts (the times of
// synthetic group nodes). It must not change s.Fingerprint.
type HistoryFiller interface {
	FillHistory(ctx context.Context, s *Snapshot, stored StoredAttempts) error
}

// TaskAttempt names one attempt of a task within its run.
type TaskAttempt struct {
	NodeID  string
	Attempt int
}

// StoredAttempts is what the engine stored of a run's attempts, as a HistoryFiller needs it: by
// attempt, the earliest start known of it (zero when none is).
type StoredAttempts map[TaskAttempt]time.Time

// storedAttempts reads a stored run's tasks as attempts; nil for no run.
func storedAttempts(prev *state.Run) StoredAttempts {
	if prev == nil {
		return nil
	}
	out := make(StoredAttempts, len(prev.Tasks))
	for key, t := range prev.Tasks {
		a, ok := parseTaskKey(key)
		if !ok {
			continue
		}
		var first time.Time
		for _, st := range []time.Time{t.StartedAt, t.TryStart} {
			if !st.IsZero() && (first.IsZero() || st.Before(first)) {
				first = st
			}
		}
		out[a] = first
	}
	return out
}

// parseTaskKey reads a key made by TaskKey.
func parseTaskKey(key string) (TaskAttempt, bool) {
	i := strings.LastIndexByte(key, '#')
	if i < 0 {
		return TaskAttempt{}, false
	}
	n, err := strconv.Atoi(key[i+1:])
	if err != nil {
		return TaskAttempt{}, false
	}
	return TaskAttempt{NodeID: key[:i], Attempt: n}, true
}

// FillHistories calls src's FillHistory, when src has one, for each changed snapshot with its
// stored tasks from stored (by run key; nil in a replay), at most parallelism at a time. It is the
// engine's one call site, between loading and diffing.
func FillHistories(ctx context.Context, src Source, changed []*Snapshot, stored map[string]*state.Run, parallelism int) error {
	hf, ok := src.(HistoryFiller)
	if !ok {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallelism, 1))
	for _, s := range changed {
		tasks := storedAttempts(stored[s.Key()])
		g.Go(func() error {
			if err := hf.FillHistory(gctx, s, tasks); err != nil {
				return fmt.Errorf("%w: earlier attempts of run %s: %w", ErrSource, s.Key(), err)
			}
			return nil
		})
	}
	return g.Wait()
}
