package airflowsim

import (
	"fmt"
	"slices"
)

// The scripting layer: tests move runs and task instances exactly, one transition at a time, at
// the server clock's current time (advance a clock.Manual between calls for distinct times).

// TriggerRun creates a queued DAG run with one null task instance per task (a mapped task gets
// its unexpanded instance, map_index -1, until Expand).
func (s *Server) TriggerRun(spec RunSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.addRun(spec, s.clk.Now().UTC())
	return err
}

// SetRunState moves a DAG run to queued, running, success or failed.
func (s *Server) SetRunState(dagID, runID, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.w.run(dagID, runID)
	if err != nil {
		return err
	}
	return s.w.setRunState(r, state, s.clk.Now().UTC())
}

// SetRunNote sets a DAG run's note, as PATCH …/dagRuns/{id}/setNote does ("" clears it).
func (s *Server) SetRunNote(dagID, runID, note string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.w.run(dagID, runID)
	if err != nil {
		return err
	}
	r.note = note
	r.updatedAt = s.clk.Now().UTC()
	return nil
}

// Expand turns a mapped task's unexpanded instance into n instances (map_index 0..n-1).
func (s *Server) Expand(dagID, runID, taskID string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.w.run(dagID, runID)
	if err != nil {
		return err
	}
	return s.w.expand(r, taskID, n, s.clk.Now().UTC())
}

// DeleteRun removes a run and its task instances, as `airflow db clean` or a DAG deletion does.
func (s *Server) DeleteRun(dagID, runID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.w.run(dagID, runID)
	if err != nil {
		return err
	}
	for _, t := range r.tis {
		delete(s.w.tiIdx, t.key)
		delete(s.w.history, t.key)
	}
	delete(s.w.runIdx, runKey{dagID, runID})
	s.w.runs = slices.DeleteFunc(s.w.runs, func(x *dagRun) bool { return x == r })
	return nil
}

// TaskRef names one task instance for scripting.
type TaskRef struct {
	s   *Server
	key tiKey
}

// TI names the (unmapped) task instance taskID of a run.
func (s *Server) TI(dagID, runID, taskID string) *TaskRef {
	return &TaskRef{s: s, key: tiKey{dagID, runID, taskID, -1}}
}

// MappedTI names the instance mapIndex of a mapped task.
func (s *Server) MappedTI(dagID, runID, taskID string, mapIndex int) *TaskRef {
	return &TaskRef{s: s, key: tiKey{dagID, runID, taskID, mapIndex}}
}

// Advance moves the instance through states, in order, all at the clock's current time: e.g.
// Advance(Scheduled, Queued, Running, UpForRetry). None clears it. Each step must be a transition
// Airflow makes; the first refused one stops with ErrTransition.
func (t *TaskRef) Advance(states ...string) error {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	ti, err := t.s.w.ti(t.key)
	if err != nil {
		return err
	}
	now := t.s.clk.Now().UTC()
	for _, st := range states {
		if err := t.s.w.move(ti, st, now); err != nil {
			return err
		}
	}
	return nil
}

// State returns the instance's state ("" for null) and try number as the API shows them.
func (t *TaskRef) State() (state string, try int, err error) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	ti, err := t.s.w.ti(t.key)
	if err != nil {
		return "", 0, err
	}
	return ti.state, ti.tryNumber, nil
}

// Truth returns every transition the server has exposed, in order.
func (s *Server) Truth() []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.estate != nil {
		s.estate.advance(s.clk.Now().UTC())
	}
	return append([]Transition(nil), s.w.truth...)
}

// Counts summarises the server's content.
type Counts struct {
	Runs, ActiveRuns, TaskInstances int
}

// Counts returns how many runs (active ones apart) and task instances the server holds.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.estate != nil {
		s.estate.advance(s.clk.Now().UTC())
	}
	var c Counts
	for _, r := range s.w.runs {
		c.Runs++
		c.TaskInstances += len(r.tis)
		if r.active() {
			c.ActiveRuns++
		}
	}
	return c
}

func (k tiKey) String() string {
	if k.mapIndex >= 0 {
		return fmt.Sprintf("%s/%s/%s[%d]", k.dag, k.run, k.task, k.mapIndex)
	}
	return fmt.Sprintf("%s/%s/%s", k.dag, k.run, k.task)
}
