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
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/logging"
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

// Retry is how a push subscription redelivers a message its target refused, as Pub/Sub's retry
// policy and dead-letter policy do: after the n-th failed delivery it waits MinBackoff·2^(n-1),
// at most MaxBackoff, and after MaxAttempts deliveries the message is dead-lettered.
type Retry struct {
	MinBackoff, MaxBackoff time.Duration
	MaxAttempts            int
}

// DefaultRetry is what terraform gives the deployed subscriptions (retry_backoff 10s–600s,
// max_delivery_attempts 10).
var DefaultRetry = Retry{MinBackoff: 10 * time.Second, MaxBackoff: 600 * time.Second, MaxAttempts: 10}

// Backoff is the wait after the n-th failed delivery (n ≥ 1).
func (r Retry) Backoff(n int) time.Duration {
	d := r.MinBackoff
	for i := 1; i < n && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// PushConfig says what Push delivers where.
type PushConfig struct {
	Project, Topic, Subscription string
	Target                       string // the function's URL
	HTTP                         *http.Client
	Log                          *slog.Logger
	Retry                        Retry // zero: DefaultRetry
}

// Push receives from the subscription and delivers each message to the target as a Pub/Sub
// CloudEvent in binary mode, like an Eventarc trigger: a 2xx answer acknowledges it; anything else
// holds it for the retry policy's backoff and then nacks it, so it is redelivered (messages after
// it with the same ordering key wait, as on Pub/Sub). After MaxAttempts deliveries it is dropped
// with one ERROR line saying so: the local dead letter. While the target keeps failing, one
// warning says so, and one line when it recovers. It returns when ctx is done.
func Push(ctx context.Context, c *pubsub.Client, cfg PushConfig) error {
	if cfg.Retry == (Retry{}) {
		cfg.Retry = DefaultRetry
	}
	p := &pusher{cfg: cfg, attempts: map[string]int{}}
	s := c.Subscriber(cfg.Subscription)
	err := s.Receive(ctx, p.handle)
	if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("receive %s: %w", cfg.Subscription, err)
	}
	return nil
}

type pusher struct {
	cfg      PushConfig
	mu       sync.Mutex
	attempts map[string]int // failed deliveries of the messages being retried, by message id
}

// FinishTimeout bounds how long a delivery or a scheduled poll under way may take to finish once
// the runner is stopping: it is let finish, so that stopping reads as no failure.
const FinishTimeout = 30 * time.Second

// finishing returns a context for work that should finish even if ctx ends, within FinishTimeout
// of that end.
func finishing(ctx context.Context) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(FinishTimeout, cancel)
		context.AfterFunc(fctx, func() { t.Stop() })
	})
	return fctx, func() { stop(); cancel() }
}

func (p *pusher) handle(ctx context.Context, m *pubsub.Message) {
	cfg := p.cfg
	dctx, done := finishing(ctx)
	err := deliver(dctx, cfg.HTTP, cfg.Target, cfg.Project, cfg.Topic, cfg.Subscription, m)
	done()
	p.mu.Lock()
	if err == nil {
		_, retried := p.attempts[m.ID]
		delete(p.attempts, m.ID)
		recovered := retried && len(p.attempts) == 0
		p.mu.Unlock()
		if recovered {
			cfg.Log.Log(ctx, logging.LevelNotice, "push deliveries succeed again: no message is waiting for a retry", "subscription", cfg.Subscription, "target", cfg.Target)
		}
		m.Ack()
		return
	}
	// One warning when messages start waiting for retries, not one per failed delivery.
	first := len(p.attempts) == 0
	p.attempts[m.ID]++
	n := p.attempts[m.ID]
	if n >= cfg.Retry.MaxAttempts {
		delete(p.attempts, m.ID)
	}
	p.mu.Unlock()
	if ctx.Err() != nil {
		m.Nack() // stopping: the message stays for the next start
		return
	}
	if n >= cfg.Retry.MaxAttempts {
		cfg.Log.ErrorContext(ctx, "message dead-lettered: its push delivery failed every time", "subscription", cfg.Subscription,
			"target", cfg.Target, "message_id", m.ID, "ordering_key", m.OrderingKey, "attempts", n, "error", err.Error())
		m.Ack() // on Pub/Sub it would move to the dead-letter topic
		return
	}
	wait := cfg.Retry.Backoff(n)
	if first {
		cfg.Log.WarnContext(ctx, fmt.Sprintf("push deliveries fail; each message is retried with backoff (%s doubling to %s, %d attempts, then dead-lettered)",
			cfg.Retry.MinBackoff, cfg.Retry.MaxBackoff, cfg.Retry.MaxAttempts),
			"subscription", cfg.Subscription, "target", cfg.Target, "error", err.Error())
	} else {
		cfg.Log.DebugContext(ctx, "push delivery failed; retrying after backoff", "subscription", cfg.Subscription,
			"message_id", m.ID, "attempt", n, "wait", wait, "error", err.Error())
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	m.Nack()
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
		return fmt.Errorf("%s answered %s: %s", target, resp.Status, excerpt(msg, 300))
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
