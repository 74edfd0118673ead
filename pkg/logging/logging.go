// Package logging sets up log/slog for Cloud Logging: JSON on stdout with the `severity` and
// `message` keys that Cloud Logging reads from structured log lines.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
)

// New returns a JSON logger writing to w at the given level.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: cloudLogging,
	}))
}

var configured atomic.Bool

// SetDefault installs l as slog's default and remembers that logging is configured.
func SetDefault(l *slog.Logger) {
	slog.SetDefault(l)
	configured.Store(true)
}

// Setup installs a Cloud Logging JSON logger on stdout as slog's default, at the level named by
// FARM_LOG_LEVEL (debug, info, warn, error; default info) — unless the process already chose its
// logger with SetDefault (the local runner logs to stderr), in which case it returns that one.
func Setup() *slog.Logger {
	if configured.Load() {
		return slog.Default()
	}
	l := New(os.Stdout, ParseLevel(os.Getenv("FARM_LOG_LEVEL")))
	SetDefault(l)
	return l
}

// ParseLevel reads a level name; anything unknown is info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func cloudLogging(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey:
		a.Key = "severity"
		if lvl, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(severity(lvl))
		}
	case slog.MessageKey:
		a.Key = "message"
	case slog.TimeKey:
		a.Key = "time"
	}
	return a
}

func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}
