package setup

import (
	"context"
	"errors"

	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
)

// ArgoEngine returns the poll engine of the configured Argo Server (FARM_ARGO_URL).
func (a *App) ArgoEngine(ctx context.Context) (*poll.Engine, error) {
	return lazy(ctx, a, "argo engine", func(ctx context.Context) (*poll.Engine, error) {
		if a.Config.Argo.URL == nil {
			return nil, errors.New("FARM_ARGO_URL is not set: no Argo Server to poll")
		}
		opts := []argo.Option{argo.WithClock(a.Clock), argo.WithLogger(a.Log)}
		if f := a.Config.Argo.TokenFile; f != "" {
			opts = append(opts, argo.WithTokenFile(f))
		}
		src, err := argo.New(a.Config.Argo, a.Config.Common, opts...)
		if err != nil {
			return nil, err
		}
		return a.engine(ctx, src, event.SourceArgo)
	})
}
