package argosim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// EstateConfig describes a simulated estate. Start from DefaultEstate and change what matters:
// zero rates mean zero.
type EstateConfig struct {
	// Seed makes the estate reproducible: the same seed, configuration and clock moves give
	// the same workflows, byte for byte.
	Seed uint64
	// ActiveRuns is the number of running workflows kept alive: new runs are submitted when
	// runs complete (an argo retry can take the estate above it for a while).
	ActiveRuns int
	// TasksPerRun is roughly how many nodes a run has when nothing fails (retries add some).
	TasksPerRun int
	// Pipelines is the number of distinct workflow shapes (default: up to 25).
	Pipelines int
	// Namespaces the pipelines are spread over.
	Namespaces []string
	// Labels are added to every workflow.
	Labels map[string]string
	// Tick is the simulated time between two controller steps (at least 1s).
	Tick time.Duration
	// ChangeShare is the share of active runs the controller advances at each step. New runs
	// are always reconciled at the step after their creation.
	ChangeShare float64
	// CompressedShare is the share of runs that are large workflows (LargeFactor times
	// TasksPerRun nodes) stored as status.compressedNodes, as the controller stores workflows
	// above 1 MiB.
	CompressedShare float64
	LargeFactor     int
	// FailureRate is the chance that a pod attempt fails.
	FailureRate float64
	// ErrorShare is the share of failed pods that end in Error ("pod deleted") instead of Failed.
	ErrorShare float64
	// RetryRate is the share of pod tasks with a retryStrategy (limit 2): a Retry node with
	// "name(0)", "name(1)"… children.
	RetryRate float64
	// RetryFailureRate is the chance that an attempt of a retried task fails.
	RetryFailureRate float64
	// ManualRetryRate is the chance that someone runs `argo retry` on a failed workflow,
	// RetryDelay after it failed (if it still exists): its failed nodes run again with the
	// same ids, so a node can finish twice.
	ManualRetryRate float64
	RetryDelay      time.Duration
	// SkipRate is the share of steps skipped by their `when` and of DAG failure handlers
	// (depends: "x.Failed", Omitted when x succeeds).
	SkipRate float64
	// ExitHandlerShare is the share of pipelines with a workflow exit handler.
	ExitHandlerShare float64
	// InitialRounds: each initial run has already run a random number of controller rounds,
	// up to this many, before the estate starts, so it starts lived-in. A run of 50 tasks takes
	// about 25 rounds, so active runs then show about half their nodes on average.
	InitialRounds int
	// NoArchive turns the workflow archive off. With it on, a completed workflow is archived
	// one tick after it completes (labelled Pending until then).
	NoArchive bool
	// TTL deletes completed workflows this long after completion (spec.ttlStrategy); 0 never.
	TTL time.Duration
	// ArchiveTTL deletes archived workflows this long after they finished (the archive's
	// archiveTTL); 0 never.
	ArchiveTTL time.Duration
}

// DefaultEstate returns a medium-sized estate configuration: 100 active runs of about 50 nodes,
// one step every 30 s changing 10% of them, about one run in ten failing.
func DefaultEstate() EstateConfig {
	return EstateConfig{
		Seed:             1,
		ActiveRuns:       100,
		TasksPerRun:      50,
		Namespaces:       []string{"argo"},
		Tick:             30 * time.Second,
		ChangeShare:      0.1,
		CompressedShare:  0.05,
		LargeFactor:      4,
		FailureRate:      0.002,
		ErrorShare:       0.2,
		RetryRate:        0.1,
		RetryFailureRate: 0.25,
		ManualRetryRate:  0.2,
		RetryDelay:       2 * time.Minute,
		SkipRate:         0.05,
		ExitHandlerShare: 0.3,
		InitialRounds:    25,
		TTL:              time.Hour,
	}
}

