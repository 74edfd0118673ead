// Package bigquerysink is the BigQuerySink function: Pub/Sub pushes each RunDelta (the push
// envelope, or the same as a messagePublished CloudEvent) and pkg/sink writes one row per task
// event. It is an HTTP function so that FARM reads the envelope itself (pkg/push): an error answer
// makes Pub/Sub redeliver; messages that can never be processed are dead-lettered and
// acknowledged.
package bigquerysink

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/farmobs/farm/pkg/push"
	"github.com/farmobs/farm/pkg/setup"
	"github.com/farmobs/farm/pkg/sink"
)

// Handle is the function's entry point; its dependencies are built on the first call.
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }

var handler = push.Handler(func(ctx context.Context) (push.Consumer, error) {
	app, err := setup.Default()
	if err != nil {
		return nil, fmt.Errorf("bigquery sink: %w", err)
	}
	s, err := app.Sink(ctx)
	if err != nil {
		return nil, fmt.Errorf("bigquery sink: %w", err)
	}
	return s.HandleEnvelope, nil
}, slog.Default)

// Handler serves deliveries with s (tests and embedding).
func Handler(s *sink.Sink) http.Handler {
	return push.Handler(func(context.Context) (push.Consumer, error) { return s.HandleEnvelope, nil }, slog.Default)
}
