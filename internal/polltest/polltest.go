// Package polltest is the harness of the poll engine's scenario tests: a manual clock, the
// in-process Pub/Sub server with FARM's real publisher, and helpers to read back exactly what was
// published.
package polltest

import (
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/publish"
	"github.com/farmobs/farm/pkg/state"
)

const (
	// Project and Topic of the in-process Pub/Sub.
	Project = "farm-test"
	Topic   = "farm-run-deltas"
)

// Harness wires an engine to a real publisher on the in-process Pub/Sub server.
type Harness struct {
	T         testing.TB
	Clock     *clock.Manual
	Store     state.Store
	Server    *pstest.Server
	Publisher *publish.Publisher
	// OrderingShards is the Options.Batch.Shards of the engines under test (0: the default).
	OrderingShards int
	seen           int // messages already returned by Published
}

// New starts the in-process Pub/Sub server with the topic and a publisher, closed at the end of
// the test. The clock starts at start.
func New(t testing.TB, store state.Store, start time.Time) *Harness {
	t.Helper()
	srv, conn := testenv.PubSub(t, Project, Topic)
	pub := publish.New(Project, Topic, option.WithGRPCConn(conn))
	t.Cleanup(func() { _ = pub.Close() })
	return &Harness{T: t, Clock: clock.NewManual(start), Store: store, Server: srv, Publisher: pub}
}

// Engine returns an engine for src on the harness's store, publisher and clock, configured by
// cfg with its zero settings taken from poll.DefaultConfig (Config).
func (h *Harness) Engine(src poll.Source, cfg poll.Config) *poll.Engine {
	h.T.Helper()
	e, err := poll.New(Config(cfg), poll.Deps{Source: src, Store: h.Store, Publisher: h.Publisher, Clock: h.Clock})
	if err != nil {
		h.T.Fatal(err)
	}
	return e
}

// Config is cfg with its zero settings taken from poll.DefaultConfig, so that a test names only
// what it is about.
func Config(cfg poll.Config) poll.Config {
	d := poll.DefaultConfig()
	pick := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	pick(&cfg.Overlap, d.Overlap)
	pick(&cfg.InitialLookback, d.InitialLookback)
	pick(&cfg.LeaseTTL, d.LeaseTTL)
	pick(&cfg.RunRetention, d.RunRetention)
	pick(&cfg.MaxBackfillWindow, d.MaxBackfillWindow)
	for _, n := range []struct {
		v   *int
		def int
	}{{&cfg.MaxEventsPerMessage, d.MaxEventsPerMessage}, {&cfg.LoadParallelism, d.LoadParallelism}, {&cfg.DiffBatch, d.DiffBatch},
		{&cfg.Batch.MaxDeltas, d.Batch.MaxDeltas}, {&cfg.Batch.MaxBytes, d.Batch.MaxBytes}, {&cfg.Batch.Shards, d.Batch.Shards}} {
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	return cfg
}

// Published returns the deltas published since the previous call, decoded and checked, in
// publication order. Every message must be a batch whose ordering key is the one event.OrderingKey
// gives each of its runs (so a run never changes key, and its deltas stay in publish order) and
// whose attributes describe it.
func (h *Harness) Published() []*event.RunDelta {
	h.T.Helper()
	msgs := h.Server.Messages() // in publication order
	var out []*event.RunDelta
	for _, m := range msgs[h.seen:] {
		ds, err := event.DecodeDeltas(m.Data)
		if err != nil {
			h.T.Fatalf("published message %s is not a valid RunDelta batch: %v", m.ID, err)
		}
		if len(ds) == 0 {
			h.T.Errorf("message %s carries no delta", m.ID)
		}
		ids := make([]string, len(ds))
		for i := range ds {
			d := &ds[i]
			ids[i] = d.ID
			if key := event.OrderingKey(d.Run, h.Shards()); m.OrderingKey != key {
				h.T.Errorf("message %s has ordering key %q, want %q for its run %s", m.ID, m.OrderingKey, key, d.Run.Key())
			}
			if m.Attributes[event.AttrSource] != d.Run.Source || m.Attributes[event.AttrInstance] != d.Run.Instance {
				h.T.Errorf("message %s attributes %v do not match its delta of run %s", m.ID, m.Attributes, d.Run.Key())
			}
			out = append(out, d)
		}
		if m.Attributes[event.AttrBatchID] != event.BatchID(ids) || m.Attributes[event.AttrDeltas] != strconv.Itoa(len(ds)) {
			h.T.Errorf("message %s attributes %v do not match its %d deltas", m.ID, m.Attributes, len(ds))
		}
	}
	h.seen = len(msgs)
	return out
}

// Shards is the ordering keys' shards of the engines the harness checks: Options.Batch.Shards
// when set on the harness, else the engine's default.
func (h *Harness) Shards() int {
	if h.OrderingShards > 0 {
		return h.OrderingShards
	}
	return event.DefaultBatchLimits.Shards
}

// Events flattens deltas into their events, each prefixed by nothing but itself.
func Events(deltas []*event.RunDelta) []event.TaskEvent {
	var out []event.TaskEvent
	for _, d := range deltas {
		out = append(out, d.Events...)
	}
	return out
}

// Transition is a compact, comparable view of an event for assertions.
type Transition struct {
	Run, Node string
	Attempt   int
	From, To  string
	Start     string // RFC 3339 or ""
	End       string
}

// Transitions returns the events of deltas as Transitions, in publication order.
func Transitions(deltas []*event.RunDelta) []Transition {
	var out []Transition
	for _, d := range deltas {
		for _, e := range d.Events {
			out = append(out, Transition{
				Run: d.Run.Name, Node: e.NodeID, Attempt: e.Attempt, From: e.PrevState, To: e.State,
				Start: stamp(e.StartedAt), End: stamp(e.FinishedAt),
			})
		}
	}
	return out
}

func stamp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
