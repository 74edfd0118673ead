// Package deadletter keeps what a consumer can never process — a push body that is not a Pub/Sub
// message, a RunDelta that breaks its schema — where a person can inspect and replay it: the
// dead-letter topic, with the reason as an attribute. The delivery is then acknowledged at once
// instead of being redelivered until Pub/Sub gives up, and the message is never traced or
// written. If the dead-letter topic cannot take it, the delivery fails and comes back: nothing is
// lost.
package deadletter

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/farmobs/farm/pkg/event"
)

// Attributes added to a dead letter, beside the original message's own.
const (
	AttrReason       = "farm_reason"       // why the consumer refused it
	AttrConsumer     = "farm_consumer"     // trace or sink
	AttrMessageID    = "farm_message_id"   // the refused message's id, when it has one
	AttrSubscription = "farm_subscription" // the subscription that delivered it, when known
	AttrTruncated    = "farm_truncated"    // "true" when Data is a prefix of what was delivered
	AttrBytes        = "farm_bytes"        // size of what was delivered
)

// MaxData keeps a dead letter below Pub/Sub's 10 MB publish request limit (a variable for tests:
// the in-process server takes 4 MB).
var MaxData = 9 << 20

const (
	// maxAttr is below Pub/Sub's 1024-byte limit on an attribute value.
	maxAttr = 1000
	// ExcerptBytes bounds the part of a refused message that goes into a log line.
	ExcerptBytes = 256
)

// Publisher publishes messages; *publish.Publisher is one.
type Publisher interface {
	Publish(ctx context.Context, msgs []event.Message) error
}

// Keeper sends refused messages of one consumer to the dead-letter topic.
type Keeper struct {
	pub      Publisher
	consumer string
	log      *slog.Logger
}

// New returns a Keeper for consumer (trace, sink). With a nil pub, refused messages are only
// logged and acknowledged (a local run without a dead-letter topic).
func New(pub Publisher, consumer string, log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.Default()
	}
	return &Keeper{pub: pub, consumer: consumer, log: log}
}

// Keep dead-letters data, the refused delivery (the message's data, or the whole push body when
// it is not a message), with m's attributes and the reason, and logs it with a bounded excerpt.
// It returns an error only when the dead-letter topic did not take it: the caller must then fail
// the delivery so that Pub/Sub delivers it again.
func (k *Keeper) Keep(ctx context.Context, m event.Message, data []byte, reason error) error {
	attrs := []any{
		slog.String("consumer", k.consumer), slog.String("message_id", m.ID), slog.String("subscription", m.Subscription),
		slog.String("reason", cut(reason.Error(), maxAttr)), slog.Int("bytes", len(data)), slog.String("excerpt", Excerpt(data)),
	}
	if k.pub == nil {
		k.log.ErrorContext(ctx, "message can never be processed; acknowledged (no dead-letter topic configured: FARM_DEAD_LETTER_TOPIC)", attrs...)
		return nil
	}
	letter := event.Message{Attributes: maps.Clone(m.Attributes), Data: data}
	if letter.Attributes == nil {
		letter.Attributes = map[string]string{}
	}
	letter.Attributes[AttrReason] = cut(reason.Error(), maxAttr)
	letter.Attributes[AttrConsumer] = k.consumer
	letter.Attributes[AttrBytes] = strconv.Itoa(len(data))
	if m.ID != "" {
		letter.Attributes[AttrMessageID] = cut(m.ID, maxAttr)
	}
	if m.Subscription != "" {
		letter.Attributes[AttrSubscription] = cut(m.Subscription, maxAttr)
	}
	if len(data) > MaxData {
		letter.Data = data[:MaxData]
		letter.Attributes[AttrTruncated] = "true"
	}
	if err := k.pub.Publish(ctx, []event.Message{letter}); err != nil {
		k.log.ErrorContext(ctx, "message can never be processed, and the dead-letter topic did not take it; it will be delivered again",
			append(attrs, slog.String("error", err.Error()))...)
		return fmt.Errorf("dead-letter message %q: %w", m.ID, err)
	}
	k.log.ErrorContext(ctx, "message can never be processed; acknowledged and kept in the dead-letter topic", attrs...)
	return nil
}

// Excerpt is the start of b for a log line: at most ExcerptBytes, valid UTF-8, with a note of how
// much was left out.
func Excerpt(b []byte) string {
	if len(b) <= ExcerptBytes {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return strings.ToValidUTF8(string(b[:ExcerptBytes]), "\uFFFD") + fmt.Sprintf("… (%d more bytes)", len(b)-ExcerptBytes)
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
