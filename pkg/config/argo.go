package config

import "net/url"

// Argo is the Argo Server source.
type Argo struct {
	URL        *url.URL // FARM_ARGO_URL; nil: Argo is not polled
	Instance   string   // FARM_ARGO_INSTANCE: name of this Argo installation in events (default: URL host)
	Namespaces []string // FARM_ARGO_NAMESPACE: comma-separated; empty = all namespaces
	Token      string   // FARM_ARGO_TOKEN or FARM_ARGO_TOKEN_FILE
	// TokenFile is FARM_ARGO_TOKEN_FILE: re-read on every request, because Kubernetes rotates
	// mounted service account tokens.
	TokenFile string
	CAFile    string   // FARM_ARGO_CA_FILE: PEM bundle to trust for the server
	UIURL     *url.URL // FARM_ARGO_UI_URL: base for links to runs (default: FARM_ARGO_URL)
	PageSize  int      // FARM_ARGO_PAGE_SIZE
	// LabelSelector narrows every list (FARM_ARGO_LABEL_SELECTOR), e.g. team=data.
	LabelSelector string
	// Listing is FARM_ARGO_LISTING: auto (default), full or changed (see pkg/argo).
	Listing string
	// FetchParallelism bounds the concurrent GETs of changed runs (FARM_ARGO_FETCH_PARALLELISM).
	FetchParallelism int
}

func loadArgo(r *Reader) Argo {
	a := Argo{
		URL:              r.URL("FARM_ARGO_URL"),
		Instance:         r.String("FARM_ARGO_INSTANCE", ""),
		Namespaces:       r.List("FARM_ARGO_NAMESPACE"),
		Token:            r.Secret("FARM_ARGO_TOKEN"),
		TokenFile:        r.String("FARM_ARGO_TOKEN_FILE", ""),
		CAFile:           r.String("FARM_ARGO_CA_FILE", ""),
		UIURL:            r.URL("FARM_ARGO_UI_URL"),
		PageSize:         r.Int("FARM_ARGO_PAGE_SIZE", 200),
		LabelSelector:    r.String("FARM_ARGO_LABEL_SELECTOR", ""),
		Listing:          r.String("FARM_ARGO_LISTING", "auto"),
		FetchParallelism: r.Int("FARM_ARGO_FETCH_PARALLELISM", 8),
	}
	if a.URL != nil && a.Instance == "" {
		a.Instance = a.URL.Hostname()
	}
	if a.UIURL == nil {
		a.UIURL = a.URL
	}
	if a.PageSize < 1 || a.PageSize > 10000 {
		r.Fail("FARM_ARGO_PAGE_SIZE", "must be between 1 and 10000, got %d", a.PageSize)
	}
	switch a.Listing {
	case "auto", "full", "changed":
	default:
		r.Fail("FARM_ARGO_LISTING", "must be auto, full or changed, got %q", a.Listing)
	}
	if a.FetchParallelism < 1 || a.FetchParallelism > 64 {
		r.Fail("FARM_ARGO_FETCH_PARALLELISM", "must be between 1 and 64, got %d", a.FetchParallelism)
	}
	return a
}
