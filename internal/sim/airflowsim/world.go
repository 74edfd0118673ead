package airflowsim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Task-instance states as Airflow spells them. None is null: not scheduled yet, or cleared.
const (
	None            = ""
	Scheduled       = "scheduled"
	Queued          = "queued"
	Running         = "running"
	Success         = "success"
	Failed          = "failed"
	UpstreamFailed  = "upstream_failed"
	Skipped         = "skipped"
	UpForRetry      = "up_for_retry"
	UpForReschedule = "up_for_reschedule"
	Deferred        = "deferred"
	Removed         = "removed"
	Restarting      = "restarting"
)

// DAG-run states.
const (
	RunQueued  = "queued"
	RunRunning = "running"
	RunSuccess = "success"
	RunFailed  = "failed"
)

// ErrNotFound is returned by scripting calls naming a run or task instance that does not exist.
var ErrNotFound = errors.New("not found")

// ErrTransition is returned by scripting calls asking for a transition Airflow does not make.
var ErrTransition = errors.New("transition not possible")

type runKey struct{ dag, run string }

type tiKey struct {
	dag, run, task string
	mapIndex       int
}

// dagRun is a DAG-run row.
type dagRun struct {
	id                  int64 // the primary key: what order_by=id sorts on
	dagID, runID        string
	state               string
	runType             string
	logicalDate         *time.Time // nil: Airflow 3 runs without a logical date
	runAfter            time.Time
	queuedAt            time.Time
	start, end          time.Time
	dataIntervalStart   *time.Time
	dataIntervalEnd     *time.Time
	lastSchedulingCheck time.Time
	updatedAt           time.Time
	externalTrigger     bool
	triggeredBy         string
	note                string          // "" is null
	tis                 []*taskInstance // in creation order
}

func (r *dagRun) active() bool { return r.state == RunQueued || r.state == RunRunning }

// taskInstance is a task-instance row: it only ever shows the latest try.
type taskInstance struct {
	uuid           string
	key            tiKey
	displayName    string
	tryNumber      int
	maxTries       int
	state          string
	start, end     time.Time
	queuedWhen     time.Time
	scheduledWhen  time.Time
	operator       string
	pool           string
	queue          string
	hostname       string
	executor       string
	priorityWeight int
	pid            int
	updatedAt      time.Time
	// heap is the row's physical position: an update moves the row (as PostgreSQL's MVCC does),
	// which is what an unordered v1 listing returns rows in.
	heap int64
	// recordedTry is the try already copied to the history table (0: none), so a try is recorded
	// once whichever of clear and retry comes first.
	recordedTry int
	// resumedFrom is up_for_reschedule or deferred while the same try is scheduled again after
	// it ("" for a new try): a deferral keeps the try's start, a reschedule per SensorStart.
	resumedFrom string
}

func (t *taskInstance) duration() *float64 {
	if t.start.IsZero() || t.end.IsZero() {
		return nil
	}
	d := t.end.Sub(t.start).Seconds()
	return &d
}

// Transition is one state change the simulator exposed through its API, with the time it happened:
// the ground truth FARM's output is compared with.
type Transition struct {
	At       time.Time
	DagID    string
	RunID    string
	TaskID   string // empty for a DAG-run transition
	MapIndex int
	Try      int
	From, To string
	// Start and End are the task instance's (or run's) times after the change.
	Start, End time.Time
}

// IsRun reports whether t is a DAG-run transition.
func (t Transition) IsRun() bool { return t.TaskID == "" }

// world is the simulator's database. Every method expects the Server's lock to be held.
type world struct {
	v       version
	sensor  SensorStart
	runs    []*dagRun // by id
	runIdx  map[runKey]*dagRun
	tiIdx   map[tiKey]*taskInstance
	history map[tiKey][]taskInstance // copies of finished tries (task_instance_history)
	truth   []Transition
	nextID  int64
	heap    int64
	uuidSeq uint64
}

func newWorld(v version, sensor SensorStart) *world {
	return &world{v: v, sensor: sensor, runIdx: map[runKey]*dagRun{}, tiIdx: map[tiKey]*taskInstance{}, history: map[tiKey][]taskInstance{}}
}

// RunSpec describes a DAG run to create.
type RunSpec struct {
	DagID, RunID string
	RunType      string // scheduled (default), manual, backfill, dataset_triggered / asset_triggered
	// LogicalDate of the run; nil is only valid on Airflow 3 (v2), where manual and asset-triggered
	// runs may have none.
	LogicalDate *time.Time
	Tasks       []TaskSpec
}

// TaskSpec describes a task of a DAG. A dotted id places it in task groups ("extract.fetch").
type TaskSpec struct {
	ID       string
	Retries  int
	Mapped   bool // expanded later with Expand
	Operator string
	Pool     string
	Queue    string
	Priority int
}

