// Package httpx is the HTTP client FARM uses to read orchestrator APIs (Argo Server, Airflow): a
// per-request timeout, retries with exponential backoff and jitter on 5xx, 429 (honouring
// Retry-After), timeouts and connection errors, never on other 4xx; bearer-token auth re-read per
// request (Kubernetes rotates mounted tokens); an optional CA bundle; counters of API calls and
// response bytes; and errors that name the method, path, status and the server's own message.
//
// Responses are handed to a decode callback as a stream, so callers can decode lists of hundreds
// of megabytes without holding them in memory twice.
package httpx

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

// Defaults used when no option says otherwise.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultRetries       = 3
	DefaultBackoffBase   = 500 * time.Millisecond
	DefaultBackoffMax    = 30 * time.Second
	DefaultMaxRetryAfter = 2 * time.Minute
	DefaultUserAgent     = "farm"
)

// errorBodyLimit bounds how much of an error response is read for its message.
const errorBodyLimit = 64 << 10

// SleepFunc waits for d or until ctx is done. Tests inject one that records and returns at once.
type SleepFunc func(ctx context.Context, d time.Duration) error

// TokenFunc returns the bearer token for the next request ("" sends no Authorization header).
type TokenFunc func() (string, error)

// Stats are cumulative counters, safe to read while requests run.
type Stats struct {
	Calls   int64 // HTTP requests sent, retries included
	Bytes   int64 // response body bytes read (after transparent decompression)
	Retries int64 // requests repeated after a retryable failure
}

// Client sends requests to one API base URL. It is safe for concurrent use.
type Client struct {
	base          *url.URL
	hc            *http.Client
	transport     http.RoundTripper
	caFile        string
	token         TokenFunc
	basicUser     string
	basicPass     string
	timeout       time.Duration
	retries       int
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	jitter        func(time.Duration) time.Duration
	sleep         SleepFunc
	clock         clock.Clock
	userAgent     string
	log           *slog.Logger

	calls, bytes, retried atomic.Int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests through hc as it is (its transport, TLS and timeouts). Its
// redirect policy runs after FARM's own, which refuses any redirect to another origin (see
// ErrRedirect). It cannot be combined with WithCAFile.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTransport sends requests through rt. Combined with WithCAFile, rt must be an *http.Transport.
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.transport = rt } }

// WithCAFile trusts the PEM certificates in path in addition to the system's.
func WithCAFile(path string) Option { return func(c *Client) { c.caFile = path } }

// WithBearerToken authenticates every request with a fixed token ("" disables auth).
func WithBearerToken(token string) Option {
	return WithTokenFunc(func() (string, error) { return token, nil })
}

// WithTokenFile reads the bearer token from path before every request, so a rotated token (a
// Kubernetes projected service-account token, a Secret Manager volume) is picked up without a
// restart.
func WithTokenFile(path string) Option { return WithTokenFunc(FileToken(path)) }

// WithTokenFunc authenticates every request with the token fn returns.
func WithTokenFunc(fn TokenFunc) Option { return func(c *Client) { c.token = fn } }

// WithBasicAuth authenticates every request with HTTP basic auth (Airflow's basic_auth backend).
// It cannot be combined with a bearer token.
func WithBasicAuth(user, password string) Option {
	return func(c *Client) { c.basicUser, c.basicPass = user, password }
}

// WithTimeout bounds each request attempt, response body included.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetries sets how many times a retryable failure is retried (0: never).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithBackoff sets the exponential backoff: the n-th retry waits about base*2^n, at most max.
func WithBackoff(base, max time.Duration) Option {
	return func(c *Client) { c.backoffBase, c.backoffMax = base, max }
}

// WithMaxRetryAfter is the longest Retry-After this client waits; a server asking for longer
// fails the call at once instead of stalling it.
func WithMaxRetryAfter(d time.Duration) Option { return func(c *Client) { c.maxRetryAfter = d } }

// WithJitter replaces the jitter applied to a backoff delay (tests make it deterministic).
func WithJitter(fn func(time.Duration) time.Duration) Option {
	return func(c *Client) { c.jitter = fn }
}

// WithSleep replaces the wait between retries.
func WithSleep(fn SleepFunc) Option { return func(c *Client) { c.sleep = fn } }

