package polltest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/pkg/state"
)

// ErrKilled is what a CrashOnce store's first Commit returns.
var ErrKilled = errors.New("poll killed between publish and commit")

// CrashOnce is a real store whose first Commit fails, as a poll killed after it published and
// before it committed. The lease is released as the next poll would find it after expiry.
type CrashOnce struct {
	state.Store
	mu      sync.Mutex
	crashed bool
}

// NewCrashOnce wraps s.
func NewCrashOnce(s state.Store) *CrashOnce { return &CrashOnce{Store: s} }

// Commit fails the first time and commits afterwards.
func (c *CrashOnce) Commit(ctx context.Context, source, holder string, runs []*state.Run, cursor time.Time, index state.Index) error {
	c.mu.Lock()
	crash := !c.crashed
	c.crashed = true
	c.mu.Unlock()
	if crash {
		_ = c.Store.Release(ctx, source, holder)
		return ErrKilled
	}
	return c.Store.Commit(ctx, source, holder, runs, cursor, index)
}

// PubSubEnv starts the in-process Pub/Sub server for a function configured from the environment:
// it sets PUBSUB_EMULATOR_HOST (restored after the test) and creates topic in project.
func PubSubEnv(t *testing.T, project, topic string) *pstest.Server {
	t.Helper()
	srv := local.StartPubSub()
	t.Cleanup(func() { _ = srv.Close() })
	t.Setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
	c, err := pubsub.NewClient(t.Context(), project)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := local.EnsureTopic(t.Context(), c, project, topic); err != nil {
		t.Fatal(err)
	}
	return srv
}
