package httpx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// buildTransport returns the round tripper for a client built without WithHTTPClient.
func (c *Client) buildTransport() (http.RoundTripper, error) {
	if c.caFile == "" {
		if c.transport != nil {
			return c.transport, nil
		}
		return http.DefaultTransport.(*http.Transport).Clone(), nil
	}
	base := http.DefaultTransport.(*http.Transport)
	if c.transport != nil {
		t, ok := c.transport.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("httpx: a CA file needs an *http.Transport, got %T", c.transport)
		}
		base = t
	}
	pool, err := CertPool(c.caFile)
	if err != nil {
		return nil, err
	}
	t := base.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.RootCAs = pool
	return t, nil
}

// CertPool returns the system roots plus the PEM certificates in path (a private CA, a
// Kubernetes service-account ca.crt).
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("httpx: read CA bundle: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("httpx: CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// FileToken returns a TokenFunc that reads the token from path on every call, trimmed.
func FileToken(path string) TokenFunc {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", errors.New("token file is empty")
		}
		return tok, nil
	}
}
