package setup

import (
	"context"
	"fmt"

	gfs "cloud.google.com/go/firestore"

	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/pkg/state/firestore"
)

// stateBackend is a Store that is also a Ledger: both implementations are.
type stateBackend interface {
	state.Store
	state.Ledger
}

// Store returns the configured state store (FARM_STATE_STORE).
func (a *App) Store(ctx context.Context) (state.Store, error) { return a.backend(ctx) }

// Ledger returns the configured ledger: the same backend as the store.
func (a *App) Ledger(ctx context.Context) (state.Ledger, error) { return a.backend(ctx) }

func (a *App) backend(ctx context.Context) (stateBackend, error) {
	return lazy(ctx, a, "state", func(ctx context.Context) (stateBackend, error) {
		c := a.Config.Common
		switch c.StateStore {
		case "file":
			return filestore.New(c.StateFile, filestore.WithClock(a.Clock)), nil
		case "firestore":
			client, err := a.firestore(ctx)
			if err != nil {
				return nil, err
			}
			return firestore.New(client, firestore.WithClock(a.Clock), firestore.WithTimeout(c.StoreTimeout)), nil
		}
		return nil, fmt.Errorf("unknown state store %q", c.StateStore)
	})
}

// firestore returns the process's Firestore client (closed by App.Close).
func (a *App) firestore(ctx context.Context) (*gfs.Client, error) {
	return lazy(ctx, a, "firestore", func(ctx context.Context) (*gfs.Client, error) {
		// The client outlives this call: it must not die with the request's context.
		return firestore.NewClient(context.WithoutCancel(ctx), a.Config.Common.ProjectID, a.Config.Common.FirestoreDatabase)
	})
}
