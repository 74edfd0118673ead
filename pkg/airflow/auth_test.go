package airflow_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
)

func TestResolveAuth(t *testing.T) {
	for _, c := range []struct{ mode, url, want string }{
		{"auto", "https://abc123-dot-europe-west1.composer.googleusercontent.com", airflow.AuthGoogle},
		{"", "https://ABC-dot-us-central1.Composer.GoogleUserContent.com/", airflow.AuthGoogle},
		{"auto", "https://airflow.example.com", airflow.AuthNone},
		{"auto", "https://composer.googleusercontent.com.evil.example", airflow.AuthNone},
		{"basic", "https://abc-dot-x.composer.googleusercontent.com", airflow.AuthBasic},
	} {
		u, _ := url.Parse(c.url)
		if got := airflow.ResolveAuth(c.mode, u); got != c.want {
			t.Errorf("ResolveAuth(%q, %s) = %s, want %s", c.mode, c.url, got, c.want)
		}
	}
}

// countingTokens is an oauth2.TokenSource handing out Google-like access tokens.
type countingTokens struct{ n atomic.Int32 }

func (c *countingTokens) Token() (*oauth2.Token, error) {
	c.n.Add(1)
	return &oauth2.Token{AccessToken: "ya29.test-token", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
}

// A Composer host (auth auto) gets the Google access token of the injected token source.
func TestComposerHostSendsTheGoogleToken(t *testing.T) {
	tokens := &countingTokens{}
	e := newEnv(t, envOpts{sim: airflowsim.Options{API: "v2", Auth: airflowsim.Auth{Mode: "bearer", Tokens: []string{"ya29.test-token"}}}})
	sim := e.srv.Listener.Addr().String()
	src := e.newSource(func(o *sourceSetup) {
		o.URL, _ = url.Parse("http://abc123-dot-europe-west1.composer.googleusercontent.com")
		o.TokenSource = tokens
		o.HTTP = append(o.HTTP, httpx.WithTransport(&http.Transport{
			// The Composer host name leads to the simulator.
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, sim)
			},
		}))
	})
	if src.Client().AuthMode() != airflow.AuthGoogle {
		t.Fatalf("auth mode %s for a Composer host", src.Client().AuthMode())
	}
	e.trigger("etl", "r1", task("a", 0))
	res, err := e.h.Engine(src, poll.Config{}).Poll(t.Context(), poll.Request{})
	if err != nil || res.RunsSeen != 1 {
		t.Fatalf("poll with the Google token: %v (%d runs)", err, res.RunsSeen)
	}
	if tokens.n.Load() == 0 {
		t.Fatal("the token source was never asked")
	}
	// A token the server does not accept is a clear auth error naming the mode.
	bad := e.newSource(func(o *sourceSetup) {
		o.Auth = airflow.AuthGoogle
		o.TokenSource = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29.revoked"})
	})
	_, err = e.h.Engine(bad, poll.Config{}).Poll(t.Context(), poll.Request{})
	var ae *airflow.AuthError
	if !errors.As(err, &ae) || ae.Mode != airflow.AuthGoogle || !strings.Contains(err.Error(), "401") {
		t.Fatalf("revoked Google token: %v", err)
	}
}

func TestStaticBearerToken(t *testing.T) {
	e := newEnv(t, envOpts{
		sim:    airflowsim.Options{API: "v1", Auth: airflowsim.Auth{Mode: "bearer", Tokens: []string{"s3cret"}}},
		source: func(o *sourceSetup) { o.Auth, o.Token = airflow.AuthBearer, "s3cret" },
	})
	e.trigger("etl", "r1", task("a", 0))
	if res, _ := e.poll(); res.RunsSeen != 1 {
		t.Fatalf("%d runs", res.RunsSeen)
	}
	for _, mod := range []func(*airflow.Config){
		func(c *airflow.Config) { c.Auth = "bearer" },
		func(c *airflow.Config) { c.Auth, c.Username = "basic", "u" },
		func(c *airflow.Config) { c.Auth, c.Password = "jwt", "p" },
		func(c *airflow.Config) { c.Auth = "kerberos" },
		func(c *airflow.Config) { c.APIVersion = "v3" },
	} {
		cfg := airflow.DefaultConfig()
		cfg.URL, _ = url.Parse(e.srv.URL)
		mod(&cfg)
		if _, err := airflow.NewClient(cfg, airflow.Deps{}); err == nil {
			t.Errorf("configuration %+v accepted", cfg)
		}
	}
}

