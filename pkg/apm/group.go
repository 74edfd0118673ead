package apm

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state"
)

// A delivery is one message's spans, waiting for a group to send them. Deliveries that arrive
// while a group is being sent form the next group: whatever is in flight, no waiting window. A
// group reads the ledger entries of its messages in one call, sends its spans in one tracer
// session (more when they exceed sessionSpans), records the entries in one call, and then answers
// each delivery with its own outcome: a session that fails fails the deliveries whose spans it
// held, and only them.
type delivery struct {
	key   string // the message's ledger entry: see entryKey
	spans []span
	res   Result
	err   error
	done  chan struct{} // closed once res and err are final
}

// committer queues deliveries for the next group; one goroutine sends groups while any wait.
type committer struct {
	mu      sync.Mutex
	queue   []*delivery
	sending bool
}

// deliver traces the deltas of one message and returns once the agent accepted their spans (or
// did not).
func (t *Tracer) deliver(ctx context.Context, ds []*event.RunDelta) (Result, error) {
	now := t.clock.Now()
	dl := &delivery{done: make(chan struct{})}
	traces := make([]traceID, 0, len(ds))
	for _, d := range ds {
		spans, sk := t.planner.plan(d, now)
		dl.spans = append(dl.spans, spans...)
		dl.res.TooOld += sk.tooOld
		dl.res.Future += sk.future
		dl.res.Untimed += sk.untimed
		dl.res.Open += sk.open
		traces = append(traces, traceIDOf(d, t.planner.with128))
	}
	planned := dl.res
	if len(dl.spans) == 0 {
		t.stats.add(planned)
		return planned, nil // nothing to send, nothing to look up
	}
	if err := ctx.Err(); err != nil {
		return planned, fmt.Errorf("trace: stopped before sending: %w", err)
	}
	dl.key = entryKey(traces)
	t.enqueue(ctx, dl)
	select {
	case <-dl.done:
		t.stats.add(dl.res)
		return dl.res, dl.err
	case <-ctx.Done():
		// The group goes on without this request; what it sends is recorded, so the redelivery
		// sends only the rest.
		return planned, fmt.Errorf("trace: stopped waiting for the agent: %w", ctx.Err())
	}
}

// enqueue adds dl to the next group and starts sending groups unless that is under way.
func (t *Tracer) enqueue(ctx context.Context, dl *delivery) {
	c := &t.groups
	c.mu.Lock()
	c.queue = append(c.queue, dl)
	start := !c.sending
	c.sending = true
	c.mu.Unlock()
	if start {
		// The groups serve other requests too: the one that started them must not cancel them.
		go t.sendGroups(context.WithoutCancel(ctx))
	}
}

