package httpx

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

// sleeps records the waits a client asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func noJitter(d time.Duration) time.Duration { return d }

func newClient(t *testing.T, rawURL string, opts ...Option) (*Client, *sleeps) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	base := []Option{WithSleep(s.sleep), WithJitter(noJitter), WithBackoff(100*time.Millisecond, time.Second), WithTimeout(5 * time.Second)}
	c, err := New(u, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// script answers the n-th request (0-based) with steps[n], the last one repeating.
type script struct {
	steps []func(w http.ResponseWriter, r *http.Request)
	n     atomic.Int64
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(s.n.Add(1) - 1)
	if i >= len(s.steps) {
		i = len(s.steps) - 1
	}
	s.steps[i](w, r)
}

func status(code int, body string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func ok(body string) func(http.ResponseWriter, *http.Request) { return status(200, body) }

type item struct {
	Name string `json:"name"`
}

func TestRequestShapeAuthAndCounters(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		_, _ = io.WriteString(w, `{"name":"wf-1"}`)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv.URL+"/prefix/", WithBearerToken("s3cret"), WithUserAgent("farm-test"))

	v, err := GetJSON[item](t.Context(), c, "/api/v1/workflows/", url.Values{"listOptions.labelSelector": {"a!=true"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "wf-1" {
		t.Errorf("decoded %+v", v)
	}
	if got.URL.Path != "/prefix/api/v1/workflows/" {
		t.Errorf("path = %q, want the base path joined, trailing slash kept", got.URL.Path)
	}
	if q := got.URL.Query().Get("listOptions.labelSelector"); q != "a!=true" {
		t.Errorf("query = %q", q)
	}
	for h, want := range map[string]string{"Authorization": "Bearer s3cret", "User-Agent": "farm-test", "Accept": "application/json"} {
		if got.Header.Get(h) != want {
			t.Errorf("%s = %q, want %q", h, got.Header.Get(h), want)
		}
	}
	if st := c.Stats(); st.Calls != 1 || st.Bytes != int64(len(`{"name":"wf-1"}`)) || st.Retries != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestBasicAuth(t *testing.T) {
	var user, pass string
	var ok bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok = r.BasicAuth()
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv.URL, WithBasicAuth("admin", "p@ss:word"))
	if _, err := GetJSON[map[string]any](t.Context(), c, "/api/v1/dags", nil); err != nil {
		t.Fatal(err)
	}
	if !ok || user != "admin" || pass != "p@ss:word" {
		t.Errorf("server saw basic auth %v %q %q", ok, user, pass)
	}
	u, _ := url.Parse(srv.URL)
	if _, err := New(u, WithBasicAuth("a", "b"), WithBearerToken("t")); err == nil {
		t.Error("basic auth plus bearer token accepted")
	}
}

func TestRetries(t *testing.T) {
	argoErr := `{"code":14,"message":"upstream connect error"}`
	tests := []struct {
		name      string
		steps     []func(http.ResponseWriter, *http.Request)
		retries   int
		wantErr   string // substring; "" for success
		wantCode  int
		wantCalls int64
		wantSleep []time.Duration
	}{
		{"500 then ok", []func(http.ResponseWriter, *http.Request){status(500, argoErr), ok(`{"name":"x"}`)}, 3, "", 0, 2, []time.Duration{100 * time.Millisecond}},
		{"backoff doubles and caps", []func(http.ResponseWriter, *http.Request){status(502, ""), status(503, ""), status(504, ""), status(500, ""), status(500, ""), ok(`{}`)}, 5, "", 0, 6,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}},
		{"429 honours Retry-After seconds", []func(http.ResponseWriter, *http.Request){status(429, "slow down", "Retry-After", "7"), ok(`{}`)}, 3, "", 0, 2, []time.Duration{7 * time.Second}},
		{"503 honours an HTTP-date Retry-After", []func(http.ResponseWriter, *http.Request){status(503, "", "Retry-After", "Fri, 02 Jan 2026 03:04:35 GMT"), ok(`{}`)}, 3, "", 0, 2, []time.Duration{30 * time.Second}},
		{"unreadable Retry-After falls back to backoff", []func(http.ResponseWriter, *http.Request){status(429, "", "Retry-After", "soon"), ok(`{}`)}, 3, "", 0, 2, []time.Duration{100 * time.Millisecond}},
		{"Retry-After beyond the cap fails at once", []func(http.ResponseWriter, *http.Request){status(429, "", "Retry-After", "3600")}, 3, "server asked to retry after 1h0m0s", 429, 1, nil},
		{"gives up after the retries", []func(http.ResponseWriter, *http.Request){status(500, argoErr)}, 2, "after 3 attempts: GET /api/v1/workflows/argo: 500 Internal Server Error: upstream connect error", 500, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{"no retries configured", []func(http.ResponseWriter, *http.Request){status(503, "")}, 0, "503 Service Unavailable", 503, 1, nil},
		{"404 not retried", []func(http.ResponseWriter, *http.Request){status(404, `{"code":5,"message":"workflows.argoproj.io \"x\" not found"}`)}, 3, `GET /api/v1/workflows/argo: 404 Not Found: workflows.argoproj.io "x" not found`, 404, 1, nil},
		{"401 not retried", []func(http.ResponseWriter, *http.Request){status(401, `{"code":16,"message":"token not valid"}`)}, 3, "401 Unauthorized: token not valid", 401, 1, nil},
		{"403 not retried", []func(http.ResponseWriter, *http.Request){status(403, `{"code":7,"message":"Permission denied"}`)}, 3, "403 Forbidden: Permission denied", 403, 1, nil},
		{"400 not retried", []func(http.ResponseWriter, *http.Request){status(400, `{"code":3,"message":"listOptions.continue must be int"}`)}, 3, "listOptions.continue must be int", 400, 1, nil},
		{"501 not retried", []func(http.ResponseWriter, *http.Request){status(501, "")}, 3, "501 Not Implemented", 501, 1, nil},
		{"malformed JSON not retried", []func(http.ResponseWriter, *http.Request){ok(`{"name": nope}`)}, 3, "GET /api/v1/workflows/argo: decode response: invalid character", 0, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&script{steps: tc.steps})
			defer srv.Close()
			clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			c, s := newClient(t, srv.URL, WithRetries(tc.retries), WithClock(clk), WithMaxRetryAfter(time.Minute))
			_, err := GetJSON[map[string]any](t.Context(), c, "/api/v1/workflows/argo", nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if StatusCode(err) != tc.wantCode {
				t.Errorf("StatusCode = %d, want %d", StatusCode(err), tc.wantCode)
			}
			if st := c.Stats(); st.Calls != tc.wantCalls || st.Retries != tc.wantCalls-1 {
				t.Errorf("stats = %+v, want %d calls", st, tc.wantCalls)
			}
			if got := s.got(); fmt.Sprint(got) != fmt.Sprint(tc.wantSleep) {
				t.Errorf("sleeps = %v, want %v", got, tc.wantSleep)
			}
		})
	}
}

func TestJitterStaysWithinHalfAndFull(t *testing.T) {
	for range 1000 {
		d := equalJitter(time.Second)
		if d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("equalJitter(1s) = %s, want within [500ms, 1s]", d)
		}
	}
	c := &Client{backoffBase: time.Second, backoffMax: 30 * time.Second, jitter: noJitter}
	if got := c.backoff(200); got != 30*time.Second {
		t.Errorf("backoff(200) = %s, want the cap", got)
	}
}

// TestTimeoutIsRetried blocks the first attempt until the client gives up on it; the test waits on
// the request's context, not on a clock.
func TestTimeoutIsRetried(t *testing.T) {
	srv := httptest.NewServer(&script{steps: []func(http.ResponseWriter, *http.Request){
		func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
		ok(`{"name":"late"}`),
	}})
	defer srv.Close()
	c, s := newClient(t, srv.URL, WithTimeout(50*time.Millisecond))
	v, err := GetJSON[item](t.Context(), c, "/x", nil)
	if err != nil || v.Name != "late" {
		t.Fatalf("got %+v, %v", v, err)
	}
	if len(s.got()) != 1 {
		t.Errorf("sleeps = %v, want one retry", s.got())
	}
}

func TestTimeoutsExhaustRetries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	c, _ := newClient(t, srv.URL, WithTimeout(20*time.Millisecond), WithRetries(2))
	_, err := GetJSON[item](t.Context(), c, "/x", nil)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "after 3 attempts: GET /x: no complete response within 20ms") {
		t.Fatalf("error = %v", err)
	}
}

