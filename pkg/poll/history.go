package poll

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/farmobs/farm/pkg/state"
)

// HistoryFiller is implemented by sources whose tasks show only their latest attempt (an Airflow
// task instance shows its latest try). Between two polls a task may have moved on by more than one
// attempt; only the source can fetch the attempts in between, and only the engine knows which
// attempts it already stored.
//
// The engine calls FillHistory once per changed run, after Load and LoadRuns and before the diff,
// with the task states stored for that run (nil on a replay or for a run never stored, which asks
// for every earlier attempt). The source appends the missing attempts to s.Tasks, or records the
// gap when it cannot fetch them, and may re-derive what depends on earlier attempts (the times of
// synthetic group nodes). It must not change s.Fingerprint.
type HistoryFiller interface {
	FillHistory(ctx context.Context, s *Snapshot, stored map[string]state.Task) error
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
		var tasks map[string]state.Task
		if prev := stored[s.Key()]; prev != nil {
			tasks = prev.Tasks
		}
		g.Go(func() error {
			if err := hf.FillHistory(gctx, s, tasks); err != nil {
				return fmt.Errorf("%w: earlier attempts of run %s: %w", ErrSource, s.Key(), err)
			}
			return nil
		})
	}
	return g.Wait()
}
