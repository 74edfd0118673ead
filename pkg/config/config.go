// Package config reads FARM's settings from environment variables and assembles each component's
// own configuration from them. Every variable is documented in the README; a bad value is refused
// at start with the variable's name. Each component owns its configuration (fields, defaults,
// validation: poll.Config, argo.Config, airflow.Config...); the files here (argo.go, airflow.go,
// trace.go, sink.go) only say which variable sets which field.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/apm"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/sink"
)

// Config is every setting of every FARM function.
type Config struct {
	Common  Common
	Poll    poll.Config
	Argo    argo.Config
	Airflow airflow.Config
	Trace   apm.Config
	Sink    sink.Config
}

// Common settings shared by all functions.
type Common struct {
	ProjectID string // FARM_PROJECT_ID, else GOOGLE_CLOUD_PROJECT
	Topic     string // FARM_TOPIC: Pub/Sub topic of RunDeltas

	StateStore        string // FARM_STATE_STORE: firestore | file
	StateFile         string // FARM_STATE_FILE: the embedded store's file
	FirestoreDatabase string // FARM_FIRESTORE_DATABASE

	// HTTPTimeout and HTTPRetries (FARM_HTTP_TIMEOUT, FARM_HTTP_RETRIES) are read once for both
	// sources' configurations.
	HTTPTimeout  time.Duration
	HTTPRetries  int
	StoreTimeout time.Duration // FARM_STORE_TIMEOUT: per call to the state store (Firestore)
	// DeadLetterTopic (FARM_DEAD_LETTER_TOPIC) keeps the messages the trace function and the sink
	// can never process; empty: they are only logged.
	DeadLetterTopic string

	LogLevel  string // FARM_LOG_LEVEL: debug, info, warn, error
	LogFormat string // FARM_LOG_FORMAT: json (Cloud Logging) or text
}

// Load reads the configuration from the process environment.
func Load() (Config, error) { return LoadFrom(os.LookupEnv) }

// LoadFrom reads the configuration through lookup (os.LookupEnv in production, a map in tests).
// All problems are reported at once, each naming its variable.
func LoadFrom(lookup func(string) (string, bool)) (Config, error) {
	r := &Reader{lookup: lookup}
	var c Config
	c.Common = loadCommon(r)
	c.Poll = loadPoll(r)
	c.Argo = loadArgo(r, c.Common)
	c.Airflow = loadAirflow(r, c.Common)
	c.Trace = loadTrace(r)
	c.Sink = loadSink(r, c.Common)
	return c, r.Err()
}

func loadCommon(r *Reader) Common {
	c := Common{
		ProjectID:         r.String("FARM_PROJECT_ID", ""),
		Topic:             r.String("FARM_TOPIC", "farm-run-deltas"),
		StateFile:         r.String("FARM_STATE_FILE", ".farm/state.json"),
		FirestoreDatabase: r.String("FARM_FIRESTORE_DATABASE", "(default)"),
		HTTPTimeout:       r.Duration("FARM_HTTP_TIMEOUT", 30*time.Second),
		HTTPRetries:       r.Int("FARM_HTTP_RETRIES", 3),
		DeadLetterTopic:   r.String("FARM_DEAD_LETTER_TOPIC", ""),
		StoreTimeout:      r.Duration("FARM_STORE_TIMEOUT", 30*time.Second),
		// logging.Setup reads these before the configuration exists; here they are refused.
		LogLevel:  r.OneOf("FARM_LOG_LEVEL", "info", "debug", "info", "warn", "warning", "error"),
		LogFormat: r.OneOf("FARM_LOG_FORMAT", "json", "json", "text"),
	}
	if c.ProjectID == "" {
		c.ProjectID = r.String("GOOGLE_CLOUD_PROJECT", "")
	}
	defStore := "file"
	if c.ProjectID != "" {
		defStore = "firestore"
	}
	c.StateStore = r.OneOf("FARM_STATE_STORE", defStore, "firestore", "file")
	if c.StateStore == "firestore" && c.ProjectID == "" {
		r.Fail("FARM_PROJECT_ID", "is required when FARM_STATE_STORE=firestore")
	}
	r.Positive("FARM_STORE_TIMEOUT", c.StoreTimeout)
	return c
}

// loadPoll reads the engine's variables over poll's defaults; poll validates them.
func loadPoll(r *Reader) poll.Config {
	p := poll.DefaultConfig()
	p.Tenant = r.String("FARM_TENANT", p.Tenant)
	p.Environment = r.String("FARM_ENVIRONMENT", p.Environment)
	p.RunRetention = r.Duration("FARM_RUN_RETENTION", p.RunRetention)
	p.Overlap = r.Duration("FARM_POLL_OVERLAP", p.Overlap)
	p.InitialLookback = r.Duration("FARM_INITIAL_LOOKBACK", p.InitialLookback)
	p.MaxBackfillWindow = r.Duration("FARM_MAX_BACKFILL_WINDOW", p.MaxBackfillWindow)
	p.LeaseTTL = r.Duration("FARM_LEASE_TTL", p.LeaseTTL)
	p.MaxRunsPerPoll = r.Int("FARM_POLL_MAX_RUNS", p.MaxRunsPerPoll)
	r.Check(p.Validate())
	return p
}

// Reader reads typed variables and collects every problem, each naming its variable.
type Reader struct {
	lookup func(string) (string, bool)
	errs   []error
}

// NewReader returns a Reader over lookup.
func NewReader(lookup func(string) (string, bool)) *Reader { return &Reader{lookup: lookup} }

// Err returns all problems found so far, joined, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Check records the problems of a component's own validation, which name their variables.
func (r *Reader) Check(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		r.errs = append(r.errs, j.Unwrap()...)
		return
	}
	r.errs = append(r.errs, err)
}

// Fail records a problem with variable name.
func (r *Reader) Fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s %s", name, fmt.Sprintf(format, args...)))
}

func (r *Reader) raw(name string) (string, bool) {
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns the variable or def when unset or empty.
func (r *Reader) String(name, def string) string {
	if v, ok := r.raw(name); ok {
		return v
	}
	return def
}

// OneOf returns the variable, which must be one of allowed.
func (r *Reader) OneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(r.String(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.Fail(name, "is %q; want one of %s", v, strings.Join(allowed, ", "))
	return def
}

// Duration parses a Go duration such as 90s, 5m or 720h.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.raw(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.Fail(name, "is %q, not a duration like 90s, 5m or 720h", v)
		return def
	}
	return d
}

// Positive fails name unless d > 0.
func (r *Reader) Positive(name string, d time.Duration) {
	if d <= 0 {
		r.Fail(name, "must be positive, got %s", d)
	}
}

// Int parses an integer.
func (r *Reader) Int(name string, def int) int {
	v, ok := r.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.Fail(name, "is %q, not a whole number", v)
		return def
	}
	return n
}

// Bool parses true/false/1/0.
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.raw(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.Fail(name, "is %q, not true or false", v)
		return def
	}
	return b
}

// URL parses an absolute http(s) URL; empty returns nil. A URL with user info is refused: it would
// be copied into every run link (BigQuery, DataDog) and every error message. The value is never
// echoed with its user info.
func (r *Reader) URL(name string) *url.URL {
	v, ok := r.raw(name)
	if !ok {
		return nil
	}
	u, err := url.Parse(v)
	if err == nil && u.User != nil {
		r.Fail(name, "has credentials in it (%s): they would be copied into run links, logs and error messages; remove them and %s",
			RedactURL(v), credentialSetting(name))
		return nil
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.Fail(name, "is %q, not an absolute http(s) URL", RedactURL(v))
		return nil
	}
	return u
}

// credentialSetting names where the credentials of the URL variable name belong instead.
func credentialSetting(name string) string {
	switch name {
	case "FARM_ARGO_URL":
		return "set the token in FARM_ARGO_TOKEN or FARM_ARGO_TOKEN_FILE"
	case "FARM_AIRFLOW_URL":
		return "set FARM_AIRFLOW_AUTH=basic with FARM_AIRFLOW_USERNAME and FARM_AIRFLOW_PASSWORD (or FARM_AIRFLOW_PASSWORD_FILE)"
	}
	return "give the URL without them: this setting takes none"
}

// RedactURL replaces the user info of a URL-like string, parseable or not, with "REDACTED", so
// that it can be shown in a message.
func RedactURL(v string) string {
	start := strings.Index(v, "://")
	if start < 0 {
		start = 0
	} else {
		start += 3
	}
	end := len(v)
	if i := strings.IndexAny(v[start:], "/?#"); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndex(v[start:end], "@"); at >= 0 {
		return v[:start] + "REDACTED" + v[start+at:]
	}
	return v
}

// List splits a comma-separated list, dropping empty items.
func (r *Reader) List(name string) []string {
	v, ok := r.raw(name)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Regexp compiles the variable; def is used when unset. An empty result means "no filter".
func (r *Reader) Regexp(name, def string) *regexp.Regexp {
	v := r.String(name, def)
	if v == "" {
		return nil
	}
	re, err := regexp.Compile(v)
	if err != nil {
		r.Fail(name, "is not a valid regular expression: %v", err)
		return nil
	}
	return re
}

// Secret returns the value of name, or the trimmed content of the file named by name+"_FILE"
// (a Secret Manager volume mount). Setting both is an error.
func (r *Reader) Secret(name string) string {
	v, hasValue := r.raw(name)
	path, hasFile := r.raw(name + "_FILE")
	switch {
	case hasValue && hasFile:
		r.Fail(name, "and %s_FILE are both set; set one", name)
		return ""
	case hasFile:
		b, err := os.ReadFile(path)
		if err != nil {
			r.Fail(name+"_FILE", "cannot be read: %v", err)
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return v
}
