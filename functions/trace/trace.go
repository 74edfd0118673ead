// Package trace is the Trace function: Pub/Sub pushes each message of RunDeltas (the push
// envelope, or the same as a messagePublished CloudEvent) and pkg/apm sends its spans to the
// DataDog agent named by the DD_* settings, answering only once the agent has them. It is an HTTP
// function so that FARM reads the envelope itself (pkg/push): an error answer makes Pub/Sub
// redeliver (agent or ledger unreachable); messages that can never be processed are dead-lettered
// and acknowledged. It serves many requests at once: concurrent deliveries are group-committed by
// pkg/apm (one tracer session and one ledger read and write for what arrives together), each
// answered with its own outcome.
package trace

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/push"
	"github.com/farmobs/farm/pkg/setup"
)

// Handle is the function's entry point. Its dependencies (configuration, the ledger's Firestore
// client, the tracer) are the process's setup.App's, built on the first call; a failure is tried
// again on the next.
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }

var handler = push.Handler(func(ctx context.Context) (push.Consumer, error) {
	app, err := setup.Default()
	if err != nil {
		return nil, fmt.Errorf("trace function: %w", err)
	}
	tr, err := app.Tracer(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace function: %w", err)
	}
	return tr.HandleEnvelope, nil
}, slog.Default)

// Handler serves deliveries with tr (tests and embedding).
func Handler(tr *apm.Tracer) http.Handler {
	return push.Handler(func(context.Context) (push.Consumer, error) { return tr.HandleEnvelope, nil }, slog.Default)
}
