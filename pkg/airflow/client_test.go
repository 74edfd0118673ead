package airflow_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/airflow"
)

func TestVersionDetection(t *testing.T) {
	for _, c := range []struct {
		sim       airflowsim.Options
		force     string
		wantAPI   string
		wantCalls int
	}{
		{airflowsim.Options{API: "v2", Version: "3.2.1"}, "", "v2", 1},
		{airflowsim.Options{API: "v1", Version: "2.10.5"}, "", "v1", 2},
		{airflowsim.Options{API: "v1", Version: "2.10.5"}, "v1", "v1", 1},
	} {
		e := newEnv(t, envOpts{sim: c.sim, source: func(o *sourceSetup) { o.APIVersion = c.force }})
		info, err := e.src.Client().Server(t.Context())
		if err != nil || info.API != c.wantAPI || info.Version != c.sim.Version {
			t.Fatalf("%+v: %+v, %v", c, info, err)
		}
		if _, err := e.src.Client().Server(t.Context()); err != nil || len(e.sim.Requests()) != c.wantCalls {
			t.Errorf("%+v: %d calls, want %d (detected once)", c, len(e.sim.Requests()), c.wantCalls)
		}
	}
	notAirflow := httptest.NewServer(http.NotFoundHandler())
	defer notAirflow.Close()
	u, _ := url.Parse(notAirflow.URL)
	cfg := airflow.DefaultConfig()
	cfg.URL = u
	c, err := airflow.NewClient(cfg, airflow.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Server(t.Context()); err == nil || !strings.Contains(err.Error(), "neither /api/v2/version nor /api/v1/version") {
		t.Fatalf("a server that is not Airflow: %v", err)
	}
	// Forcing v2 on an Airflow 2 is a clear error, not a silent fallback.
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v1"}, source: func(o *sourceSetup) { o.APIVersion = "v2" }})
	if _, err := e.src.Client().Server(t.Context()); err == nil {
		t.Fatal("v2 forced on Airflow 2 was accepted")
	}
}

// Every datetime FARM sends carries an offset, as both APIs require.
func TestDatetimesSentWithOffsets(t *testing.T) {
	forAPIs(t, func(t *testing.T, simOpts airflowsim.Options) {
		e := newEnv(t, envOpts{sim: simOpts})
		e.trigger("etl", "r1", task("a", 0))
		e.poll()
		var dated int
		for _, r := range e.sim.Requests() {
			for k, vs := range r.Query {
				if strings.HasSuffix(k, "_gte") || strings.HasSuffix(k, "_lte") {
					dated++
					if !strings.HasSuffix(vs[0], "Z") {
						t.Errorf("%s=%s has no offset", k, vs[0])
					}
				}
			}
			if r.Status >= 400 && r.Path != "/api/v2/version" {
				t.Errorf("%s %s answered %d", r.Method, r.Path, r.Status)
			}
		}
		if dated == 0 {
			t.Fatal("no dated filter sent")
		}
	})
}