// TestBrokenBodyIsRetried: the server promises more bytes than it sends and hangs up, as a proxy
// that drops a connection does. The second attempt decodes afresh.
func TestBrokenBodyIsRetried(t *testing.T) {
	var decodes atomic.Int64
	srv := httptest.NewServer(&script{steps: []func(http.ResponseWriter, *http.Request){
		func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, `{"name":"tru`)
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		},
		ok(`{"name":"whole"}`),
	}})
	defer srv.Close()
	c, _ := newClient(t, srv.URL)
	var got item
	err := c.Do(t.Context(), Request{Path: "/x"}, func(r io.Reader) error {
		decodes.Add(1)
		got = item{}
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		got.Name = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != `{"name":"whole"}` || decodes.Load() != 2 {
		t.Errorf("got %q after %d decodes", got.Name, decodes.Load())
	}
}

func TestConnectionRefusedIsRetriedThenReported(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, s := newClient(t, "http://"+addr, WithRetries(2))
	_, err = GetJSON[item](t.Context(), c, "/api/v1/workflows/", nil)
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts: GET /api/v1/workflows/") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error = %v", err)
	}
	if len(s.got()) != 2 {
		t.Errorf("sleeps = %v", s.got())
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	c, _ := newClient(t, srv.URL, WithSleep(func(context.Context, time.Duration) error {
		cancel() // the caller gives up while the client waits to retry
		return context.Canceled
	}))
	_, err := GetJSON[item](ctx, c, "/x", nil)
	if !errors.Is(err, context.Canceled) || c.Stats().Calls != 1 {
		t.Fatalf("error = %v after %d calls", err, c.Stats().Calls)
	}
}

