package airflow

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
)

// How a poll reads Airflow. Its calls depend on what changed, never on the number of DAGs, and
// on the number of active runs only when it lists them in full.
//
// An incremental poll (Airflow 2.6+ and 3, the usual case) reads, from the window start on:
//   - the runs that were queued or finished in the window (updated_at_gte) and those that
//     started in it (start_date_gte): a page each, more only when more than a page changed;
//   - the change feed: every task instance updated in the window, of every DAG and run;
//   - a batch of task instances for each changed run this process cannot complete from its memo
//     (memo.go): a run it has not read yet, or not since the window start, or not committed yet;
//     the others are their remembered rows with the feed's rows in place, at no call;
//   - one tries call per task instance that moved to a new try (2.10+; at most MaxTriesReads);
//   - a run call for a run the feed names that nothing else shows (rare).
//
// On Airflow 3 the feed also carries every task instance running at the time: the task runner
// heartbeats into the task instance's row (last_heartbeat_at), which moves its updated_at every
// few seconds. Those rows cost a call per 100 running tasks, bounded by the executors' slots, and
// nothing more: a run whose rows are all as remembered is vouched for (dropUnchanged). Listing
// only the running tasks that started in the window instead would lose the running state of a
// task whose new running spell keeps an older start (resuming from a deferral; a sensor that
// keeps its first poke's start).
//
// It does not list the active runs: the scheduler touches every running run on each of its
// loops (last_scheduling_decision), so no filter tells an unchanged active run from a changed
// one, and at Airflow's page limit of 100 rows the listing alone would cost one call per 100
// active runs. An active run that neither changed, started nor ended since the window start is
// vouched for from the index instead: no task instance of it was updated since the last commit's
// listing, which saw it whole.
//
// A full listing (every active run, paged) is made on the first poll of a process that is not a
// dry run, then every FullListingEvery; when the index is empty; when more than a page of runs
// would otherwise be read one by one; and for backfills, replays and servers before 2.6 (which
// have no change feed). It is what notices a run deleted while it was active (the engine follows it up by
// reference and reports it gone) and run fields edited by hand while a run goes on (its note).
// Between two full listings such a run keeps what was last read of it.

// List returns every active run plus the runs that changed in w (see above).
func (s *Source) List(ctx context.Context, w poll.Window) ([]*poll.Snapshot, error) {
	info, err := s.c.Server(ctx)
	if err != nil {
		return nil, err
	}
	defer s.startTries(ctx)()
	now := s.clock.Now()
	feed := !w.Backfill && info.UpdatedAtFilter()
	// A source with no committed run has nothing to vouch for (a dry run or a failed poll may
	// have listed every active run already, without a commit).
	full := !feed || len(w.Known) == 0 || s.fullListingDue(now)
	var listedRuns []Run
	if full {
		listedRuns, err = s.listRuns(ctx, info, w)
	} else {
		listedRuns, err = s.listChanges(ctx, w)
	}
	if err != nil {
		return nil, err
	}
	var changed map[RunRef][]TaskInstance // nil: no change feed, every run is read in full
	if feed {
		if changed, err = s.changeFeed(ctx, w); err != nil {
			return nil, err
		}
		s.dropUnchanged(changed, w)
	}
	runs, vouched, unknown := s.resolve(w, listedRuns, changed, full)
	if !full && len(unknown) > s.c.cfg.PageSize {
		// More runs to read one by one than a page holds (runs a poll deferred, or a memory
		// another instance made stale): listing every active run costs less.
		active, err := s.c.ListRuns(ctx, RunFilter{States: []string{"queued", "running"}})
		if err != nil {
			return nil, err
		}
		full = true
		runs, vouched, unknown = s.resolve(w, s.watchedOnce(listedRuns, active), changed, full)
	}
	slices.SortFunc(unknown, compareRefs)
	read, err := s.getRuns(ctx, unknown)
	if err != nil {
		return nil, err
	}
	runs = append(runs, read...)

	snaps, err := s.snapshots(ctx, info, w, runs, changed, now)
	if err != nil {
		return nil, err
	}
	snaps = append(snaps, vouched...)
	keep := make(map[string]bool, len(snaps))
	for _, snap := range snaps {
		keep[snap.Key()] = feed || snap.Active
	}
	s.settle(keep, feed, !info.UpdatedAtFilter(), w.Since, now)
	if full && !w.DryRun { // a dry run commits nothing: the next poll may be the first to commit
		s.mu.Lock()
		s.fullAt = now
		s.mu.Unlock()
	}
	return snaps, nil
}

