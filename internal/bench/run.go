// Package bench measures FARM's poll against simulated estates (cost per poll, against the floor
// of only downloading and decoding the same API pages) and checks what FARM publishes against the
// simulators' ground truth over a simulated day (fidelity). cmd/farm's bench and fidelity
// commands print what it returns.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
)

// Config is one benchmark configuration.
type Config struct {
	Name   string
	Estate Estate
	Polls  int    // measured polls, after a cold poll and one warm-up poll
	SimURL string // base URL of a Sim serving Estate (in this process or another)
	// CompareFull also polls the estate, at the same instants, with a second engine that lists
	// in full (FARM_ARGO_LISTING=full, no node budget: the listing of earlier versions).
	CompareFull bool
}

// PollFigures are one measured poll and its floors.
type PollFigures struct {
	Poll        Usage
	Result      poll.Result
	Floor       Usage // today's floor: the full listing downloaded and decoded
	FloorCalls  int64
	FloorBytes  int64
	FloorLoaded int // runs the floor decoded the nodes of (fingerprint changed)
	// Physical is the physical floor (Argo): a slim row per run, and the changed runs in full.
	Physical       Usage
	PhysicalCalls  int64
	PhysicalBytes  int64
	PhysicalLoaded int64 // bytes of the changed runs' own GETs
	// Full is the same poll by the engine that lists in full (CompareFull).
	Full       Usage
	FullResult poll.Result
}

// Report is one configuration's figures.
type Report struct {
	Config Config
	Store  string // state store kind
	Sim    Info   // the simulator after the warm-up
	Cold   poll.Result
	// ColdUsage is what the cold poll cost (every run new).
	ColdUsage Usage
	// Baseline are the polls after a cold poll that deferred runs, until none is left.
	Baseline []PollFigures
	Polls    []PollFigures
	// Sample is what the measured polls published (up to SampleCap), for EncodeThroughput.
	Sample []Delivery
}

// SampleCap bounds the deliveries a Report keeps.
const SampleCap = 5000

