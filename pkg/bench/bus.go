package bench

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/local"
	"github.com/farmobs/farm/pkg/publish"
)

// Pub/Sub project and topic of the in-process server.
const (
	project = "farm-bench"
	topic   = "farm-run-deltas"
)

// Bus is the in-process Pub/Sub server with FARM's real publisher on it.
type Bus struct {
	Server    *pstest.Server
	Publisher *publish.Publisher
	conn      *grpc.ClientConn
	client    *pubsub.Client
}

// NewBus starts the in-process Pub/Sub server and creates the topic.
func NewBus(ctx context.Context) (*Bus, error) {
	srv := pstest.NewServer()
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("pubsub connection: %w", err)
	}
	b := &Bus{Server: srv, conn: conn}
	if b.client, err = pubsub.NewClient(ctx, project, option.WithGRPCConn(conn)); err != nil {
		b.Close()
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	if err := local.EnsureTopic(ctx, b.client, project, topic); err != nil {
		b.Close()
		return nil, fmt.Errorf("pubsub topic: %w", err)
	}
	b.Publisher = publish.New(project, topic, option.WithGRPCConn(conn))
	return b, nil
}

// Close stops everything NewBus started.
func (b *Bus) Close() {
	if b.Publisher != nil {
		_ = b.Publisher.Close()
	}
	if b.client != nil {
		_ = b.client.Close()
	}
	_ = b.conn.Close()
	_ = b.Server.Close()
}

// Delivery is one published message and the delta it carries.
type Delivery struct {
	Message event.Message
	Delta   *event.RunDelta
}

// Drain returns what was published since the previous call, in publication order, and drops it
// from the server so that a long run does not keep every message.
func (b *Bus) Drain() ([]Delivery, error) {
	msgs := b.Server.Messages()
	out := make([]Delivery, 0, len(msgs))
	for _, m := range msgs {
		d, err := event.Decode(m.Data)
		if err != nil {
			return nil, fmt.Errorf("published message %s is not a RunDelta: %w", m.ID, err)
		}
		out = append(out, Delivery{Delta: d, Message: event.Message{ID: m.ID, PublishTime: m.PublishTime,
			Attributes: m.Attributes, Data: m.Data, OrderingKey: m.OrderingKey}})
	}
	b.Server.ClearMessages()
	return out, nil
}
