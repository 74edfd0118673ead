package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
)

// Writer stores rows in a table. An error that is, or wraps, a *RejectedError means the
// destination refused those rows for good; any other error is worth retrying.
type Writer interface {
	Write(ctx context.Context, table string, rows []Row) error
}

// RejectedError lists rows a destination refused for good (BigQuery's per-row insert errors, or a
// request it answered 400). Retrying would only be refused again.
type RejectedError struct {
	Table string
	Rows  []RejectedRow
}

// RejectedRow is one refused row and why.
type RejectedRow struct {
	InsertID string
	Reasons  []string
}

func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s rejected %d rows", e.Table, len(e.Rows))
	if len(e.Rows) > 0 {
		fmt.Fprintf(&b, ", first %s: %s", e.Rows[0].InsertID, strings.Join(e.Rows[0].Reasons, "; "))
	}
	return b.String()
}

// Sink handles RunDelta messages: one row per task event, routed to its source's table.
type Sink struct {
	w            Writer
	log          *slog.Logger
	subscription string
	deadLetter   *deadletter.Keeper
}

// HandleEnvelope handles the body of a Pub/Sub messagePublished CloudEvent. It returns an error
// only when the message should be redelivered; a message that can never be processed is never
// written: it is dead-lettered and acknowledged.
func (s *Sink) HandleEnvelope(ctx context.Context, body []byte) error {
	msg, err := event.ParseMessage(body)
	if err != nil {
		msg.Subscription = s.subscription
		return s.drop(ctx, msg, body, err)
	}
	return s.Handle(ctx, msg)
}

// Handle handles one delivered message, like HandleEnvelope.
func (s *Sink) Handle(ctx context.Context, msg event.Message) error {
	if msg.Subscription == "" {
		msg.Subscription = s.subscription
	}
	d, err := event.Decode(msg.Data)
	if err != nil {
		return s.drop(ctx, msg, msg.Data, err)
	}
	table, rows, err := Rows(msg, d)
	if err != nil {
		return s.drop(ctx, msg, msg.Data, err)
	}
	log := s.log.With("message_id", msg.ID, "delta_id", d.ID, "run", d.Run.Key(), "table", table)
	if len(rows) == 0 {
		log.DebugContext(ctx, "run delta has no task events")
		return nil
	}
	err = s.w.Write(ctx, table, rows)
	var rejected *RejectedError
	switch {
	case err == nil:
		log.InfoContext(ctx, "rows written", "rows", len(rows))
		return nil
	case errors.As(err, &rejected):
		s.logRejected(ctx, log, rejected, len(rows))
		return nil
	}
	return fmt.Errorf("write %d rows of delta %s to %s: %w", len(rows), d.ID, table, err)
}

// Permanent reports whether err marks a message that can never be processed.
func Permanent(err error) bool {
	var rejected *RejectedError
	return errors.Is(err, event.ErrBadEnvelope) || errors.Is(err, event.ErrInvalid) ||
		errors.Is(err, event.ErrUnsupportedVersion) || errors.As(err, &rejected)
}

// drop dead-letters data, a delivery that can never be written; the error says the dead-letter
// topic did not take it (the delivery must come back).
func (s *Sink) drop(ctx context.Context, msg event.Message, data []byte, err error) error {
	return s.deadLetter.Keep(ctx, msg, data, err)
}

// maxLoggedRejections bounds one log line; the count says how many there were.
const maxLoggedRejections = 20

func (s *Sink) logRejected(ctx context.Context, log *slog.Logger, e *RejectedError, total int) {
	shown := e.Rows[:min(len(e.Rows), maxLoggedRejections)]
	rows := make([]any, 0, len(shown))
	for _, r := range shown {
		rows = append(rows, map[string]any{"event_id": r.InsertID, "reasons": r.Reasons})
	}
	log.ErrorContext(ctx, "rows rejected by the destination; message acknowledged",
		"rejected", len(e.Rows), "rows", total, "rejections", rows)
}
