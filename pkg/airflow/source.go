package airflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
)

// Source is an Airflow (2, 3 or Cloud Composer) as the poll engine sees it: poll.Source,
// poll.APICounter, poll.HistoryFiller and poll.Requeuer.
//
// One List costs, whatever the number of DAGs: the pages of active runs (no date bound), the
// pages of finished runs updated since the window start (ended in it, on servers before 2.6),
// the pages of task instances updated since then (the change feed, 2.6+), batch calls for the
// task instances of the runs that need them, and one tries call per task instance that moved to
// a new try (2.10+; at most MaxTriesReads per poll). A run needs its task instances when the feed shows a change in it, when its
// run-level fields changed, or when this process has not read it yet; the others keep the
// fingerprint this process computed last (no task instance updated since the window start means
// none since then), so an unchanged run costs neither task-instance bytes nor state-store
// operations. After a cold start every run is read once.
//
// A task instance row shows only its latest try; every earlier try is added to the snapshot
// from the tries endpoint (read once per try and process), so a task that went failed ->
// up_for_retry -> running -> success between two polls still has each try recorded, and task
// groups start with the first try. FillHistory records, against the stored states, the tries no
// endpoint can give back.
type Source struct {
	c        *Client
	instance string
	include  *regexp.Regexp
	exclude  *regexp.Regexp
	ui       *url.URL

	mu   sync.Mutex
	memo map[string]*memo // by run key: what this process last read

	log       *slog.Logger
	maxTries  int
	triesLeft int // tries calls this poll may still make (under mu; List starts a poll)
	triesSkip int // tries calls this poll left out
}

// memo is what this process remembers of a run: its fingerprint (with the run-level part apart)
// and the finished earlier tries of its task instances, which never change once ended.
type memo struct {
	run, fp string
	tries   map[string]map[int]TaskInstance // by node id, then try number
}

var (
	_ poll.Source        = (*Source)(nil)
	_ poll.APICounter    = (*Source)(nil)
	_ poll.HistoryFiller = (*Source)(nil)
	_ poll.Requeuer      = (*Source)(nil)
)

