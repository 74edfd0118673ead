package push_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/farmobs/farm/pkg/push"
)

func TestHandler(t *testing.T) {
	const env = `{"message":{"data":"e30=","messageId":"1"},"subscription":"projects/p/subscriptions/s"}`
	quiet := func() *slog.Logger { return slog.New(slog.DiscardHandler) }
	for _, c := range []struct {
		name, method, ctype, body string
		consumerErr, configErr    error
		code                      int
		got                       string // the envelope the consumer must receive
		answerHas                 string
	}{
		{"push body", "POST", "application/json", env, nil, nil, 204, env, ""},
		{"binary CloudEvent", "POST", "application/json", env, nil, nil, 204, env, ""},
		{"structured CloudEvent", "POST", "application/cloudevents+json; charset=utf-8",
			`{"specversion":"1.0","type":"google.cloud.pubsub.topic.v1.messagePublished","id":"1","source":"s","data":` + env + `}`, nil, nil, 204, env, ""},
		{"structured CloudEvent without data", "POST", "application/cloudevents+json", `{"specversion":"1.0"}`, nil, nil, 204, `{"specversion":"1.0"}`, ""},
		{"not a POST", "GET", "", "", nil, nil, 405, "", "POSTed"},
		{"consumer wants it again", "POST", "application/json", env, errors.New("agent unreachable: " + strings.Repeat("x", 5000)), nil, 500, env, "agent unreachable"},
		{"not configured", "POST", "application/json", env, nil, errors.New("FARM_PROJECT_ID is required"), 500, "", "FARM_PROJECT_ID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got string
			h := push.Handler(func(context.Context) (push.Consumer, error) {
				if c.configErr != nil {
					return nil, c.configErr
				}
				return func(_ context.Context, b []byte) error { got = string(b); return c.consumerErr }, nil
			}, quiet)
			req := httptest.NewRequest(c.method, "/", strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ctype)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			answer, _ := io.ReadAll(rec.Body)
			if rec.Code != c.code || got != c.got {
				t.Errorf("answered %d, consumer got %q; want %d and %q", rec.Code, got, c.code, c.got)
			}
			if !strings.Contains(string(answer), c.answerHas) || len(answer) > 1024 {
				t.Errorf("answer %d bytes %.200q, want it short and naming %q", len(answer), answer, c.answerHas)
			}
		})
	}
}

// A body beyond MaxBody reaches the consumer cut, so it is refused as a malformed envelope.
func TestHandlerCutsHugeBodies(t *testing.T) {
	var n int
	h := push.Handler(func(context.Context) (push.Consumer, error) {
		return func(_ context.Context, b []byte) error { n = len(b); return nil }, nil
	}, slog.Default)
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("a", push.MaxBody+10)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if n != push.MaxBody || rec.Code != 204 || rec.Body.Len() != 0 {
		t.Errorf("consumer got %d bytes, answer %d with %d bytes", n, rec.Code, rec.Body.Len())
	}
}
