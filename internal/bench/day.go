package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
)

// DayOptions describe a simulated day of one source.
type DayOptions struct {
	Estate Estate // Interval is unused: the gaps below decide when polls run
	Day    time.Duration
	Seed   uint64
	// Gaps between polls are uniform in [MinGap, MaxGap]; LongGapRate of them are longer than
	// the overlap (Overlap + up to MaxGap more).
	MinGap, MaxGap time.Duration
	LongGapRate    float64
	CrashRate      float64 // share of commits that crash (after publishing)
	RaceRate       float64 // share of triggers that start two polls at once
	FaultRate      float64 // share of polls preceded by transient API faults
}

// DefaultDay is the day `farm fidelity` runs for kind.
func DefaultDay(kind string) DayOptions {
	e := Estate{Kind: kind, Runs: 40, Tasks: 20, Churn: 0.5, DAGs: 12, Seed: 7, Interval: time.Minute, Truth: true}
	return DayOptions{Estate: e, Day: 24 * time.Hour, Seed: 7, MinGap: 30 * time.Second, MaxGap: 5 * time.Minute,
		LongGapRate: 0.03, CrashRate: 0.05, RaceRate: 0.05, FaultRate: 0.08}
}

// DayStats count what happened to the polls.
type DayStats struct {
	Triggers, Polls, Races, Busy, Crashes, Faulted, FailedOnFaults, LongGaps int
	// SeenAt are the instants of the polls that listed and published (completed or crashed at
	// commit): only they could observe a state.
	SeenAt []time.Time
	// CommittedAt are the instants of the polls that also committed: only what they saw is in
	// the run states the next polls diff against.
	CommittedAt []time.Time
}

// errCrash is the injected failure of a commit: the process "died" after publishing.
var errCrash = errors.New("injected crash between publish and commit")

// crashingStore fails Commit at random, as a poll killed between publish and commit would, and
// then does not release the lease (a dead process releases nothing: the lease must expire).
type crashingStore struct {
	state.Store
	usage poll.UsageCounter
	mu    sync.Mutex
	rng   *rand.Rand
	rate  float64
	dead  map[string]bool // holders that crashed
	n     int
}

// Usage forwards the wrapped store's counts to the engine.
func (c *crashingStore) Usage() (reads, writes int64) { return c.usage.Usage() }

func (c *crashingStore) Commit(ctx context.Context, source, holder string, runs []*state.Run, cursor time.Time, index state.Index) error {
	c.mu.Lock()
	crash := c.rng.Float64() < c.rate
	if crash {
		c.dead[holder] = true
		c.n++
	}
	c.mu.Unlock()
	if crash {
		return errCrash
	}
	return c.Store.Commit(ctx, source, holder, runs, cursor, index)
}

func (c *crashingStore) Release(ctx context.Context, source, holder string) error {
	c.mu.Lock()
	dead := c.dead[holder]
	c.mu.Unlock()
	if dead {
		return nil
	}
	return c.Store.Release(ctx, source, holder)
}

// day is one source's simulated day in progress.
type day struct {
	opts   DayOptions
	sim    *Sim
	engine *poll.Engine
	bus    *Bus
	rng    *rand.Rand
	mu     sync.Mutex // guards stats and got: racing polls record at once
	stats  DayStats
	got    []*event.RunDelta
}