func (c *EstateConfig) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.ActiveRuns >= 0 && c.ActiveRuns <= 1_000_000, "ActiveRuns %d is not between 0 and 1000000", c.ActiveRuns)
	check(c.TasksPerRun >= 2 && c.TasksPerRun <= 10_000, "TasksPerRun %d is not between 2 and 10000", c.TasksPerRun)
	check(c.Pipelines >= 0, "Pipelines %d is negative", c.Pipelines)
	check(len(c.Namespaces) > 0, "Namespaces is empty")
	check(c.Tick >= time.Second && c.Tick%time.Second == 0, "Tick %s is not a whole number of seconds", c.Tick)
	check(c.InitialRounds >= 0, "InitialRounds %d is negative", c.InitialRounds)
	check(c.CompressedShare == 0 || c.LargeFactor >= 1 && c.TasksPerRun*c.LargeFactor <= 100_000, "LargeFactor %d is not between 1 and 100000/TasksPerRun", c.LargeFactor)
	check(c.TTL >= 0 && c.ArchiveTTL >= 0 && c.RetryDelay >= 0, "TTL, ArchiveTTL and RetryDelay must not be negative")
	for name, v := range map[string]float64{
		"ChangeShare": c.ChangeShare, "CompressedShare": c.CompressedShare, "FailureRate": c.FailureRate,
		"ErrorShare": c.ErrorShare, "RetryRate": c.RetryRate, "RetryFailureRate": c.RetryFailureRate, "ManualRetryRate": c.ManualRetryRate,
		"SkipRate": c.SkipRate, "ExitHandlerShare": c.ExitHandlerShare,
	} {
		check(v >= 0 && v <= 1, "%s %g is not between 0 and 1", name, v)
	}
	for _, ns := range c.Namespaces {
		check(validateLabelValue(ns) == nil && ns != "", "namespace %q is not a valid name", ns)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid estate: %w", err)
	}
	return nil
}

// EstateCounters count what the estate's controller did.
type EstateCounters struct {
	Steps     int // controller steps
	Advanced  int // run reconciliations that changed a run
	Created   int // workflows submitted
	Completed int
	Archived  int
	Retried   int // argo retry of a failed workflow
	Deleted   int // by TTL
	Released  int // runs a test modified by hand, no longer driven by the estate
}

// Estate is a living estate of workflows on a Server, advanced on the server's clock: each
// Tick the controller advances a share of the active runs (Pending → Running → terminal,
// nested groups completing, retries, skips, exit handlers), completes runs and starts new ones,
// archives completed runs and deletes them after their TTL. The estate catches up with the
// clock before every request the server answers (and on Sync), so with a manual clock it moves
// exactly when the clock does, and with the real clock it moves in real time.
type Estate struct {
	srv *Server
	cfg EstateConfig

	mu        sync.Mutex
	rng       *rand.Rand
	pipelines []*pipeline
	large     []*pipeline // for compressed runs
	hosts     []string
	active    []*run // reconciled, running
	fresh     []*run // submitted, reconciled at the next step
	done      []*run // completed, awaiting archiving and deletion
	next      time.Time
	count     EstateCounters
}

type run struct {
	p        *pipeline
	uid      string
	name     string
	ctl      *runCtl
	rec      *record // the version this estate last stored
	storage  NodeStorage
	created  int64
	started  int64
	finished int64
	last     int64 // stamp of the last change
	phase    string
	archived bool
	deleted  bool
	retryAt  int64 // when someone will argo-retry this failed run; 0 never
}

// NewEstate creates the estate's workflows on srv, some already advanced at past ticks, and
// attaches the estate to srv so that it advances before every request.
func NewEstate(srv *Server, cfg EstateConfig) (*Estate, error) {
	if cfg.Pipelines == 0 {
		cfg.Pipelines = max(1, min(cfg.ActiveRuns, 25))
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Estate{srv: srv, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0xa760))}
	for i := range 8 {
		e.hosts = append(e.hosts, fmt.Sprintf("gke-prod-pool-%d-%08x-%s", i%3, e.rng.Uint32(), randomSuffix(e.rng, 4)))
	}
	for i := range cfg.Pipelines {
		e.pipelines = append(e.pipelines, newPipeline(e.rng, &e.cfg, i, cfg.TasksPerRun))
	}
	if cfg.CompressedShare > 0 {
		for i := range max(1, cfg.Pipelines/5) {
			e.large = append(e.large, newPipeline(e.rng, &e.cfg, cfg.Pipelines+i, cfg.TasksPerRun*cfg.LargeFactor))
		}
	}
	now := srv.clock.Now().Truncate(time.Second)
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range cfg.ActiveRuns {
		e.warm(i, now)
	}
	e.next = now.Add(cfg.Tick)
	srv.onRequest(func() { e.Sync() })
	return e, nil
}

