package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/pkg/event"
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

// Delivery is one delta and the published message that carried it (a batch: its other deltas
// have Deliveries of their own with the same Message).
type Delivery struct {
	Message event.Message
	Delta   *event.RunDelta
}

// During runs fn while taking what is published off the server every few milliseconds, keeping
// the first keep messages: the in-process server would otherwise hold every message of a cold
// poll in the measured process, which a poll publishing to Google's Pub/Sub does not. It returns
// the messages kept, decoded.
func (b *Bus) During(keep int, fn func() error) ([]Delivery, error) {
	var (
		mu   sync.Mutex
		kept []*pstest.Message
	)
	take := func() {
		msgs := b.Server.Messages()
		if len(msgs) == 0 {
			return
		}
		b.Server.ClearMessages()
		mu.Lock()
		kept = append(kept, msgs[:min(len(msgs), max(keep-len(kept), 0))]...)
		mu.Unlock()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				take()
			}
		}
	})
	err := fn()
	close(done)
	wg.Wait()
	take()
	if err != nil {
		return nil, err
	}
	return decodeAll(kept)
}

// Drain returns what was published since the previous call, in publication order, and drops it
// from the server so that a long run does not keep every message.
func (b *Bus) Drain() ([]Delivery, error) {
	msgs := b.Server.Messages()
	b.Server.ClearMessages()
	return decodeAll(msgs)
}

func decodeAll(msgs []*pstest.Message) ([]Delivery, error) {
	out := make([]Delivery, 0, len(msgs))
	for _, m := range msgs {
		ds, err := event.DecodeDeltas(m.Data)
		if err != nil {
			return nil, fmt.Errorf("published message %s is not a RunDelta batch: %w", m.ID, err)
		}
		msg := event.Message{ID: m.ID, PublishTime: m.PublishTime, Attributes: m.Attributes, Data: m.Data, OrderingKey: m.OrderingKey}
		for i := range ds {
			out = append(out, Delivery{Delta: &ds[i], Message: msg})
		}
	}
	return out, nil
}
