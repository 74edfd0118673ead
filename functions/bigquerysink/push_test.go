package bigquerysink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/farmobs/farm/functions/bigquerysink"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
	"github.com/farmobs/farm/pkg/sink/sinktest"
)

// TestPushThroughFunctionsFramework delivers a message the way the push subscription terraform
// creates does in Google Cloud: the plain push body POSTed to the function's URL with the topic as
// path. The Functions Framework turns it into a CloudEvent without the envelope's subscription,
// so the subscription_name column comes from the configured subscription (FARM_SINK_SUBSCRIPTION).
func TestPushThroughFunctionsFramework(t *testing.T) {
	dir := t.TempDir()
	w := sink.NewFileWriter(dir)
	handle := bigquerysink.Handler(sink.New(w, nil, sink.WithSubscription(sinktest.Subscription)))
	received := make(chan []byte, 1)
	url := serveFunctions(t, func(ctx context.Context, e cloudevent.Event) error {
		received <- e.Data()
		return handle(ctx, e)
	})

	m := sinktest.Message(t, sinktest.NestedArgoDelta(), "8001", sinktest.Day0)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+topic, bytes.NewReader(sinktest.Envelope(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("push answered %d: %s", resp.StatusCode, body)
	}

	got, err := event.ParseMessage(<-received)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.Subscription != "" {
		t.Errorf("the CloudEvent carries message %q, subscription %q; want %q and none (if the Functions Framework now keeps it, FARM_SINK_SUBSCRIPTION is only a fallback)", got.ID, got.Subscription, m.ID)
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

// pushHandler is what the registered function runs: each test sets its own.
var pushHandler atomic.Pointer[func(context.Context, cloudevent.Event) error]

// serveFunctions serves handle as the CloudEvent function BigQuerySinkPush with the Functions
// Framework, as Cloud Run runs the deployed source, and returns its base URL.
func serveFunctions(t *testing.T, handle func(context.Context, cloudevent.Event) error) string {
	t.Helper()
	pushHandler.Store(&handle)
	url, err := testenv.FunctionsFramework("BigQuerySinkPush", func() {
		functions.CloudEvent("BigQuerySinkPush", func(ctx context.Context, e cloudevent.Event) error {
			return (*pushHandler.Load())(ctx, e)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return url
}
