package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// probeTimeout bounds each request of ProbeAgent: an agent answers at once.
const probeTimeout = 3 * time.Second

// ProbeAgent checks that base (http://host:port, or unix:///path/to/apm.socket) is a DataDog trace
// agent before anything is sent there, by its answer: GET /info returns the agent's JSON listing
// its endpoints (agents since 7.28, and FARM's local receiver); an older agent answers 404 there,
// and then an empty PUT /v0.4/traces must answer the agent's {"rate_by_service": …}. Anything
// else (nothing listening, a web server's HTML page) is an error saying what answered.
func ProbeAgent(ctx context.Context, base string) error {
	hc, root, err := agentClient(base)
	if err != nil {
		return err
	}
	status, ctype, body, err := call(ctx, hc, http.MethodGet, root+"/info", nil)
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		var info struct {
			Endpoints []string `json:"endpoints"`
		}
		if json.Unmarshal(body, &info) == nil {
			for _, e := range info.Endpoints {
				if strings.HasPrefix(e, "/v0.4/traces") || strings.HasPrefix(e, "/v0.5/traces") || strings.HasPrefix(e, "/v1.0/traces") {
					return nil
				}
			}
		}
		return fmt.Errorf("GET /info answered %s without the trace endpoints an agent lists: %s", what(status, ctype), excerpt(body, 80))
	}
	if status != http.StatusNotFound {
		return fmt.Errorf("GET /info answered %s: %s", what(status, ctype), excerpt(body, 80))
	}
	// An agent older than 7.28 has no /info: its trace intake answers an empty payload.
	infoType := ctype
	status, ctype, tbody, err := call(ctx, hc, http.MethodPut, root+"/v0.4/traces", []byte{0x90})
	if err != nil {
		return err
	}
	var rates struct {
		RateByService map[string]float64 `json:"rate_by_service"`
	}
	if status == http.StatusOK && json.Unmarshal(tbody, &rates) == nil && rates.RateByService != nil {
		return nil
	}
	return fmt.Errorf("GET /info answered %s: %s; PUT /v0.4/traces answered %s", what(http.StatusNotFound, infoType), excerpt(body, 80), what(status, ctype))
}

// agentClient returns a client and the base URL of requests for base.
func agentClient(base string) (*http.Client, string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, "", fmt.Errorf("%q is not a URL: %w", base, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, "", fmt.Errorf("%q has no host", base)
		}
		return &http.Client{Timeout: probeTimeout}, strings.TrimSuffix(u.String(), "/"), nil
	case "unix":
		path := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}
		return &http.Client{Timeout: probeTimeout, Transport: tr}, "http://agent", nil
	}
	return nil, "", fmt.Errorf("%q: want an http://, https:// or unix:// URL", base)
}

func call(ctx context.Context, hc *http.Client, method, target string, body []byte) (status int, ctype string, out []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/msgpack")
		req.Header.Set("X-Datadog-Trace-Count", "0")
	}
	resp, err := hc.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in the caller's message already
		}
		return 0, "", nil, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	out, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header.Get("Content-Type"), out, nil
}

func what(status int, ctype string) string {
	s := fmt.Sprintf("%d %s", status, http.StatusText(status))
	if ctype != "" {
		s += " (" + ctype + ")"
	}
	return s
}

// excerpt is the start of a body on one line.
func excerpt(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}
