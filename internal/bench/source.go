package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
)

// source is what the benchmark needs of pkg/argo's and pkg/airflow's sources.
type source interface {
	poll.Source
	poll.APICounter
}

// sourceOptions are the settings FARM's defaults would give, on the benchmark's clock.
type sourceOptions struct {
	kind, baseURL, instance string
	clock                   clock.Clock
	log                     *slog.Logger
	// sleep replaces the retry back-off's wait (the fidelity run's clock is simulated).
	sleep httpx.SleepFunc
	// listing and fullBudget choose the Argo listing ("" and 0: FARM's defaults).
	listing    argo.Listing
	fullBudget int64
}

// unlimited lifts the full listing's node budget: the listing of earlier versions.
const unlimited = 1 << 62

const (
	httpRetries = 3
	httpTimeout = 2 * time.Minute
	argoPage    = 200 // FARM_ARGO_PAGE_SIZE's default
)

func newSource(o sourceOptions) (source, error) {
	u, err := url.Parse(o.baseURL)
	if err != nil {
		return nil, fmt.Errorf("simulator URL %q: %w", o.baseURL, err)
	}
	hopts := []httpx.Option{httpx.WithClock(o.clock), httpx.WithRetries(httpRetries), httpx.WithTimeout(httpTimeout)}
	if o.sleep != nil {
		hopts = append(hopts, httpx.WithSleep(o.sleep))
	}
	switch o.kind {
	case event.SourceArgo:
		cfg := argo.DefaultConfig()
		cfg.URL, cfg.Instance, cfg.PageSize = u, o.instance, argoPage
		cfg.HTTPTimeout, cfg.HTTPRetries = httpTimeout, httpRetries
		if o.listing != "" {
			cfg.Listing = o.listing
		}
		if o.fullBudget > 0 {
			cfg.FullListingBudget = o.fullBudget
		}
		return argo.New(cfg, argo.Deps{Log: o.log, HTTP: hopts})
	case event.SourceAirflow:
		cfg := airflow.DefaultConfig()
		cfg.URL, cfg.Instance, cfg.DagExclude = u, o.instance, nil // the API is detected, as deployed
		cfg.HTTPTimeout, cfg.HTTPRetries = httpTimeout, httpRetries
		return airflow.New(cfg, airflow.Deps{Clock: o.clock, Log: o.log, HTTP: hopts})
	}
	return nil, fmt.Errorf("unknown source kind %q", o.kind)
}

// engineConfig is FARM's default engine configuration with the benchmark's tenant and overlap.
func engineConfig(tenant string) poll.Config {
	c := poll.DefaultConfig()
	c.Tenant, c.Environment, c.Overlap = tenant, "", Overlap
	return c
}

// noSleep is a back-off that takes no time: the fidelity run's time is the simulated clock's.
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }
