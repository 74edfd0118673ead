// Package local runs FARM on one machine the way Google Cloud runs it: an in-process Pub/Sub,
// push deliveries to the functions as CloudEvents, and a scheduler that calls the poll functions.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/farmobs/farm/pkg/event"
)

// StartPubSub starts the in-process Pub/Sub server. Point clients at it with
// PUBSUB_EMULATOR_HOST=srv.Addr.
func StartPubSub() *pstest.Server { return pstest.NewServer() }

// EnsureTopic creates topic (an id) in project unless it exists.
func EnsureTopic(ctx context.Context, c *pubsub.Client, project, topic string) error {
	_, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicName(project, topic)})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// EnsureSubscription creates an ordered subscription sub on topic unless it exists.
func EnsureSubscription(ctx context.Context, c *pubsub.Client, project, topic, sub string) error {
	_, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  subName(project, sub),
		Topic:                 topicName(project, topic),
		AckDeadlineSeconds:    60,
		EnableMessageOrdering: true,
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("create subscription %s: %w", sub, err)
	}
	return nil
}

func topicName(project, topic string) string { return "projects/" + project + "/topics/" + topic }
func subName(project, sub string) string     { return "projects/" + project + "/subscriptions/" + sub }

// Push receives from subscription sub and delivers each message to target as a Pub/Sub
// CloudEvent in binary mode, like an Eventarc trigger: a 2xx answer acknowledges it, anything
// else nacks it so it is redelivered. It returns when ctx is done.
func Push(ctx context.Context, c *pubsub.Client, project, topic, sub, target string, hc *http.Client, log *slog.Logger) error {
	s := c.Subscriber(sub)
	err := s.Receive(ctx, func(ctx context.Context, m *pubsub.Message) {
		if err := deliver(ctx, hc, target, project, topic, sub, m); err != nil {
			log.WarnContext(ctx, "push delivery failed; message will be redelivered", "subscription", sub, "target", target, "message_id", m.ID, "error", err)
			m.Nack()
			return
		}
		m.Ack()
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("receive %s: %w", sub, err)
	}
	return nil
}

func deliver(ctx context.Context, hc *http.Client, target, project, topic, sub string, m *pubsub.Message) error {
	body, err := event.EnvelopeJSON(event.Message{
		ID: m.ID, PublishTime: m.PublishTime, Attributes: m.Attributes, Data: m.Data,
		OrderingKey: m.OrderingKey, Subscription: subName(project, sub),
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	CloudEventHeaders(req.Header, m.ID, topicName(project, topic), m.PublishTime)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %s", target, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// CloudEventHeaders sets the binary-mode CloudEvent headers of a Pub/Sub messagePublished event.
func CloudEventHeaders(h http.Header, id, topic string, published time.Time) {
	h.Set("Content-Type", "application/json")
	h.Set("ce-id", id)
	h.Set("ce-specversion", "1.0")
	h.Set("ce-type", "google.cloud.pubsub.topic.v1.messagePublished")
	h.Set("ce-source", "//pubsub.googleapis.com/"+topic)
	h.Set("ce-time", published.UTC().Format(time.RFC3339Nano))
}
