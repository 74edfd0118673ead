package airflow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/httpx"
)

// Auth modes (Config.Auth).
const (
	AuthAuto   = "auto"   // google for Composer web servers, none elsewhere
	AuthNone   = "none"   // no Authorization header
	AuthBasic  = "basic"  // HTTP basic auth (Airflow 2's basic_auth backend)
	AuthBearer = "bearer" // a static bearer token
	AuthGoogle = "google" // Google application default credentials (Cloud Composer 2 and 3)
	AuthJWT    = "jwt"    // Airflow 3: POST /auth/token, refreshed before it expires
)

// CloudPlatformScope is the OAuth scope Composer's web server expects.
const CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// ResolveAuth turns auto into the mode the host calls for: Composer web servers
// (*.composer.googleusercontent.com) take Google credentials, anything else none.
func ResolveAuth(mode string, base *url.URL) string {
	if mode != "" && mode != AuthAuto {
		return mode
	}
	if base != nil && strings.HasSuffix(strings.ToLower(base.Hostname()), ".composer.googleusercontent.com") {
		return AuthGoogle
	}
	return AuthNone
}

// authorizer gives each request its Authorization header.
type authorizer interface {
	mode() string
	header(ctx context.Context) (string, error)
	// refresh is called after a 401 answered a request sent with header rejected; it reports
	// whether sending the request again with fresh credentials can help.
	refresh(ctx context.Context, rejected string) bool
}

type noAuth struct{}

func (noAuth) mode() string                                { return AuthNone }
func (noAuth) header(context.Context) (string, error)      { return "", nil }
func (noAuth) refresh(context.Context, string) bool        { return false }
func (b basicAuth) mode() string                           { return AuthBasic }
func (b basicAuth) header(context.Context) (string, error) { return b.value, nil }
func (basicAuth) refresh(context.Context, string) bool     { return false }

type basicAuth struct{ value string }

func newBasicAuth(user, pass string) basicAuth {
	return basicAuth{"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

type bearerAuth struct{ token string }

func (bearerAuth) mode() string                             { return AuthBearer }
func (b bearerAuth) header(context.Context) (string, error) { return "Bearer " + b.token, nil }
func (bearerAuth) refresh(context.Context, string) bool     { return false }

// googleAuth sends a Google OAuth access token. The token source is created on first use, so a
// function instance that never polls never looks for credentials.
type googleAuth struct {
	mu     sync.Mutex
	ts     oauth2.TokenSource
	newSrc func(ctx context.Context) (oauth2.TokenSource, error)
}

func newGoogleAuth(ts oauth2.TokenSource) *googleAuth {
	g := &googleAuth{newSrc: func(ctx context.Context) (oauth2.TokenSource, error) {
		// The token source refreshes with this context long after the request that created it:
		// keep its values, not its deadline.
		return google.DefaultTokenSource(context.WithoutCancel(ctx), CloudPlatformScope)
	}}
	if ts != nil {
		g.ts = oauth2.ReuseTokenSource(nil, ts)
	}
	return g
}

func (g *googleAuth) mode() string { return AuthGoogle }

func (g *googleAuth) header(ctx context.Context) (string, error) {
	g.mu.Lock()
	if g.ts == nil {
		ts, err := g.newSrc(ctx)
		if err != nil {
			g.mu.Unlock()
			return "", fmt.Errorf("google application default credentials: %w", err)
		}
		g.ts = ts
	}
	ts := g.ts
	g.mu.Unlock()
	tok, err := ts.Token()
	if err != nil {
		return "", fmt.Errorf("google access token: %w", err)
	}
	return "Bearer " + tok.AccessToken, nil
}

func (g *googleAuth) refresh(context.Context, string) bool { return false }

// jwtAuth is Airflow 3's token flow: POST /auth/token with the credentials returns a JWT, used as
// a bearer token until shortly before its exp claim, and fetched again once when a call is
// answered 401 (the server restarted with a new key, or the clocks disagree).
type jwtAuth struct {
	hc        *httpx.Client
	user, pwd string
	clk       clock.Clock

	mu      sync.Mutex
	token   string
	expires time.Time // zero: unknown (no exp claim): used until refused
	margin  time.Duration
}

func (j *jwtAuth) mode() string { return AuthJWT }

func (j *jwtAuth) header(ctx context.Context) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.token == "" || (!j.expires.IsZero() && !j.clk.Now().Before(j.expires.Add(-j.margin))) {
		if err := j.fetch(ctx); err != nil {
			return "", err
		}
	}
	return "Bearer " + j.token, nil
}

func (j *jwtAuth) refresh(ctx context.Context, rejected string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if "Bearer "+j.token != rejected {
		return true // another request already replaced the token
	}
	return j.fetch(ctx) == nil
}

func (j *jwtAuth) fetch(ctx context.Context) error {
	body, err := json.Marshal(map[string]string{"username": j.user, "password": j.pwd})
	if err != nil {
		return err
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	err = j.hc.Do(ctx, httpx.Request{
		Method: http.MethodPost, Path: "auth/token", Body: body,
		Header: http.Header{"Content-Type": {"application/json"}},
	}, func(r io.Reader) error { return json.NewDecoder(r).Decode(&out) })
	if err != nil {
		if c := httpx.StatusCode(err); c == http.StatusUnauthorized || c == http.StatusForbidden {
			return &AuthError{Mode: AuthJWT, Err: err}
		}
		return fmt.Errorf("get a JWT from /auth/token: %w", err)
	}
	if out.AccessToken == "" {
		return errors.New("get a JWT from /auth/token: the answer has no access_token")
	}
	j.token = out.AccessToken
	j.expires, j.margin = time.Time{}, 0
	if exp, iat, ok := jwtTimes(out.AccessToken); ok {
		j.expires = exp
		// Refresh a tenth of the lifetime early (at most a minute): a poll never starts a call
		// with a token about to lapse.
		life := exp.Sub(iat)
		if iat.IsZero() || life <= 0 {
			life = exp.Sub(j.clk.Now())
		}
		j.margin = min(time.Minute, max(life/10, 0))
	}
	return nil
}

// jwtTimes reads the exp and iat claims without verifying the token: FARM is not its audience,
// it only needs to know when to ask for a new one.
func jwtTimes(tok string) (exp, iat time.Time, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return exp, iat, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return exp, iat, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
		Iat *float64 `json:"iat"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp == nil {
		return exp, iat, false
	}
	exp = time.Unix(int64(*claims.Exp), 0)
	if claims.Iat != nil {
		iat = time.Unix(int64(*claims.Iat), 0)
	}
	return exp, iat, true
}

// AuthError is a 401 or 403 answer: Airflow refused the credentials of the configured auth mode,
// or they lack a permission. Polls fail with it (the cursor stays) until the configuration is
// fixed.
type AuthError struct {
	Mode string
	Err  error // the *httpx.StatusError
}

func (e *AuthError) Error() string {
	if httpx.StatusCode(e.Err) == http.StatusForbidden {
		return fmt.Sprintf("airflow denied the identity of auth mode %q (FARM_AIRFLOW_AUTH) access: give it a role that can read DAG runs and task instances (Viewer or Op): %v", e.Mode, e.Err)
	}
	return fmt.Sprintf("airflow refused the credentials of auth mode %q (FARM_AIRFLOW_AUTH): %v", e.Mode, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }
