package apm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/farmobs/farm/pkg/event"
)

// HandleEnvelope handles the body of a Pub/Sub messagePublished CloudEvent (see
// event.ParseMessage). Like HandleMessage, it returns an error only when the message should be
// delivered again.
func (t *Tracer) HandleEnvelope(ctx context.Context, body []byte) error {
	m, err := event.ParseMessage(body)
	if err != nil {
		return t.poison(ctx, m, body, err)
	}
	return t.HandleMessage(ctx, m)
}

// HandleMessage traces the RunDeltas in m (a batch, or a version-1 message of one), in order. A
// message that can never be processed (not a RunDelta batch by its schema, an unknown schema
// version) is never traced: it is dead-lettered and acknowledged (nil). An error means a
// transient failure (agent unreachable, ledger unavailable, dead-letter topic unavailable): the
// message should be delivered again, and the ledger keeps the spans already sent from being
// sent twice.
func (t *Tracer) HandleMessage(ctx context.Context, m event.Message) error {
	ds, err := event.DecodeDeltas(m.Data)
	if err != nil {
		return t.poison(ctx, m, m.Data, err)
	}
	if len(ds) == 0 {
		return nil
	}
	t.stats.messages.Add(1)
	deltas := make([]*event.RunDelta, len(ds))
	for i := range ds {
		deltas[i] = &ds[i]
	}
	res, err := t.deliver(ctx, deltas)
	attrs := []any{
		"run", ds[0].Run.Key(), "delta_id", ds[0].ID, "deltas", len(ds), "message_id", m.ID,
		"sent", res.Sent, "duplicates", res.Duplicates, "too_old", res.TooOld, "future", res.Future, "untimed", res.Untimed,
	}
	if err != nil {
		t.stats.failed.Add(1)
		t.log.WarnContext(ctx, "spans not delivered; the message will be redelivered", append(attrs, "error", err.Error())...)
		return fmt.Errorf("trace run %s (delta %s, message %s): %w", ds[0].Run.Key(), ds[0].ID, m.ID, err)
	}
	switch {
	case res.TooOld > 0 || res.Future > 0:
		t.log.WarnContext(ctx, "spans outside DataDog's intake window were not sent (the BigQuery sink still has the events)",
			append(attrs, "max_age", t.planner.maxAge.String())...)
	case res.Untimed > 0:
		t.log.WarnContext(ctx, "finished tasks without any time were not sent", attrs...)
	default:
		t.log.InfoContext(ctx, "traced run delta", attrs...)
	}
	return nil
}

// poison dead-letters a message that can never be processed (data is what to keep) and
// acknowledges it, unless the dead-letter topic did not take it. Other errors are not expected
// from the parsers, but if one comes it is returned rather than dropping a message.
func (t *Tracer) poison(ctx context.Context, m event.Message, data []byte, err error) error {
	if !errors.Is(err, event.ErrBadEnvelope) && !errors.Is(err, event.ErrInvalid) && !errors.Is(err, event.ErrUnsupportedVersion) {
		return fmt.Errorf("trace: read message %q: %w", m.ID, err)
	}
	t.stats.poison.Add(1)
	return t.deadLetter.Keep(ctx, m, data, err)
}

// Stats are cumulative counts since the Tracer was created.
type Stats struct {
	Messages     int64 // RunDeltas handled (poison excluded; a batch counts its deltas)
	Poison       int64 // messages acknowledged because they can never be processed
	Failed       int64 // messages that returned an error (to be redelivered)
	Sent         int64 // spans the agent accepted
	Duplicates   int64 // spans not sent again
	TooOld       int64 // spans older than MaxAge
	Future       int64 // spans starting over 2 hours ahead
	Untimed      int64 // finished tasks without a time
	LedgerErrors int64 // deliveries that could not be recorded
}

type counters struct {
	messages, poison, failed, sent, duplicates, tooOld, future, untimed, ledgerErrors atomic.Int64
}

func (c *counters) add(r Result) {
	c.sent.Add(int64(r.Sent))
	c.duplicates.Add(int64(r.Duplicates))
	c.tooOld.Add(int64(r.TooOld))
	c.future.Add(int64(r.Future))
	c.untimed.Add(int64(r.Untimed))
}

// Stats returns the counts so far.
func (t *Tracer) Stats() Stats {
	c := &t.stats
	return Stats{
		Messages: c.messages.Load(), Poison: c.poison.Load(), Failed: c.failed.Load(),
		Sent: c.sent.Load(), Duplicates: c.duplicates.Load(), TooOld: c.tooOld.Load(),
		Future: c.future.Load(), Untimed: c.untimed.Load(), LedgerErrors: c.ledgerErrors.Load(),
	}
}
