package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message is a Pub/Sub message as a push subscription or Eventarc delivers it inside a CloudEvent
// (type google.cloud.pubsub.topic.v1.messagePublished).
type Message struct {
	ID           string
	PublishTime  time.Time
	Attributes   map[string]string
	Data         []byte
	OrderingKey  string
	Subscription string
}

// ErrBadEnvelope marks a CloudEvent body that is not a Pub/Sub message: permanent, never retried.
var ErrBadEnvelope = errors.New("not a Pub/Sub message envelope")

// ParseMessage decodes the body of a messagePublished CloudEvent:
// {"message":{"data":"<base64>","attributes":{…},"messageId":"…","publishTime":"…"},"subscription":"…"}.
func ParseMessage(body []byte) (Message, error) {
	var env struct {
		Message *struct {
			Data        []byte            `json:"data"` // base64 in JSON, decoded by encoding/json
			Attributes  map[string]string `json:"attributes"`
			MessageID   string            `json:"messageId"`
			PublishTime string            `json:"publishTime"`
			OrderingKey string            `json:"orderingKey"`
		} `json:"message"`
		Subscription string `json:"subscription"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
	}
	if env.Message == nil {
		return Message{}, fmt.Errorf("%w: no \"message\" field", ErrBadEnvelope)
	}
	m := Message{
		ID:           env.Message.MessageID,
		Attributes:   env.Message.Attributes,
		Data:         env.Message.Data,
		OrderingKey:  env.Message.OrderingKey,
		Subscription: env.Subscription,
	}
	if m.ID == "" {
		return Message{}, fmt.Errorf("%w: message has no messageId", ErrBadEnvelope)
	}
	if env.Message.PublishTime != "" {
		t, err := time.Parse(time.RFC3339Nano, env.Message.PublishTime)
		if err != nil {
			return Message{}, fmt.Errorf("%w: publishTime %q: %w", ErrBadEnvelope, env.Message.PublishTime, err)
		}
		m.PublishTime = t
	}
	return m, nil
}

// EnvelopeJSON is the inverse of ParseMessage: the CloudEvent body a push delivery of m carries.
// The local runner and tests use it to deliver messages the way Google Cloud does.
func EnvelopeJSON(m Message) ([]byte, error) {
	type msg struct {
		Data        []byte            `json:"data"`
		Attributes  map[string]string `json:"attributes,omitempty"`
		MessageID   string            `json:"messageId"`
		PublishTime string            `json:"publishTime"`
		OrderingKey string            `json:"orderingKey,omitempty"`
	}
	return json.Marshal(struct {
		Message      msg    `json:"message"`
		Subscription string `json:"subscription"`
	}{
		Message: msg{
			Data:        m.Data,
			Attributes:  m.Attributes,
			MessageID:   m.ID,
			PublishTime: m.PublishTime.UTC().Format(time.RFC3339Nano),
			OrderingKey: m.OrderingKey,
		},
		Subscription: m.Subscription,
	})
}
