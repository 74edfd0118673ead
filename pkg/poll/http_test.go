package poll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name, body string
		want       Request
		errHas     string
	}{
		{"empty body polls", "", Request{}, ""},
		{"whitespace polls", " \n", Request{}, ""},
		{"window", `{"since":"2026-11-22T00:00:00Z","until":"2026-11-22T06:00:00+01:00"}`, Request{Since: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)}, ""},
		{"until defaults to now", `{"since":"2026-11-23T11:00:00Z","replay":true}`, Request{Since: now.Add(-time.Hour), Until: now, Replay: true}, ""},
		{"unknown field", `{"since":"2026-11-22T00:00:00Z","from":"x"}`, Request{}, `unknown field "from"`},
		{"since missing", `{"until":"2026-11-22T00:00:00Z"}`, Request{}, "since is required"},
		{"unparseable since", `{"since":"yesterday"}`, Request{}, `since "yesterday" is not an RFC 3339 time`},
		{"no offset", `{"since":"2026-11-22T00:00:00"}`, Request{}, "with an offset"},
		{"since after until", `{"since":"2026-11-22T02:00:00Z","until":"2026-11-22T01:00:00Z"}`, Request{}, "must be before until"},
		{"until in the future", `{"since":"2026-11-22T02:00:00Z","until":"2026-11-24T01:00:00Z"}`, Request{}, "in the future"},
		{"wrong type", `{"since":"2026-11-22T02:00:00Z","replay":"yes"}`, Request{}, `field "replay" must be a bool`},
		{"an array", ` [{"since":"2026-11-22T02:00:00Z"}]`, Request{}, "must be a JSON object like {\"since\": \"2026-01-02T15:04:05Z\", \"until\": ..., \"replay\": false}, not an array"},
		{"a string", `"2026-11-22T02:00:00Z"`, Request{}, "not a string"},
		{"not JSON", `since=2026-11-22T02:00:00Z`, Request{}, "not text that is not JSON"},
		{"trailing data", `{"since":"2026-11-22T02:00:00Z"} {}`, Request{}, "after the JSON object"},
		{"too large", `{"since":"` + strings.Repeat("x", 70<<10) + `"}`, Request{}, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest(strings.NewReader(tc.body), now)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Since.Equal(tc.want.Since) || !got.Until.Equal(tc.want.Until) || got.Replay != tc.want.Replay {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

type pollerFunc func(ctx context.Context, req Request) (*Result, error)

func (f pollerFunc) Poll(ctx context.Context, req Request) (*Result, error) { return f(ctx, req) }

func TestHandlerStatusCodes(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		body    string
		ctype   string
		err     error
		confErr error
		code    int
		errHas  string
	}{
		{"incremental", "POST", "", "", nil, nil, 200, ""},
		{"incremental with any content type", "POST", "", "application/octet-stream", nil, nil, 200, ""},
		{"GET refused", "GET", "", "", nil, nil, 405, "use POST"},
		{"bad body", "POST", `{"since":1}`, "application/json", nil, nil, 400, "since"},
		{"array body", "POST", `[]`, "application/json", nil, nil, 400, "not an array"},
		{"form body", "POST", `{"since":"2026-11-23T11:00:00Z"}`, "application/x-www-form-urlencoded", nil, nil, 415, "Content-Type: application/json"},
		{"json with charset", "POST", `{"since":"2026-11-23T11:00:00Z"}`, "application/json; charset=utf-8", nil, nil, 200, ""},
		{"window too large", "POST", `{"since":"2026-11-01T00:00:00Z"}`, "", fmt.Errorf("%w: too large", ErrBadRequest), nil, 400, "too large"},
		{"busy", "POST", "", "", fmt.Errorf("%w (held by x)", ErrBusy), nil, 409, "already running"},
		{"upstream", "POST", "", "", fmt.Errorf("%w: list: 500", ErrSource), nil, 502, "orchestrator API failed"},
		{"pubsub", "POST", "", "", fmt.Errorf("%w: unavailable", ErrPublish), nil, 503, "publishing"},
		{"config", "POST", "", "", nil, errors.New("FARM_ARGO_URL is not set"), 500, "FARM_ARGO_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Request
			h := Handler(func(ctx context.Context) (Poller, error) {
				if tc.confErr != nil {
					return nil, tc.confErr
				}
				return pollerFunc(func(ctx context.Context, req Request) (*Result, error) {
					got = req
					return &Result{Source: "argo/x", RunsSeen: 3}, tc.err
				}), nil
			}, HTTPOptions{Clock: clock.NewManual(now)})
			rec := httptest.NewRecorder()
			hreq := httptest.NewRequest(tc.method, "/PollArgo", strings.NewReader(tc.body))
			if tc.ctype != "" {
				hreq.Header.Set("Content-Type", tc.ctype)
			}
			h.ServeHTTP(rec, hreq)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("answer is not JSON: %s", rec.Body)
			}
			if tc.errHas != "" && !strings.Contains(fmt.Sprint(body["error"]), tc.errHas) {
				t.Errorf("error %q does not mention %q", body["error"], tc.errHas)
			}
			if tc.code == 400 && (len(body) != 1 || strings.HasPrefix(fmt.Sprint(body["error"]), "bad request")) {
				t.Errorf("a 400 answered %v, want the one shape of every 400: {\"error\": \"…\"}", body)
			}
			if tc.code == 200 && (body["runs_seen"] != 3.0 || (tc.body == "") != got.Since.IsZero()) {
				t.Errorf("answer %v / request %+v", body, got)
			}
		})
	}
}

// A refused request (a backfill window too large, a poll already running) is the caller's
// business: logged as a warning, which error-based alerts ignore; FARM failing is an error.
func TestHandlerLogLevels(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: window of 400h is larger than FARM_MAX_BACKFILL_WINDOW", ErrBadRequest), "WARN"},
		{fmt.Errorf("%w (held by x)", ErrBusy), "WARN"},
		{fmt.Errorf("%w: list: 500", ErrSource), "ERROR"},
	} {
		var buf strings.Builder
		log := slog.New(slog.NewJSONHandler(&buf, nil))
		h := Handler(func(ctx context.Context) (Poller, error) {
			return pollerFunc(func(ctx context.Context, req Request) (*Result, error) { return &Result{Source: "argo/x"}, c.err }), nil
		}, HTTPOptions{Clock: clock.NewManual(now), Log: log})
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/PollArgo", strings.NewReader("")))
		var line struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(buf.String()), &line); err != nil || line.Msg != "poll failed" {
			t.Fatalf("log %q: %v", buf.String(), err)
		}
		if line.Level != c.want {
			t.Errorf("%v logged at %s, want %s", c.err, line.Level, c.want)
		}
	}
}
