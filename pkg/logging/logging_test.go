package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
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
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "WARN": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo, "loud": slog.LevelInfo} {
		if got := ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
}
