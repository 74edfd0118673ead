package apm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// LedgerNamespace is the state.Ledger namespace of the entries this package records: one per
// message, named by the message's run executions, holding the ids of the spans sent for them.
const LedgerNamespace = "trace-sent"

// Options configure a Tracer.
type Options struct {
	// ServiceArgo and ServiceAirflow are the DataDog service of each source's spans.
	ServiceArgo, ServiceAirflow string
	// Version is the version tag of every span (unified service tagging); empty: none.
	Version string
	// MaxAge is how old a span's start may be and still be sent (DataDog takes 18 hours).
	MaxAge time.Duration
	// Ledger remembers the spans sent, so a redelivered message sends nothing new. Required.
	Ledger state.Ledger
	// Clock tells the time for MaxAge and ledger expiry (default: the wall clock).
	Clock clock.Clock
	// Log receives a line per message and the tracer's own warnings (default: slog.Default()).
	Log *slog.Logger
	// AgentTimeout bounds each HTTP request to the agent (default 10s, the tracer's).
	AgentTimeout time.Duration
	// DeadLetter keeps the messages that can never be traced (default: logged only).
	DeadLetter *deadletter.Keeper
}

// OptionsFrom returns the options config sets; the caller adds the Ledger (and a Clock, a Log).
func OptionsFrom(c config.Trace) Options {
	return Options{ServiceArgo: c.ServiceArgo, ServiceAirflow: c.ServiceAirflow, Version: c.Version, MaxAge: c.MaxAge, AgentTimeout: c.AgentTimeout}
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

// New validates o and the tracer's settings and returns a Tracer.
func New(o Options) (*Tracer, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	e := processEnv()
	if err := e.checkEnabled(); err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.AgentTimeout <= 0 {
		o.AgentTimeout = 10 * time.Second
	}
	if o.DeadLetter == nil {
		o.DeadLetter = deadletter.New(nil, "trace", o.Log)
	}
	return &Tracer{
		planner: planner{
			services: map[string]string{event.SourceArgo: o.ServiceArgo, event.SourceAirflow: o.ServiceAirflow},
			version:  o.Version,
			maxAge:   o.MaxAge,
			with128:  e.with128BitIDs(),
		},
		sender: sender{
			transport: agentTransport(e.agentSocket()),
			timeout:   o.AgentTimeout,
			service:   e.tracerService(),
			logger:    tracerLog{o.Log},
		},
		ledger:     o.Ledger,
		clock:      o.Clock,
		log:        o.Log,
		deadLetter: o.DeadLetter,
	}, nil
}

func (o Options) validate() error {
	var errs []error
	for name, svc := range map[string]string{"Argo": o.ServiceArgo, "Airflow": o.ServiceAirflow} {
		if svc == "" || len(svc) > maxName {
			errs = append(errs, fmt.Errorf("the %s service name %q must have 1 to %d characters", name, svc, maxName))
		}
	}
	if o.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("the maximum span age %s must be positive", o.MaxAge))
	}
	if o.Ledger == nil {
		errs = append(errs, errors.New("a ledger is required, to recognise redelivered messages"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	return nil
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