// RunDay runs FARM's poll for one source through a simulated day on the simulator's manual clock
// and compares what it published with the simulator's ground truth.
func RunDay(ctx context.Context, o DayOptions, log *slog.Logger) (*Fidelity, error) {
	o.Estate.Truth = true
	sim, err := NewSim(o.Estate)
	if err != nil {
		return nil, err
	}
	hs := httptest.NewServer(sim)
	defer hs.Close()
	defer sim.close()
	store, err := OpenStore(ctx, sim.Clock)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	usage, ok := store.Store.(poll.UsageCounter)
	if !ok {
		return nil, fmt.Errorf("store %T counts no operations", store.Store)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	cs := &crashingStore{Store: store.Store, usage: usage, rng: rand.New(rand.NewPCG(o.Seed, 0xc4a5)), rate: o.CrashRate, dead: map[string]bool{}}
	src, err := newSource(sourceOptions{kind: o.Estate.Kind, baseURL: hs.URL, instance: fmt.Sprintf("fidelity-%d", time.Now().UnixNano()),
		clock: sim.Clock, log: log, sleep: noSleep})
	if err != nil {
		return nil, err
	}
	bus, err := NewBus(ctx)
	if err != nil {
		return nil, err
	}
	defer bus.Close()
	engine, err := poll.New(engineConfig("fidelity"), poll.Deps{Source: src, Store: cs, Publisher: bus.Publisher, Clock: sim.Clock, Log: log})
	if err != nil {
		return nil, err
	}
	d := &day{opts: o, sim: sim, bus: bus, rng: rng, engine: engine}
	end := sim.Clock.Now().Add(o.Day)
	for sim.Clock.Now().Before(end) {
		sim.Clock.Advance(d.gap())
		if err := d.trigger(ctx); err != nil {
			return nil, err
		}
	}
	// One last poll once the leases of crashed polls have expired, with no fault, so that what the
	// day exposed until its last trigger has had its chance.
	cs.mu.Lock()
	cs.rate = 0
	cs.mu.Unlock()
	sim.Clock.Advance(Overlap + 10*time.Minute)
	if err := d.pollOnce(ctx); err != nil {
		return nil, fmt.Errorf("final poll: %w", err)
	}
	d.stats.Crashes = cs.n
	f := compare(d.sim, d.got, d.stats)
	f.Day = o.Day
	return f, nil
}

func (d *day) gap() time.Duration {
	o := d.opts
	if d.rng.Float64() < o.LongGapRate {
		d.stats.LongGaps++
		return Overlap + time.Duration(d.rng.Int64N(int64(o.MaxGap)))
	}
	return o.MinGap + time.Duration(d.rng.Int64N(int64(o.MaxGap-o.MinGap)+1))
}

// trigger starts one poll, or two racing ones, after maybe injecting API faults.
func (d *day) trigger(ctx context.Context) error {
	d.stats.Triggers++
	if d.rng.Float64() < d.opts.FaultRate {
		d.stats.Faulted++
		d.sim.injectFault(d.rng)
	}
	defer d.sim.clearFaults()
	if d.rng.Float64() >= d.opts.RaceRate {
		return d.pollOnce(ctx)
	}
	d.stats.Races++
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = d.pollOnce(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pollOnce runs a poll and keeps what it published. Expected failures (busy lease, injected crash,
// API faults beyond the retries) are counted, not returned.
func (d *day) pollOnce(ctx context.Context) error {
	at := d.sim.Clock.Now()
	_, err := d.engine.Poll(ctx, poll.Request{})
	ds, derr := d.bus.Drain()
	if derr != nil {
		return derr
	}
	d.record(at, ds, err)
	switch {
	case err == nil, errors.Is(err, errCrash), errors.Is(err, poll.ErrBusy):
		return nil
	case ctx.Err() != nil:
		return err
	}
	d.countFailure()
	return nil
}

func (d *day) record(at time.Time, ds []Delivery, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range ds {
		d.got = append(d.got, x.Delta)
	}
	switch {
	case errors.Is(err, poll.ErrBusy):
		d.stats.Busy++
	case err == nil || errors.Is(err, errCrash):
		d.stats.Polls++
		d.stats.SeenAt = append(d.stats.SeenAt, at)
		if err == nil {
			d.stats.CommittedAt = append(d.stats.CommittedAt, at)
		}
	}
}

func (d *day) countFailure() {
	d.mu.Lock()
	d.stats.FailedOnFaults++
	d.mu.Unlock()
}

// injectFault queues 1 to 5 transient failures (the client retries 3 times): some polls recover,
// some fail and leave the work to the next one.
func (s *Sim) injectFault(rng *rand.Rand) {
	n := 1 + rng.IntN(5)
	if s.Argo != nil {
		kinds := []argosim.FaultKind{argosim.FaultInternal, argosim.FaultUnavailable, argosim.FaultRateLimited, argosim.FaultMalformed}
		eps := []argosim.Endpoint{argosim.EndpointAny, argosim.EndpointList, argosim.EndpointGet}
		s.Argo.InjectFault(argosim.Fault{Kind: kinds[rng.IntN(len(kinds))], Endpoint: eps[rng.IntN(len(eps))], Count: n, RetryAfter: time.Second})
		return
	}
	codes := []int{500, 502, 503, 429}
	s.Airflow.InjectFault(airflowsim.Fault{Status: codes[rng.IntN(len(codes))], RetryAfter: "1", Times: n})
}

func (s *Sim) clearFaults() {
	if s.Argo != nil {
		s.Argo.ClearFaults()
		return
	}
	s.Airflow.ClearFaults()
}

// close releases requests held by a hanging fault.
func (s *Sim) close() {
	if s.Argo != nil {
		s.Argo.Close()
	}
}
