package setup

import (
	"context"

	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/publish"
	"github.com/farmobs/farm/pkg/sink"
)

// Sink returns the configured BigQuery (or file) sink.
func (a *App) Sink(ctx context.Context) (*sink.Sink, error) {
	return lazy(ctx, a, "sink", func(ctx context.Context) (*sink.Sink, error) {
		dl, err := a.DeadLetter(ctx, "sink")
		if err != nil {
			return nil, err
		}
		return sink.FromConfig(a.Config.Sink, a.Log, sink.WithDeadLetter(dl))
	})
}

// DeadLetter returns the keeper of consumer's messages that can never be processed: the
// FARM_DEAD_LETTER_TOPIC topic, or only the log when it is not set.
func (a *App) DeadLetter(ctx context.Context, consumer string) (*deadletter.Keeper, error) {
	topic := a.Config.Common.DeadLetterTopic
	if topic == "" {
		return deadletter.New(nil, consumer, a.Log), nil
	}
	pub, err := lazy(ctx, a, "dead-letter publisher", func(context.Context) (*publish.Publisher, error) {
		return publish.New(a.Config.Common.ProjectID, topic), nil
	})
	if err != nil {
		return nil, err
	}
	return deadletter.New(pub, consumer, a.Log), nil
}
