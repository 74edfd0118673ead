package local

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Schedule POSTs an empty body to every target now and then every interval, like Cloud Scheduler
// calling the poll functions, until ctx is done. Answers are logged, never fatal: the next tick
// tries again, as Cloud Scheduler would.
func Schedule(ctx context.Context, interval time.Duration, targets []string, hc *http.Client, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, target := range targets {
			trigger(ctx, hc, target, log)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func trigger(ctx context.Context, hc *http.Client, target string, log *slog.Logger) {
	if ctx.Err() != nil {
		return
	}
	// A poll under way finishes when the runner stops (within FinishTimeout): cut short, it
	// would read as a failed poll.
	pctx, done := finishing(ctx)
	defer done()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, target, http.NoBody)
	if err != nil {
		log.ErrorContext(ctx, "schedule", "target", target, "error", err)
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		if pctx.Err() == nil {
			log.WarnContext(ctx, "scheduled poll did not answer", "target", target, "error", err)
		}
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		log.WarnContext(ctx, "scheduled poll failed", "target", target, "status", resp.StatusCode)
	}
}
