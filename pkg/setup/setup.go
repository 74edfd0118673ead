// Package setup is FARM's composition root: it builds each function's dependencies from the
// configuration, lazily, once per process, and hands them to the functions and the local runner.
// A dependency that fails to build is tried again on the next call, so a transient failure at a
// cold start does not poison the instance.
package setup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/logging"
)

// App holds the configuration and the lazily built clients of one process.
type App struct {
	Config config.Config
	Log    *slog.Logger
	Clock  clock.Clock

	mu    sync.Mutex
	slots map[string]*slot // built dependencies by name
}

type slot struct {
	mu    sync.Mutex
	value any
	built bool
}

// New returns an App for cfg.
func New(cfg config.Config, log *slog.Logger, clk clock.Clock) *App {
	if log == nil {
		log = slog.Default()
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &App{Config: cfg, Log: log, Clock: clk, slots: map[string]*slot{}}
}

var (
	defaultMu  sync.Mutex
	defaultApp *App
)

// Default returns the process's App, reading the environment on first use. Configuration errors
// are returned (and returned again on every call until the environment is fixed).
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
	defaultApp = New(cfg, log, clock.Real{})
	return defaultApp, nil
}

// ResetDefault forgets the process's App, closing it, so that the next Default reads the
// environment again: the local runner calls it when it serves with an environment of its own
// (a second `serve` in one process, as in tests, would otherwise get the first one's sources).
func ResetDefault() {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultApp != nil {
		defaultApp.Close()
	}
	defaultApp = nil
}

// lazy returns the dependency called name, building it with build on first success. Builders may
// call lazy for other names (one lock per name).
func lazy[T any](ctx context.Context, a *App, name string, build func(context.Context) (T, error)) (T, error) {
	a.mu.Lock()
	s, ok := a.slots[name]
	if !ok {
		s = &slot{}
		a.slots[name] = s
	}
	a.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.built {
		return s.value.(T), nil
	}
	v, err := build(ctx)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	s.value, s.built = v, true
	return v, nil
}

// Close closes every built dependency that can be closed (clients, publishers), flushing what
// they hold.
func (a *App) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for name, s := range a.slots {
		if c, ok := s.value.(interface{ Close() error }); ok && s.built {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", name, err))
			}
		}
	}
	a.slots = map[string]*slot{}
	return errors.Join(errs...)
}
