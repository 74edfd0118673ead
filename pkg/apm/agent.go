package apm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// agentSocketPath is where the DataDog agent's trace socket lives when it has one; the tracer
// uses it when no address is configured and the socket exists.
const agentSocketPath = "/var/run/datadog/apm.socket"

// env is how this package reads the tracer's settings (the process environment; tests may pass
// their own).
type env struct {
	lookup func(string) (string, bool)
	exists func(string) bool // whether a file exists
}

func processEnv() env {
	return env{
		lookup: os.LookupEnv,
		exists: func(p string) bool { _, err := os.Stat(p); return err == nil },
	}
}

func (e env) get(name string) string {
	v, _ := e.lookup(name)
	return strings.TrimSpace(v)
}

// checkEnabled refuses a configuration in which the tracer sends nothing: every message would
// then fail delivery and be redelivered forever.
func (e env) checkEnabled() error {
	for _, name := range []string{"DD_TRACE_ENABLED", "DD_APM_TRACING_ENABLED"} {
		if v := e.get(name); v != "" {
			if on, err := strconv.ParseBool(v); err == nil && !on {
				return fmt.Errorf("trace: %s=%s turns the tracer off, so no span could be delivered; unset it", name, v)
			}
		}
	}
	return nil
}

// tracerService is the tracer's own service (DataDog shows it as a span's base service when the
// span's service differs): DD_SERVICE, else "farm" rather than the binary's name.
func (e env) tracerService() string {
	if s := e.get("DD_SERVICE"); s != "" {
		return s
	}
	return "farm"
}

// with128BitIDs mirrors the tracer's DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED (default true).
func (e env) with128BitIDs() bool {
	on, err := strconv.ParseBool(e.get("DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED"))
	return err != nil || on
}

// agentSocket returns the unix socket the tracer will send to, or "" when it sends over TCP. It
// follows the tracer's order: DD_TRACE_AGENT_URL, then DD_AGENT_HOST / DD_TRACE_AGENT_PORT, then
// the agent's socket if it exists, then localhost:8126.
func (e env) agentSocket() string {
	if raw := e.get("DD_TRACE_AGENT_URL"); raw != "" {
		if u, err := url.Parse(raw); err == nil {
			switch u.Scheme {
			case "unix":
				return u.Path
			case "http", "https":
				return ""
			}
		}
		// The tracer ignores an unusable URL (with a warning) and goes on with the rest.
	}
	if e.get("DD_AGENT_HOST") != "" || e.get("DD_TRACE_AGENT_PORT") != "" {
		return ""
	}
	if e.exists(agentSocketPath) {
		return agentSocketPath
	}
	return ""
}

// agentTransport returns the transport to the agent: TCP to whatever host the tracer addresses,
// or the unix socket (the tracer then addresses a placeholder host, which the dialer ignores).
func agentTransport(socket string) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if socket != "" {
		t.Proxy = nil
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
	}
	return t
}

// tracerLog passes the tracer's own log lines to slog. They read "Datadog Tracer vX ERROR: …";
// errors and warnings are warnings here (a failed delivery is reported, as an error, by the
// call), anything else is debug, since a tracer started per call would repeat it per message.
type tracerLog struct{ log *slog.Logger }

func (l tracerLog) Log(msg string) {
	level := slog.LevelDebug
	if strings.Contains(msg, " ERROR: ") || strings.Contains(msg, " WARN: ") {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, strings.TrimSpace(msg), "component", "dd-trace-go")
}
