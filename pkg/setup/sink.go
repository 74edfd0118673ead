package setup

import (
	"context"

	"github.com/farmobs/farm/pkg/sink"
)

// Sink returns the configured BigQuery (or file) sink.
func (a *App) Sink(ctx context.Context) (*sink.Sink, error) {
	return lazy(ctx, a, "sink", func(context.Context) (*sink.Sink, error) {
		return sink.FromConfig(a.Config.Sink, a.Log)
	})
}