// New returns a Source for the Airflow in cfg. Nothing is dialled until the first List.
func New(cfg Config, deps Deps) (*Source, error) {
	if cfg.URL == nil {
		return nil, errNoSource
	}
	if cfg.Instance == "" {
		cfg.Instance = cfg.URL.Hostname()
	}
	if cfg.UIURL == nil {
		cfg.UIURL = cfg.URL
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("airflow: %w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	c, err := NewClient(cfg, deps)
	if err != nil {
		return nil, err
	}
	return &Source{c: c, instance: cfg.Instance, include: cfg.DagInclude, exclude: cfg.DagExclude, ui: cfg.UIURL, memo: map[string]*memo{},
		log: deps.Log, maxTries: cfg.MaxTriesReads, triesLeft: cfg.MaxTriesReads}, nil
}

// Client returns the API client (the benchmarks read the same pages through it).
func (s *Source) Client() *Client { return s.c }

// Name identifies the source's state: "airflow/<instance>".
func (s *Source) Name() string { return event.SourceAirflow + "/" + s.instance }

// APIStats returns the cumulative API calls and response bytes.
func (s *Source) APIStats() (calls, bytes int64) {
	st := s.c.Stats()
	return st.Calls, st.Bytes
}

// Watched reports whether a DAG passes the include and exclude expressions.
func (s *Source) Watched(dagID string) bool {
	return (s.include == nil || s.include.MatchString(dagID)) && (s.exclude == nil || !s.exclude.MatchString(dagID))
}

// List returns every active run plus the runs that changed in w (see Source).
func (s *Source) List(ctx context.Context, w poll.Window) ([]*poll.Snapshot, error) {
	info, err := s.c.Server(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.triesLeft, s.triesSkip = s.maxTries, 0
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		skipped := s.triesSkip
		s.mu.Unlock()
		if skipped > 0 {
			s.log.WarnContext(ctx, "tries reads of this poll reached their bound: the earlier tries of the other retried task instances are recorded as missed",
				"source", s.Name(), "tries_reads", s.maxTries, "left_out", skipped)
		}
	}()
	runs, err := s.listRuns(ctx, info, w)
	if err != nil {
		return nil, err
	}
	var changed map[RunRef]bool // nil: no change feed, every run is read
	if !w.Backfill && info.UpdatedAtFilter() {
		var extra []Run
		if changed, extra, err = s.changedRuns(ctx, w, runs); err != nil {
			return nil, err
		}
		runs = append(runs, extra...)
	}
	snaps := make([]*poll.Snapshot, 0, len(runs))
	var need []RunRef
	for _, r := range runs {
		snap := s.snapshot(info, r)
		run, fp, known := s.recall(snap.Key())
		if changed == nil || changed[r.RunRef] || !known || run != runPart(&snap.Run) {
			need = append(need, r.RunRef)
		} else {
			snap.Fingerprint = fp
		}
		snaps = append(snaps, snap)
	}
	tis, err := s.c.RunTaskInstances(ctx, need)
	if err != nil {
		return nil, err
	}
	keep := make(map[string]bool, len(snaps))
	for i, snap := range snaps {
		keep[snap.Key()] = true
		if list, ok := tis[runs[i].RunRef]; ok {
			if err := s.fill(ctx, info, snap, list); err != nil {
				return nil, err
			}
		}
	}
	s.forgetExcept(keep)
	return snaps, nil
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
	seen := map[RunRef]bool{}
	var out []Run
	for _, r := range slices.Concat(active, recent) {
		if !seen[r.RunRef] && s.Watched(r.DagID) {
			seen[r.RunRef] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// changedRuns reads the change feed: the runs with a task instance updated since the window
// start. A watched run in the feed but not in the listing (a task changed in a run that did not)
// is read by itself and returned in extra.
func (s *Source) changedRuns(ctx context.Context, w poll.Window, runs []Run) (changed map[RunRef]bool, extra []Run, err error) {
	tis, err := s.c.TaskInstancesUpdatedSince(ctx, w.Since)
	if err != nil {
		return nil, nil, err
	}
	changed = map[RunRef]bool{}
	for i := range tis {
		if s.Watched(tis[i].DagID) {
			changed[tis[i].Run()] = true
		}
	}
	listed := make(map[RunRef]bool, len(runs))
	for _, r := range runs {
		listed[r.RunRef] = true
	}
	var missing []RunRef
	for ref := range changed {
		if !listed[ref] {
			missing = append(missing, ref)
		}
	}
	slices.SortFunc(missing, func(a, b RunRef) int { return strings.Compare(a.String(), b.String()) })
	for _, ref := range missing {
		r, err := s.c.GetRun(ctx, ref)
		if err != nil {
			return nil, nil, err
		}
		if r != nil {
			extra = append(extra, *r)
		}
	}
	return changed, extra, nil
}

// snapshot maps a DAG run; its tasks come with fill.
func (s *Source) snapshot(info ServerInfo, r Run) *poll.Snapshot {
	ref := r.RunRef
	run := event.Run{
		Source: event.SourceAirflow, Instance: s.instance, UID: ref.String(), Name: ref.RunID, Pipeline: ref.DagID,
		Phase: r.State, Status: StatusOf(r.State), StartedAt: r.Start, FinishedAt: r.End,
		Message: r.Note, URL: s.runURL(info, ref), RunType: r.RunType, LogicalDate: r.LogicalDate,
		QueuedAt: r.QueuedAt, RunAfter: r.RunAfter, DataIntervalStart: r.DataIntervalStart, DataIntervalEnd: r.DataIntervalEnd,
		LastSchedulingDecision: r.LastSchedulingDecision, ExternalTrigger: r.ExternalTrigger,
	}
	return &poll.Snapshot{Run: run, Ref: ref.String(), Active: r.Active()}
}

// runURL links to the run in the UI: Airflow 2's grid view, Airflow 3's run page.
func (s *Source) runURL(info ServerInfo, ref RunRef) string {
	if s.ui == nil {
		return ""
	}
	u := *s.ui
	if info.API == "v2" {
		return u.JoinPath("dags", ref.DagID, "runs", ref.RunID).String()
	}
	v := u.JoinPath("dags", ref.DagID, "grid")
	v.RawQuery = url.Values{"dag_run_id": {ref.RunID}}.Encode()
	return v.String()
}

// fill sets a snapshot's tasks and fingerprint from its task instances, adds the earlier tries
// of retried ones, and remembers the fingerprint.
func (s *Source) fill(ctx context.Context, info ServerInfo, snap *poll.Snapshot, tis []TaskInstance) error {
	rp := runPart(&snap.Run)
	run := runOf(snap)
	earlier, err := s.earlierTries(ctx, info, snap.Key(), run, tis)
	if err != nil {
		return err
	}
	snap.Tasks = runEvents(append(slices.Clone(tis), earlier...), run)
	snap.Fingerprint = fingerprint(rp, tis)
	snap.Loaded = true
	s.mu.Lock()
	m := s.memoOf(snap.Key())
	m.run, m.fp = rp, snap.Fingerprint
	s.mu.Unlock()
	return nil
}

// earlierTries returns tries 1..N-1 of every task instance at try N >= 2, so that a task that
// went through several tries between two polls has each of them recorded, and group nodes start
// with the first try. Finished tries are remembered: each is read from the tries endpoint (2.10+)
// once per process.
func (s *Source) earlierTries(ctx context.Context, info ServerInfo, key string, run *Run, tis []TaskInstance) ([]TaskInstance, error) {
	if !info.TriesEndpoint() {
		return nil, nil
	}
	var out []TaskInstance
	for i := range tis {
		t := &tis[i]
		if t.TryNumber < 2 {
			continue
		}
		node := NodeID(t.TaskID, t.MapIndex)
		known := s.knownTries(key, node, t.TryNumber)
		if len(known) < t.TryNumber-1 && s.takeTriesRead() {
			rows, err := s.c.Tries(ctx, run.RunRef, t.TaskID, t.MapIndex)
			if err != nil {
				return nil, err
			}
			known = s.learnTries(key, node, t.TryNumber, rows)
		}
		out = append(out, known...)
	}
	return out, nil
}

// takeTriesRead reports whether this poll may make one more tries call, and counts it.
func (s *Source) takeTriesRead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.triesLeft <= 0 {
		s.triesSkip++
		return false
	}
	s.triesLeft--
	return true
}

// knownTries returns the remembered finished tries of node below current.
func (s *Source) knownTries(key, node string, current int) []TaskInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TaskInstance
	for k := 1; k < current; k++ {
		if t, ok := s.memoOf(key).tries[node][k]; ok {
			out = append(out, t)
		}
	}
	return out
}

// learnTries keeps, of the tries endpoint's rows, one per try below current (a history row that
// says how the try ended rather than a row that does not), remembers the finished ones and
// returns them all.
func (s *Source) learnTries(key, node string, current int, rows []TaskInstance) []TaskInstance {
	best := map[int]TaskInstance{}
	for _, r := range rows {
		if r.TryNumber < 1 || r.TryNumber >= current || !keep(&r) {
			continue
		}
		if prev, ok := best[r.TryNumber]; !ok || !finished(prev.State) {
			best[r.TryNumber] = r
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memoOf(key)
	if m.tries == nil {
		m.tries = map[string]map[int]TaskInstance{}
	}
	out := make([]TaskInstance, 0, len(best))
	for k := 1; k < current; k++ {
		r, ok := best[k]
		if !ok {
			continue
		}
		if finished(r.State) {
			if m.tries[node] == nil {
				m.tries[node] = map[int]TaskInstance{}
			}
			m.tries[node][k] = r
		}
		out = append(out, r)
	}
	return out
}

func finished(state string) bool { return StatusOf(reportState(state)).Terminal() }

// memoOf returns the run's memo, creating it. Called with s.mu held.
func (s *Source) memoOf(key string) *memo {
	m := s.memo[key]
	if m == nil {
		m = &memo{}
		s.memo[key] = m
	}
	return m
}

func runOf(snap *poll.Snapshot) *Run {
	ref, _ := parseRef(snap.Ref)
	return &Run{RunRef: ref, State: snap.Run.Phase}
}

func (s *Source) recall(key string) (run, fp string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memo[key]
	if m == nil || m.fp == "" {
		return "", "", false
	}
	return m.run, m.fp, true
}

// forgetExcept drops what is remembered of runs no longer listed: the memory stays the size of
// the active estate.
func (s *Source) forgetExcept(keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.memo {
		if !keep[k] {
			delete(s.memo, k)
		}
	}
}

// parseRef reads "<dag_id>/<dag_run_id>": DAG ids cannot contain a slash, run ids may.
func parseRef(ref string) (RunRef, error) {
	dag, run, ok := strings.Cut(ref, "/")
	if !ok || dag == "" || run == "" {
		return RunRef{}, fmt.Errorf("airflow: run reference %q is not <dag_id>/<dag_run_id>", ref)
	}
	return RunRef{dag, run}, nil
}

// Load reads the task instances of a run List returned without them.
func (s *Source) Load(ctx context.Context, snap *poll.Snapshot) error {
	ref, err := parseRef(snap.Ref)
	if err != nil {
		return err
	}
	info, err := s.c.Server(ctx)
	if err != nil {
		return err
	}
	tis, err := s.c.RunTaskInstances(ctx, []RunRef{ref})
	if err != nil {
		return err
	}
	return s.fill(ctx, info, snap, tis[ref])
}

// Fetch reads runs by reference (runs active at the last commit that the active listing no
// longer shows); runs that no longer exist are left out.
func (s *Source) Fetch(ctx context.Context, refs []string) ([]*poll.Snapshot, error) {
	info, err := s.c.Server(ctx)
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, raw := range refs {
		ref, err := parseRef(raw)
		if err != nil {
			return nil, err
		}
		if !s.Watched(ref.DagID) {
			continue // excluded since it was stored: never read again
		}
		r, err := s.c.GetRun(ctx, ref)
		if err != nil {
			return nil, err
		}
		if r != nil {
			runs = append(runs, *r)
		}
	}
	need := make([]RunRef, len(runs))
	for i, r := range runs {
		need[i] = r.RunRef
	}
	tis, err := s.c.RunTaskInstances(ctx, need)
	if err != nil {
		return nil, err
	}
	out := make([]*poll.Snapshot, len(runs))
	for i, r := range runs {
		out[i] = s.snapshot(info, r)
		if err := s.fill(ctx, info, out[i], tis[r.RunRef]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FillHistory records what the engine has not stored and the snapshot cannot show. On servers
// with the tries endpoint (2.10+) List already added every earlier try, so only tries the server
// no longer has remain; on older servers none can be read. Each such try, never stored either,
// is listed in the current try's AirflowTask.MissedTries: the gap is recorded, never invented.
// Group nodes then start no later than any stored attempt below them (a try only the store
// remembers still dates its group).
func (s *Source) FillHistory(_ context.Context, snap *poll.Snapshot, stored poll.StoredAttempts) error {
	seen := map[string]map[int]bool{}
	latest := map[string]int{} // node -> index of its latest attempt in snap.Tasks
	for i, e := range snap.Tasks {
		if isParentType(&e) {
			continue
		}
		if seen[e.NodeID] == nil {
			seen[e.NodeID] = map[int]bool{}
		}
		seen[e.NodeID][e.Attempt] = true
		if j, ok := latest[e.NodeID]; !ok || snap.Tasks[j].Attempt < e.Attempt {
			latest[e.NodeID] = i
		}
	}
	for node, i := range latest {
		e := &snap.Tasks[i]
		var missed []int
		for k := 1; k < e.Attempt; k++ {
			if _, ok := stored[poll.TaskAttempt{NodeID: node, Attempt: k}]; !ok && !seen[node][k] {
				missed = append(missed, k)
			}
		}
		if len(missed) > 0 && e.Airflow != nil {
			a := *e.Airflow
			a.MissedTries = missed
			e.Airflow = &a
		}
	}
	for i := range snap.Tasks {
		if e := &snap.Tasks[i]; isParentType(e) {
			e.StartedAt = earliestBelow(e, stored)
		}
	}
	return nil
}

// earliestBelow is the earlier of a parent's start and the first start of any stored attempt of
// a task below it.
func earliestBelow(p *event.TaskEvent, stored poll.StoredAttempts) *time.Time {
	start := p.StartedAt
	prefix := p.NodeID + "."
	if p.Type == TypeMappedTask {
		prefix = p.NodeID + "["
	}
	for a, first := range stored {
		if !strings.HasPrefix(a.NodeID, prefix) {
			continue
		}
		// A rescheduled sensor's try started at its first poke, which Airflow 2.0 to 3.2 no
		// longer show once a later poke overwrote start_date: the engine's first start is that.
		if !first.IsZero() && (start == nil || first.Before(*start)) {
			start = &first
		}
	}
	return start
}

var errNoSource = errors.New("airflow is not configured (FARM_AIRFLOW_URL)")
