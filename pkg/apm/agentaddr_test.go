package apm_test

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/state/filestore"
	"time"
)

// Config.AgentAddr sends the spans to that agent whatever DataDog's own settings name: the local
// runner points the tracer at its receiver without changing the process environment.
func TestAgentAddrWinsOverTheEnvironment(t *testing.T) {
	elsewhere := ddagent.New()
	other := httptest.NewServer(elsewhere)
	t.Cleanup(other.Close)
	t.Setenv("DD_TRACE_AGENT_URL", other.URL)
	agent := ddagent.New()
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)

	clk := clock.NewManual(day0.Add(10 * time.Minute))
	cfg := testConfig()
	cfg.AgentAddr = u.Host
	tr, err := apm.New(cfg, apm.Deps{Clock: clk, Log: slog.New(slog.DiscardHandler),
		Ledger: filestore.New(filepath.Join(t.TempDir(), "state.json"), filestore.WithClock(clk))})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Trace(t.Context(), nestedArgoDelta())
	if err != nil || res.Sent == 0 {
		t.Fatalf("Trace = %+v, %v", res, err)
	}
	if got, other := len(agent.Spans()), len(elsewhere.Spans()); got != res.Sent || other != 0 {
		t.Errorf("the configured agent got %d spans and DD_TRACE_AGENT_URL's %d; want %d and 0", got, other, res.Sent)
	}
}
