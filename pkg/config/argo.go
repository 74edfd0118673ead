package config

import "github.com/farmobs/farm/pkg/argo"

// loadArgo reads the FARM_ARGO_* variables over argo's defaults; argo validates them.
func loadArgo(r *Reader, c Common) argo.Config {
	a := argo.DefaultConfig()
	a.URL = r.URL("FARM_ARGO_URL")
	a.Instance = r.String("FARM_ARGO_INSTANCE", "")
	a.Namespaces = r.List("FARM_ARGO_NAMESPACE")
	a.Token = r.Secret("FARM_ARGO_TOKEN")
	a.TokenFile = r.String("FARM_ARGO_TOKEN_FILE", "")
	a.CAFile = r.String("FARM_ARGO_CA_FILE", "")
	a.UIURL = r.URL("FARM_ARGO_UI_URL")
	a.PageSize = r.Int("FARM_ARGO_PAGE_SIZE", a.PageSize)
	a.LabelSelector = r.String("FARM_ARGO_LABEL_SELECTOR", "")
	a.Listing = argo.Listing(r.String("FARM_ARGO_LISTING", string(a.Listing)))
	a.FetchParallelism = r.Int("FARM_ARGO_FETCH_PARALLELISM", a.FetchParallelism)
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