// maxCatchUp bounds the steps one Sync performs after a long pause; the estate then resumes
// from the current time.
const maxCatchUp = 100_000

// Sync performs every step due by the clock and returns how many it performed.
func (e *Estate) Sync() int {
	now := e.srv.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for ; !e.next.After(now); n++ {
		if n == maxCatchUp {
			e.next = now.Truncate(time.Second).Add(e.cfg.Tick)
			break
		}
		e.step(e.next)
		e.next = e.next.Add(e.cfg.Tick)
	}
	return n
}

// Counters returns what the estate has done so far.
func (e *Estate) Counters() EstateCounters {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count
}

// ActiveNodes returns the number of nodes the estate's active runs show.
func (e *Estate) ActiveNodes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.active {
		n += len(r.ctl.nodes)
	}
	return n
}

// Active returns the number of runs the estate drives that have not completed.
func (e *Estate) Active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.active) + len(e.fresh)
}

func (e *Estate) step(at time.Time) {
	e.count.Steps++
	e.housekeep(at)
	fresh := e.fresh
	e.fresh = nil
	k := int(math.Round(e.cfg.ChangeShare * float64(len(e.active))))
	chosen := e.rng.Perm(len(e.active))[:k]
	slices.Sort(chosen)
	for _, i := range chosen {
		e.advance(e.active[i], at)
	}
	for _, r := range fresh {
		e.advance(r, at)
		if r.rec != nil && !terminalPhase(r.phase) {
			e.active = append(e.active, r)
		}
	}
	e.active = slices.DeleteFunc(e.active, func(r *run) bool { return r.rec == nil || terminalPhase(r.phase) })
	// New submissions top the estate up to ActiveRuns (retried runs may take it above).
	for range e.cfg.ActiveRuns - len(e.active) - len(e.fresh) {
		if r := e.submit(-1, at.Unix()); r != nil {
			e.fresh = append(e.fresh, r)
		}
	}
}

// stamp is when a run's change happened: within the tick before the step, after its last change.
func (e *Estate) stamp(r *run, at time.Time) int64 {
	s := at.Unix() - int64(e.rng.IntN(int(e.cfg.Tick/time.Second)))
	return max(s, r.last+1)
}

// newRun names a run submitted at `created` (unix seconds), with a name that is free. Its
// pipeline is pipeline i (any, when negative) or, for a share of runs, a large one stored
// compressed.
func (e *Estate) newRun(i int, created int64) *run {
	r := &run{created: created, last: created, uid: newUID(e.rng)}
	switch {
	case len(e.large) > 0 && e.rng.Float64() < e.cfg.CompressedShare:
		r.p, r.storage = e.large[e.rng.IntN(len(e.large))], StorageCompressed
	case i < 0:
		r.p = e.pipelines[e.rng.IntN(len(e.pipelines))]
	default:
		r.p = e.pipelines[i%len(e.pipelines)]
	}
	p := r.p
	for attempt := int64(0); ; attempt++ {
		if p.origin == originCron {
			r.name = p.name + "-" + strconv.FormatInt(created+attempt, 10)
		} else {
			r.name = p.name + "-" + randomSuffix(e.rng, 5)
		}
		if !e.srv.nameTaken(p.namespace, r.name) {
			return r
		}
	}
}

// create stores a new run's first version.
func (e *Estate) create(r *run, visibleAt time.Time) bool {
	var nodes *runSnapshot
	if r.ctl != nil {
		nodes = r.ctl.snapshot()
	}
	rec := e.record(r, nodes)
	if !e.srv.casCommit(nil, rec, visibleAt, true) {
		return false
	}
	r.rec = rec
	e.count.Created++
	e.completed(r)
	return true
}

