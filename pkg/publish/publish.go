// Package publish sends RunDelta messages to Pub/Sub and waits for every acknowledgement.
package publish

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/farmobs/farm/pkg/event"
)

// Publisher publishes to one topic with message ordering on. The client is created on first use.
// PUBSUB_EMULATOR_HOST is honoured by the client library; client options reach any other server
// (the local runner's in-process one).
type Publisher struct {
	project, topic string
	opts           []option.ClientOption

	mu     sync.Mutex
	client *pubsub.Client
	pub    *pubsub.Publisher
}

// New returns a Publisher for topic (an id or a full projects/…/topics/… name) in project.
func New(project, topic string, opts ...option.ClientOption) *Publisher {
	return &Publisher{project: project, topic: topic, opts: opts}
}

func (p *Publisher) publisher(ctx context.Context) (*pubsub.Publisher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pub != nil {
		return p.pub, nil
	}
	if p.project == "" {
		return nil, errors.New("pubsub: no project id (set FARM_PROJECT_ID)")
	}
	// The client outlives this call: its connection must not die with the request's context.
	c, err := pubsub.NewClient(context.WithoutCancel(ctx), p.project, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	pub := c.Publisher(p.topic)
	pub.EnableMessageOrdering = true
	p.client, p.pub = c, pub
	return pub, nil
}

// Publish sends msgs and returns when Pub/Sub has acknowledged all of them, or with every error
// (joined). Messages of one ordering key stay in order; after a failure that key is resumed so the
// next poll can publish it again.
func (p *Publisher) Publish(ctx context.Context, msgs []event.Message) error {
	pub, err := p.publisher(ctx)
	if err != nil {
		return err
	}
	results := make([]*pubsub.PublishResult, len(msgs))
	for i, m := range msgs {
		results[i] = pub.Publish(ctx, &pubsub.Message{Data: m.Data, Attributes: m.Attributes, OrderingKey: m.OrderingKey})
	}
	var errs []error
	for i, r := range results {
		if _, err := r.Get(ctx); err != nil {
			if key := msgs[i].OrderingKey; key != "" {
				pub.ResumePublish(key)
			}
			if len(errs) < 5 { // the first few say enough; the count says the rest
				errs = append(errs, err)
			} else if len(errs) == 5 {
				errs = append(errs, errors.New("and more"))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("publish to %s: %w", p.topic, errors.Join(errs...))
	}
	return nil
}

// Close flushes and stops the publisher and closes the client.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pub == nil {
		return nil
	}
	p.pub.Stop()
	err := p.client.Close()
	p.pub, p.client = nil, nil
	return err
}
