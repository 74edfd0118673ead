package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestCloudLoggingFields(t *testing.T) {
	tests := []struct {
		level    slog.Level
		severity string
	}{
		{slog.LevelDebug, "DEBUG"},
		{slog.LevelInfo, "INFO"},
		{slog.LevelWarn, "WARNING"},
		{slog.LevelError, "ERROR"},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		New(&buf, slog.LevelDebug).Log(t.Context(), tc.level, "poll finished", "source", "argo/x", slog.Group("g", "level", "kept"))
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("not JSON: %s", buf.String())
		}
		if line["severity"] != tc.severity || line["message"] != "poll finished" || line["source"] != "argo/x" {
			t.Errorf("level %s: line %v", tc.level, line)
		}
		if _, ok := line["level"]; ok {
			t.Errorf("level key not renamed: %v", line)
		}
		if g := line["g"].(map[string]any); g["level"] != "kept" {
			t.Errorf("attributes inside groups must not be renamed: %v", line)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "WARN": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo, " info ": slog.LevelInfo} {
		if got, err := ParseLevel(in); got != want || err != nil {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// An unknown name is refused, not taken as info: FARM_LOG_LEVEL=verbose must not pass silently.
	for _, in := range []string{"verbose", "loud", "trace"} {
		if _, err := ParseLevel(in); err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("ParseLevel(%q): err = %v, want it refused, naming the value", in, err)
		}
	}
}

func TestNoticeSeverity(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, slog.LevelInfo).Log(t.Context(), LevelNotice, "polling a SIMULATED estate")
	if !strings.Contains(buf.String(), `"severity":"NOTICE"`) {
		t.Errorf("a notice is not Cloud Logging's NOTICE: %s", buf.String())
	}
}

func pollHeadline(r slog.Record) (string, bool) {
	if r.Message != "poll finished" {
		return "", false
	}
	var src string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "source" {
			src = a.Value.String()
		}
		return true
	})
	return "poll " + src, true
}

func TestTextQuietShowsNoticesWarningsAndHeadlines(t *testing.T) {
	var buf bytes.Buffer
	log := NewText(&buf, slog.LevelInfo, true, pollHeadline)
	log.Info("traced run delta", "run", "argo/x")
	log.Info("rows written", "rows", 3)
	log.Debug("retrying API call")
	log.Log(t.Context(), LevelNotice, "traces go to a local receiver", "address", "127.0.0.1:8126")
	log.With("source", "argo/sim").Info("poll finished", "events", 4)
	log.Warn("push delivery failed", "error", "connection refused", "target", "http://x/Trace")
	log.WithGroup("g").Error("boom", "k", "v w")
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("quiet output has %d lines, want 4 (notice, poll, warning, error):\n%s", len(lines), out)
	}
	for i, want := range []string{
		" traces go to a local receiver  address=127.0.0.1:8126",
		" poll argo/sim",
		` WARN push delivery failed  error="connection refused" target=http://x/Trace`,
		` ERROR boom  g.k="v w"`,
	} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d = %q, want it to end with %q", i, lines[i], want)
		}
	}
	if strings.Contains(out, "{") {
		t.Errorf("text output has JSON:\n%s", out)
	}
}

func TestTextVerboseShowsEverythingAtLevel(t *testing.T) {
	var buf bytes.Buffer
	log := NewText(&buf, slog.LevelDebug, false, pollHeadline)
	log.Debug("retrying API call", "attempt", 2)
	log.Info("traced run delta")
	log.Info("poll finished", "source", "airflow/sim")
	out := buf.String()
	for _, want := range []string{"DEBUG retrying API call  attempt=2", "INFO traced run delta", "poll airflow/sim"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	log = NewText(&buf, slog.LevelWarn, false, pollHeadline)
	log.Info("poll finished", "source", "airflow/sim")
	log.Log(t.Context(), LevelNotice, "note")
	if buf.Len() != 0 {
		t.Errorf("level warn shows info and notices: %s", buf.String())
	}
}

// A failure storm shows each kind of warning once a minute, with a count, not once per message.
func TestTextQuietShowsRepeatsOnceAMinute(t *testing.T) {
	var buf bytes.Buffer
	h := NewText(&buf, slog.LevelInfo, true).Handler()
	at := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	warn := func(after time.Duration, msg string, attrs ...slog.Attr) {
		r := slog.NewRecord(at.Add(after), slog.LevelWarn, msg, 0)
		r.AddAttrs(attrs...)
		if err := h.Handle(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		warn(time.Duration(i)*time.Second, "spans not delivered", slog.Int("n", i))
		warn(time.Duration(i)*time.Second, fmt.Sprintf("Datadog Tracer ERROR: lost %d traces", i), slog.String("component", "dd-trace-go"))
	}
	warn(70*time.Second, "spans not delivered", slog.Int("n", 70))
	warn(5*time.Second, "push deliveries fail")
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 4 {
		t.Fatalf("%d lines, want 4 (each kind once, the first again after a minute, another kind):\n%s", n, out)
	}
	if !strings.Contains(out, "n=70  (and 49 more like it since") || strings.Count(out, "lost") != 1 {
		t.Errorf("repeats not counted:\n%s", out)
	}
}
