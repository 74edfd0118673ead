package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
)

// Epoch is where every simulated clock starts, so that a simulator in another process and the
// poll measuring it agree on time without talking about it.
var Epoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// Estate describes a simulated estate.
type Estate struct {
	Kind  string  // event.SourceArgo or event.SourceAirflow
	Runs  int     // active runs
	Tasks int     // tasks per run
	Churn float64 // share of runs changing per Interval
	DAGs  int     // Airflow only
	// InitialRounds is how far the Argo estate's runs have already got (0: argosim's default,
	// about half their nodes shown); 45 with 100 tasks shows about 50 nodes per run.
	InitialRounds int
	Seed          uint64
	// Interval is the simulated time between two polls.
	Interval time.Duration
	// Truth keeps the simulators' ground truth (it costs memory; benchmarks leave it off).
	Truth bool
	// SensorStart is how the simulated Airflow dates a rescheduled sensor's try (default: start
	// overwritten per poke, as Airflow 2.0 to 3.2 do).
	SensorStart airflowsim.SensorStart
	// AirflowAPI is the API the simulated Airflow speaks: v2 (Airflow 3, the default) or v1
	// (Airflow 2.10).
	AirflowAPI string
}

func (e Estate) validate() error {
	switch {
	case e.Kind != event.SourceArgo && e.Kind != event.SourceAirflow:
		return fmt.Errorf("estate kind %q: want %s or %s", e.Kind, event.SourceArgo, event.SourceAirflow)
	case e.Runs <= 0 || e.Tasks <= 0:
		return fmt.Errorf("estate needs runs > 0 and tasks > 0, got %d and %d", e.Runs, e.Tasks)
	case e.Churn <= 0 || e.Churn > 1:
		return fmt.Errorf("churn %v: want a share in (0, 1]", e.Churn)
	case e.Interval < time.Second:
		return fmt.Errorf("interval %v: want at least 1s", e.Interval)
	case e.Kind == event.SourceAirflow && e.DAGs <= 0:
		return fmt.Errorf("an Airflow estate needs dags > 0")
	}
	return nil
}

// Sim is a simulated orchestrator on a manual clock, with a control endpoint to move the clock:
// POST /_farm/advance?by=DURATION. A benchmark talks to it over HTTP only, so it can run in a
// separate process and leave the poll's memory figures alone.
type Sim struct {
	Clock   *clock.Manual
	Argo    *argosim.Server
	Airflow *airflowsim.Server
	estate  *argosim.Estate
	api     http.Handler
}

// NewSim builds the estate (this takes a while for large ones: every run is generated).
func NewSim(e Estate) (*Sim, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	s := &Sim{Clock: clock.NewManual(Epoch)}
	if e.Kind == event.SourceArgo {
		s.Argo = argosim.NewServer(s.Clock, argosim.Options{Seed: e.Seed, NoTruth: !e.Truth})
		cfg := argosim.DefaultEstate()
		cfg.Seed, cfg.ActiveRuns, cfg.TasksPerRun = e.Seed, e.Runs, e.Tasks
		cfg.Tick, cfg.ChangeShare = e.Interval, e.Churn
		cfg.CompressedShare = 0.05 // large workflows arrive as compressedNodes
		if e.InitialRounds > 0 {
			cfg.InitialRounds = e.InitialRounds
		}
		est, err := argosim.NewEstate(s.Argo, cfg)
		if err != nil {
			return nil, fmt.Errorf("argo estate: %w", err)
		}
		s.estate, s.api = est, s.Argo
		return s, nil
	}
	api := e.AirflowAPI
	if api == "" {
		api = "v2"
	}
	srv, err := airflowsim.New(airflowsim.Options{API: api, Clock: s.Clock, SensorStart: e.SensorStart})
	if err != nil {
		return nil, fmt.Errorf("airflow simulator: %w", err)
	}
	// A run changes once per StepEvery on average: Interval/Churn makes Churn of them change per poll.
	step := time.Duration(float64(e.Interval) / e.Churn)
	const mapped = 3
	// The runs start one after the other over about one run's life (its steps: the run's start and
	// end, a rescheduled sensor's six, about three per task and per mapped instance), so the polls
	// find them lived-in, at every stage, as the Argo estate's: tasks finish in the measured polls.
	// Started all at once, they would all be in their first steps for hours of simulated time.
	life := time.Duration(2+6+3*(e.Tasks+mapped)) * step
	spec := airflowsim.EstateSpec{DAGs: e.DAGs, ActiveRuns: e.Runs, TasksPerRun: e.Tasks, MappedWidth: mapped,
		StepEvery: step, Backdate: life, Seed: e.Seed}
	if _, err := srv.StartEstate(spec); err != nil {
		return nil, fmt.Errorf("airflow estate: %w", err)
	}
	s.Airflow, s.api = srv, srv
	return s, nil
}

// Info is what the control endpoint reports.
type Info struct {
	Now         time.Time `json:"now"`
	ActiveRuns  int       `json:"active_runs"`
	ActiveNodes int       `json:"active_nodes"`
}

func (s *Sim) info() Info {
	in := Info{Now: s.Clock.Now()}
	switch {
	case s.estate != nil:
		s.estate.Sync()
		in.ActiveRuns, in.ActiveNodes = s.estate.Active(), s.estate.ActiveNodes()
	case s.Airflow != nil:
		s.Airflow.Sync()
		c := s.Airflow.Counts()
		in.ActiveRuns, in.ActiveNodes = c.ActiveRuns, c.TaskInstances
	}
	return in
}

const controlPath = "/_farm/"

// ServeHTTP answers the orchestrator's API, and the control endpoints under /_farm/.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case controlPath + "advance":
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil || d < 0 {
			http.Error(w, "by must be a non-negative duration, e.g. 60s", http.StatusBadRequest)
			return
		}
		s.Clock.Advance(d)
		fallthrough
	case controlPath + "info":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.info())
	default:
		s.api.ServeHTTP(w, r)
	}
}

// Remote controls a Sim over HTTP, in this process or another.
type Remote struct {
	URL    string // base URL of the Sim
	Client *http.Client
}

// Advance moves the simulator's clock by d and returns its state after catching up.
func (r Remote) Advance(ctx context.Context, d time.Duration) (Info, error) {
	return r.call(ctx, http.MethodPost, "advance?by="+d.String())
}

// Info returns the simulator's state.
func (r Remote) Info(ctx context.Context) (Info, error) {
	return r.call(ctx, http.MethodGet, "info")
}

func (r Remote) call(ctx context.Context, method, path string) (Info, error) {
	var in Info
	req, err := http.NewRequestWithContext(ctx, method, r.URL+controlPath+path, nil)
	if err != nil {
		return in, err
	}
	hc := r.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return in, fmt.Errorf("simulator control %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return in, fmt.Errorf("simulator control %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		return in, fmt.Errorf("simulator control %s: %w", path, err)
	}
	return in, nil
}