// Run measures cfg's polls with the state store of OpenStore (whose operation counts the engine
// reports) and the in-process Pub/Sub. Peak RSS is the process's: keep the simulator in another
// process.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Report, error) {
	if err := cfg.Estate.validate(); err != nil {
		return nil, err
	}
	if cfg.Polls < 1 {
		return nil, fmt.Errorf("polls must be at least 1, got %d", cfg.Polls)
	}
	remote := Remote{URL: cfg.SimURL}
	info, err := remote.Info(ctx)
	if err != nil {
		return nil, err
	}
	clk := clock.NewManual(info.Now)
	store, err := OpenStore(ctx, clk)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	bus, err := NewBus(ctx)
	if err != nil {
		return nil, err
	}
	defer bus.Close()
	// A fresh instance name per configuration: runs share one store without sharing state.
	instance := fmt.Sprintf("%s-%d", cfg.Name, time.Now().UnixNano())
	so := sourceOptions{kind: cfg.Estate.Kind, baseURL: cfg.SimURL, instance: instance, clock: clk, log: log}
	src, err := newSource(so)
	if err != nil {
		return nil, err
	}
	fo := so
	fo.instance += "-floor"
	fo.listing, fo.fullBudget = argo.ListingFull, unlimited
	floorSrc, err := newSource(fo)
	if err != nil {
		return nil, err
	}
	// store.Store, not store: the engine counts operations through the concrete store's Usage.
	// The deployed bound on the runs a poll handles: a large cold poll spreads over several polls.
	engine, err := poll.New(engineConfig("bench"), poll.Deps{Source: src, Store: store.Store, Publisher: bus.Publisher, Clock: clk, Log: log})
	if err != nil {
		return nil, err
	}
	m := &meter{remote: remote, clk: clk, engine: engine, src: src, bus: bus,
		floor: &floor{src: floorSrc}, interval: cfg.Estate.Interval}
	if cfg.isArgo() {
		po := so
		po.instance += "-physical"
		po.listing = argo.ListingChanged
		if m.physical.src, err = newSource(po); err != nil {
			return nil, err
		}
	}
	if cfg.CompareFull && cfg.isArgo() {
		oo := so
		oo.instance += "-full"
		oo.listing, oo.fullBudget = argo.ListingFull, unlimited
		oldSrc, err := newSource(oo)
		if err != nil {
			return nil, err
		}
		if m.full, err = poll.New(engineConfig("bench"), poll.Deps{Source: oldSrc, Store: store.Store, Publisher: bus.Publisher, Clock: clk, Log: log}); err != nil {
			return nil, err
		}
	}
	rep := &Report{Config: cfg, Store: store.Kind}
	// The estate has been running for a while when FARM starts: otherwise every poll whose window
	// reaches back to the estate's creation would see every run as changed.
	if _, err := remote.Advance(ctx, Overlap); err != nil {
		return nil, err
	}
	clk.Advance(Overlap)
	// The cold poll reads every run; the next ones still see the estate's creation in their
	// overlap, so the steady state starts once the overlap has passed it.
	cold, err := m.poll(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("cold poll: %w", err)
	}
	rep.Cold, rep.ColdUsage = cold.Result, cold.Poll
	// A cold poll that left runs for later is followed by the polls that catch up (its baseline).
	for deferred := cold.Result.RunsDeferred; deferred > 0; {
		if len(rep.Baseline) >= maxBaselinePolls {
			return nil, fmt.Errorf("still %d runs deferred after %d polls", deferred, len(rep.Baseline)+1)
		}
		b, err := m.poll(ctx, false)
		if err != nil {
			return nil, fmt.Errorf("baseline poll %d: %w", len(rep.Baseline)+2, err)
		}
		rep.Baseline = append(rep.Baseline, b)
		deferred = b.Result.RunsDeferred
	}
	for i := range warmUpPolls {
		if _, err := m.poll(ctx, true); err != nil {
			return nil, fmt.Errorf("warm-up poll %d: %w", i+1, err)
		}
	}
	for i := range cfg.Polls {
		f, err := m.poll(ctx, true)
		if err != nil {
			return nil, fmt.Errorf("poll %d: %w", i+1, err)
		}
		rep.Polls = append(rep.Polls, f)
		rep.Sample = append(rep.Sample, m.last[:min(len(m.last), SampleCap-len(rep.Sample))]...)
	}
	rep.Sim, err = remote.Info(ctx)
	return rep, err
}

// Overlap is how far before its cursor each poll looks again: FARM_POLL_OVERLAP's default.
const Overlap = 5 * time.Minute

// maxBaselinePolls bounds the polls a cold poll's deferred runs may take to catch up.
const maxBaselinePolls = 50

// warmUpPolls follow the cold poll (itself an Overlap after the estate's creation): the first one's
// window still reaches back to the creation (windows are inclusive), the second one's no more.
const warmUpPolls = 2

// meter runs one poll after moving the simulator's clock and the engine's, then its floor.
type meter struct {
	remote   Remote
	clk      *clock.Manual
	engine   *poll.Engine
	src      source
	bus      *Bus
	floor    *floor
	physical floor        // Argo: the physical floor
	full     *poll.Engine // CompareFull: the engine that lists in full
	interval time.Duration
	polled   bool
	last     []Delivery // what the last poll published
}

