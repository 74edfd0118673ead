// Package push serves Pub/Sub deliveries to a consumer function over HTTP: the push subscription's
// plain body, or the same body as a CloudEvent (an Eventarc trigger, the local runner). FARM reads
// the body itself instead of letting the Functions Framework decode a CloudEvent: the framework
// answers a malformed envelope 400 before any FARM code runs (Pub/Sub then redelivers it until its
// dead-letter policy gives up) and echoes the whole body back.
//
// Answers: 204 when the consumer acknowledges the message (processed, or refused for good and
// dead-lettered), 500 with a short JSON error when it must come back. No answer repeats the body.
package push

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// MaxBody bounds what is read of a delivery: a Pub/Sub message is at most 10 MB, its base64 in the
// envelope about 13.4 MB. A larger body is cut, so it reaches the consumer as a malformed envelope.
const MaxBody = 16 << 20

// maxError bounds the error message of a 500 answer.
const maxError = 512

// Consumer handles the body of one delivery, a Pub/Sub push envelope
// {"message":{…},"subscription":"…"}; an error means the message must be delivered again.
type Consumer func(ctx context.Context, envelope []byte) error

// Handler serves deliveries to consume.
func Handler(consume func(ctx context.Context) (Consumer, error), log func() *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			answer(w, http.StatusMethodNotAllowed, "Pub/Sub deliveries are POSTed")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody))
		if err != nil {
			// The connection broke mid-body: the push is retried by Pub/Sub.
			answer(w, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
		c, err := consume(ctx)
		if err != nil {
			log().ErrorContext(ctx, "consumer is not configured", "error", err.Error())
			answer(w, http.StatusInternalServerError, "configuration: "+err.Error())
			return
		}
		if err := c(ctx, Envelope(r.Header.Get("Content-Type"), body)); err != nil {
			answer(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// Envelope returns the Pub/Sub push envelope of a delivery: the body as it is, or, for a
// structured-mode CloudEvent (application/cloudevents+json), its data. A structured event whose
// data cannot be found is returned whole, to be refused as a malformed envelope.
func Envelope(contentType string, body []byte) []byte {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/cloudevents+json" {
		return body
	}
	var ce struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &ce) != nil || len(ce.Data) == 0 {
		return body
	}
	return ce.Data
}

func answer(w http.ResponseWriter, code int, msg string) {
	if len(msg) > maxError {
		msg = strings.ToValidUTF8(msg[:maxError], "") + "…"
	}
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
