// Package trace is the Trace function: Pub/Sub delivers each RunDelta as a CloudEvent
// (google.cloud.pubsub.topic.v1.messagePublished) and pkg/trace sends its spans to the DataDog
// agent named by the DD_* settings, returning only once the agent has them. Returning an error
// makes Pub/Sub redeliver (agent or ledger unreachable); messages that can never be processed are
// logged and acknowledged.
package trace

import (
	"context"
	"fmt"
	"sync"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/farmobs/farm/pkg/setup"
	"github.com/farmobs/farm/pkg/trace"
)

// Handle is the function's entry point. Its dependencies (configuration, the ledger's Firestore
// client, the tracer settings) are built on the first call; a failure is tried again on the next.
func Handle(ctx context.Context, e cloudevent.Event) error {
	tr, err := tracer.get(ctx)
	if err != nil {
		return fmt.Errorf("trace function: %w", err)
	}
	return tr.HandleEnvelope(ctx, e.Data())
}

// Handler serves CloudEvents with tr (tests and embedding).
func Handler(tr *trace.Tracer) func(context.Context, cloudevent.Event) error {
	return func(ctx context.Context, e cloudevent.Event) error {
		return tr.HandleEnvelope(ctx, e.Data())
	}
}

// tracer is the process's Tracer, built lazily.
var tracer lazyTracer

type lazyTracer struct {
	mu sync.Mutex
	tr *trace.Tracer
}

func (l *lazyTracer) get(ctx context.Context) (*trace.Tracer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tr != nil {
		return l.tr, nil
	}
	app, err := setup.Default()
	if err != nil {
		return nil, err
	}
	ledger, err := app.Ledger(ctx)
	if err != nil {
		return nil, err
	}
	dl, err := app.DeadLetter(ctx, "trace")
	if err != nil {
		return nil, err
	}
	o := trace.OptionsFrom(app.Config.Trace)
	o.Ledger, o.Clock, o.Log, o.DeadLetter = ledger, app.Clock, app.Log, dl
	if l.tr, err = trace.New(o); err != nil {
		return nil, err
	}
	return l.tr, nil
}