// sendGroups sends groups until no delivery waits.
func (t *Tracer) sendGroups(ctx context.Context) {
	c := &t.groups
	for {
		c.mu.Lock()
		group := nextGroup(&c.queue)
		if len(group) == 0 {
			c.sending = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		t.commit(ctx, group)
	}
}

// nextGroup takes from the queue's head the deliveries whose spans fit one tracer session (at
// least one delivery, whatever its size), so that a group's answer waits for one session.
func nextGroup(queue *[]*delivery) []*delivery {
	q := *queue
	n, spans := 0, 0
	for n < len(q) && (n == 0 || spans+len(q[n].spans) <= sessionSpans) {
		spans += len(q[n].spans)
		n++
	}
	group := slices.Clone(q[:n])
	*queue = slices.Delete(q, 0, n)
	return group
}

// pending is one span of a group to send once, and the deliveries that wait for it.
type pending struct {
	span    span
	owner   *delivery   // the first delivery that has it: its Sent counts it
	waiters []*delivery // every delivery of the group that has it and did not send it before
}

// commit sends one group and answers its deliveries.
func (t *Tracer) commit(ctx context.Context, group []*delivery) {
	defer func() {
		for _, dl := range group {
			close(dl.done)
		}
	}()
	now := t.clock.Now()
	keys := make([]string, len(group))
	for i, dl := range group {
		keys[i] = dl.key
	}
	stored, err := t.ledger.Load(ctx, LedgerNamespace, keys)
	if err != nil {
		err = fmt.Errorf("trace: read the ledger of sent spans: %w", err)
		for _, dl := range group {
			dl.err = err
		}
		return
	}
	sentBefore := make(map[string]map[uint64]bool, len(stored))
	for key, data := range stored {
		sentBefore[key] = spanIDSet(data)
	}
	var order []*pending
	byID := map[uint64]*pending{}
	for _, dl := range group {
		for _, s := range dl.spans {
			switch p := byID[s.id]; {
			case sentBefore[dl.key][s.id]:
				dl.res.Duplicates++
			case p != nil: // another message of the group has it: one span, both wait for it
				dl.res.Duplicates++
				p.waiters = append(p.waiters, dl)
			default:
				p = &pending{span: s, owner: dl, waiters: []*delivery{dl}}
				byID[s.id] = p
				order = append(order, p)
			}
		}
	}
	accepted := t.sendSessions(ctx, order)
	t.record(ctx, group, stored, accepted, now)
}

// sendSessions sends spans in sessions of at most sessionSpans and returns those the agent
// accepted. A failed session fails its spans' deliveries, whose other spans are then not sent:
// the redelivery sends what is missing.
func (t *Tracer) sendSessions(ctx context.Context, order []*pending) []*pending {
	var accepted []*pending
	failed := func(p *pending) bool {
		for _, dl := range p.waiters {
			if dl.err == nil {
				return false
			}
		}
		return true
	}
	for len(order) > 0 {
		var batch, rest []*pending
		for _, p := range order {
			switch {
			case failed(p):
			case len(batch) < sessionSpans:
				batch = append(batch, p)
			default:
				rest = append(rest, p)
			}
		}
		order = rest
		if len(batch) == 0 {
			break
		}
		spans := make([]span, len(batch))
		for i, p := range batch {
			spans[i] = p.span
		}
		if err := t.sender.session(ctx, spans); err != nil {
			for _, p := range batch {
				for _, dl := range p.waiters {
					if dl.err == nil {
						dl.err = err
					}
				}
			}
			continue
		}
		for _, p := range batch {
			p.owner.res.Sent++
		}
		accepted = append(accepted, batch...)
	}
	return accepted
}

// record adds the accepted spans to the ledger entries of their deliveries' messages, in one
// call. A failure is logged, not returned: the spans are delivered, and a redelivery would only
// duplicate them.
func (t *Tracer) record(ctx context.Context, group []*delivery, stored map[string][]byte, accepted []*pending, now time.Time) {
	added := map[string][]uint64{}
	for _, p := range accepted {
		for _, dl := range p.waiters {
			added[dl.key] = append(added[dl.key], p.span.id)
		}
	}
	if len(added) == 0 {
		return
	}
	entries := make(map[string][]byte, len(added))
	for key, ids := range added {
		entries[key] = appendSpanIDs(stored[key], ids)
	}
	// A span is never sent once its start is MaxAge old, so its record is useless after that.
	err := t.ledger.Record(ctx, LedgerNamespace, entries, now.Add(t.planner.maxAge))
	if err == nil {
		return
	}
	messages := 0
	for _, dl := range group {
		if _, ok := added[dl.key]; ok {
			messages++
		}
	}
	t.stats.ledgerErrors.Add(int64(messages))
	t.log.ErrorContext(ctx, "spans were delivered but could not be recorded: a redelivery of these messages would send them again",
		"messages", messages, "spans", len(accepted), "error", err)
}

// entryKey names the ledger entry of a message: its run executions (traces), so that every
// message about the same runs — a redelivery, a replay, a later delta repeating a finished run —
// finds the spans sent before.
func entryKey(traces []traceID) string {
	names := make([]string, len(traces))
	for i, t := range traces {
		names[i] = t.String()
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 1 {
		return names[0]
	}
	return event.NewID(append([]string{"farm.trace.runs"}, names...)...)
}

// maxEntrySpans bounds the span ids of one ledger entry (8 bytes each) to what a document holds.
const maxEntrySpans = state.MaxLedgerData / 8

// spanIDSet reads the span ids of a ledger entry.
func spanIDSet(data []byte) map[uint64]bool {
	set := make(map[uint64]bool, len(data)/8)
	for i := 0; i+8 <= len(data); i += 8 {
		set[binary.BigEndian.Uint64(data[i:])] = true
	}
	return set
}

// appendSpanIDs returns the entry data with ids added, oldest first; beyond maxEntrySpans the
// oldest are forgotten (a run of more than 115,000 spans: its earliest spans could be sent again
// by a replay).
func appendSpanIDs(data []byte, ids []uint64) []byte {
	data = data[:len(data)/8*8]
	have := spanIDSet(data)
	out := slices.Clip(slices.Clone(data))
	for _, id := range ids {
		if !have[id] {
			have[id] = true
			out = binary.BigEndian.AppendUint64(out, id)
		}
	}
	if over := len(out) - maxEntrySpans*8; over > 0 {
		out = out[over:]
	}
	return out
}
