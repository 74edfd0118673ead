package poll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

// maxBody bounds what a caller may send: a backfill request is a few dozen bytes.
const maxBody = 64 << 10

// Poller runs a poll; *Engine implements it.
type Poller interface {
	Poll(ctx context.Context, req Request) (*Result, error)
}

// HTTPOptions configure the HTTP function.
type HTTPOptions struct {
	Clock clock.Clock
	Log   *slog.Logger
}

// Handler is the poll functions' HTTP contract:
//   - an empty POST (Cloud Scheduler) runs an incremental poll;
//   - a JSON body {"since": RFC 3339, "until": RFC 3339, "replay": bool} runs a backfill;
//   - answers are JSON: the Result, or {"error": "..."} with 400 (bad request), 409 (a poll is
//     running), 502 (the orchestrator failed) or 503 (Pub/Sub or the state store failed).
//
// getPoller is called per request so that the function's dependencies are built lazily, on the
// first request, and a configuration error is answered rather than crashing the instance.
func Handler(getPoller func(ctx context.Context) (Poller, error), opts HTTPOptions) http.Handler {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		log := opts.Log
		if log == nil {
			log = slog.Default() // read per request: the function sets it up lazily
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "use POST: an empty body polls, a JSON body {\"since\",\"until\",\"replay\"} backfills")
			return
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
		if len(bytes.TrimSpace(raw)) > 0 && !isJSON(r.Header.Get("Content-Type")) {
			// An empty body polls whatever its content type (Cloud Scheduler may set one); a
			// backfill body is JSON, and e.g. curl -d sends it as a form unless told otherwise.
			writeError(w, http.StatusUnsupportedMediaType, "a backfill body is JSON: send it with Content-Type: application/json")
			return
		}
		req, err := ParseRequest(bytes.NewReader(raw), opts.Clock.Now())
		if err != nil {
			log.WarnContext(ctx, "poll request refused", "error", err.Error())
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		p, err := getPoller(ctx)
		if err != nil {
			log.ErrorContext(ctx, "poll function is not configured", "error", err)
			writeError(w, http.StatusInternalServerError, "configuration: "+err.Error())
			return
		}
		res, err := p.Poll(ctx, req)
		logResult(ctx, log, res, err)
		if errors.Is(err, ErrBadRequest) {
			// Refused before anything ran: the same {"error"} as every other 400.
			writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
			return
		}
		if err != nil {
			writeJSON(w, statusOf(err), struct {
				Error  string  `json:"error"`
				Result *Result `json:"result,omitempty"`
			}{err.Error(), res})
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// isJSON reports whether a request's Content-Type is JSON; an absent one is taken as JSON (the
// body is checked anyway).
func isJSON(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrBusy):
		return http.StatusConflict
	case errors.Is(err, ErrSource):
		return http.StatusBadGateway
	case errors.Is(err, ErrPublish), errors.Is(err, ErrStore):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// ParseRequest reads a poll request body: empty means incremental; otherwise a backfill window.
// It refuses unknown fields, unparseable or offset-less times, since after until and windows in
// the future, each with a message naming the field. (The engine checks the window's size.)
func ParseRequest(body io.Reader, now time.Time) (Request, error) {
	raw, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return Request{}, fmt.Errorf("read body: %w", err)
	}
	if len(raw) > maxBody {
		return Request{}, fmt.Errorf("body is larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return Request{}, nil
	}
	if c := bytes.TrimSpace(raw)[0]; c != '{' {
		return Request{}, fmt.Errorf("body must be a JSON object like {\"since\": \"2026-01-02T15:04:05Z\", \"until\": ..., \"replay\": false}, not %s; send an empty body for an incremental poll", jsonKind(c))
	}
	var in struct {
		Since  *string `json:"since"`
		Until  *string `json:"until"`
		Replay bool    `json:"replay"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Request{}, fmt.Errorf("body is not a backfill request {\"since\",\"until\",\"replay\"}: %s", jsonProblem(err))
	}
	if dec.More() {
		return Request{}, errors.New("body has data after the JSON object")
	}
	if in.Since == nil {
		return Request{}, errors.New("since is required for a backfill (RFC 3339, e.g. 2026-01-02T15:04:05Z); send an empty body for an incremental poll")
	}
	since, err := parseTime("since", *in.Since)
	if err != nil {
		return Request{}, err
	}
	until := now
	if in.Until != nil {
		if until, err = parseTime("until", *in.Until); err != nil {
			return Request{}, err
		}
	}
	switch {
	case !since.Before(until):
		return Request{}, fmt.Errorf("since (%s) must be before until (%s)", since.Format(time.RFC3339), until.Format(time.RFC3339))
	case until.After(now.Add(time.Minute)):
		return Request{}, fmt.Errorf("until (%s) is in the future", until.Format(time.RFC3339))
	}
	return Request{Since: since, Until: until, Replay: in.Replay}, nil
}

func parseTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an RFC 3339 time with an offset, e.g. 2026-01-02T15:04:05Z", field, v)
	}
	return t.UTC(), nil
}

// jsonKind names the JSON value that starts with c, for a person reading the error.
func jsonKind(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return "text that is not JSON"
}

func jsonProblem(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %q must be a %s", ute.Field, ute.Type)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field") {
		return strings.TrimPrefix(msg, "json: ")
	}
	return err.Error()
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// LogResult writes the one summary line per poll ("poll finished" or "poll failed") that FARM's
// log-based metrics read; the poll function and `farm poll` both log it.
func LogResult(ctx context.Context, log *slog.Logger, res *Result, err error) {
	logResult(ctx, log, res, err)
}

func logResult(ctx context.Context, log *slog.Logger, res *Result, err error) {
	if res == nil {
		return
	}
	attrs := []any{
		"source", res.Source, "mode", res.Mode,
		"runs_seen", res.RunsSeen, "runs_changed", res.RunsChanged, "runs_deferred", res.RunsDeferred,
		"runs_fetched", res.RunsFetched, "runs_gone", res.RunsGone,
		"events", res.Events, "messages", res.Messages, "bytes_published", res.BytesPublished,
		res.storeKey("reads"), res.StoreReads, res.storeKey("writes"), res.StoreWrites,
		"api_calls", res.APICalls, "api_bytes", res.APIBytes,
		"duration_seconds", res.DurationSeconds,
	}
	if !res.Cursor.IsZero() {
		attrs = append(attrs, "cursor", res.Cursor)
	}
	if !res.PreviousCursor.IsZero() {
		// How stale FARM's view was when this poll started: grows while polls fail.
		attrs = append(attrs, "cursor_lag_seconds", res.WindowUntil.Sub(res.PreviousCursor).Seconds())
	}
	if err != nil {
		level := slog.LevelError
		// A poll already running and a request refused (e.g. a backfill window too large) are
		// the caller's business, not FARM failing: warnings, which error-based alerts ignore.
		if errors.Is(err, ErrBusy) || errors.Is(err, ErrBadRequest) {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "poll failed", append(attrs, "error", err.Error())...)
		return
	}
	log.InfoContext(ctx, "poll finished", attrs...)
}
