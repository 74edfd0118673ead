// Package setup is FARM's composition root: it builds a typed environment (App) from the
// configuration, once per process, and hands its parts to the functions and the local runner.
// Each part is built on first use (a function builds only what it serves); a part that fails to
// build is tried again on the next call, so a transient failure at a cold start does not poison
// the instance, and a part built is kept for the life of the process.
package setup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	gfs "cloud.google.com/go/firestore"
	"google.golang.org/api/option"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/deadletter"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/publish"
	"github.com/farmobs/farm/pkg/sink"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/pkg/state/firestore"
)

// App is one process's environment: its configuration and the parts built from it.
type App struct {
	Config config.Config
	Log    *slog.Logger
	Clock  clock.Clock
	pubsub []option.ClientOption

	firestore     lazy[*gfs.Client]
	backend       lazy[stateBackend]
	publisher     lazy[*publish.Publisher]
	deadLetterPub lazy[*publish.Publisher]
	argo          lazy[*poll.Engine]
	airflow       lazy[*poll.Engine]
	sink          lazy[*sink.Sink]
	tracer        lazy[*apm.Tracer]
}

// lazy is one part of the App: built by the first get that succeeds, then kept.
type lazy[T any] struct {
	mu    sync.Mutex
	v     T
	built bool
}

// get returns the part, building it with build if no call has yet.
func (l *lazy[T]) get(ctx context.Context, name string, build func(context.Context) (T, error)) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.built {
		return l.v, nil
	}
	v, err := build(ctx)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	l.v, l.built = v, true
	return v, nil
}

// close closes the part if it was built and can be, and forgets it.
func (l *lazy[T]) close(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.built {
		return nil
	}
	var err error
	if c, ok := any(l.v).(interface{ Close() error }); ok {
		if err = c.Close(); err != nil {
			err = fmt.Errorf("close %s: %w", name, err)
		}
	}
	var zero T
	l.v, l.built = zero, false
	return err
}

// Deps are what an App takes besides its configuration, all optional.
type Deps struct {
	Log   *slog.Logger // nil: slog.Default()
	Clock clock.Clock  // nil: the wall clock
	// PubSub are extra options of the Pub/Sub clients: the local runner's in-process server.
	PubSub []option.ClientOption
}

// New returns an App for cfg. Nothing is built before it is asked for.
func New(cfg config.Config, deps Deps) *App {
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	return &App{Config: cfg, Log: deps.Log, Clock: deps.Clock, pubsub: deps.PubSub}
}

var (
	defaultMu  sync.Mutex
	defaultApp *App
)

// Default returns the process's App: the one Install gave, or else one built from the
// environment on first use. Configuration errors are returned (and returned again on every call
// until the environment is fixed).
func Default() (*App, error) {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultApp != nil {
		return defaultApp, nil
	}
	log := logging.Setup()
	cfg, err := config.Load()
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	defaultApp = New(cfg, Deps{Log: log})
	return defaultApp, nil
}

// Install makes app the process's App, closing the one before it: the local runner serves the
// functions with an App built from its own configuration. Install(nil) forgets it, so that the
// next Default reads the environment again.
func Install(app *App) {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultApp != nil && defaultApp != app {
		_ = defaultApp.Close()
	}
	defaultApp = app
}

// Close closes every part built that can be closed (clients, publishers), flushing what they
// hold. Parts are built again if used after.
func (a *App) Close() error {
	return errors.Join(
		a.tracer.close("tracer"), a.sink.close("sink"),
		a.argo.close("argo engine"), a.airflow.close("airflow engine"),
		a.publisher.close("publisher"), a.deadLetterPub.close("dead-letter publisher"),
		a.backend.close("state"), a.firestore.close("firestore"),
	)
}

// PollHandler is a poll function's whole HTTP handler: the process's App is built on the first
// request and engine picks the source ((*App).ArgoEngine, (*App).AirflowEngine).
func PollHandler(engine func(*App, context.Context) (*poll.Engine, error)) http.Handler {
	return poll.Handler(func(ctx context.Context) (poll.Poller, error) {
		app, err := Default()
		if err != nil {
			return nil, err
		}
		return engine(app, ctx)
	}, poll.HTTPOptions{})
}

// ArgoEngine returns the poll engine of the configured Argo Server (FARM_ARGO_URL).
func (a *App) ArgoEngine(ctx context.Context) (*poll.Engine, error) {
	return a.argo.get(ctx, "argo engine", func(ctx context.Context) (*poll.Engine, error) {
		if a.Config.Argo.URL == nil {
			return nil, errors.New("FARM_ARGO_URL is not set: no Argo Server to poll")
		}
		src, err := argo.New(a.Config.Argo, argo.Deps{Clock: a.Clock, Log: a.Log})
		if err != nil {
			return nil, err
		}
		return a.engine(ctx, src)
	})
}

