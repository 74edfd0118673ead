package bigquerysink_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/farmobs/farm/functions/bigquerysink"
	"github.com/farmobs/farm/internal/deadlettertest"
	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
)

// TestPushThroughFunctionsFramework delivers a message the way the push subscription does, through
// the Functions Framework: FARM reads the push envelope itself, so the subscription it names
// reaches the subscription_name column.
func TestPushThroughFunctionsFramework(t *testing.T) {
	dir := t.TempDir()
	w := sink.NewFileWriter(dir)
	cfg := sink.DefaultConfig()
	cfg.Subscription = "projects/farm-test/subscriptions/fallback"
	s, err := sink.New(cfg, sink.Deps{Writer: w})
	if err != nil {
		t.Fatal(err)
	}
	url := serveFunctions(t, bigquerysink.Handler(s))

	m := sinktest.Message(t, sinktest.NestedArgoDelta(), "8001", sinktest.Day0)
	if code, answer := testenv.Push(t, url+topic, sinktest.Envelope(t, m)); code/100 != 2 {
		t.Fatalf("push answered %d: %s", code, answer)
	}
	data, err := os.ReadFile(w.Path(sink.TableArgo))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, line := range lines {
		var row struct {
			MessageID        string `json:"message_id"`
			SubscriptionName string `json:"subscription_name"`
		}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		if row.MessageID != m.ID || row.SubscriptionName != sinktest.Subscription {
			t.Errorf("row of message %q names subscription %q; want message %q from %q", row.MessageID, row.SubscriptionName, m.ID, sinktest.Subscription)
		}
	}
	if len(lines) != len(sinktest.NestedArgoDelta().Events) {
		t.Errorf("%d rows written, want one per event (%d)", len(lines), len(sinktest.NestedArgoDelta().Events))
	}
}

// Malformed push bodies and RunDeltas that break their schema reach FARM, not the framework's
// 400: each is answered 2xx at once without echoing the body, nothing is written, and each is
// kept in the dead-letter topic with the reason and the subscription.
func TestMalformedPushesAreDeadLettered(t *testing.T) {
	dir := t.TempDir()
	dlq := deadlettertest.New(t)
	cfg := sink.DefaultConfig()
	cfg.Subscription = sinktest.Subscription
	s, err := sink.New(cfg, sink.Deps{Writer: sink.NewFileWriter(dir), DeadLetter: deadletter.New(dlq.Publisher, "sink", nil)})
	if err != nil {
		t.Fatal(err)
	}
	url := serveFunctions(t, bigquerysink.Handler(s))
	bad := sinktest.Message(t, sinktest.NestedArgoDelta(), "8002", sinktest.Day0)
	bad.Data = bytes.Replace(bad.Data, []byte(`"part":1`), []byte(`"part":0`), 1)
	huge := append([]byte(`{"message":{"data":"`), bytes.Repeat([]byte("A"), 3<<20)...)
	for i, c := range []struct {
		body   []byte
		reason string
	}{
		{[]byte("{"), "not a Pub/Sub message envelope"},
		{[]byte(`{"message":{"data":"!!","messageId":"1"}}`), "not a Pub/Sub message envelope"},
		{huge, "not a Pub/Sub message envelope"},
		{sinktest.Envelope(t, bad), "part is 0"},
	} {
		before := len(dlq.Letters())
		code, answer := testenv.Push(t, url+topic, c.body)
		if code/100 != 2 || len(answer) > 1024 {
			t.Errorf("body %d answered %d with %d bytes; want 2xx without the body", i, code, len(answer))
		}
		letters := dlq.Letters()[before:]
		if len(letters) != 1 {
			t.Fatalf("body %d: %d dead letters, want 1", i, len(letters))
		}
		if a := letters[0].Attributes; !strings.Contains(a[deadletter.AttrReason], c.reason) || a[deadletter.AttrSubscription] != sinktest.Subscription {
			t.Errorf("body %d: dead letter attributes %v, want the reason %q and the subscription", i, a, c.reason)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("wrote %v for refused deliveries", entries)
	}
	if _, err := event.Decode(bad.Data); err == nil {
		t.Fatal("the part-0 delta is valid: the test tests nothing")
	}
}

// pushHandler is what the registered function runs: each test sets its own.
var pushHandler atomic.Pointer[http.Handler]

// serveFunctions serves h as the HTTP function BigQuerySinkPush with the Functions Framework, as
// Cloud Run runs the deployed source, and returns its base URL.
func serveFunctions(t *testing.T, h http.Handler) string {
	t.Helper()
	pushHandler.Store(&h)
	url, err := testenv.FunctionsFramework("BigQuerySinkPush", func() {
		functions.HTTP("BigQuerySinkPush", func(w http.ResponseWriter, r *http.Request) { (*pushHandler.Load()).ServeHTTP(w, r) })
	})
	if err != nil {
		t.Fatal(err)
	}
	return url
}
