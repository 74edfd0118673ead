package airflowsim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"time"
)

// EstateSpec describes a generated Airflow estate: DAGs with task groups, a mapped task, a sensor
// in reschedule mode, retries, failures (upstream_failed downstream) and branches (skipped), whose
// runs advance on the server's clock. A finished run is replaced by a new run of its DAG, so the
// number of active runs stays constant.
type EstateSpec struct {
	DAGs        int           // DAGs (default 6)
	ActiveRuns  int           // runs kept active (default 2 per DAG)
	TasksPerRun int           // tasks per DAG, before mapping (default 8, at least 5)
	MappedWidth int           // instances of the mapped task (default 3)
	StepEvery   time.Duration // mean time between two changes of one run (default 30s)
	RetryRate   float64       // share of tasks whose first try fails and is retried (default 0.1)
	FailRate    float64       // share of runs in which a task fails for good (default 0.05)
	SkipRate    float64       // share of runs whose branch skips the last task (default 0.2)
	// Monitoring adds Composer's airflow_monitoring liveness DAG, one run every 10 minutes.
	Monitoring bool
	// Retention deletes finished runs older than this, as `airflow db clean` does (0: keep all).
	Retention time.Duration
	// Backdate starts the estate this long before the clock's time, its runs starting one after
	// the other over it, so the first look finds runs at every stage: some finished, some about
	// to (0: every run starts now).
	Backdate time.Duration
	Seed     uint64
}

func (e *EstateSpec) defaults() {
	if e.DAGs <= 0 {
		e.DAGs = 6
	}
	if e.ActiveRuns <= 0 {
		e.ActiveRuns = 2 * e.DAGs
	}
	e.TasksPerRun = max(e.TasksPerRun, 5)
	if e.TasksPerRun == 5 && e.MappedWidth == 0 {
		e.TasksPerRun = 8
	}
	if e.MappedWidth <= 0 {
		e.MappedWidth = 3
	}
	if e.StepEvery <= 0 {
		e.StepEvery = 30 * time.Second
	}
	if e.RetryRate == 0 {
		e.RetryRate = 0.1
	}
	if e.FailRate == 0 {
		e.FailRate = 0.05
	}
	if e.SkipRate == 0 {
		e.SkipRate = 0.2
	}
}

// Estate generates and advances runs. It is driven by the server: every API call first applies
// every step due at the clock's current time, so what the API shows is a pure function of the
// spec, the seed and the clock.
type Estate struct {
	spec           EstateSpec
	s              *Server
	rng            *rand.Rand
	dags           []dagShape
	queue          planHeap
	seq            int
	nextMonitoring time.Time
}

type taskKind int

const (
	kindNormal taskKind = iota
	kindSensor
	kindMapped
	kindBranch // skipped when the run's branch goes the other way
)

type plannedTask struct {
	spec TaskSpec
	kind taskKind
}

type dagShape struct {
	id    string
	tasks []plannedTask
}

// step is what happens to a run at one instant.
type step func(w *world, r *dagRun, at time.Time) error

type plan struct {
	due   time.Time
	run   *dagRun
	dag   int
	steps []step
	next  int
	index int
}

type planHeap []*plan

func (h planHeap) Len() int           { return len(h) }
func (h planHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h planHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *planHeap) Push(x any)        { p := x.(*plan); p.index = len(*h); *h = append(*h, p) }
func (h *planHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

// StartEstate attaches a generated estate to the server, starting at the clock's current time.
func (s *Server) StartEstate(spec EstateSpec) (*Estate, error) {
	spec.defaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.estate != nil {
		return nil, fmt.Errorf("airflowsim: an estate is already running")
	}
	e := &Estate{spec: spec, s: s, rng: rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))}
	for i := range spec.DAGs {
		e.dags = append(e.dags, e.shape(i))
	}
	now := s.clk.Now().UTC()
	begin := now.Add(-spec.Backdate)
	for i := range spec.ActiveRuns {
		// First steps are spread over one step interval so runs do not all change together.
		at := begin.Add(spec.Backdate * time.Duration(i) / time.Duration(spec.ActiveRuns))
		first := at.Add(time.Duration(e.rng.Int64N(int64(spec.StepEvery))))
		if err := e.startRun(i%spec.DAGs, at, first); err != nil {
			return nil, err
		}
	}
	e.nextMonitoring = begin
	s.estate = e
	e.advance(now)
	return e, nil
}

