package push

import (
	"bytes"
	"testing"
)

// FuzzEnvelope: whatever a delivery's content type and body, Envelope returns the body or the
// structured CloudEvent's data, never a panic.
func FuzzEnvelope(f *testing.F) {
	const env = `{"message":{"data":"e30=","messageId":"1"},"subscription":"projects/p/subscriptions/s"}`
	f.Add("application/json", []byte(env))
	f.Add("application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","data":`+env+`}`))
	f.Add("application/cloudevents+json; charset=utf-8", []byte(`{"data":null}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		got := Envelope(contentType, body)
		if !bytes.Equal(got, body) && !bytes.Contains(body, bytes.TrimSpace(got)) {
			t.Fatalf("Envelope returned bytes that are not in the body: %q", got)
		}
	})
}
