package apm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// LedgerNamespace is the state.Ledger namespace of the entries this package records: one per
// message, named by the message's run executions, holding the ids of the spans sent for them.
const LedgerNamespace = "trace-sent"

// Config is the trace function's. pkg/config reads it from the variables named below, starting
// from DefaultConfig. The agent's address is DataDog's own setting (DD_TRACE_AGENT_URL,
// DD_AGENT_HOST, DD_TRACE_AGENT_PORT), read by the tracer itself.
type Config struct {
	// ServiceArgo and ServiceAirflow are the DataDog service of each source's spans
	// (FARM_TRACE_SERVICE_ARGO, FARM_TRACE_SERVICE_AIRFLOW).
	ServiceArgo, ServiceAirflow string
	// Version is the version tag of every span (unified service tagging, DD_VERSION); empty: none.
	Version string
	// MaxAge is how old a span's start may be and still be sent (FARM_TRACE_MAX_AGE; DataDog
	// takes 18 hours).
	MaxAge time.Duration
	// AgentTimeout bounds each HTTP request to the agent (FARM_AGENT_TIMEOUT).
	AgentTimeout time.Duration
	// AgentAddr, when set, is the host:port of the agent spans go to over HTTP, whatever
	// DataDog's own settings say: the local runner's receiver. Not read from the environment.
	AgentAddr string
}

// DefaultConfig is the configuration of the trace function when nothing is set.
func DefaultConfig() Config {
	return Config{ServiceArgo: "argo-workflows", ServiceAirflow: "airflow", MaxAge: 18 * time.Hour, AgentTimeout: 10 * time.Second}
}

// Validate reports every problem of c, each naming its setting.
func (c Config) Validate() error {
	var errs []error
	for _, s := range []struct{ name, source, svc string }{
		{"FARM_TRACE_SERVICE_ARGO", "Argo", c.ServiceArgo}, {"FARM_TRACE_SERVICE_AIRFLOW", "Airflow", c.ServiceAirflow},
	} {
		if s.svc == "" || len(s.svc) > maxName {
			errs = append(errs, fmt.Errorf("%s: the %s service name %q must have 1 to %d characters", s.name, s.source, s.svc, maxName))
		}
	}
	if c.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("FARM_TRACE_MAX_AGE: the maximum span age %s must be positive", c.MaxAge))
	}
	if c.AgentTimeout <= 0 {
		errs = append(errs, fmt.Errorf("FARM_AGENT_TIMEOUT must be positive, got %s", c.AgentTimeout))
	}
	return errors.Join(errs...)
}

// Deps are what a Tracer works with besides its configuration.
type Deps struct {
	// Ledger remembers the spans sent, so a redelivered message sends nothing new. Required.
	Ledger state.Ledger
	// Clock tells the time for MaxAge and ledger expiry (nil: the wall clock).
	Clock clock.Clock
	// Log receives a line per message and the tracer's own warnings (nil: slog.Default()).
	Log *slog.Logger
	// DeadLetter keeps the messages that can never be traced (nil: logged only).
	DeadLetter *deadletter.Keeper
}

// Tracer turns RunDeltas into spans at the agent. It is safe for concurrent use: deliveries that
// arrive while a tracer session runs are sent together by the next one (see group.go).
type Tracer struct {
	planner planner
	sender  sender
	ledger  state.Ledger
	groups  committer
	clock   clock.Clock
	log     *slog.Logger
	stats   counters
	// deadLetter keeps messages that can never be traced.
	deadLetter *deadletter.Keeper
}

// New validates cfg and the tracer's settings and returns a Tracer.
func New(cfg Config, deps Deps) (*Tracer, error) {
	err := cfg.Validate()
	if deps.Ledger == nil {
		err = errors.Join(err, errors.New("a ledger is required, to recognise redelivered messages"))
	}
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	e := processEnv()
	if err := e.checkEnabled(); err != nil {
		return nil, err
	}
	socket := e.agentSocket()
	if cfg.AgentAddr != "" {
		socket = ""
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.DeadLetter == nil {
		deps.DeadLetter = deadletter.New(nil, "trace", deps.Log)
	}
	return &Tracer{
		planner: planner{
			services: map[string]string{event.SourceArgo: cfg.ServiceArgo, event.SourceAirflow: cfg.ServiceAirflow},
			version:  cfg.Version,
			maxAge:   cfg.MaxAge,
			with128:  e.with128BitIDs(),
		},
		sender: sender{
			transport: agentTransport(socket),
			agentAddr: cfg.AgentAddr,
			timeout:   cfg.AgentTimeout,
			service:   e.tracerService(),
			logger:    tracerLog{deps.Log},
		},
		ledger:     deps.Ledger,
		clock:      deps.Clock,
		log:        deps.Log,
		deadLetter: deps.DeadLetter,
	}, nil
}

// Result says what became of one delta's spans.
type Result struct {
	Sent       int // accepted by the agent
	Duplicates int // sent before (ledger): not sent again
	TooOld     int // started more than MaxAge ago
	Future     int // start more than 2 hours ahead
	Untimed    int // finished, but without any time
	Open       int // events not finished yet: no span
}

// Trace sends the spans of d that were not sent before, as a message holding d alone would, and
// returns once the agent has accepted them, recording them in the ledger. An error wrapping
// ErrDelivery (or a ledger read error) is transient: deliver the message again.
func (t *Tracer) Trace(ctx context.Context, d *event.RunDelta) (Result, error) {
	return t.deliver(ctx, []*event.RunDelta{d})
}