// resolve completes the listed runs with the runs the feed names that no listing shows (a task
// changed in a run that did not): taken from the memo, else returned in unknown, to be read by
// themselves. Unless the poll lists every active run, it also vouches for the index's other
// active runs (vouch).
func (s *Source) resolve(w poll.Window, listed []Run, changed map[RunRef][]TaskInstance, full bool) (runs []Run, vouched []*poll.Snapshot, unknown []RunRef) {
	runs = slices.Clone(listed)
	seen := make(map[RunRef]bool, len(runs))
	for _, r := range runs {
		seen[r.RunRef] = true
	}
	// In a stable order: the first runs listed are the ones a deferring poll handles.
	refs := slices.SortedFunc(maps.Keys(changed), compareRefs)
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		if rec, _, _ := s.recalled(s.key(ref), w.Since); rec != nil {
			runs = append(runs, *rec)
		} else {
			unknown = append(unknown, ref)
		}
		seen[ref] = true
	}
	if !full {
		vouched, unknown = s.vouch(w, seen, unknown)
	}
	return runs, vouched, unknown
}

// snapshots maps runs, with their tasks: from the memo and the change feed when the process has
// read the run before, else read in full (batched); a run the feed does not name and whose
// run-level fields are as the index knows them keeps its fingerprint, and is not read at all.
func (s *Source) snapshots(ctx context.Context, info ServerInfo, w poll.Window, runs []Run, changed map[RunRef][]TaskInstance, now time.Time) ([]*poll.Snapshot, error) {
	snaps := make([]*poll.Snapshot, len(runs))
	var need []int
	for i := range runs {
		r := &runs[i]
		snap := s.snapshot(info, *r)
		snaps[i] = snap
		if changed == nil {
			need = append(need, i)
			continue
		}
		rows, inFeed := changed[r.RunRef]
		entry := w.Known[snap.Key()]
		committed := entry.Fingerprint != ""
		if committed && !inFeed && strings.HasPrefix(entry.Fingerprint, runPart(&snap.Run)+":") {
			snap.Fingerprint = entry.Fingerprint // nothing changed since the last commit
			continue
		}
		// Only a committed run's rows outside the feed are stored already: the others (a run a
		// poll deferred or did not commit) must become events too, so they are read in full.
		rec, memo, _ := s.recalled(snap.Key(), w.Since)
		if memo == nil || !committed || rec == nil || !sameRun(rec, r) {
			need = append(need, i)
			continue
		}
		fresh := make(map[string]bool, len(rows))
		for _, t := range rows {
			fresh[NodeID(t.TaskID, t.MapIndex)] = true
		}
		if err := s.fill(ctx, info, snap, r, merged(r.RunRef, memo, rows), fresh, now); err != nil {
			return nil, err
		}
	}
	refs := make([]RunRef, len(need))
	for k, i := range need {
		refs[k] = runs[i].RunRef
	}
	tis, err := s.c.RunTaskInstances(ctx, refs)
	if err != nil {
		return nil, err
	}
	for _, i := range need {
		if err := s.fill(ctx, info, snaps[i], &runs[i], tis[runs[i].RunRef], nil, now); err != nil {
			return nil, err
		}
	}
	return snaps, nil
}

// vouch returns the runs the index knows as active that nothing listed, each with its indexed
// fingerprint: the engine keeps them as they are. A run the index has no fingerprint for (a run
// a poll deferred) is added to unknown instead, to be read; so is one whose reference does not
// name its key. Runs of DAGs no longer watched are left to the engine, which drops them.
func (s *Source) vouch(w poll.Window, listed map[RunRef]bool, unknown []RunRef) ([]*poll.Snapshot, []RunRef) {
	var out []*poll.Snapshot
	for key, entry := range w.Known {
		if !entry.Active || entry.Ref == "" {
			continue
		}
		ref, err := parseRef(entry.Ref)
		if err != nil || listed[ref] || !s.Watched(ref.DagID) {
			continue // a bad reference: the engine's follow-up reports it
		}
		if entry.Fingerprint == "" || s.key(ref) != key {
			unknown = append(unknown, ref)
			continue
		}
		out = append(out, &poll.Snapshot{
			Run:         event.Run{Source: event.SourceAirflow, Instance: s.instance, UID: ref.String(), Name: ref.RunID, Pipeline: ref.DagID},
			Ref:         entry.Ref,
			Fingerprint: entry.Fingerprint,
			Active:      true,
		})
	}
	slices.SortFunc(out, func(a, b *poll.Snapshot) int { return strings.Compare(a.Ref, b.Ref) })
	return out, unknown
}

func compareRefs(a, b RunRef) int { return strings.Compare(a.String(), b.String()) }

// key is a run's state key, as its snapshot's.
func (s *Source) key(ref RunRef) string {
	return event.Run{Source: event.SourceAirflow, Instance: s.instance, UID: ref.String()}.Key()
}

func (s *Source) fullListingDue(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fullAt.IsZero() || s.fullEvery <= 0 || now.Sub(s.fullAt) >= s.fullEvery
}