// poll measures one poll and, with floors, its floors at the same instant (the cold poll and its
// baseline report none: the floors there would read every run in full).
func (m *meter) poll(ctx context.Context, floors bool) (PollFigures, error) {
	var f PollFigures
	if m.polled {
		if _, err := m.remote.Advance(ctx, m.interval); err != nil {
			return f, err
		}
		m.clk.Advance(m.interval)
	}
	m.polled = true
	if err := ResetPeakRSS(); err != nil {
		return f, err
	}
	var res *poll.Result
	var err error
	// The cold poll and its baseline keep no sample: thousands of messages, held and decoded in
	// the measured process, would count in their peak as if the poll held them.
	keep := 0
	if floors {
		keep = SampleCap
	}
	m.last = nil
	m.last, err = m.bus.During(keep, func() error {
		var perr error
		f.Poll, perr = Measure(func() error {
			res, err = m.engine.Poll(ctx, poll.Request{})
			return err
		})
		return perr
	})
	if err != nil {
		return f, err
	}
	f.Result = *res
	if m.full != nil {
		if err := ResetPeakRSS(); err != nil {
			return f, err
		}
		var fres *poll.Result
		_, err = m.bus.During(0, func() error {
			var perr error
			f.Full, perr = Measure(func() error {
				fres, err = m.full.Poll(ctx, poll.Request{})
				return err
			})
			return perr
		})
		if err != nil {
			return f, fmt.Errorf("full-listing poll: %w", err)
		}
		f.FullResult = *fres
	}
	if !floors {
		return f, nil
	}
	if err := ResetPeakRSS(); err != nil {
		return f, err
	}
	// Same clock instant, so the simulator serves the same pages.
	calls0, bytes0 := m.floor.src.APIStats()
	w := poll.Window{Since: res.WindowSince, Until: res.WindowUntil}
	f.Floor, err = Measure(func() error {
		f.FloorLoaded, err = m.floor.run(ctx, w)
		return err
	})
	calls1, bytes1 := m.floor.src.APIStats()
	f.FloorCalls, f.FloorBytes = calls1-calls0, bytes1-bytes0
	if err != nil || m.physical.src == nil {
		return f, err
	}
	if err := ResetPeakRSS(); err != nil {
		return f, err
	}
	calls0, bytes0 = m.physical.src.APIStats()
	f.Physical, err = Measure(func() error {
		_, err = m.physical.run(ctx, w)
		return err
	})
	calls1, bytes1 = m.physical.src.APIStats()
	f.PhysicalCalls, f.PhysicalBytes, f.PhysicalLoaded = calls1-calls0, bytes1-bytes0, m.physical.loadBytes
	return f, err
}

// floor does only what no poll can avoid: list requests, decoded by the same source code, plus
// decoding the nodes of the runs whose fingerprint changed (a poll cannot know what changed inside
// them without it). No store, no diff, no publish. Today's floor lists every row with its nodes
// (the full listing); the physical floor (slim) lists a slim row per run and GETs the changed
// runs: what any poller of the Argo Server must transfer.
type floor struct {
	src       source
	fps       map[string]string
	loadBytes int64 // slim: bytes of the last run's GETs
}

func (f *floor) run(ctx context.Context, w poll.Window) (int, error) {
	if f.fps != nil {
		// Both floors know what changed, as the poll does: the full listing keeps (and gzips)
		// the nodes of changed rows only.
		w.Known = make(state.Index, len(f.fps))
		for k, fp := range f.fps {
			w.Known[k] = state.IndexEntry{Fingerprint: fp}
		}
	}
	snaps, err := f.src.List(ctx, w)
	if err != nil {
		return 0, fmt.Errorf("floor list: %w", err)
	}
	if f.fps == nil {
		// The first run only learns the fingerprints (it is not reported): loading every run
		// would cost a cold poll's reads for nothing.
		f.fps = make(map[string]string, len(snaps))
		for _, s := range snaps {
			f.fps[s.Key()] = s.Fingerprint
		}
		return 0, nil
	}
	w.Known = nil
	_, b0 := f.src.APIStats()
	defer func() { _, b1 := f.src.APIStats(); f.loadBytes = b1 - b0 }()
	next := make(map[string]string, len(snaps))
	loaded := 0
	for _, s := range snaps {
		next[s.Key()] = s.Fingerprint
		if s.Loaded || f.fps[s.Key()] == s.Fingerprint {
			continue
		}
		if err := f.src.Load(ctx, s); err != nil {
			return loaded, fmt.Errorf("floor load %s: %w", s.Ref, err)
		}
		loaded++
	}
	f.fps = next
	return loaded, nil
}

// isArgo reports whether the configuration polls Argo.
func (c Config) isArgo() bool { return c.Estate.Kind == event.SourceArgo }
