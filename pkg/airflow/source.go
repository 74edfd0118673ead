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

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
)

// Source is an Airflow (2, 3 or Cloud Composer) as the poll engine sees it: poll.Source,
// poll.APICounter, poll.HistoryFiller and poll.Requeuer. How a poll reads the server, and what
// it costs, is in list.go; what a process remembers between polls, in memo.go.
//
// A task instance row shows only its latest try; every earlier try is added to the snapshot
// from the tries endpoint (read once per try and process), so a task that went failed ->
// up_for_retry -> running -> success between two polls still has each try recorded, and task
// groups start with the first try. FillHistory records, against the stored states, the tries no
// endpoint can give back.
type Source struct {
	c        *Client
	clock    clock.Clock
	instance string
	include  *regexp.Regexp
	exclude  *regexp.Regexp
	ui       *url.URL
	// fullEvery is how often the active runs are listed in full (Config.FullListingEvery).
	fullEvery time.Duration

	mu     sync.Mutex
	memo   map[string]*memo // by run key: what this process last read
	fullAt time.Time        // when this process last listed every active run (zero: never)

	log       *slog.Logger
	maxTries  int
	triesLeft int // tries calls this poll may still make (under mu; List starts a poll)
	triesSkip int // tries calls this poll left out
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
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	return &Source{c: c, clock: deps.Clock, instance: cfg.Instance, include: cfg.DagInclude, exclude: cfg.DagExclude, ui: cfg.UIURL,
		fullEvery: cfg.FullListingEvery, memo: map[string]*memo{},
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

// fill sets a snapshot's tasks and fingerprint from every task instance of its run, adds the
// earlier tries of retried ones, and remembers the run as of asOf. When fresh is not nil, only
// the instances it names (by node) changed since the window start: the others, from this
// process's memo, count for the fingerprint and the group nodes, but are no event of their own
// (their stored states stand: pkg/poll/diff.go, rule 3) and need no tries read.
func (s *Source) fill(ctx context.Context, info ServerInfo, snap *poll.Snapshot, r *Run, tis []TaskInstance, fresh map[string]bool, asOf time.Time) error {
	rp := runPart(&snap.Run)
	run := runOf(snap)
	changed := tis
	if fresh != nil {
		changed = slices.DeleteFunc(slices.Clone(tis), func(t TaskInstance) bool { return !fresh[NodeID(t.TaskID, t.MapIndex)] })
	}
	earlier, err := s.earlierTries(ctx, info, snap.Key(), run, changed)
	if err != nil {
		return err
	}
	events := runEvents(append(slices.Clone(tis), earlier...), run)
	if fresh != nil {
		events = slices.DeleteFunc(events, func(e event.TaskEvent) bool { return !isParentType(&e) && !fresh[e.NodeID] })
	}
	snap.Tasks = events
	snap.Fingerprint = fingerprint(rp, tis)
	snap.Loaded = true
	s.remember(snap.Key(), r, tis, snap.Fingerprint, asOf)
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

func runOf(snap *poll.Snapshot) *Run {
	ref, _ := parseRef(snap.Ref)
	return &Run{RunRef: ref, State: snap.Run.Phase}
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
	asOf := s.clock.Now()
	tis, err := s.c.RunTaskInstances(ctx, []RunRef{ref})
	if err != nil {
		return err
	}
	return s.fill(ctx, info, snap, nil, tis[ref], nil, asOf)
}

// Fetch reads runs by reference (runs active at the last commit that the active listing no
// longer shows); runs that no longer exist are left out.
func (s *Source) Fetch(ctx context.Context, refs []string) ([]*poll.Snapshot, error) {
	info, err := s.c.Server(ctx)
	if err != nil {
		return nil, err
	}
	asOf := s.clock.Now()
	var want []RunRef
	for _, raw := range refs {
		ref, err := parseRef(raw)
		if err != nil {
			return nil, err
		}
		if s.Watched(ref.DagID) { // one excluded since it was stored is never read again
			want = append(want, ref)
		}
	}
	runs, err := s.getRuns(ctx, want)
	if err != nil {
		return nil, err
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
		if err := s.fill(ctx, info, out[i], &runs[i], tis[r.RunRef], nil, asOf); err != nil {
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
