// Package bigquerysink is the BigQuerySink function: Pub/Sub delivers each RunDelta as a
// CloudEvent (google.cloud.pubsub.topic.v1.messagePublished) and pkg/sink writes one row per task
// event. Returning an error makes Pub/Sub redeliver; messages that can never be processed are
// logged and acknowledged.
package bigquerysink

import (
	"context"
	"fmt"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/farmobs/farm/pkg/setup"
	"github.com/farmobs/farm/pkg/sink"
)

// Handle is the function's entry point; its dependencies are built on the first call.
func Handle(ctx context.Context, e cloudevent.Event) error {
	app, err := setup.Default()
	if err != nil {
		return fmt.Errorf("bigquery sink: %w", err)
	}
	s, err := app.Sink(ctx)
	if err != nil {
		return fmt.Errorf("bigquery sink: %w", err)
	}
	return s.HandleEnvelope(ctx, e.Data())
}

// Handler serves CloudEvents with s (tests and embedding).
func Handler(s *sink.Sink) func(context.Context, cloudevent.Event) error {
	return func(ctx context.Context, e cloudevent.Event) error {
		return s.HandleEnvelope(ctx, e.Data())
	}
}
