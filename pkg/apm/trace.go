package apm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// LedgerNamespace is the state.Ledger namespace of the span keys this package records.
const LedgerNamespace = "trace-spans"

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

// Tracer turns RunDeltas into spans at the agent. It is safe for concurrent use: calls share the
// process's one tracer one at a time.
type Tracer struct {
	planner planner
	sender  sender
	ledger  state.Ledger
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

// Trace sends the spans of d that were not sent before and returns once the agent has accepted
// them, recording them in the ledger. An error wrapping ErrDelivery (or a ledger read error) is
// transient: deliver the message again.
func (t *Tracer) Trace(ctx context.Context, d *event.RunDelta) (res Result, err error) {
	defer func() { t.stats.add(res) }()
	now := t.clock.Now()
	spans, sk := t.planner.plan(d, now)
	res = Result{TooOld: sk.tooOld, Future: sk.future, Untimed: sk.untimed, Open: sk.open}
	fresh, err := t.unsent(ctx, spans)
	if err != nil {
		return res, err
	}
	res.Duplicates = len(spans) - len(fresh)
	// Each session is recorded once accepted, so a failure later in a large delta does not make
	// the redelivery send the earlier sessions again.
	for batch := range slices.Chunk(fresh, sessionSpans) {
		if err = t.sender.session(ctx, batch); err != nil {
			return res, err
		}
		res.Sent += len(batch)
		t.record(ctx, d, batch, now)
	}
	return res, nil
}

// unsent returns the spans the ledger has not seen.
func (t *Tracer) unsent(ctx context.Context, spans []span) ([]span, error) {
	if len(spans) == 0 {
		return nil, nil
	}
	seen, err := t.ledger.Seen(ctx, LedgerNamespace, ledgerKeys(spans))
	if err != nil {
		return nil, fmt.Errorf("trace: read the ledger of sent spans: %w", err)
	}
	var fresh []span
	for _, s := range spans {
		if !seen[ledgerKey(s.trace, s.id)] {
			fresh = append(fresh, s)
		}
	}
	return fresh, nil
}

// record notes spans the agent accepted. A failure is logged, not returned: the spans are
// delivered, and a redelivery would only duplicate them.
func (t *Tracer) record(ctx context.Context, d *event.RunDelta, spans []span, now time.Time) {
	// A span is never sent once its start is MaxAge old, so its record is useless after that.
	if err := t.ledger.Record(ctx, LedgerNamespace, ledgerKeys(spans), now.Add(t.planner.maxAge)); err != nil {
		t.stats.ledgerErrors.Add(1)
		t.log.ErrorContext(ctx, "spans were delivered but could not be recorded: a redelivery of this message would send them again",
			"run", d.Run.Key(), "delta_id", d.ID, "spans", len(spans), "error", err)
	}
}

func ledgerKeys(spans []span) []string {
	keys := make([]string, len(spans))
	for i, s := range spans {
		keys[i] = ledgerKey(s.trace, s.id)
	}
	return keys
}
