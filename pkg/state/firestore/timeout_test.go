package firestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/firestore"
)

// stuckStore is a Store on a Firestore that accepts connections and never answers.
func stuckStore(t *testing.T, timeout time.Duration) *firestore.Store {
	t.Helper()
	client := testenv.StuckFirestoreClient(t)
	return firestore.New(client, firestore.WithTimeout(timeout))
}

// Every call to a stuck Firestore ends with context.DeadlineExceeded once the store's timeout has
// passed, although the caller's context has no deadline.
func TestStuckFirestoreCallsEndAtTheTimeout(t *testing.T) {
	s := stuckStore(t, 300*time.Millisecond)
	now := time.Now()
	calls := map[string]func(ctx context.Context) error{
		"Acquire": func(ctx context.Context) error {
			_, err := s.Acquire(ctx, "argo/x", "h", now, time.Minute)
			return err
		},
		"Peek":     func(ctx context.Context) error { _, err := s.Peek(ctx, "argo/x"); return err },
		"Release":  func(ctx context.Context) error { return s.Release(ctx, "argo/x", "h") },
		"LoadRuns": func(ctx context.Context) error { _, err := s.LoadRuns(ctx, "argo/x", []string{"k"}); return err },
		"Commit": func(ctx context.Context) error {
			return s.Commit(ctx, "argo/x", "h", []*state.Run{{Key: "k", ExpireAt: now.Add(time.Hour)}}, now, state.Index{})
		},
		"Load": func(ctx context.Context) error { _, err := s.Load(ctx, "trace", []string{"a"}); return err },
		"Record": func(ctx context.Context) error {
			return s.Record(ctx, "trace", map[string][]byte{"a": nil}, now.Add(time.Hour))
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- call(context.Background()) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s on a stuck Firestore = %v, want context.DeadlineExceeded", name, err)
				}
			case <-time.After(time.Minute): // a watchdog, far above the 300 ms bound
				t.Fatalf("%s on a stuck Firestore did not return", name)
			}
		})
	}
}
