// Package logging sets up log/slog for Cloud Logging: JSON on stdout with the `severity` and
// `message` keys that Cloud Logging reads from structured log lines. For a person at a terminal
// (the local runner's default) it also has a text handler: one readable line per record, and in
// its quiet mode only what a person watching needs (see NewText).
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
)

// LevelNotice is between info and warning: things a person running FARM should read once (what is
// simulated, where traces go). Cloud Logging calls it NOTICE.
const LevelNotice = slog.LevelInfo + 2

// Formats FARM_LOG_FORMAT accepts.
const (
	FormatJSON = "json" // Cloud Logging's structured lines (the default on Google Cloud)
	FormatText = "text" // one readable line per record (the local runner's default)
)

// Levels are the names FARM_LOG_LEVEL accepts.
var Levels = []string{"debug", "info", "warn", "error"}

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
// FARM_LOG_LEVEL (default info) — unless the process already chose its logger with SetDefault
// (the local runner logs to stderr), in which case it returns that one. A bad FARM_LOG_LEVEL
// or FARM_LOG_FORMAT is reported, with its name, by config.Load; until then the defaults apply.
func Setup() *slog.Logger {
	if configured.Load() {
		return slog.Default()
	}
	level, err := ParseLevel(os.Getenv("FARM_LOG_LEVEL"))
	if err != nil {
		level = slog.LevelInfo
	}
	var l *slog.Logger
	if strings.EqualFold(strings.TrimSpace(os.Getenv("FARM_LOG_FORMAT")), FormatText) {
		l = NewText(os.Stdout, level, false)
	} else {
		l = New(os.Stdout, level)
	}
	SetDefault(l)
	return l
}

// ParseLevel reads a level name (one of Levels; "warning" is warn); empty is info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("is %q; want one of %s", s, strings.Join(Levels, ", "))
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
	case l >= LevelNotice:
		return "NOTICE"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}