// WithClock sets the clock used to read Retry-After dates.
func WithClock(clk clock.Clock) Option { return func(c *Client) { c.clock = clk } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithLogger logs retries at debug level and give-ups at warn level.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// New returns a client for the API at base. Nothing is dialled until the first request.
func New(base *url.URL, opts ...Option) (*Client, error) {
	if base == nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("httpx: base URL %v is not an absolute http(s) URL", base)
	}
	c := &Client{
		base:          base,
		timeout:       DefaultTimeout,
		retries:       DefaultRetries,
		backoffBase:   DefaultBackoffBase,
		backoffMax:    DefaultBackoffMax,
		maxRetryAfter: DefaultMaxRetryAfter,
		jitter:        equalJitter,
		sleep:         Sleep,
		clock:         clock.Real{},
		userAgent:     DefaultUserAgent,
		log:           slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.timeout <= 0:
		return nil, fmt.Errorf("httpx: timeout must be positive, got %s", c.timeout)
	case c.retries < 0:
		return nil, fmt.Errorf("httpx: retries must not be negative, got %d", c.retries)
	case c.backoffBase <= 0 || c.backoffMax < c.backoffBase:
		return nil, fmt.Errorf("httpx: backoff base %s and max %s: want 0 < base <= max", c.backoffBase, c.backoffMax)
	}
	if c.basicUser != "" && c.token != nil {
		return nil, errors.New("httpx: basic auth and a bearer token are both set; set one")
	}
	if c.hc == nil {
		rt, err := c.buildTransport()
		if err != nil {
			return nil, err
		}
		c.hc = &http.Client{Transport: rt, CheckRedirect: sameOrigin(nil)}
	} else if c.caFile != "" || c.transport != nil {
		return nil, errors.New("httpx: WithHTTPClient cannot be combined with WithTransport or WithCAFile")
	} else {
		hc := *c.hc // the caller's client is shared: change a copy
		hc.CheckRedirect = sameOrigin(c.hc.CheckRedirect)
		c.hc = &hc
	}
	return c, nil
}

// Stats returns the cumulative counters.
func (c *Client) Stats() Stats {
	return Stats{Calls: c.calls.Load(), Bytes: c.bytes.Load(), Retries: c.retried.Load()}
}

// BaseURL returns the API base URL.
func (c *Client) BaseURL() *url.URL { u := *c.base; return &u }

// Request is one API call.
type Request struct {
	Method string // GET when empty
	// Path is appended to the base URL's path; it must be escaped already (see url.PathEscape).
	Path   string
	Query  url.Values
	Header http.Header
	// Body is sent as is (replayed on retries); set Content-Type in Header.
	Body []byte
	// Permanent reports whether a status that would be retried (5xx, 429) is known to be final for
	// this call, e.g. a 500 that says a feature is disabled. Optional.
	Permanent func(*StatusError) bool
}

// Do sends req, retrying what is retryable, and hands a successful (2xx) response body to decode.
// decode may run more than once when reading the body fails mid-way (a reset connection, a
// timeout) and the call is retried, so it must not keep state from an earlier run. A decode error
// that is not a read failure is returned at once, wrapped with the method and path.
func (c *Client) Do(ctx context.Context, req Request, decode func(io.Reader) error) error {
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	for attempt := 0; ; attempt++ {
		res := c.attempt(ctx, req, decode)
		if res.err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", req.Method, req.Path, context.Cause(ctx))
		}
		wait, retry, why := c.retryable(req, res, attempt)
		if !retry {
			if attempt > 0 {
				c.log.WarnContext(ctx, "giving up on API call", "method", req.Method, "path", req.Path, "attempts", attempt+1, "error", res.err)
				return fmt.Errorf("after %d attempts: %w", attempt+1, withReason(res.err, why))
			}
			return withReason(res.err, why)
		}
		c.retried.Add(1)
		c.log.DebugContext(ctx, "retrying API call", "method", req.Method, "path", req.Path, "attempt", attempt+1, "wait", wait, "error", res.err)
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("waiting to retry after %w: %w", res.err, err)
		}
	}
}

// withReason adds why a retryable-looking error was not retried, when there is a reason to say.
func withReason(err error, why string) error {
	if why == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, why)
}

// GetJSON GETs path and decodes the JSON response into a fresh T (fresh on every attempt, so a
// retried read never merges into a half-decoded value).
func GetJSON[T any](ctx context.Context, c *Client, path string, query url.Values) (T, error) {
	var out T
	err := c.Do(ctx, Request{Path: path, Query: query}, func(r io.Reader) error {
		var v T
		if err := json.NewDecoder(r).Decode(&v); err != nil {
			return err
		}
		out = v
		return nil
	})
	return out, err
}

// result is one attempt's outcome.
type result struct {
	err       error
	transient bool // a timeout, a connection error or a read failure: retryable
	status    *StatusError
}

func (c *Client) attempt(ctx context.Context, req Request, decode func(io.Reader) error) result {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := c.newRequest(actx, req)
	if err != nil {
		return result{err: err}
	}
	c.calls.Add(1)
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return c.transportFailure(ctx, req, err)
	}
	defer resp.Body.Close()
	body := &countingReader{r: resp.Body, n: &c.bytes}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := c.statusError(req, resp, body)
		return result{err: se, status: se}
	}
	if err := decode(body); err != nil {
		if body.err != nil && !errors.Is(body.err, io.EOF) {
			return c.transportFailure(ctx, req, body.err)
		}
		return result{err: fmt.Errorf("%s %s: decode response: %w", req.Method, req.Path, err)}
	}
	// Drain a little so the connection can be reused; a long tail is not worth reading.
	_, _ = io.CopyN(io.Discard, body, errorBodyLimit)
	return result{}
}