// startTries starts a poll's count of tries calls; the function it returns warns when the poll
// reached the bound.
func (s *Source) startTries(ctx context.Context) func() {
	s.mu.Lock()
	s.triesLeft, s.triesSkip = s.maxTries, 0
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		skipped := s.triesSkip
		s.mu.Unlock()
		if skipped > 0 {
			s.log.WarnContext(ctx, "tries reads of this poll reached their bound: the earlier tries of the other retried task instances are recorded as missed",
				"source", s.Name(), "tries_reads", s.maxTries, "left_out", skipped)
		}
	}
}

// listRuns lists the active runs with no date bound and the finished runs of the window:
// updated in it (2.6+), else ended in it (a run started in it is active or has ended in it too);
// a backfill takes the runs that overlap it. The second listing asks for finished states only:
// the scheduler touches every running run on each loop, so updated_at_gte alone would list the
// active runs twice. Excluded DAGs are dropped.
func (s *Source) listRuns(ctx context.Context, info ServerInfo, w poll.Window) ([]Run, error) {
	active, err := s.c.ListRuns(ctx, RunFilter{States: []string{"queued", "running"}})
	if err != nil {
		return nil, err
	}
	f := RunFilter{States: []string{"success", "failed"}, EndGTE: w.Since}
	switch {
	case w.Backfill:
		f.StartLTE = w.Until
	case info.UpdatedAtFilter():
		f = RunFilter{States: f.States, UpdatedGTE: w.Since}
	}
	recent, err := s.c.ListRuns(ctx, f)
	if err != nil {
		return nil, err
	}
	return s.watchedOnce(active, recent), nil
}

// listChanges lists the runs whose run-level state moved in w: queued or finished in it
// (updated_at_gte: neither is touched by the scheduler's loops once there), or started in it.
func (s *Source) listChanges(ctx context.Context, w poll.Window) ([]Run, error) {
	moved, err := s.c.ListRuns(ctx, RunFilter{States: []string{"queued", "success", "failed"}, UpdatedGTE: w.Since})
	if err != nil {
		return nil, err
	}
	started, err := s.c.ListRuns(ctx, RunFilter{States: []string{"running"}, StartGTE: w.Since})
	if err != nil {
		return nil, err
	}
	return s.watchedOnce(moved, started), nil
}

// watchedOnce concatenates listings, without the runs of excluded DAGs and each run once.
func (s *Source) watchedOnce(lists ...[]Run) []Run {
	seen := map[RunRef]bool{}
	var out []Run
	for _, r := range slices.Concat(lists...) {
		if !seen[r.RunRef] && s.Watched(r.DagID) {
			seen[r.RunRef] = true
			out = append(out, r)
		}
	}
	return out
}

// changeFeed reads the task instances of watched DAGs updated since the window start, by run.
func (s *Source) changeFeed(ctx context.Context, w poll.Window) (map[RunRef][]TaskInstance, error) {
	tis, err := s.c.TaskInstancesUpdatedSince(ctx, w.Since)
	if err != nil {
		return nil, err
	}
	out := map[RunRef][]TaskInstance{}
	for i := range tis {
		if s.Watched(tis[i].DagID) {
			out[tis[i].Run()] = append(out[tis[i].Run()], tis[i])
		}
	}
	return out, nil
}

// dropUnchanged removes from the feed the committed active runs whose every row is as
// remembered: on Airflow 3 a running task's heartbeat rewrites its row, so the feed shows every
// running task each poll, changed or not. Such a run is then vouched for like a run the feed does
// not name (a run not committed yet is read, as any: its rows are not stored).
func (s *Source) dropUnchanged(changed map[RunRef][]TaskInstance, w poll.Window) {
	for ref, rows := range changed {
		key := s.key(ref)
		if e := w.Known[key]; e.Fingerprint == "" || !e.Active {
			continue
		}
		// Only rows as the last commit stored them: rows this process read since without a
		// commit (a dry run, a poll that failed, a deferral) are changes still to publish.
		_, memo, fp := s.recalled(key, w.Since)
		if memo == nil || fp != w.Known[key].Fingerprint {
			continue
		}
		known := make(map[string]tiRow, len(memo))
		for _, m := range memo {
			known[NodeID(m.taskID, int(m.mapIndex))] = m
		}
		same := true
		for i := range rows {
			m, ok := known[NodeID(rows[i].TaskID, rows[i].MapIndex)]
			if !ok || !m.same(&rows[i]) {
				same = false
				break
			}
		}
		if same {
			delete(changed, ref)
		}
	}
}

// getRunsParallelism bounds the run calls in flight: they are few, but need not wait in turn.
const getRunsParallelism = 8

// getRuns reads runs one by one, in order; runs that no longer exist are left out.
func (s *Source) getRuns(ctx context.Context, refs []RunRef) ([]Run, error) {
	got := make([]*Run, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(getRunsParallelism)
	for i, ref := range refs {
		g.Go(func() error {
			r, err := s.c.GetRun(gctx, ref)
			got[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []Run
	for _, r := range got {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}