// completed files a run that just reached a final phase: it waits for archiving, deletion
// and perhaps an argo retry. Its controller state is kept only if it may be retried.
func (e *Estate) completed(r *run) {
	if !terminalPhase(r.phase) {
		return
	}
	e.count.Completed++
	e.done = append(e.done, r)
	r.retryAt = 0
	if r.phase != WorkflowSucceeded && e.rng.Float64() < e.cfg.ManualRetryRate {
		r.retryAt = r.finished + int64(e.cfg.RetryDelay/time.Second)
	} else {
		r.ctl = nil
	}
}

// submit creates a workflow as a user or a cron schedule would: no status until reconciled.
func (e *Estate) submit(i int, at int64) *run {
	r := e.newRun(i, at)
	if !e.create(r, time.Unix(at, 0)) {
		return nil
	}
	return r
}

// warm adds a run that has already been running for a random number of rounds (at past ticks,
// before anyone could look: only its current state is exposed, at now). Runs that completed in
// that time stay as completed workflows and another run is warmed in their place.
func (e *Estate) warm(i int, now time.Time) {
	tick := int64(e.cfg.Tick / time.Second)
	for attempt := 0; attempt < 10; attempt++ {
		rounds := e.rng.IntN(e.cfg.InitialRounds + 1)
		r := e.newRun(i, now.Unix()-int64(rounds+1)*tick)
		for j := 1; j <= rounds && !terminalPhase(r.phase); j++ {
			e.reconcile(r, time.Unix(r.created+int64(j)*tick, 0))
		}
		if !e.create(r, now) {
			return
		}
		switch {
		case rounds == 0:
			e.fresh = append(e.fresh, r)
			return
		case !terminalPhase(r.phase):
			e.active = append(e.active, r)
			return
		}
		i = -1
	}
	if r := e.submit(i, now.Unix()); r != nil {
		e.fresh = append(e.fresh, r)
	}
}

// reconcile runs one controller round of r at a step.
func (e *Estate) reconcile(r *run, at time.Time) {
	now := e.stamp(r, at)
	if r.ctl == nil {
		r.ctl = newRunCtl(&e.cfg, e.rng, r.p, r.name, e.hosts)
		r.started, r.phase = now, WorkflowRunning
	}
	r.ctl.round(now)
	r.last = now
	if done, phase := r.ctl.finished(); done {
		r.phase, r.finished = phase, now
	}
}

// advance reconciles r and stores the result. A run whose workflow was changed by someone
// else (a test) is released.
func (e *Estate) advance(r *run, at time.Time) {
	if r.rec == nil || terminalPhase(r.phase) {
		return
	}
	e.reconcile(r, at)
	next := e.record(r, r.ctl.snapshot())
	if !e.srv.casCommit(r.rec, next, at, true) {
		r.rec = nil
		e.count.Released++
		return
	}
	r.rec = next
	e.count.Advanced++
	e.completed(r)
}

// manualRetry is `argo retry` of a failed run; the run becomes active again.
func (e *Estate) manualRetry(r *run, at time.Time) bool {
	now := e.stamp(r, at)
	r.ctl.retry(now)
	r.phase, r.started, r.finished, r.last, r.retryAt = WorkflowRunning, now, 0, now, 0
	next := e.record(r, r.ctl.snapshot())
	if !e.srv.casCommit(r.rec, next, at, true) {
		r.rec = nil
		e.count.Released++
		return false
	}
	r.rec = next
	e.count.Retried++
	e.active = append(e.active, r)
	return true
}

