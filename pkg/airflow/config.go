package airflow

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"

	"golang.org/x/oauth2"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/httpx"
)

// Config is the Airflow / Cloud Composer source. pkg/config reads it from the FARM_AIRFLOW_*
// variables named below (and the common FARM_HTTP_*), starting from DefaultConfig. Secrets come
// from the configuration (environment or mounted files), never from a request.
type Config struct {
	URL      *url.URL // FARM_AIRFLOW_URL; nil: Airflow is not polled
	Instance string   // FARM_AIRFLOW_INSTANCE (default: URL host)
	// Auth is FARM_AIRFLOW_AUTH: auto (google for Composer hosts, else none), google, basic,
	// bearer, jwt (Airflow 3 /auth/token) or none.
	Auth       string
	Username   string // FARM_AIRFLOW_USERNAME
	Password   string // FARM_AIRFLOW_PASSWORD or FARM_AIRFLOW_PASSWORD_FILE
	Token      string // FARM_AIRFLOW_TOKEN or FARM_AIRFLOW_TOKEN_FILE (bearer)
	APIVersion string // FARM_AIRFLOW_API_VERSION: auto, v1 (Airflow 2) or v2 (Airflow 3)
	// DagInclude and DagExclude (FARM_AIRFLOW_DAG_INCLUDE, FARM_AIRFLOW_DAG_EXCLUDE) select DAGs
	// by id before any task-instance query: an excluded DAG's runs are never loaded, and its rows
	// in the estate-wide change feed are dropped.
	DagInclude  *regexp.Regexp
	DagExclude  *regexp.Regexp
	PageSize    int           // FARM_AIRFLOW_PAGE_SIZE: the limit asked of GET lists
	UIURL       *url.URL      // FARM_AIRFLOW_UI_URL: base of links to runs (default: FARM_AIRFLOW_URL)
	HTTPTimeout time.Duration // FARM_HTTP_TIMEOUT: per request
	HTTPRetries int           // FARM_HTTP_RETRIES: retries on 5xx, 429 and timeouts
	// BatchRuns is how many runs one task-instance batch call names (v1's batch is unpaginated:
	// this bounds its answer).
	BatchRuns int
	// BatchPage is page_limit of v2's batch (not capped by the server).
	BatchPage int
	// MaxTriesReads bounds the tries calls of one List. A first poll would otherwise read the
	// tries of every retried task instance of the estate, one call each; past the bound, the
	// earlier tries not read are recorded as a gap (MissedTries), never invented, and read by a
	// later poll if their task instance changes again.
	MaxTriesReads int
	// FullListingEvery (FARM_AIRFLOW_FULL_LISTING_EVERY) is how often a process lists every
	// active run, paged, instead of only what changed (list.go): the first poll of a process
	// always does. It bounds how long a run deleted while active, or a note edited on a running
	// run, goes unnoticed; each full listing costs one call per 100 active runs. 0: every poll.
	FullListingEvery time.Duration
}

// Defaults of Config.
const (
	DefaultPageSize  = 100
	DefaultBatchRuns = 100
	DefaultBatchPage = 1000
	// DefaultMaxTriesReads is a few seconds of calls per poll.
	DefaultMaxTriesReads = 200
	// DefaultFullListingEvery is an hour: at a poll a minute, the full listing of 5,000 active
	// runs adds less than one call a poll.
	DefaultFullListingEvery = time.Hour
)

// DefaultConfig is the configuration FARM reads Airflow with when nothing is set.
func DefaultConfig() Config {
	return Config{
		Auth:          AuthAuto,
		APIVersion:    "auto",
		DagExclude:    regexp.MustCompile("^airflow_monitoring$"),
		PageSize:      DefaultPageSize,
		BatchRuns:     DefaultBatchRuns,
		BatchPage:     DefaultBatchPage,
		HTTPTimeout:   30 * time.Second,
		HTTPRetries:   3,
		MaxTriesReads: DefaultMaxTriesReads,

		FullListingEvery: DefaultFullListingEvery,
	}
}

// Validate reports every problem of c, each naming its setting. An unset URL is not one: Airflow
// is then not polled (New refuses it).
func (c Config) Validate() error {
	var errs []error
	if c.PageSize < 1 {
		errs = append(errs, fmt.Errorf("FARM_AIRFLOW_PAGE_SIZE must be at least 1, got %d", c.PageSize))
	}
	switch c.Auth {
	case AuthBasic, AuthJWT:
		if c.Username == "" || c.Password == "" {
			errs = append(errs, fmt.Errorf("FARM_AIRFLOW_AUTH is %s: set FARM_AIRFLOW_USERNAME and FARM_AIRFLOW_PASSWORD (or _FILE)", c.Auth))
		}
	case AuthBearer:
		if c.Token == "" {
			errs = append(errs, errors.New("FARM_AIRFLOW_AUTH is bearer: set FARM_AIRFLOW_TOKEN (or FARM_AIRFLOW_TOKEN_FILE)"))
		}
	}
	if c.HTTPTimeout <= 0 {
		errs = append(errs, fmt.Errorf("FARM_HTTP_TIMEOUT must be positive, got %s", c.HTTPTimeout))
	}
	if c.HTTPRetries < 0 {
		errs = append(errs, errors.New("FARM_HTTP_RETRIES must not be negative"))
	}
	if c.BatchRuns < 1 || c.BatchPage < 1 {
		errs = append(errs, fmt.Errorf("airflow: batch runs (%d) and batch page (%d) must be positive", c.BatchRuns, c.BatchPage))
	}
	if c.FullListingEvery < 0 {
		errs = append(errs, fmt.Errorf("FARM_AIRFLOW_FULL_LISTING_EVERY must not be negative, got %s", c.FullListingEvery))
	}
	if c.MaxTriesReads < 1 {
		errs = append(errs, fmt.Errorf("airflow: tries reads per poll must be positive, got %d", c.MaxTriesReads))
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
	// TokenSource, for the google mode, replaces application default credentials (tests, or a
	// caller with its own credentials).
	TokenSource oauth2.TokenSource
}
