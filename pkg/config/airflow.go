package config

import (
	"net/url"
	"regexp"
)

// Airflow is the Airflow / Cloud Composer source.
type Airflow struct {
	URL      *url.URL // FARM_AIRFLOW_URL; nil: Airflow is not polled
	Instance string   // FARM_AIRFLOW_INSTANCE (default: URL host)
	// Auth is FARM_AIRFLOW_AUTH: auto (google for Composer hosts, else none), google, basic,
	// bearer, jwt (Airflow 3 /auth/token) or none.
	Auth       string
	Username   string         // FARM_AIRFLOW_USERNAME
	Password   string         // FARM_AIRFLOW_PASSWORD or FARM_AIRFLOW_PASSWORD_FILE
	Token      string         // FARM_AIRFLOW_TOKEN or FARM_AIRFLOW_TOKEN_FILE (bearer)
	APIVersion string         // FARM_AIRFLOW_API_VERSION: auto, v1 or v2
	DagInclude *regexp.Regexp // FARM_AIRFLOW_DAG_INCLUDE
	DagExclude *regexp.Regexp // FARM_AIRFLOW_DAG_EXCLUDE (default ^airflow_monitoring$)
	PageSize   int            // FARM_AIRFLOW_PAGE_SIZE
	UIURL      *url.URL       // FARM_AIRFLOW_UI_URL (default: FARM_AIRFLOW_URL)
}

func loadAirflow(r *Reader) Airflow {
	a := Airflow{
		URL:        r.URL("FARM_AIRFLOW_URL"),
		Instance:   r.String("FARM_AIRFLOW_INSTANCE", ""),
		Auth:       r.OneOf("FARM_AIRFLOW_AUTH", "auto", "auto", "google", "basic", "bearer", "jwt", "none"),
		Username:   r.String("FARM_AIRFLOW_USERNAME", ""),
		Password:   r.Secret("FARM_AIRFLOW_PASSWORD"),
		Token:      r.Secret("FARM_AIRFLOW_TOKEN"),
		APIVersion: r.OneOf("FARM_AIRFLOW_API_VERSION", "auto", "auto", "v1", "v2"),
		DagInclude: r.Regexp("FARM_AIRFLOW_DAG_INCLUDE", ""),
		DagExclude: r.Regexp("FARM_AIRFLOW_DAG_EXCLUDE", "^airflow_monitoring$"),
		PageSize:   r.Int("FARM_AIRFLOW_PAGE_SIZE", 100),
		UIURL:      r.URL("FARM_AIRFLOW_UI_URL"),
	}
	if a.URL != nil && a.Instance == "" {
		a.Instance = a.URL.Hostname()
	}
	if a.UIURL == nil {
		a.UIURL = a.URL
	}
	if a.PageSize < 1 {
		r.Fail("FARM_AIRFLOW_PAGE_SIZE", "must be at least 1, got %d", a.PageSize)
	}
	switch a.Auth {
	case "basic", "jwt":
		if a.Username == "" || a.Password == "" {
			r.Fail("FARM_AIRFLOW_AUTH", "is %s: set FARM_AIRFLOW_USERNAME and FARM_AIRFLOW_PASSWORD (or _FILE)", a.Auth)
		}
	case "bearer":
		if a.Token == "" {
			r.Fail("FARM_AIRFLOW_AUTH", "is bearer: set FARM_AIRFLOW_TOKEN (or FARM_AIRFLOW_TOKEN_FILE)")
		}
	}
	return a
}
