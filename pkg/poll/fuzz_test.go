package poll

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseRequest: a poll request body (the backfill body, from whoever may invoke the function)
// is either an incremental poll, a window with since before until and until not in the future, or
// refused with a message — never a panic, never a message that repeats more than the body allows.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"", " \n",
		`{"since":"2026-11-22T00:00:00Z","until":"2026-11-22T06:00:00+01:00"}`,
		`{"since":"2026-11-23T11:00:00Z","replay":true}`,
		`{"since":"2026-11-22T00:00:00Z","from":"x"}`,
		`[{"since":"2026-11-22T00:00:00Z"}]`,
		`{"since":"2026-11-22T02:00:00Z"} {}`,
		`{"since":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(strings.NewReader(string(body)), now)
		if err != nil {
			if errors.Is(err, ErrBusy) {
				t.Fatalf("a body gave ErrBusy: %v", err)
			}
			return
		}
		if req.Backfill() && (!req.Since.Before(req.Until) || req.Until.After(now.Add(60e9))) {
			t.Fatalf("accepted window %s..%s", req.Since, req.Until)
		}
	})
}
