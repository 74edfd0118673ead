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
	"github.com/farmobs/farm/pkg/config"
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
		opts := []argo.Option{argo.WithLogger(o.log), argo.WithHTTPOptions(hopts...)}
		if o.listing != "" {
			opts = append(opts, argo.WithListing(o.listing))
		}
		if o.fullBudget > 0 {
			opts = append(opts, argo.WithFullListingBudget(o.fullBudget))
		}
		return argo.New(config.Argo{URL: u, Instance: o.instance, PageSize: argoPage},
			config.Common{HTTPTimeout: httpTimeout, HTTPRetries: httpRetries}, opts...)
	case event.SourceAirflow:
		return airflow.New(airflow.Options{Instance: o.instance, Log: o.log,
			Client: airflow.ClientOptions{URL: u, API: "v2", Clock: o.clock, Log: o.log, HTTP: hopts}})
	}
	return nil, fmt.Errorf("unknown source kind %q", o.kind)
}

// noSleep is a back-off that takes no time: the fidelity run's time is the simulated clock's.
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }
