package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/logging"
)

// usageError is a command line that cannot be run; its usage was printed already. main exits 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// errHelpShown: -h asked for the usage, which was printed on stdout; main exits 0.
var errHelpShown = errors.New("usage shown")

// parseFlags parses args with fs, whose usage is usage: -h prints it on stdout (errHelpShown); a bad
// flag prints the problem and the usage on stderr (a usageError). Positional arguments are returned
// for the caller to check.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, usage string) ([]string, error) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	fs.Usage = func() {
		fmt.Fprintln(&buf, usage)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = io.Copy(stdout, &buf)
		return nil, errHelpShown
	case err != nil:
		_, _ = io.Copy(stderr, &buf)
		return nil, usageError{err}
	}
	fs.SetOutput(stderr)
	return fs.Args(), nil
}

// noArgs refuses positional arguments a command does not take.
func noArgs(cmd string, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return usageError{fmt.Errorf("%s: unexpected argument %q (flags go before arguments: see -h)", cmd, args[0])}
}

// localLogger is the logger of serve and poll, on stderr (stdout carries waterfalls or deltas).
// FARM_LOG_FORMAT=text, the default here, writes readable lines: with FARM_LOG_LEVEL unset it is
// quiet — notices, one line per poll, warnings and errors — and with a level, every record from
// it. FARM_LOG_FORMAT=json is the full Cloud Logging JSON log, at FARM_LOG_LEVEL (default info).
func localLogger(stderr io.Writer) *slog.Logger {
	raw := strings.TrimSpace(os.Getenv("FARM_LOG_LEVEL"))
	level, _ := logging.ParseLevel(raw) // refused, by name, in checkSettings
	if strings.EqualFold(strings.TrimSpace(os.Getenv("FARM_LOG_FORMAT")), logging.FormatJSON) {
		return logging.New(stderr, level)
	}
	return logging.NewText(stderr, level, raw == "", pollHeadline)
}

// pollHeadline is the one line per poll of the text log, made from the poll summary record
// (pkg/poll logs "poll finished" or "poll failed" with the counters).
func pollHeadline(r slog.Record) (string, bool) {
	if r.Message != "poll finished" && r.Message != "poll failed" {
		return "", false
	}
	a := map[string]slog.Value{}
	r.Attrs(func(at slog.Attr) bool { a[at.Key] = at.Value; return true })
	src := a["source"].String()
	if mode := a["mode"].String(); mode != "" && mode != "incremental" {
		src += " (" + mode + ")"
	}
	if r.Message == "poll failed" {
		tag := "FAILED"
		if r.Level < slog.LevelError {
			tag = "skipped"
		}
		return fmt.Sprintf("poll %s %s: %s", src, tag, a["error"].String()), true
	}
	line := fmt.Sprintf("poll %s: %s runs seen, %s changed, %s events in %s messages", src,
		a["runs_seen"], a["runs_changed"], a["events"], a["messages"])
	if d := a["runs_deferred"]; d.Kind() == slog.KindInt64 && d.Int64() > 0 {
		line += fmt.Sprintf(", %d left for the next polls", d.Int64())
	}
	if g := a["runs_gone"]; g.Kind() == slog.KindInt64 && g.Int64() > 0 {
		line += fmt.Sprintf(", %d gone", g.Int64())
	}
	if d := a["duration_seconds"]; d.Kind() == slog.KindFloat64 {
		line += fmt.Sprintf(" (%s)", time.Duration(d.Float64()*float64(time.Second)).Round(time.Millisecond))
	}
	return line, true
}

// checkSettings refuses bad settings, each named, before anything starts: every function's
// (config.LoadFrom) and the runner's own, as lookup reads them.
func checkSettings(lookup func(string) (string, bool), extra func(r *config.Reader)) error {
	_, cfgErr := config.LoadFrom(lookup)
	r := config.NewReader(lookup)
	r.OneOf("FARM_SIM_AIRFLOW_API", "v2", "v1", "v2")
	if v := r.String("FARM_LOCAL_AGENT_ADDR", ""); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			r.Fail("FARM_LOCAL_AGENT_ADDR", "is %q, not host:port (e.g. 127.0.0.1:8126)", v)
		}
	}
	if extra != nil {
		extra(r)
	}
	return errors.Join(cfgErr, r.Err())
}

// checkPort refuses a port that is not one, or is taken, saying how to choose another.
func checkPort(r *config.Reader, port string) {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		r.Fail("PORT", "is %q, not a port number", port)
		return
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		r.Fail("PORT", "%s is in use (%v): set PORT or -port to a free one, e.g. PORT=8081", port, err)
		return
	}
	_ = ln.Close()
}