// record renders a run as a stored workflow version.
func (e *Estate) record(r *run, nodes *runSnapshot) *record {
	p := r.p
	wf := Workflow{
		Metadata: ObjectMeta{
			Name: r.name, Namespace: p.namespace, UID: r.uid, CreationTimestamp: unixTime(r.created),
			Labels: cloneMap(p.labels), Annotations: p.annots,
		},
		Spec: p.spec,
	}
	if p.origin != originCron {
		wf.Metadata.GenerateName = p.name + "-"
	} else {
		wf.Metadata.Annotations = cloneMap(p.annots)
		wf.Metadata.Annotations[AnnotationScheduledTime] = unixTime(r.created).Format(time.RFC3339)
	}
	st := &wf.Status
	st.Phase, st.StartedAt, st.FinishedAt = r.phase, unixTime(r.started), unixTime(r.finished)
	if r.ctl != nil {
		var cpu, mem int64
		st.Progress, cpu, mem = r.ctl.progress()
		st.ArtifactRepositoryRef = &ArtifactRepoRef{Default: true}
		running := "False"
		if r.ctl.anyRunning() {
			running = "True"
		}
		st.Conditions = []Condition{{Type: "PodRunning", Status: running}}
		if terminalPhase(r.phase) {
			st.Conditions = append(st.Conditions, Condition{Type: "Completed", Status: "True"})
			st.ResourcesDuration = map[string]int64{"cpu": cpu, "memory": mem}
			if r.phase != WorkflowSucceeded {
				st.Message = r.ctl.nodes[r.ctl.root.node].message
			}
		}
	}
	wf.Metadata.Labels = setControllerLabels(wf.Metadata.Labels, r.phase)
	if terminalPhase(r.phase) && !e.cfg.NoArchive {
		wf.Metadata.Labels[LabelArchivingStatus] = ArchivingPending
	}
	var src nodeSource
	if nodes != nil {
		src = nodes
	}
	return newRecord(wf, src, r.storage)
}

// housekeep retries, archives and deletes (TTL) completed runs that are due, and purges the
// archive (archive TTL).
func (e *Estate) housekeep(at time.Time) {
	now := at.Unix()
	if e.cfg.ArchiveTTL > 0 {
		e.srv.PurgeArchive(at.Add(-e.cfg.ArchiveTTL))
	}
	e.done = slices.DeleteFunc(e.done, func(r *run) bool {
		if r.rec == nil {
			return true // released
		}
		if r.retryAt > 0 && now >= r.retryAt && !r.deleted {
			e.manualRetry(r, at)
			return true // active again, or released
		}
		if !e.cfg.NoArchive && !r.archived && now >= r.finished+int64(e.cfg.Tick/time.Second) {
			next, ok := e.srv.casArchive(r.rec, at)
			if !ok {
				e.count.Released++
				return true
			}
			r.rec, r.archived = next, true
			e.count.Archived++
		}
		archivedOrOff := e.cfg.NoArchive || r.archived
		if e.cfg.TTL > 0 && !r.deleted && archivedOrOff && now >= r.finished+int64(e.cfg.TTL/time.Second) {
			if !e.srv.casDelete(r.rec) {
				e.count.Released++
				return true
			}
			r.deleted = true
			e.count.Deleted++
		}
		return archivedOrOff && (r.deleted || e.cfg.TTL == 0 && r.retryAt == 0)
	})
}

// casCommit stores next if the live version of its workflow is still prev (nil: the workflow
// must not exist, by uid or by name). Estates use it so that a test editing a run wins.
func (s *Server) casCommit(prev, next *record, at time.Time, statusChange bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid := next.wf.Metadata.UID
	if prev == nil {
		if _, taken := s.live[uid]; taken {
			return false
		}
		if _, taken := s.names[next.key()]; taken {
			return false
		}
	} else if s.live[uid] != prev {
		return false
	}
	s.commitLocked(prev, next, at, statusChange)
	return true
}

func (s *Server) nameTaken(namespace, name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, taken := s.names[namespace+"/"+name]
	return taken
}

func (s *Server) casArchive(cur *record, at time.Time) (*record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid := cur.wf.Metadata.UID
	if s.live[uid] != cur || s.archiveLocked(cur, at) != nil {
		return nil, false
	}
	return s.live[uid], true
}

func (s *Server) casDelete(cur *record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[cur.wf.Metadata.UID] != cur {
		return false
	}
	s.deleteLocked(cur)
	return true
}
