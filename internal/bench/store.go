package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/pkg/state/firestore"
)

// EmulatorEnv names the Firestore emulator the Google client libraries dial when it is set.
const EmulatorEnv = "FIRESTORE_EMULATOR_HOST"

// Store is a state store and how to release it.
type Store struct {
	state.Store
	// Kind is "firestore-emulator" or "file".
	Kind  string
	close func()
}

// Close releases the store's client or files.
func (s *Store) Close() { s.close() }

// OpenStore returns the Firestore store on the emulator named by FIRESTORE_EMULATOR_HOST or, when
// that is unset, a file store in a fresh temporary directory (Kind says which one it is; callers
// must say so loudly, since a file store's costs say nothing about Firestore's).
func OpenStore(ctx context.Context, clk clock.Clock) (*Store, error) {
	if os.Getenv(EmulatorEnv) != "" {
		c, err := firestore.NewClient(ctx, project, "")
		if err != nil {
			return nil, fmt.Errorf("firestore emulator client: %w", err)
		}
		return &Store{Store: firestore.New(c, firestore.WithClock(clk)), Kind: "firestore-emulator", close: func() { _ = c.Close() }}, nil
	}
	dir, err := os.MkdirTemp("", "farm-bench-state-")
	if err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	fs := filestore.New(filepath.Join(dir, "state.json"), filestore.WithClock(clk))
	return &Store{Store: fs, Kind: "file", close: func() { _ = os.RemoveAll(dir) }}, nil
}
