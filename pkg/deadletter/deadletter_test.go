package deadletter_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/farmobs/farm/internal/deadlettertest"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
)

func TestKeepPublishesWithTheReason(t *testing.T) {
	tp := deadlettertest.New(t)
	var logs bytes.Buffer
	k := deadletter.New(tp.Publisher, "sink", slog.New(slog.NewJSONHandler(&logs, nil)))
	m := event.Message{ID: "m-1", Subscription: "projects/p/subscriptions/farm-sink", Attributes: map[string]string{"source": "argo"}}
	reason := errors.New("invalid RunDelta: tenant is required; " + strings.Repeat("é", 800))
	data := append([]byte(`{"schema_version":1,"secret-looking":"`), bytes.Repeat([]byte("x"), 10_000)...)
	if err := k.Keep(t.Context(), m, data, reason); err != nil {
		t.Fatal(err)
	}
	letters := tp.Letters()
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	l := letters[0]
	if !bytes.Equal(l.Data, data) {
		t.Errorf("the dead letter's data differs from the refused delivery")
	}
	a := l.Attributes
	if a["source"] != "argo" || a[deadletter.AttrConsumer] != "sink" || a[deadletter.AttrMessageID] != "m-1" ||
		a[deadletter.AttrSubscription] != m.Subscription || a[deadletter.AttrBytes] != "10038" {
		t.Errorf("attributes %v", a)
	}
	if r := a[deadletter.AttrReason]; !strings.HasPrefix(r, "invalid RunDelta: tenant is required") || len(r) > 1024 || !utf8.ValidString(r) {
		t.Errorf("reason attribute (%d bytes) %.80q", len(r), r)
	}
	if logs.Len() > 3000 || !strings.Contains(logs.String(), "(9782 more bytes)") {
		t.Errorf("log line of %d bytes, want a bounded excerpt: %.300s", logs.Len(), logs.String())
	}
}

func TestKeepTruncatesWhatPubSubCannotTake(t *testing.T) {
	tp := deadlettertest.New(t)
	k := deadletter.New(tp.Publisher, "trace", slog.New(slog.DiscardHandler))
	// The in-process server takes 4 MB, not the 10 MB of Pub/Sub: the limit is lowered with it.
	defer func(n int) { deadletter.MaxData = n }(deadletter.MaxData)
	deadletter.MaxData = 1 << 20
	big := bytes.Repeat([]byte("a"), deadletter.MaxData+5)
	if err := k.Keep(t.Context(), event.Message{}, big, event.ErrBadEnvelope); err != nil {
		t.Fatal(err)
	}
	l := tp.Letters()[0]
	if len(l.Data) != deadletter.MaxData || l.Attributes[deadletter.AttrTruncated] != "true" {
		t.Errorf("%d bytes, attributes %v: want the first %d and truncated", len(l.Data), l.Attributes, deadletter.MaxData)
	}
}

// A dead-letter topic that does not take the message fails the delivery: it comes back.
func TestKeepFailsWhenTheTopicDoesNotTakeIt(t *testing.T) {
	tp := deadlettertest.New(t)
	k := deadletter.New(tp.Missing, "trace", slog.New(slog.DiscardHandler))
	if err := k.Keep(t.Context(), event.Message{ID: "m"}, []byte("{"), event.ErrInvalid); err == nil {
		t.Fatal("Keep succeeded without a topic")
	}
}

func TestExcerpt(t *testing.T) {
	if got := deadletter.Excerpt([]byte("short")); got != "short" {
		t.Errorf("Excerpt(short) = %q", got)
	}
	long := strings.Repeat("€", 200) // 600 bytes: the cut falls inside a character
	got := deadletter.Excerpt([]byte(long))
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "(344 more bytes)") {
		t.Errorf("Excerpt = %q", got)
	}
}