func TestPermanentStatusIsNotRetried(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(500)
		_, _ = io.WriteString(w, `{"code":13,"message":"getting archived workflows not supported"}`)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv.URL)
	err := c.Do(t.Context(), Request{Path: "/x", Permanent: func(e *StatusError) bool {
		return strings.Contains(e.Message, "not supported")
	}}, func(io.Reader) error { return nil })
	if StatusCode(err) != 500 || c.Stats().Calls != 1 {
		t.Fatalf("error = %v after %d calls", err, c.Stats().Calls)
	}
}

func TestTokenFileIsReadPerRequest(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first\n")
	c, _ := newClient(t, srv.URL, WithTokenFile(path))
	for _, next := range []string{"second", ""} {
		if _, err := GetJSON[map[string]any](t.Context(), c, "/x", nil); err != nil {
			t.Fatal(err)
		}
		write(next)
	}
	_, err := GetJSON[map[string]any](t.Context(), c, "/x", nil)
	if err == nil || !strings.Contains(err.Error(), "token file is empty") {
		t.Errorf("empty token file: error = %v", err)
	}
	if fmt.Sprint(seen) != "[Bearer first Bearer second]" {
		t.Errorf("server saw %v", seen)
	}
}

func TestCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"name":"tls"}`) }))
	defer srv.Close()
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	c, _ := newClient(t, srv.URL, WithCAFile(caPath))
	if v, err := GetJSON[item](t.Context(), c, "/x", nil); err != nil || v.Name != "tls" {
		t.Fatalf("with the CA: %+v, %v", v, err)
	}

	untrusting, s := newClient(t, srv.URL)
	_, err := GetJSON[item](t.Context(), untrusting, "/x", nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: error = %v", err)
	}
	if len(s.got()) != 0 {
		t.Errorf("an untrusted certificate was retried: sleeps %v", s.got())
	}

	junk := filepath.Join(dir, "junk.pem")
	_ = os.WriteFile(junk, []byte("not a certificate"), 0o600)
	u, _ := url.Parse(srv.URL)
	for name, opts := range map[string][]Option{
		"no PEM in file":        {WithCAFile(junk)},
		"missing file":          {WithCAFile(filepath.Join(dir, "absent.pem"))},
		"custom client plus CA": {WithHTTPClient(http.DefaultClient), WithCAFile(caPath)},
		"non-http transport":    {WithTransport(roundTripFunc(nil)), WithCAFile(caPath)},
	} {
		if _, err := New(u, opts...); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewRejectsBadSettings(t *testing.T) {
	good, _ := url.Parse("https://argo.example.com")
	rel, _ := url.Parse("/api")
	for name, tc := range map[string]struct {
		u    *url.URL
		opts []Option
	}{
		"nil URL":          {nil, nil},
		"relative URL":     {rel, nil},
		"zero timeout":     {good, []Option{WithTimeout(0)}},
		"negative retries": {good, []Option{WithRetries(-1)}},
		"inverted backoff": {good, []Option{WithBackoff(time.Minute, time.Second)}},
	} {
		if _, err := New(tc.u, tc.opts...); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestServerMessage(t *testing.T) {
	long := strings.Repeat("é", 400)
	tests := []struct{ body, want string }{
		{`{"code":5,"message":"workflows.argoproj.io \"x\" not found","details":[]}`, `workflows.argoproj.io "x" not found`},
		{`{"detail":"DAG with dag_id: 'x' was not found","status":404,"title":"DAG not found","type":"about:blank"}`, "DAG with dag_id: 'x' was not found"},
		{`{"detail":[{"loc":["query","limit"],"msg":"bad"}]}`, `[{"loc":["query","limit"],"msg":"bad"}]`},
		{`{"error":"grpc: the client connection is closing","code":1}`, "grpc: the client connection is closing"},
		{`{"message":"","title":"Forbidden"}`, "Forbidden"},
		{"<html>\n<body>502 Bad   Gateway</body></html>", "<html> <body>502 Bad Gateway</body></html>"},
		{"", ""},
		{long, long[:512] + "…"},
	}
	for _, tc := range tests {
		if got := serverMessage([]byte(tc.body)); got != tc.want {
			t.Errorf("serverMessage(%.40q) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestConcurrentUseCountsEveryCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"name":"n"}`) }))
	defer srv.Close()
	c, _ := newClient(t, srv.URL)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := GetJSON[item](t.Context(), c, "/x", nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.Calls != 20 || st.Bytes != 20*int64(len(`{"name":"n"}`)) {
		t.Errorf("stats = %+v", st)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v", err)
	}
	if err := Sleep(t.Context(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v", err)
	}
}