func (w *world) addRun(spec RunSpec, at time.Time) (*dagRun, error) {
	if spec.DagID == "" || spec.RunID == "" {
		return nil, fmt.Errorf("add run: dag id and run id are required")
	}
	k := runKey{spec.DagID, spec.RunID}
	if _, ok := w.runIdx[k]; ok {
		return nil, fmt.Errorf("add run %s/%s: already exists", spec.DagID, spec.RunID)
	}
	if spec.LogicalDate == nil && w.v.api == "v1" {
		return nil, fmt.Errorf("add run %s/%s: Airflow 2 runs always have a logical date", spec.DagID, spec.RunID)
	}
	runType := spec.RunType
	if runType == "" {
		runType = "scheduled"
	}
	w.nextID++
	r := &dagRun{
		id: w.nextID, dagID: spec.DagID, runID: spec.RunID, state: RunQueued, runType: runType,
		runAfter: at, queuedAt: at, updatedAt: at, externalTrigger: runType == "manual",
		triggeredBy: "timetable",
	}
	if runType == "manual" {
		r.triggeredBy = "rest_api"
	}
	if spec.LogicalDate != nil {
		ld := spec.LogicalDate.UTC()
		r.logicalDate = &ld
		r.runAfter = ld
		// A daily timetable's interval: it starts at the logical date.
		end := ld.Add(24 * time.Hour)
		r.dataIntervalStart, r.dataIntervalEnd = &ld, &end
	}
	w.runs = append(w.runs, r)
	w.runIdx[k] = r
	for _, ts := range spec.Tasks {
		mi := -1
		w.addTI(r, ts, mi, at)
	}
	w.record(Transition{At: at, DagID: r.dagID, RunID: r.runID, To: r.state})
	return r, nil
}

func (w *world) addTI(r *dagRun, ts TaskSpec, mapIndex int, at time.Time) *taskInstance {
	op := ts.Operator
	if op == "" {
		op = "PythonOperator"
	}
	pool := ts.Pool
	if pool == "" {
		pool = "default_pool"
	}
	queue := ts.Queue
	if queue == "" {
		queue = "default"
	}
	ti := &taskInstance{
		uuid: w.newUUID(at), key: tiKey{r.dagID, r.runID, ts.ID, mapIndex}, displayName: ts.ID,
		maxTries: ts.Retries, operator: op, pool: pool, queue: queue, priorityWeight: max(ts.Priority, 1),
		executor: "", updatedAt: at,
	}
	w.heap++
	ti.heap = w.heap
	r.tis = append(r.tis, ti)
	w.tiIdx[ti.key] = ti
	return ti
}

// newUUID returns a UUIDv7-shaped id: time-ordered like the ids Airflow 3 gives task instances.
func (w *world) newUUID(at time.Time) string {
	w.uuidSeq++
	ms := uint64(at.UnixMilli())
	return fmt.Sprintf("%08x-%04x-7%03x-8%03x-%012x", ms>>16, ms&0xffff, (w.uuidSeq>>12)&0xfff, w.uuidSeq&0xfff, w.uuidSeq)
}

func (w *world) run(dag, run string) (*dagRun, error) {
	r, ok := w.runIdx[runKey{dag, run}]
	if !ok {
		return nil, fmt.Errorf("dag run %s/%s: %w", dag, run, ErrNotFound)
	}
	return r, nil
}

func (w *world) ti(k tiKey) (*taskInstance, error) {
	t, ok := w.tiIdx[k]
	if !ok {
		return nil, fmt.Errorf("task instance %s/%s/%s[%d]: %w", k.dag, k.run, k.task, k.mapIndex, ErrNotFound)
	}
	return t, nil
}

func (w *world) record(tr Transition) { w.truth = append(w.truth, tr) }

// setRunState moves a run; running sets its start, success and failed its end.
func (w *world) setRunState(r *dagRun, state string, at time.Time) error {
	switch state {
	case RunQueued:
		r.start, r.end = time.Time{}, time.Time{}
		r.queuedAt = at
	case RunRunning:
		if r.start.IsZero() {
			r.start = at
		}
		r.end = time.Time{}
	case RunSuccess, RunFailed:
		if r.start.IsZero() {
			r.start = at
		}
		r.end = at
	default:
		return fmt.Errorf("dag run state %q: %w", state, ErrTransition)
	}
	from := r.state
	r.state = state
	r.updatedAt, r.lastSchedulingCheck = at, at
	w.record(Transition{At: at, DagID: r.dagID, RunID: r.runID, From: from, To: state, Start: r.start, End: r.end})
	return nil
}

