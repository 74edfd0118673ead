package setup

import (
	"context"
	"net/http"

	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/publish"
)

// Publisher returns the process's Pub/Sub publisher for the RunDelta topic.
func (a *App) Publisher(ctx context.Context) (poll.Publisher, error) {
	return lazy(ctx, a, "publisher", func(context.Context) (*publish.Publisher, error) {
		return publish.New(a.Config.Common.ProjectID, a.Config.Common.Topic), nil
	})
}

// engine builds a poll engine for src with the common settings.
func (a *App) engine(ctx context.Context, src poll.Source, kind string) (*poll.Engine, error) {
	store, err := a.Store(ctx)
	if err != nil {
		return nil, err
	}
	pub, err := a.Publisher(ctx)
	if err != nil {
		return nil, err
	}
	c := a.Config.Common
	return poll.New(src, store, pub, a.Clock, a.Log, poll.Options{
		Tenant:            c.Tenant,
		Environment:       c.Environment,
		Overlap:           c.PollOverlap,
		InitialLookback:   c.InitialLookback,
		LeaseTTL:          c.LeaseTTL,
		RunRetention:      c.RunRetention,
		SourceKind:        kind,
		MaxBackfillWindow: c.MaxBackfillWindow,
		MaxRunsPerPoll:    c.PollMaxRuns,
	}), nil
}

// PollHandler is a poll function's whole HTTP handler: the process's App is built on the first
// request and engine picks the source ((*App).ArgoEngine, (*App).AirflowEngine).
func PollHandler(engine func(*App, context.Context) (*poll.Engine, error)) http.Handler {
	return poll.Handler(func(ctx context.Context) (poll.Poller, error) {
		app, err := Default()
		if err != nil {
			return nil, err
		}
		return engine(app, ctx)
	}, poll.HTTPOptions{})
}