// AirflowEngine returns the poll engine of the configured Airflow or Cloud Composer
// (FARM_AIRFLOW_URL).
func (a *App) AirflowEngine(ctx context.Context) (*poll.Engine, error) {
	return a.airflow.get(ctx, "airflow engine", func(ctx context.Context) (*poll.Engine, error) {
		if a.Config.Airflow.URL == nil {
			return nil, errors.New("FARM_AIRFLOW_URL is not set: no Airflow to poll")
		}
		src, err := airflow.New(a.Config.Airflow, airflow.Deps{Clock: a.Clock, Log: a.Log})
		if err != nil {
			return nil, err
		}
		return a.engine(ctx, src)
	})
}

// engine builds a poll engine for src on the process's store and publisher.
func (a *App) engine(ctx context.Context, src poll.Source) (*poll.Engine, error) {
	store, err := a.Store(ctx)
	if err != nil {
		return nil, err
	}
	pub, err := a.Publisher(ctx)
	if err != nil {
		return nil, err
	}
	return poll.New(a.Config.Poll, poll.Deps{Source: src, Store: store, Publisher: pub, Clock: a.Clock, Log: a.Log})
}

// Publisher returns the process's Pub/Sub publisher for the RunDelta topic.
func (a *App) Publisher(ctx context.Context) (*publish.Publisher, error) {
	return a.publisher.get(ctx, "publisher", func(context.Context) (*publish.Publisher, error) {
		return publish.New(a.Config.Common.ProjectID, a.Config.Common.Topic, a.pubsub...), nil
	})
}

// Sink returns the configured BigQuery (or file) sink.
func (a *App) Sink(ctx context.Context) (*sink.Sink, error) {
	return a.sink.get(ctx, "sink", func(ctx context.Context) (*sink.Sink, error) {
		dl, err := a.DeadLetter(ctx, "sink")
		if err != nil {
			return nil, err
		}
		return sink.New(a.Config.Sink, sink.Deps{Log: a.Log, DeadLetter: dl})
	})
}

// Tracer returns the trace function's tracer, with the process's ledger and dead-letter topic.
func (a *App) Tracer(ctx context.Context) (*apm.Tracer, error) {
	return a.tracer.get(ctx, "tracer", func(ctx context.Context) (*apm.Tracer, error) {
		ledger, err := a.Ledger(ctx)
		if err != nil {
			return nil, err
		}
		dl, err := a.DeadLetter(ctx, "trace")
		if err != nil {
			return nil, err
		}
		return apm.New(a.Config.Trace, apm.Deps{Ledger: ledger, Clock: a.Clock, Log: a.Log, DeadLetter: dl})
	})
}

// DeadLetter returns the keeper of consumer's messages that can never be processed: the
// FARM_DEAD_LETTER_TOPIC topic, or only the log when it is not set.
func (a *App) DeadLetter(ctx context.Context, consumer string) (*deadletter.Keeper, error) {
	topic := a.Config.Common.DeadLetterTopic
	if topic == "" {
		return deadletter.New(nil, consumer, a.Log), nil
	}
	pub, err := a.deadLetterPub.get(ctx, "dead-letter publisher", func(context.Context) (*publish.Publisher, error) {
		return publish.New(a.Config.Common.ProjectID, topic, a.pubsub...), nil
	})
	if err != nil {
		return nil, err
	}
	return deadletter.New(pub, consumer, a.Log), nil
}

// stateBackend is a Store that is also a Ledger: both implementations are.
type stateBackend interface {
	state.Store
	state.Ledger
}

// Store returns the configured state store (FARM_STATE_STORE).
func (a *App) Store(ctx context.Context) (state.Store, error) { return a.stateBackend(ctx) }

// Ledger returns the configured ledger: the same backend as the store.
func (a *App) Ledger(ctx context.Context) (state.Ledger, error) { return a.stateBackend(ctx) }

func (a *App) stateBackend(ctx context.Context) (stateBackend, error) {
	return a.backend.get(ctx, "state", func(ctx context.Context) (stateBackend, error) {
		c := a.Config.Common
		switch c.StateStore {
		case "file":
			return filestore.New(c.StateFile, filestore.WithClock(a.Clock)), nil
		case "firestore":
			client, err := a.firestore.get(ctx, "firestore", func(ctx context.Context) (*gfs.Client, error) {
				// The client outlives this call: it must not die with the request's context.
				return firestore.NewClient(context.WithoutCancel(ctx), c.ProjectID, c.FirestoreDatabase)
			})
			if err != nil {
				return nil, err
			}
			return firestore.New(client, firestore.WithClock(a.Clock), firestore.WithTimeout(c.StoreTimeout)), nil
		}
		return nil, fmt.Errorf("unknown state store %q", c.StateStore)
	})
}
