package config

import "github.com/farmobs/farm/pkg/airflow"

// loadAirflow reads the FARM_AIRFLOW_* variables over airflow's defaults; airflow validates them.
func loadAirflow(r *Reader, c Common) airflow.Config {
	a := airflow.DefaultConfig()
	a.URL = r.URL("FARM_AIRFLOW_URL")
	a.Instance = r.String("FARM_AIRFLOW_INSTANCE", "")
	a.Auth = r.OneOf("FARM_AIRFLOW_AUTH", a.Auth, "auto", "google", "basic", "bearer", "jwt", "none")
	a.Username = r.String("FARM_AIRFLOW_USERNAME", "")
	a.Password = r.Secret("FARM_AIRFLOW_PASSWORD")
	a.Token = r.Secret("FARM_AIRFLOW_TOKEN")
	a.APIVersion = r.OneOf("FARM_AIRFLOW_API_VERSION", a.APIVersion, "auto", "v1", "v2")
	a.DagInclude = r.Regexp("FARM_AIRFLOW_DAG_INCLUDE", "")
	a.DagExclude = r.Regexp("FARM_AIRFLOW_DAG_EXCLUDE", a.DagExclude.String())
	a.PageSize = r.Int("FARM_AIRFLOW_PAGE_SIZE", a.PageSize)
	a.UIURL = r.URL("FARM_AIRFLOW_UI_URL")
	a.FullListingEvery = r.Duration("FARM_AIRFLOW_FULL_LISTING_EVERY", a.FullListingEvery)
	a.HTTPTimeout, a.HTTPRetries = c.HTTPTimeout, c.HTTPRetries
	if a.URL != nil && a.Instance == "" {
		a.Instance = a.URL.Hostname()
	}
	if a.UIURL == nil {
		a.UIURL = a.URL
	}
	r.Check(a.Validate())
	return a
}