// The JWT is refreshed before it expires, without a refused call.
func TestJWTRefreshedBeforeExpiry(t *testing.T) {
	e := newEnv(t, envOpts{
		sim: airflowsim.Options{API: "v2", Auth: airflowsim.Auth{Mode: "jwt", Username: "farm", Password: "pw", JWTTTL: 10 * time.Minute}},
		source: func(o *sourceSetup) {
			o.Auth, o.Username, o.Password = airflow.AuthJWT, "farm", "pw"
		},
	})
	e.trigger("etl", "r1", task("a", 0))
	e.poll()
	for range 4 {
		e.advance(4 * time.Minute)
		e.poll()
	}
	if n := e.sim.TokensIssued(); n != 2 {
		t.Errorf("%d tokens over 16 minutes of 10-minute tokens, want 2", n)
	}
	for _, r := range e.sim.Requests() {
		if r.Status == http.StatusUnauthorized {
			t.Fatalf("a call was refused: %s %s", r.Method, r.Path)
		}
	}
}

// A token the server stops accepting in the middle of a poll (its clock ran ahead of FARM's, or
// it restarted with a new key) is replaced once and the poll completes.
func TestJWTExpiringMidPoll(t *testing.T) {
	serverClock := clock.NewManual(t0)
	var jumped atomic.Bool
	e := newEnv(t, envOpts{
		sim:      airflowsim.Options{API: "v2", Auth: airflowsim.Auth{Mode: "jwt", Username: "farm", Password: "pw", JWTTTL: 10 * time.Minute}},
		simClock: serverClock,
		handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// After the run listing, the server's clock jumps past the token's life.
				if strings.HasSuffix(r.URL.Path, "/taskInstances") && jumped.CompareAndSwap(false, true) {
					serverClock.Advance(11 * time.Minute)
				}
				h.ServeHTTP(w, r)
			})
		},
		source: func(o *sourceSetup) {
			o.Auth, o.Username, o.Password = airflow.AuthJWT, "farm", "pw"
		},
	})
	e.trigger("etl", "r1", task("a", 0))
	e.must(e.sim.SetRunState("etl", "r1", airflowsim.RunRunning))
	e.must(e.sim.TI("etl", "r1", "a").Advance(S, Q, R))
	res, deltas := e.poll()
	if !jumped.Load() || res.RunsSeen != 1 || len(deltas) != 1 || len(deltas[0].Events) != 1 {
		t.Fatalf("poll across the expiry: %d runs, %d deltas", res.RunsSeen, len(deltas))
	}
	var refused int
	for _, r := range e.sim.Requests() {
		if r.Status == http.StatusUnauthorized {
			refused++
		}
	}
	if refused != 1 || e.sim.TokensIssued() != 2 {
		t.Errorf("%d refused calls and %d tokens: want one refusal answered by one new token", refused, e.sim.TokensIssued())
	}
	// Credentials refused by /auth/token itself: an auth error naming the mode.
	wrong := e.newSource(func(o *sourceSetup) {
		o.Auth, o.Username, o.Password = airflow.AuthJWT, "farm", "nope"
	})
	_, err := e.h.Engine(wrong, poll.Config{}).Poll(t.Context(), poll.Request{})
	var ae *airflow.AuthError
	if !errors.As(err, &ae) || ae.Mode != airflow.AuthJWT || !strings.Contains(err.Error(), "auth/token") {
		t.Fatalf("wrong password: %v", err)
	}
}
