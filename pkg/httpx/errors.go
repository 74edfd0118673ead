package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// StatusError is a response with a non-2xx status.
type StatusError struct {
	Method     string
	Path       string // the request path, without the query
	StatusCode int
	Status     string // e.g. "404 Not Found"
	// Message is the server's own explanation: the "message", "detail", "error" or "title" of a
	// JSON error body (Argo/gRPC-gateway, Kubernetes, Airflow problem+json), else the body's text.
	Message string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Method, e.Path, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// StatusCode returns the HTTP status of err's StatusError, or 0 when err has none.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// IsNotFound reports whether err is a 404 response.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

func (c *Client) statusError(req Request, resp *http.Response, body io.Reader) *StatusError {
	raw, _ := io.ReadAll(io.LimitReader(body, errorBodyLimit))
	status := resp.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return &StatusError{
		Method:     req.Method,
		Path:       req.Path,
		StatusCode: resp.StatusCode,
		Status:     status,
		Message:    serverMessage(raw),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now()),
	}
}

// maxMessage bounds the server text quoted in an error (an HTML error page can be long).
const maxMessage = 512

// serverMessage extracts the explanation from an error body.
func serverMessage(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		for _, k := range []string{"message", "detail", "error", "title"} {
			v, ok := obj[k]
			if !ok {
				continue
			}
			var s string
			if json.Unmarshal(v, &s) == nil {
				if s != "" {
					return truncate(s)
				}
				continue
			}
			// A structured detail (e.g. a list of validation errors) is quoted as compact JSON.
			var buf bytes.Buffer
			if json.Compact(&buf, v) == nil {
				return truncate(buf.String())
			}
		}
	}
	return truncate(strings.Join(strings.Fields(string(raw)), " "))
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
