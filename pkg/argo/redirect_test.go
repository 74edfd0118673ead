package argo_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/httpx"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// An HTTPS Argo Server that starts answering with a redirect to another origin (http on the same
// host, or another host serving an empty but well-formed list) fails the poll: the token never
// reaches the other origin and the cursor stays where the last good poll left it.
func TestRedirectToAnotherOriginFailsThePollAndKeepsTheToken(t *testing.T) {
	// The other origin: an empty Argo Server that records what it is sent.
	var (
		mu    sync.Mutex
		auths []string
	)
	empty := argosim.NewServer(nil, argosim.Options{Seed: 1})
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		empty.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { empty.Close(); other.Close() })
	ou, _ := url.Parse(other.URL)

	for name, target := range map[string]string{
		"https to http on the same host": other.URL,
		"another host":                   "http://localhost:" + ou.Port(),
	} {
		t.Run(name, func(t *testing.T) {
			store := filestore.New(filepath.Join(t.TempDir(), "state.json"))
			h := polltest.New(t, store, t0)
			sim := argosim.NewServer(h.Clock, argosim.Options{Seed: 2})
			var redirect atomic.Bool
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if redirect.Load() {
					http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusFound)
					return
				}
				sim.ServeHTTP(w, r)
			}))
			t.Cleanup(func() { sim.Close(); srv.Close() })
			u, _ := url.Parse(srv.URL)
			cfg := argo.DefaultConfig()
			cfg.URL, cfg.Instance, cfg.Namespaces, cfg.PageSize, cfg.Token = u, "test", []string{ns}, 3, "argo-s3cret"
			cfg.HTTPTimeout, cfg.HTTPRetries = 2*time.Second, 2
			src, err := argo.New(cfg, argo.Deps{Clock: h.Clock, HTTP: []httpx.Option{httpx.WithTransport(srv.Client().Transport),
				httpx.WithSleep(func(ctx context.Context, d time.Duration) error { return ctx.Err() })}})
			if err != nil {
				t.Fatal(err)
			}
			engine := h.Engine(src, poll.Config{Overlap: 5 * time.Minute, InitialLookback: time.Hour})
			if _, err := engine.Poll(t.Context(), poll.Request{}); err != nil {
				t.Fatalf("poll before the redirect: %v", err)
			}
			mu.Lock()
			before := len(auths)
			mu.Unlock()

			redirect.Store(true)
			h.Clock.Advance(time.Minute)
			_, err = engine.Poll(t.Context(), poll.Request{})
			if !errors.Is(err, poll.ErrSource) || !errors.Is(err, httpx.ErrRedirect) {
				t.Fatalf("poll answered with a redirect to %s: %v, want ErrSource and ErrRedirect", target, err)
			}
			if strings.Contains(err.Error(), "argo-s3cret") {
				t.Errorf("the error carries the token: %v", err)
			}
			mu.Lock()
			got := auths[before:]
			mu.Unlock()
			if len(got) != 0 {
				t.Errorf("the other origin received %d requests (Authorization %q)", len(got), got)
			}
			peek, err := store.Peek(t.Context(), src.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !peek.Cursor.Equal(t0) {
				t.Errorf("cursor = %s after the refused redirect, want %s (the last good poll)", peek.Cursor, t0)
			}
		})
	}
}
