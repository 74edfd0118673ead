package airflow_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
)

// An HTTPS Airflow that starts answering with a redirect to another origin (http on the same host,
// or another host serving an empty but well-formed Airflow) fails the poll, whatever the auth
// mode: no credential (basic password, bearer token, JWT or the password posted for one, Google
// access token) reaches the other origin, and the cursor stays.
func TestRedirectToAnotherOriginFailsThePollAndKeepsTheCredentials(t *testing.T) {
	const secret = "s3cret"
	var (
		mu    sync.Mutex
		leaks []string
	)
	empty, err := airflowsim.New(airflowsim.Options{API: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaks = append(leaks, r.Method+" "+r.URL.Path+" Authorization="+r.Header.Get("Authorization"))
		mu.Unlock()
		empty.ServeHTTP(w, r)
	}))
	t.Cleanup(other.Close)
	ou, _ := url.Parse(other.URL)

	modes := map[string]struct {
		sim airflowsim.Auth
		set func(*sourceSetup)
	}{
		airflow.AuthBasic: {airflowsim.Auth{Mode: "basic", Username: "farm", Password: secret},
			func(o *sourceSetup) { o.Auth, o.Username, o.Password = airflow.AuthBasic, "farm", secret }},
		airflow.AuthBearer: {airflowsim.Auth{Mode: "bearer", Tokens: []string{secret}},
			func(o *sourceSetup) { o.Auth, o.Token = airflow.AuthBearer, secret }},
		airflow.AuthJWT: {airflowsim.Auth{Mode: "jwt", Username: "farm", Password: secret},
			func(o *sourceSetup) { o.Auth, o.Username, o.Password = airflow.AuthJWT, "farm", secret }},
		airflow.AuthGoogle: {airflowsim.Auth{Mode: "bearer", Tokens: []string{"ya29." + secret}},
			func(o *sourceSetup) {
				o.Auth = airflow.AuthGoogle
				o.TokenSource = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29." + secret, Expiry: time.Now().Add(time.Hour)})
			}},
	}
	for mode, m := range modes {
		for where, target := range map[string]string{
			"https to http on the same host": other.URL,
			"another host":                   "http://localhost:" + ou.Port(),
		} {
			t.Run(mode+"/"+where, func(t *testing.T) {
				e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2", Auth: m.sim}})
				var redirect atomic.Bool
				tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if redirect.Load() {
						http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusFound)
						return
					}
					e.sim.ServeHTTP(w, r)
				}))
				t.Cleanup(tlsSrv.Close)
				u, _ := url.Parse(tlsSrv.URL)
				source := func() *airflow.Source {
					return e.newSource(func(o *sourceSetup) {
						o.URL = u
						m.set(o)
						o.HTTP = append(o.HTTP, httpx.WithTransport(tlsSrv.Client().Transport))
					})
				}
				opts := poll.Config{Overlap: 2 * time.Minute, InitialLookback: time.Hour}
				e.trigger("etl", "r1", task("a", 0))
				if res, err := e.h.Engine(source(), opts).Poll(t.Context(), poll.Request{}); err != nil || res.RunsSeen != 1 {
					t.Fatalf("poll before the redirect: %v", err)
				}
				mu.Lock()
				before := len(leaks)
				mu.Unlock()

				redirect.Store(true)
				e.advance(time.Minute)
				// A fresh client too: its first calls (the JWT's POST /auth/token with the
				// password, the version probe) are the ones redirected.
				for i, src := range []*airflow.Source{source(), source()} {
					_, err := e.h.Engine(src, opts).Poll(t.Context(), poll.Request{})
					if !errors.Is(err, poll.ErrSource) || !errors.Is(err, httpx.ErrRedirect) {
						t.Fatalf("poll %d answered with a redirect to %s: %v, want ErrSource and ErrRedirect", i, target, err)
					}
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error carries the credentials: %v", err)
					}
				}
				mu.Lock()
				got := append([]string(nil), leaks[before:]...)
				mu.Unlock()
				if len(got) != 0 {
					t.Errorf("the other origin received %d requests: %q", len(got), got)
				}
				peek, err := e.store.Peek(t.Context(), "airflow/test")
				if err != nil {
					t.Fatal(err)
				}
				if !peek.Cursor.Equal(t0) {
					t.Errorf("cursor = %s after the refused redirect, want %s (the last good poll)", peek.Cursor, t0)
				}
			})
		}
	}
}
