package httpx

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// recorder is a plain-HTTP server that records the Authorization header of every request.
type recorder struct {
	mu    sync.Mutex
	auths []string
	srv   *httptest.Server
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auths = append(r.auths, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"items":[]}`)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

// An HTTPS API answering a redirect to another origin (http on the same host, or another host)
// fails the call at once, and the other origin receives nothing, let alone the credentials. A
// redirect within the origin is followed with them.
func TestRedirectsNeverCarryCredentialsToAnotherOrigin(t *testing.T) {
	plain := newRecorder(t)
	pu, _ := url.Parse(plain.srv.URL)
	auths := map[string]Option{
		"bearer": WithBearerToken("s3cret-token"),
		"basic":  WithBasicAuth("farm", "s3cret-password"),
	}
	for authName, auth := range auths {
		for _, c := range []struct {
			name   string
			target func(tlsURL *url.URL) string
		}{
			{"https to http on the same host", func(*url.URL) string { return plain.srv.URL + "/api/v1/workflows/" }},
			{"to another host", func(*url.URL) string { return "http://localhost:" + pu.Port() + "/api/v1/workflows/" }},
			{"https to https on another port of the same host", func(*url.URL) string {
				other := httptest.NewTLSServer(http.NotFoundHandler())
				t.Cleanup(other.Close)
				return other.URL + "/api/v1/workflows/"
			}},
		} {
			t.Run(authName+"/"+c.name, func(t *testing.T) {
				before := len(plain.got())
				var target string
				srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, target, http.StatusFound)
				}))
				defer srv.Close()
				su, _ := url.Parse(srv.URL)
				target = c.target(su)
				sl := &sleeps{}
				cl, err := New(su, auth, WithTransport(srv.Client().Transport), WithSleep(sl.sleep), WithRetries(3))
				if err != nil {
					t.Fatal(err)
				}
				_, err = GetJSON[map[string]any](t.Context(), cl, "api/v1/workflows/", nil)
				if !errors.Is(err, ErrRedirect) {
					t.Fatalf("call redirected to %s: err = %v, want ErrRedirect", target, err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error carries the credentials: %v", err)
				}
				if got := plain.got()[before:]; len(got) != 0 {
					t.Errorf("the other origin received %d requests (Authorization %q)", len(got), got)
				}
				if n := cl.Stats().Calls; n != 1 || len(sl.got()) != 0 {
					t.Errorf("%d calls, %d retries: a refused redirect is not retried", n, len(sl.got()))
				}
			})
		}
		t.Run(authName+"/same origin", func(t *testing.T) {
			var got []string
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/old/list" {
					http.Redirect(w, r, "/new/list", http.StatusMovedPermanently)
					return
				}
				got = append(got, r.URL.Path+" "+r.Header.Get("Authorization"))
				_, _ = io.WriteString(w, `{"items":[]}`)
			}))
			defer srv.Close()
			su, _ := url.Parse(srv.URL)
			cl, err := New(su, auth, WithHTTPClient(srv.Client()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := GetJSON[map[string]any](t.Context(), cl, "old/list", nil); err != nil {
				t.Fatalf("same-origin redirect: %v", err)
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], "/new/list ") || strings.HasSuffix(got[0], " ") {
				t.Errorf("requests after the redirect = %q, want /new/list with credentials", got)
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Argo.Example.com/api":       "https://argo.example.com:443",
		"https://argo.example.com:443/x":     "https://argo.example.com:443",
		"http://user:pw@argo.example.com/":   "http://argo.example.com:80",
		"http://[::1]:2746/api/v1/workflows": "http://[::1]:2746",
	} {
		u, _ := url.Parse(in)
		if got := Origin(u); got != want {
			t.Errorf("Origin(%s) = %s, want %s", in, got, want)
		}
	}
}
