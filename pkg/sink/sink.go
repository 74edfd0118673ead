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

// Sink handles RunDelta messages: one row per task event, routed to its source's table. The rows
// of deliveries handled at the same time share insert requests (Group).
type Sink struct {
	group        *Group // in front of the destination's Writer (group.w)
	log          *slog.Logger
	subscription string
	deadLetter   *deadletter.Keeper
}

// Group is the sink's group of insert requests.
func (s *Sink) Group() *Group { return s.group }

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

// Handle handles one delivered message, like HandleEnvelope: a batch of deltas (or a version-1
// message of one), refused whole if any of it breaks the schema.
func (s *Sink) Handle(ctx context.Context, msg event.Message) error {
	if msg.Subscription == "" {
		msg.Subscription = s.subscription
	}
	ds, err := event.DecodeDeltas(msg.Data)
	if err != nil {
		return s.drop(ctx, msg, msg.Data, err)
	}
	var tables []string
	byTable := map[string][]Row{}
	for i := range ds {
		table, rows, err := Rows(msg, &ds[i])
		if err != nil {
			return s.drop(ctx, msg, msg.Data, err)
		}
		if _, ok := byTable[table]; !ok {
			tables = append(tables, table)
		}
		byTable[table] = append(byTable[table], rows...)
	}
	log := s.log.With("message_id", msg.ID, "deltas", len(ds))
	if len(ds) == 1 {
		log = log.With("delta_id", ds[0].ID, "run", ds[0].Run.Key())
	}
	if len(tables) == 0 || len(byTable[tables[0]]) == 0 && len(tables) == 1 {
		log.DebugContext(ctx, "run deltas have no task events")
		return nil
	}
	for _, table := range tables {
		rows := byTable[table]
		if len(rows) == 0 {
			continue
		}
		err = s.group.Write(ctx, table, rows)
		var rejected *RejectedError
		switch {
		case err == nil:
			log.InfoContext(ctx, "rows written", "table", table, "rows", len(rows))
		case errors.As(err, &rejected):
			s.logRejected(ctx, log.With("table", table), rejected, len(rows))
		default:
			return fmt.Errorf("write %d rows of message %s (%d deltas) to %s: %w", len(rows), msg.ID, len(ds), table, err)
		}
	}
	return nil
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