func (c *Client) newRequest(ctx context.Context, req Request) (*http.Request, error) {
	u := c.base.JoinPath(req.Path)
	if strings.HasSuffix(req.Path, "/") && !strings.HasSuffix(u.Path, "/") {
		u.Path += "/" // JoinPath drops a trailing slash; some APIs give it meaning
	}
	if len(req.Query) > 0 {
		u.RawQuery = req.Query.Encode()
	}
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: build request: %w", req.Method, req.Path, err)
	}
	for k, vs := range req.Header {
		hreq.Header[k] = append([]string(nil), vs...)
	}
	if hreq.Header.Get("Accept") == "" {
		hreq.Header.Set("Accept", "application/json")
	}
	hreq.Header.Set("User-Agent", c.userAgent)
	if c.basicUser != "" {
		hreq.SetBasicAuth(c.basicUser, c.basicPass)
	}
	if c.token != nil {
		tok, err := c.token()
		if err != nil {
			return nil, fmt.Errorf("%s %s: bearer token: %w", req.Method, req.Path, err)
		}
		if tok != "" {
			// Set on the request, not in a RoundTripper: net/http then drops it on a redirect to
			// another host.
			hreq.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return hreq, nil
}

// transportFailure describes a failure to get or read a response. It is retryable unless the
// caller's own context ended.
func (c *Client) transportFailure(ctx context.Context, req Request, err error) result {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its message repeats the whole URL; the path is enough
	}
	if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)) {
		return result{err: fmt.Errorf("%s %s: no complete response within %s: %w", req.Method, req.Path, c.timeout, ErrTimeout), transient: true}
	}
	// A certificate the client does not trust stays untrusted: retrying only delays the error.
	// A refused redirect is the server's configuration: it will not change on a retry either.
	var certErr *tls.CertificateVerificationError
	transient := ctx.Err() == nil && !errors.As(err, &certErr) && !errors.Is(err, ErrRedirect)
	return result{err: fmt.Errorf("%s %s: %w", req.Method, req.Path, err), transient: transient}
}

// ErrRedirect marks a redirect the client refused to follow: one to another origin (scheme, host
// or port), or one too many. Go's default policy keeps the Authorization header when only the
// scheme or the port changes (https to http on the same host sends the token in clear text), and
// following a redirect to another host would read another server's answer as the orchestrator's.
// Neither is retried: the call, hence the poll, fails and the cursor stays.
var ErrRedirect = errors.New("redirect refused")

// maxRedirects is Go's own limit.
const maxRedirects = 10

// sameOrigin is the redirect policy: follow redirects within the first request's origin (they keep
// the credentials, which go to the same server), refuse any other; then apply next, if any.
func sameOrigin(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("%w: stopped after %d redirects", ErrRedirect, len(via))
		}
		if from, to := Origin(via[0].URL), Origin(req.URL); from != to {
			return fmt.Errorf("%w: %s redirected to another origin, %s; the orchestrator's credentials are never sent there: set the URL to the address the API answers at", ErrRedirect, from, to)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

// Origin is u's scheme://host:port, with the scheme's default port made explicit. It carries no
// user info, path or query, so it is safe to log.
func Origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// ErrTimeout marks an attempt that did not complete within the per-request timeout.
var ErrTimeout = errors.New("request timed out")

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// retryable decides whether res is retried and after how long; why explains a refusal that the
// caller would not guess (a Retry-After too long to honour).
func (c *Client) retryable(req Request, res result, attempt int) (wait time.Duration, retry bool, why string) {
	switch {
	case res.transient:
	case res.status != nil && retryableStatus(res.status.StatusCode):
		if req.Permanent != nil && req.Permanent(res.status) {
			return 0, false, ""
		}
		if ra := res.status.RetryAfter; ra > 0 {
			if ra > c.maxRetryAfter {
				return 0, false, fmt.Sprintf("server asked to retry after %s, longer than the %s this client waits", ra, c.maxRetryAfter)
			}
			if attempt >= c.retries {
				return 0, false, ""
			}
			return ra, true, ""
		}
	default:
		return 0, false, ""
	}
	if attempt >= c.retries {
		return 0, false, ""
	}
	return c.backoff(attempt), true, ""
}

// retryableStatus: 429 and 5xx, except 501 Not Implemented, which no retry will change.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code <= 599 && code != http.StatusNotImplemented)
}

type countingReader struct {
	r   io.Reader
	n   *atomic.Int64
	err error // the first read error other than EOF, to tell a broken stream from bad content
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(int64(n))
	if err != nil && !errors.Is(err, io.EOF) && cr.err == nil {
		cr.err = err
	}
	return n, err
}
