package poll

import (
	"context"
	"time"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// Source is an orchestrator as the engine sees it. pkg/argo and pkg/airflow implement it.
type Source interface {
	// Name identifies the source's state (lease, cursor, index): for example "argo/prod".
	Name() string
	// List returns every run still active, with no time bound, plus every run that started or
	// changed within w. A run may be returned without its tasks (Loaded false): the engine calls
	// Load only for runs whose fingerprint changed.
	List(ctx context.Context, w Window) ([]*Snapshot, error)
	// Fetch returns runs by the Ref given in an earlier Snapshot. The engine uses it for runs that
	// were active at the last commit and are no longer in the active listing. A run that no longer
	// exists anywhere is left out of the result, without error.
	Fetch(ctx context.Context, refs []string) ([]*Snapshot, error)
	// Load fills s.Tasks (and sets s.Loaded) for a snapshot returned without them.
	Load(ctx context.Context, s *Snapshot) error
	// Status reads one of the source's own task or run states (an Argo phase, an Airflow state)
	// in FARM's common vocabulary. The engine needs it for the states it stored: whether an
	// attempt had ended, and the previous status of an event.
	Status(state string) event.Status
}

// Requeuer is implemented by sources whose task can enter the same state again within one
// attempt with only its queued time changed (an Airflow sensor in reschedule mode is queued again
// for every poke, keeping its try and start). The engine compares that time too, and names the
// event by it (diff.go, rule 2).
type Requeuer interface {
	// QueuedAt is the time e was last queued, nil when it has none.
	QueuedAt(e *event.TaskEvent) *time.Time
}

// Window is the time range a poll covers.
type Window struct {
	Since time.Time
	Until time.Time
	// Backfill is set for a window asked for by a person: sources include archived runs.
	Backfill bool
	// Known is the fingerprint index as the last commit left it (nil in a replay, which treats
	// every run as changed). A source may use it to leave unchanged runs' tasks on the server:
	// only the runs whose fingerprint differs will be loaded. A source that can tell a run did
	// not change since that commit without reading it (Airflow's change feed) may return it with
	// its indexed fingerprint and no more than its key and Ref. Read only.
	Known state.Index
	// Limit, when positive, is the most changed runs the poll will load: the first ones listed.
	// A source need not prepare the tasks of the changed runs it lists after them.
	Limit int
	// DryRun is set for a poll that will commit nothing: a source should not count on it having
	// happened (Airflow's hourly full listing, say).
	DryRun bool
}

// Snapshot is a run as the source shows it now.
type Snapshot struct {
	Run event.Run
	// Ref is what Fetch needs to find this run again (e.g. "namespace/name/uid").
	Ref string
	// Fingerprint changes whenever anything in the run changes (Argo resourceVersion, a hash of
	// Airflow task states and tries). Equal fingerprints mean nothing to diff.
	Fingerprint string
	// Active runs may still change; the engine follows them until they finish.
	Active bool
	// Tasks are the run's tasks in their current state. ID, PrevState and PrevStatus are filled
	// in by the engine.
	Tasks  []event.TaskEvent
	Loaded bool
}

// Key is the run's state key.
func (s *Snapshot) Key() string { return s.Run.Key() }
