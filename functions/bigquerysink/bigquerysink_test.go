package bigquerysink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/farmobs/farm/functions/bigquerysink"
	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/publish"
	"github.com/farmobs/farm/pkg/sink"
)

const (
	project     = "farm-test"
	topicID     = "farm-run-deltas"
	topic       = "projects/farm-test/topics/" + topicID
	callTimeout = 60 * time.Second
)

// published sends deltas through FARM's publisher to an in-process Pub/Sub and returns them as
// the push subscription delivers them, with the ids and publish times Pub/Sub assigned, in the
// order of deltas.
func published(t *testing.T, deltas ...*event.RunDelta) []event.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	srv, conn := testenv.PubSub(t, project, topicID)
	pub := publish.New(project, topic, option.WithGRPCConn(conn))
	t.Cleanup(func() { _ = pub.Close() })
	var msgs []event.Message
	for _, d := range deltas {
		m, err := event.MessageOf(d)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := pub.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	byDelta := map[string]event.Message{}
	for _, m := range srv.Messages() {
		ds, err := event.DecodeDeltas(m.Data)
		if err != nil || len(ds) != 1 {
			t.Fatalf("published message %s: %d deltas, %v", m.ID, len(ds), err)
		}
		byDelta[ds[0].ID] = event.Message{
			ID: m.ID, PublishTime: m.PublishTime, Attributes: m.Attributes, Data: m.Data,
			OrderingKey: m.OrderingKey, Subscription: sinktest.Subscription,
		}
	}
	out := make([]event.Message, 0, len(deltas))
	for _, d := range deltas {
		m, ok := byDelta[d.ID]
		if !ok {
			t.Fatalf("Pub/Sub holds no message of delta %s", d.ID)
		}
		out = append(out, m)
	}
	return out
}

// deliver runs the deployed entry point on body as Eventarc or the local runner delivers it (a
// binary-mode CloudEvent) and returns nil when the answer acknowledges it.
func deliver(t *testing.T, body []byte) error {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", bytes.NewReader(body))
	local.CloudEventHeaders(req.Header, "evt-"+time.Now().Format("150405.000000000"), topic, time.Now())
	rec := httptest.NewRecorder()
	bigquerysink.Handle(rec, req)
	if rec.Code/100 != 2 {
		return fmt.Errorf("answered %d: %s", rec.Code, rec.Body)
	}
	return nil
}

func query(t *testing.T, c *bigquery.Client, sql string) []map[string]bigquery.Value {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	it, err := c.Query(sql).Read(ctx)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var rows []map[string]bigquery.Value
	for {
		row := map[string]bigquery.Value{}
		if err := it.Next(&row); errors.Is(err, iterator.Done) {
			return rows
		} else if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		rows = append(rows, row)
	}
}

// TestHandle runs the deployed entry point, configured from the environment like in Cloud Run,
// on messages that went through Pub/Sub: rows land in the emulator with the message's metadata, a
// poison message is acknowledged, and an unreachable BigQuery makes the function fail. The
// process reads its configuration once (pkg/setup), so this is the package's only test of Handle.
func TestHandle(t *testing.T) {
	emu := testenv.StartBigQuery(t, project)
	client := emu.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	if err := sink.Setup(ctx, client, "farm", testSchemas); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FARM_SINK", "bigquery")
	t.Setenv("FARM_BIGQUERY_PROJECT", project)
	t.Setenv("FARM_BIGQUERY_DATASET", "farm")
	t.Setenv("FARM_BIGQUERY_ENDPOINT", emu.Endpoint)
	t.Setenv("FARM_BIGQUERY_TIMEOUT", "2s")

	argo, airflow := sinktest.NestedArgoDelta(), sinktest.RetriedMappedAirflowDelta()
	msgs := published(t, argo, airflow)
	for _, m := range msgs {
		if err := deliver(t, sinktest.Envelope(t, m)); err != nil {
			t.Fatalf("message %s: %v", m.ID, err)
		}
	}
	for i, tc := range []struct {
		table string
		d     *event.RunDelta
	}{{"argo", argo}, {"airflow", airflow}} {
		rows := query(t, client, "SELECT DISTINCT message_id, publish_time, subscription_name, delta_id FROM farm."+tc.table)
		want := map[string]bigquery.Value{
			"message_id": msgs[i].ID, "publish_time": msgs[i].PublishTime.UTC().Truncate(time.Microsecond),
			"subscription_name": sinktest.Subscription, "delta_id": tc.d.ID,
		}
		if len(rows) != 1 || !equalRow(rows[0], want) {
			t.Errorf("%s delivery columns: got %v, want %v", tc.table, rows, want)
		}
		ids := query(t, client, "SELECT event_id FROM farm."+tc.table+" ORDER BY event_id")
		var got, wantIDs []string
		for _, r := range ids {
			got = append(got, r["event_id"].(string))
		}
		for _, e := range tc.d.Events {
			wantIDs = append(wantIDs, e.ID)
		}
		slices.Sort(wantIDs)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("%s event ids %v, want %v", tc.table, got, wantIDs)
		}
	}

	// A message whose body is not a RunDelta is acknowledged: Pub/Sub must not redeliver it.
	poison := msgs[0]
	poison.Data = []byte(`{"schema_version":1,"id":`)
	if err := deliver(t, sinktest.Envelope(t, poison)); err != nil {
		t.Errorf("poison message: got %v, want nil (acknowledged)", err)
	}
	if err := deliver(t, []byte("not a CloudEvent body")); err != nil {
		t.Errorf("bad envelope: got %v, want nil (acknowledged)", err)
	}

	// BigQuery goes away: the function fails so that Pub/Sub redelivers.
	emu.Stop()
	if err := deliver(t, sinktest.Envelope(t, msgs[0])); err == nil || !strings.Contains(err.Error(), "answered 500") {
		t.Errorf("with BigQuery unreachable: got %v, want a 500 (redelivered)", err)
	}
}

func equalRow(got, want map[string]bigquery.Value) bool {
	for k, w := range want {
		if wt, ok := w.(time.Time); ok {
			gt, ok := got[k].(time.Time)
			if !ok || !gt.Equal(wt) {
				return false
			}
			continue
		}
		if got[k] != w {
			return false
		}
	}
	return true
}

// testSchemas is the repository's schemas directory, seen from this package.
var testSchemas = os.DirFS("../../schemas")
