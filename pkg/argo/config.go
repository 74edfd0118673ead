package argo

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/httpx"
)

// Config is the Argo Server source. pkg/config reads it from the FARM_ARGO_* variables named
// below (and the common FARM_HTTP_*), starting from DefaultConfig.
type Config struct {
	URL        *url.URL // FARM_ARGO_URL; nil: Argo is not polled
	Instance   string   // FARM_ARGO_INSTANCE: name of this Argo installation in events (default: URL host)
	Namespaces []string // FARM_ARGO_NAMESPACE: comma-separated; empty = all namespaces
	Token      string   // FARM_ARGO_TOKEN or FARM_ARGO_TOKEN_FILE
	// TokenFile is FARM_ARGO_TOKEN_FILE: re-read on every request, because Kubernetes rotates
	// mounted service account tokens. It takes precedence over Token.
	TokenFile string
	CAFile    string   // FARM_ARGO_CA_FILE: PEM bundle to trust for the server
	UIURL     *url.URL // FARM_ARGO_UI_URL: base for links to runs (default: FARM_ARGO_URL)
	PageSize  int      // FARM_ARGO_PAGE_SIZE
	// LabelSelector narrows every list (FARM_ARGO_LABEL_SELECTOR), e.g. team=data.
	LabelSelector string
	// Listing is FARM_ARGO_LISTING: how polls list (see the package doc).
	Listing Listing
	// FetchParallelism bounds the concurrent GETs of changed runs, Load and Fetch together
	// (FARM_ARGO_FETCH_PARALLELISM).
	FetchParallelism int
	HTTPTimeout      time.Duration // FARM_HTTP_TIMEOUT: per request
	HTTPRetries      int           // FARM_HTTP_RETRIES: retries on 5xx, 429 and timeouts

	// FullListingBudget is the raw node bytes a full listing keeps (see the package doc); the
	// benchmark lifts it to measure the listing of earlier versions, which kept every row's nodes.
	FullListingBudget int64
	// DefaultPodNameFormat is the controller's POD_NAMES ("v1" or "v2", Argo's default, when
	// empty), used for workflows that lack the pod-name-format annotation.
	DefaultPodNameFormat string
}

// DefaultConfig is the configuration FARM reads Argo with when nothing is set.
func DefaultConfig() Config {
	return Config{
		PageSize:          200,
		Listing:           ListingAuto,
		FetchParallelism:  8,
		HTTPTimeout:       30 * time.Second,
		HTTPRetries:       3,
		FullListingBudget: FullListingBudget,
	}
}

// Validate reports every problem of c, each naming its setting. An unset URL is not one: Argo is
// then not polled (New refuses it).
func (c Config) Validate() error {
	var errs []error
	if c.PageSize < 1 || c.PageSize > 10000 {
		errs = append(errs, fmt.Errorf("FARM_ARGO_PAGE_SIZE must be between 1 and 10000, got %d", c.PageSize))
	}
	switch c.Listing {
	case ListingAuto, ListingFull, ListingChanged:
	default:
		errs = append(errs, fmt.Errorf("FARM_ARGO_LISTING must be auto, full or changed, got %q", c.Listing))
	}
	if c.FetchParallelism < 1 || c.FetchParallelism > 64 {
		errs = append(errs, fmt.Errorf("FARM_ARGO_FETCH_PARALLELISM must be between 1 and 64, got %d", c.FetchParallelism))
	}
	if c.HTTPTimeout <= 0 {
		errs = append(errs, fmt.Errorf("FARM_HTTP_TIMEOUT must be positive, got %s", c.HTTPTimeout))
	}
	if c.HTTPRetries < 0 {
		errs = append(errs, errors.New("FARM_HTTP_RETRIES must not be negative"))
	}
	if c.FullListingBudget <= 0 {
		errs = append(errs, fmt.Errorf("argo: full listing budget must be positive, got %d", c.FullListingBudget))
	}
	if f := c.DefaultPodNameFormat; f != "" && f != "v1" && f != "v2" {
		errs = append(errs, fmt.Errorf("argo: pod name format %q is not v1 or v2", f))
	}
	return errors.Join(errs...)
}

// Deps are what a Source works with besides its configuration. Clock may be nil for the wall
// clock, Log nil for slog.Default().
type Deps struct {
	Clock clock.Clock
	Log   *slog.Logger
	// HTTP are extra options of the API client, applied last (tests: a transport, a sleep).
	HTTP []httpx.Option
}