// move is every task-instance change: it checks the transition is one Airflow makes, applies the
// try-number semantics of Airflow 2.10+ (the scheduler increments it when it schedules a new
// try), records the history row and the ground truth.
func (w *world) move(ti *taskInstance, to string, at time.Time) error {
	from := ti.state
	if !allowed(from, to) {
		return fmt.Errorf("task instance %s[%d] of %s/%s: %s -> %s: %w", ti.key.task, ti.key.mapIndex, ti.key.dag, ti.key.run, stateName(from), stateName(to), ErrTransition)
	}
	switch to {
	case Scheduled:
		switch from {
		case UpForReschedule, Deferred:
			ti.resumedFrom = from
		default:
			ti.resumedFrom = ""
			ti.tryNumber++
		}
		ti.scheduledWhen = at
	case Queued:
		ti.queuedWhen = at
	case Running:
		// A deferred task resumes with its start kept (Airflow skips start_date when next_method
		// is set); a rescheduled sensor's poke overwrites it unless the server keeps the first.
		keep := ti.resumedFrom == Deferred || (ti.resumedFrom == UpForReschedule && w.sensor == StartFirstPoke)
		if !keep || ti.start.IsZero() {
			ti.start = at
		}
		ti.resumedFrom = ""
		ti.end = time.Time{}
		ti.hostname = fmt.Sprintf("worker-%d.airflow.svc", ti.heap%3)
		ti.pid = 1000 + int(ti.heap%9000)
	case Success, Failed, UpForRetry, UpForReschedule, Skipped, UpstreamFailed, Removed:
		if ti.start.IsZero() {
			ti.start = at // set_state gives tasks that never ran a start as well as an end
		}
		ti.end = at
	case None:
		w.recordTry(ti) // a clear keeps the try number and records the try that was cleared
	}
	ti.state = to
	ti.updatedAt = at
	w.heap++
	ti.heap = w.heap
	if to == UpForRetry {
		w.recordTry(ti) // the failed try goes to the history at once; try_number moves on later
	}
	if r := w.runIdx[runKey{ti.key.dag, ti.key.run}]; r != nil && r.active() {
		r.updatedAt, r.lastSchedulingCheck = at, at // the scheduler keeps touching runs it works on
	}
	w.record(Transition{
		At: at, DagID: ti.key.dag, RunID: ti.key.run, TaskID: ti.key.task, MapIndex: ti.key.mapIndex,
		Try: ti.tryNumber, From: from, To: to, Start: ti.start, End: ti.end,
	})
	return nil
}

func (w *world) recordTry(ti *taskInstance) {
	if ti.tryNumber == 0 || ti.recordedTry == ti.tryNumber {
		return
	}
	ti.recordedTry = ti.tryNumber
	w.history[ti.key] = append(w.history[ti.key], *ti)
}

// allowed lists the transitions Airflow's scheduler, executor, triggerer and users make.
func allowed(from, to string) bool {
	next := map[string][]string{
		None:            {Scheduled, Skipped, UpstreamFailed, Removed, Success, Failed},
		Scheduled:       {Queued, None, Skipped, UpstreamFailed, Removed},
		Queued:          {Running, Scheduled, Failed, UpForRetry, None},
		Running:         {Success, Failed, UpForRetry, UpForReschedule, Deferred, Skipped, Restarting},
		Deferred:        {Scheduled, Failed, UpForRetry},
		UpForRetry:      {Scheduled, None, Failed},
		UpForReschedule: {Scheduled, None, Failed},
		Restarting:      {UpForRetry, Failed, None},
		Success:         {None, Failed},
		Failed:          {None, Success},
		UpstreamFailed:  {None, Success},
		Skipped:         {None},
		Removed:         {None},
	}
	return slices.Contains(next[from], to)
}

func stateName(s string) string {
	if s == None {
		return "null"
	}
	return s
}

// expand replaces a mapped task's unexpanded instance (map_index -1) by n instances.
func (w *world) expand(r *dagRun, taskID string, n int, at time.Time) error {
	k := tiKey{r.dagID, r.runID, taskID, -1}
	parent, ok := w.tiIdx[k]
	if !ok {
		return fmt.Errorf("expand %s in %s/%s: no unexpanded instance: %w", taskID, r.dagID, r.runID, ErrNotFound)
	}
	if parent.state != None {
		return fmt.Errorf("expand %s: it is %s, not null: %w", taskID, stateName(parent.state), ErrTransition)
	}
	delete(w.tiIdx, k)
	r.tis = slices.DeleteFunc(r.tis, func(t *taskInstance) bool { return t == parent })
	spec := TaskSpec{ID: taskID, Retries: parent.maxTries, Operator: parent.operator, Pool: parent.pool, Queue: parent.queue, Priority: parent.priorityWeight}
	for i := range n {
		ti := w.addTI(r, spec, i, at)
		ti.displayName = taskID
	}
	if r.active() {
		r.updatedAt = at
	}
	return nil
}