// shape builds DAG i: a sensor, task groups of four tasks (dotted ids), one mapped task, one
// retried task and a final branch-dependent task.
func (e *Estate) shape(i int) dagShape {
	d := dagShape{id: fmt.Sprintf("etl_%03d", i)}
	d.tasks = append(d.tasks, plannedTask{spec: TaskSpec{ID: "wait_for_source", Operator: "S3KeySensor", Pool: "sensors"}, kind: kindSensor})
	for n := 0; len(d.tasks) < e.spec.TasksPerRun-1; n++ {
		id := fmt.Sprintf("stage_%02d.step_%02d", n/4, n%4)
		kind := kindNormal
		if n == 1 {
			kind, id = kindMapped, fmt.Sprintf("stage_%02d.partition", n/4)
		}
		d.tasks = append(d.tasks, plannedTask{spec: TaskSpec{ID: id, Retries: 2, Operator: "PythonOperator", Mapped: kind == kindMapped, Priority: e.spec.TasksPerRun - n}, kind: kind})
	}
	d.tasks = append(d.tasks, plannedTask{spec: TaskSpec{ID: "publish_report", Operator: "EmailOperator"}, kind: kindBranch})
	return d
}

// startRun creates a run of DAG dag at at, whose first step is due at due.
func (e *Estate) startRun(dag int, at, due time.Time) error {
	shape := e.dags[dag]
	e.seq++
	ld := at.Truncate(time.Second)
	spec := RunSpec{DagID: shape.id, RunID: "scheduled__" + ld.Format("2006-01-02T15:04:05") + fmt.Sprintf(".%06d+00:00", e.seq%1000000), LogicalDate: &ld}
	if e.s.v.api == "v2" && e.seq%5 == 0 {
		// Airflow 3 manual runs may have no logical date.
		spec.RunType, spec.LogicalDate = "manual", nil
		spec.RunID = fmt.Sprintf("manual__%s_%d", ld.Format("2006-01-02T15:04:05"), e.seq)
	}
	for _, t := range shape.tasks {
		spec.Tasks = append(spec.Tasks, t.spec)
	}
	r, err := e.s.w.addRun(spec, at)
	if err != nil {
		return err
	}
	p := &plan{run: r, dag: dag, due: due, steps: e.planRun(shape)}
	heap.Push(&e.queue, p)
	return nil
}

// planRun decides the run's fate (retries, a failure, the branch) and lists its steps.
func (e *Estate) planRun(shape dagShape) []step {
	failAt := -1
	if e.rng.Float64() < e.spec.FailRate {
		failAt = 1 + e.rng.IntN(len(shape.tasks)-1)
	}
	skip := e.rng.Float64() < e.spec.SkipRate
	steps := []step{runTo(RunRunning)}
	failed := false
	for i, t := range shape.tasks {
		id := t.spec.ID
		switch {
		case failed:
			steps = append(steps, tiTo(id, -1, UpstreamFailed))
			continue
		case t.kind == kindBranch && skip:
			steps = append(steps, tiTo(id, -1, Skipped))
			continue
		case t.kind == kindSensor:
			steps = append(steps, tiTo(id, -1, Scheduled, Queued), tiTo(id, -1, Running), tiTo(id, -1, UpForReschedule),
				tiTo(id, -1, Scheduled, Queued), tiTo(id, -1, Running), tiTo(id, -1, Success))
			continue
		case t.kind == kindMapped:
			width := e.spec.MappedWidth
			steps = append(steps, func(w *world, r *dagRun, at time.Time) error { return w.expand(r, id, width, at) })
			for m := range width {
				steps = append(steps, e.tryOut(id, m, false)...)
			}
			continue
		}
		steps = append(steps, e.tryOut(id, -1, i == failAt)...)
		failed = i == failAt
	}
	final := RunSuccess
	if failAt >= 0 {
		final = RunFailed
	}
	return append(steps, runTo(final))
}

