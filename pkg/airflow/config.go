package airflow

import (
	"log/slog"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/httpx"
)

// FromConfig returns the Source configured by the FARM_AIRFLOW_* variables, with the common HTTP
// timeout and retries. Secrets come from the configuration (environment or mounted files), never
// from a request. Nothing is dialled until the first poll.
func FromConfig(a config.Airflow, c config.Common, clk clock.Clock, log *slog.Logger, extra ...httpx.Option) (*Source, error) {
	if a.URL == nil {
		return nil, errNoSource
	}
	http := []httpx.Option{httpx.WithTimeout(c.HTTPTimeout), httpx.WithRetries(c.HTTPRetries), httpx.WithUserAgent("farm-airflow")}
	return New(Options{
		Client: ClientOptions{
			URL: a.URL, API: a.APIVersion, Auth: a.Auth, Username: a.Username, Password: a.Password, Token: a.Token,
			PageSize: a.PageSize, Clock: clk, Log: log, HTTP: append(http, extra...),
		},
		Instance: a.Instance, Include: a.DagInclude, Exclude: a.DagExclude, UIURL: a.UIURL, Log: log,
	})
}