// tryOut runs one task instance to its end: a retry first when the dice say so, a final failure
// when fail is set.
func (e *Estate) tryOut(id string, mi int, fail bool) []step {
	var steps []step
	if !fail && e.rng.Float64() < e.spec.RetryRate {
		steps = append(steps, tiTo(id, mi, Scheduled, Queued), tiTo(id, mi, Running), tiTo(id, mi, UpForRetry))
	}
	end := Success
	if fail {
		end = Failed
	}
	return append(steps, tiTo(id, mi, Scheduled, Queued), tiTo(id, mi, Running), tiTo(id, mi, end))
}

func tiTo(task string, mi int, states ...string) step {
	return func(w *world, r *dagRun, at time.Time) error {
		ti, err := w.ti(tiKey{r.dagID, r.runID, task, mi})
		if err != nil {
			return err
		}
		for _, st := range states {
			if err := w.move(ti, st, at); err != nil {
				return err
			}
		}
		return nil
	}
}

func runTo(state string) step {
	return func(w *world, r *dagRun, at time.Time) error { return w.setRunState(r, state, at) }
}

// advance applies, in time order, every step due at or before now. Called with the server lock.
func (e *Estate) advance(now time.Time) {
	for e.queue.Len() > 0 && !e.queue[0].due.After(now) {
		p := e.queue[0]
		if err := p.steps[p.next](e.s.w, p.run, p.due); err != nil {
			panic(fmt.Sprintf("airflowsim: estate step %d of %s/%s: %v", p.next, p.run.dagID, p.run.runID, err))
		}
		p.next++
		if p.next < len(p.steps) {
			p.due = p.due.Add(e.jitter())
			heap.Fix(&e.queue, 0)
			continue
		}
		heap.Pop(&e.queue)
		// The DAG's next run is created (queued) now and starts a step later: created at a
		// later instant, it would show rows updated in the future, which no server does.
		if err := e.startRun(p.dag, p.due, p.due.Add(e.jitter())); err != nil {
			panic(fmt.Sprintf("airflowsim: estate: %v", err))
		}
	}
	e.monitoring(now)
	e.prune(now)
}

// jitter is a step interval: StepEvery on average, between half and one and a half of it.
func (e *Estate) jitter() time.Duration {
	d := e.spec.StepEvery
	return d/2 + time.Duration(e.rng.Int64N(int64(d)+1))
}

// monitoring runs Composer's liveness DAG: one task, one run every 10 minutes, done at once.
func (e *Estate) monitoring(now time.Time) {
	if !e.spec.Monitoring {
		return
	}
	for !e.nextMonitoring.After(now) {
		at := e.nextMonitoring
		ld := at.Truncate(time.Minute)
		r, err := e.s.w.addRun(RunSpec{DagID: "airflow_monitoring", RunID: "scheduled__" + ld.Format(time.RFC3339), LogicalDate: &ld,
			Tasks: []TaskSpec{{ID: "echo", Operator: "BashOperator"}}}, at)
		if err == nil {
			ti := r.tis[0]
			_ = e.s.w.setRunState(r, RunRunning, at)
			for _, st := range []string{Scheduled, Queued, Running, Success} {
				_ = e.s.w.move(ti, st, at)
			}
			_ = e.s.w.setRunState(r, RunSuccess, at)
		}
		e.nextMonitoring = at.Add(10 * time.Minute)
	}
}

func (e *Estate) prune(now time.Time) {
	if e.spec.Retention <= 0 {
		return
	}
	cut := now.Add(-e.spec.Retention)
	w := e.s.w
	kept := w.runs[:0]
	for _, r := range w.runs {
		if !r.active() && !r.end.IsZero() && r.end.Before(cut) {
			for _, t := range r.tis {
				delete(w.tiIdx, t.key)
				delete(w.history, t.key)
			}
			delete(w.runIdx, runKey{r.dagID, r.runID})
			continue
		}
		kept = append(kept, r)
	}
	w.runs = kept
}

// Sync applies every estate step due at the clock's current time (API calls do it themselves).
func (s *Server) Sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.estate != nil {
		s.estate.advance(s.clk.Now().UTC())
	}
}
