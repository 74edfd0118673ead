package alerting_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/farmobs/farm/internal/alerting"
	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state/filestore"
)

const googleDir = "../../terraform"

// googleEval evaluates the Google root with its required variables (the example's shape) and
// extra.
func googleEval(t *testing.T, extra map[string]string) *alerting.Eval {
	t.Helper()
	m, err := alerting.LoadModule(googleDir)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "farm-source.zip")
	if err := os.WriteFile(archive, []byte("zip"), 0o600); err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(archive)
	vars := map[string]string{
		"project_id":        `"my-data-platform"`,
		"source_archive":    string(quoted),
		"datadog_agent_url": `"http://10.10.0.5:8126"`,
		"sources":           `[{"kind": "argo", "name": "batch", "url": "https://argo.example.com"}]`,
	}
	for k, v := range extra {
		vars[k] = v
	}
	ev, err := m.With(vars)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

type logMetric struct {
	Filter string            `json:"filter"`
	Labels map[string]string `json:"labels"`
	Value  *string           `json:"value"`
}

// logLine is one summary line of a poll, as the poll function wrote it.
type logLine struct {
	name string
	raw  []byte
}

var (
	pollLinesOnce sync.Once
	pollLines     []logLine
	pollLinesErr  error
)

// realPollLines runs the real poll HTTP handler, engine and Argo source against the simulated
// Argo Server and returns the summary lines it logged, through pkg/logging's Cloud Logging
// handler: a first poll, a second one (which knows the cursor lag), a poll the Argo Server fails,
// and one refused because another poll holds the lease.
func realPollLines(t *testing.T) []logLine {
	t.Helper()
	pollLinesOnce.Do(func() { pollLines, pollLinesErr = runPolls(t) })
	if pollLinesErr != nil {
		t.Fatal(pollLinesErr)
	}
	return pollLines
}

func runPolls(t *testing.T) ([]logLine, error) {
	store := filestore.New(filepath.Join(t.TempDir(), "state.json"))
	h := polltest.New(t, store, day0)
	sim := argosim.NewServer(h.Clock, argosim.Options{Seed: 1})
	srv := httptest.NewServer(sim)
	defer func() { sim.Close(); srv.Close() }()
	u, _ := url.Parse(srv.URL)
	cfg := argo.DefaultConfig()
	cfg.URL, cfg.Instance, cfg.Namespaces, cfg.PageSize = u, "batch", []string{"data"}, 50
	cfg.HTTPTimeout, cfg.HTTPRetries = 2*time.Second, 0
	src, err := argo.New(cfg, argo.Deps{Clock: h.Clock})
	if err != nil {
		return nil, err
	}
	engine := h.Engine(src, poll.Config{Tenant: "acme", Environment: "prod"})
	var logs bytes.Buffer
	handler := poll.Handler(func(context.Context) (poll.Poller, error) { return engine, nil },
		poll.HTTPOptions{Clock: h.Clock, Log: logging.New(&logs, slog.LevelInfo)})
	call := func(name string, wantStatus int) (logLine, error) {
		logs.Reset()
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", nil))
		if rec.Code != wantStatus {
			return logLine{}, fmt.Errorf("%s: status %d, want %d: %s", name, rec.Code, wantStatus, rec.Body)
		}
		lines := bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n"))
		return logLine{name, bytes.Clone(lines[len(lines)-1])}, nil
	}
	if _, err := sim.Put(workflow("etl-a", argosim.WorkflowRunning, argosim.NodeRunning)); err != nil {
		return nil, err
	}
	var out []logLine
	steps := []struct {
		name   string
		status int
		before func() error
	}{
		{"first poll", http.StatusOK, nil},
		{"second poll", http.StatusOK, func() error {
			h.Clock.Set(day0.Add(time.Minute))
			_, err := sim.Put(workflow("etl-a", argosim.WorkflowSucceeded, argosim.NodeSucceeded))
			return err
		}},
		{"failed poll", http.StatusBadGateway, func() error {
			h.Clock.Set(day0.Add(2 * time.Minute))
			sim.InjectFault(argosim.Fault{Kind: argosim.FaultInternal, Count: 10})
			return nil
		}},
		{"busy poll", http.StatusConflict, func() error {
			sim.ClearFaults()
			h.Clock.Set(day0.Add(3 * time.Minute))
			_, err := store.Acquire(t.Context(), src.Name(), "a backfill", h.Clock.Now(), time.Hour)
			return err
		}},
	}
	for _, s := range steps {
		if s.before != nil {
			if err := s.before(); err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
		}
		line, err := call(s.name, s.status)
		if err != nil {
			return nil, err
		}
		out = append(out, line)
	}
	return out, nil
}

// workflow is a one-step workflow of the simulated Argo Server in the given phase.
func workflow(name, phase string, step argosim.NodePhase) argosim.Workflow {
	root := argosim.NodeStatus{ID: name, Name: name, DisplayName: name, Type: argosim.NodeTypeDAG, TemplateName: "main",
		Phase: argosim.NodePhase(phase), StartedAt: argosim.NewTime(day0.Add(-time.Minute)), Children: []string{name + "-1"}}
	pod := argosim.NodeStatus{ID: name + "-1", Name: name + ".load", DisplayName: "load", Type: argosim.NodeTypePod, TemplateName: "load",
		Phase: step, BoundaryID: name, StartedAt: argosim.NewTime(day0.Add(-time.Minute))}
	wf := argosim.Workflow{
		Metadata: argosim.ObjectMeta{Name: name, Namespace: "data", Labels: map[string]string{argosim.LabelWorkflowTemplate: "etl"}},
		Status:   argosim.WorkflowStatus{Phase: phase, StartedAt: argosim.NewTime(day0.Add(-time.Minute)), Nodes: argosim.Nodes{root.ID: root, pod.ID: pod}},
	}
	if phase != argosim.WorkflowRunning {
		end := argosim.NewTime(day0.Add(30 * time.Second))
		wf.Status.FinishedAt, root.FinishedAt, pod.FinishedAt = end, end, end
		wf.Status.Nodes = argosim.Nodes{root.ID: root, pod.ID: pod}
	}
	return wf
}

// TestLogMetricsReadThePollSummaryLine checks every log-based metric of monitoring.tf against the
// lines the poll function really writes, as Cloud Logging stores them: each filter matches the
// lines it must and no other, and each extracted label or value is in the line (a value as a
// number).
func TestLogMetricsReadThePollSummaryLine(t *testing.T) {
	ev := googleEval(t, nil)
	metrics := map[string]logMetric{}
	if err := json.Unmarshal(localJSON(t, ev, "log_metrics"), &metrics); err != nil {
		t.Fatal(err)
	}
	pollService := resourceName(t, ev, "google_cloudfunctions2_function.function", "batch")
	traceService := resourceName(t, ev, "google_cloudfunctions2_function.function", "trace")
	entries := map[string]alerting.LogEntry{}
	for _, l := range realPollLines(t) {
		e, err := alerting.FromStructuredLine(l.raw, "cloud_run_revision", map[string]string{"service_name": pollService, "revision_name": pollService + "-00001-abc"})
		if err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		entries[l.name] = e
		// The same line from another function, or from the poll of another FARM deployment in
		// the project, must match nothing.
		for _, other := range []string{traceService, "other-poll-batch"} {
			e, _ := alerting.FromStructuredLine(l.raw, "cloud_run_revision", map[string]string{"service_name": other})
			entries[l.name+" from "+other] = e
		}
	}
	assertLine(t, entries["first poll"], "poll finished", "INFO", "events", "runs_changed")
	assertLine(t, entries["second poll"], "poll finished", "INFO", "cursor_lag_seconds")
	assertLine(t, entries["failed poll"], "poll failed", "ERROR", "error", "cursor_lag_seconds")
	assertLine(t, entries["busy poll"], "poll failed", "WARNING", "error")
	// The stalled-poll policy counts scheduled polls only, by their mode.
	var mode string
	if err := json.Unmarshal(localJSON(t, ev, "scheduled_poll_mode"), &mode); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"first poll", "second poll"} {
		if got, _ := entries[l].Get("jsonPayload.mode"); got != mode {
			t.Errorf("%s: mode %v, but the stalled-poll policy counts mode %q", l, got, mode)
		}
	}

	want := map[string][]string{
		"poll_finished":     {"first poll", "second poll"},
		"poll_failed":       {"failed poll"},
		"poll_cursor_lag":   {"second poll", "failed poll"},
		"poll_runs_changed": {"first poll", "second poll"},
		"poll_events":       {"first poll", "second poll"},
		"poll_duration":     {"first poll", "second poll", "failed poll"},
		"scheduler_failed":  nil,
	}
	if got := slices.Sorted(maps.Keys(metrics)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("log metrics %v; this test knows %v", got, slices.Sorted(maps.Keys(want)))
	}
	for name, m := range metrics {
		f, err := alerting.ParseLogFilter(m.Filter)
		if err != nil {
			t.Errorf("%s: filter %q: %v", name, m.Filter, err)
			continue
		}
		var matched []string
		for line, e := range entries {
			if f.Match(e) {
				matched = append(matched, line)
			}
		}
		if slices.Sort(matched); !slices.Equal(matched, slices.Sorted(slices.Values(want[name]))) {
			t.Errorf("%s: filter %q matches %v, want %v", name, m.Filter, matched, want[name])
		}
		for _, line := range matched {
			checkExtractors(t, name, m, line, entries[line])
		}
	}
}

func assertLine(t *testing.T, e alerting.LogEntry, message, severity string, fields ...string) {
	t.Helper()
	if msg, _ := e.Get("jsonPayload.message"); msg != message {
		t.Errorf("message %v, want %q", msg, message)
	}
	if sev, _ := e.Get("severity"); sev != severity {
		t.Errorf("%s line: severity %v, want %s", message, sev, severity)
	}
	for _, f := range append([]string{"source", "mode", "duration_seconds"}, fields...) {
		if _, ok := e.Get("jsonPayload." + f); !ok {
			t.Errorf("%s line (%s) lacks %s", message, severity, f)
		}
	}
}

func checkExtractors(t *testing.T, metric string, m logMetric, line string, e alerting.LogEntry) {
	t.Helper()
	for label, field := range m.Labels {
		if v, ok := e.Get(field); !ok || fmt.Sprint(v) == "" {
			t.Errorf("%s: label %s reads %s, which the %s line lacks", metric, label, field, line)
		} else if _, isString := v.(string); !isString {
			t.Errorf("%s: label %s reads %s = %v, not a string", metric, label, field, v)
		}
	}
	if m.Value != nil {
		v, ok := e.Get(*m.Value)
		if _, isNumber := v.(json.Number); !ok || !isNumber {
			t.Errorf("%s: value %s is %v in the %s line, not a number", metric, *m.Value, v, line)
		}
	}
	if src, _ := e.Get("jsonPayload.source"); m.Labels["source"] != "" && src != "argo/batch" {
		t.Errorf("%s: source label would read %v", metric, src)
	}
}

// TestSchedulerFailureFilter checks the scheduler metric against Cloud Scheduler's attempt log
// entries (resource cloud_scheduler_job; a failed attempt is logged at ERROR with the target's
// HTTP status, or without one when the deadline passed).
func TestSchedulerFailureFilter(t *testing.T) {
	ev := googleEval(t, nil)
	metrics := map[string]logMetric{}
	if err := json.Unmarshal(localJSON(t, ev, "log_metrics"), &metrics); err != nil {
		t.Fatal(err)
	}
	f, err := alerting.ParseLogFilter(metrics["scheduler_failed"].Filter)
	if err != nil {
		t.Fatal(err)
	}
	job := resourceName(t, ev, "google_cloud_scheduler_job.poll", "batch")
	entry := func(jobID, severity string, status int, state string) alerting.LogEntry {
		e := alerting.LogEntry{
			"resource": map[string]any{"type": "cloud_scheduler_job", "labels": map[string]any{"job_id": jobID, "location": "europe-west1"}},
			"severity": severity,
			"jsonPayload": map[string]any{
				"@type":   "type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished",
				"jobName": "projects/my-data-platform/locations/europe-west1/jobs/" + jobID, "status": state, "targetType": "HTTP",
			},
		}
		if status != 0 {
			e["httpRequest"] = map[string]any{"status": json.Number(fmt.Sprint(status))}
		}
		return e
	}
	for _, c := range []struct {
		name  string
		e     alerting.LogEntry
		match bool
	}{
		{"503 from the function", entry(job, "ERROR", 503, "UNAVAILABLE"), true},
		{"403: invoker role missing", entry(job, "ERROR", 403, "PERMISSION_DENIED"), true},
		{"deadline exceeded, no response", entry(job, "ERROR", 0, "DEADLINE_EXCEEDED"), true},
		{"409: another poll held the lease", entry(job, "ERROR", 409, "ABORTED"), false},
		{"success", entry(job, "INFO", 200, ""), false},
		{"another deployment's job", entry("other-poll-batch", "ERROR", 503, "UNAVAILABLE"), false},
	} {
		if got := f.Match(c.e); got != c.match {
			t.Errorf("%s: match %v, want %v", c.name, got, c.match)
		}
	}
}

// TestPollStalledWindow checks how long a source may go without a successful poll: N intervals
// of its cron schedule, or the minutes set for it, within Cloud Monitoring's 2 minutes to a day.
func TestPollStalledWindow(t *testing.T) {
	sources := `[
		{"kind": "argo", "name": "every", "url": "https://a.example.com"},
		{"kind": "argo", "name": "five", "url": "https://a.example.com", "schedule": "*/5 * * * *"},
		{"kind": "airflow", "name": "hourly", "url": "https://b.example.com", "schedule": "15 * * * *"},
		{"kind": "airflow", "name": "sixhours", "url": "https://b.example.com", "schedule": "0 */6 * * *"},
		{"kind": "airflow", "name": "weekdays", "url": "https://b.example.com", "schedule": "0 9 * * 1-5"},
		{"kind": "argo", "name": "set", "url": "https://a.example.com"}
	]`
	ev := googleEval(t, map[string]string{"sources": sources, "alert_poll_stalled": `{"intervals": 3, "minutes": {"set": 45}}`})
	var got map[string]float64
	if err := json.Unmarshal(localJSON(t, ev, "poll_stalled_minutes"), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"every": 3, "five": 15, "hourly": 180, "sixhours": 1080, "weekdays": 1440, "set": 45}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %v minutes, want %v", name, got[name], w)
		}
	}
	ev = googleEval(t, nil)
	if err := json.Unmarshal(localJSON(t, ev, "poll_stalled_minutes"), &got); err != nil {
		t.Fatal(err)
	}
	if got["batch"] != 5 {
		t.Errorf("default: %v minutes for a poll every minute, want 5", got["batch"])
	}
}

// TestAlertingVariablesRefuseBadValues: monitoring's variables explain what they want.
func TestAlertingVariablesRefuseBadValues(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"notification_channels": `["1234567890"]`}, "projects/my-project/notificationChannels/"},
		{map[string]string{"alert_poll_stalled": `{"intervals": 1}`}, "at least 2"},
		{map[string]string{"alert_poll_stalled": `{"minutes": {"batch": 2000}}`}, "from 2 to 1440"},
		{map[string]string{"alert_function_errors": `{"window_minutes": 0}`}, "window_minutes"},
		{map[string]string{"alert_dead_letters": `{"threshold": -1}`}, "0 or more"},
		{map[string]string{"alert_scheduler_failures": `{"window_minutes": 1.5}`}, "whole number"},
	} {
		err := googleEval(t, c.vars).Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error saying %q", c.vars, err, c.want)
		}
	}
	if err := googleEval(t, map[string]string{"notification_channels": `["projects/my-data-platform/notificationChannels/42"]`}).Validate(); err != nil {
		t.Errorf("valid alerting variables refused: %v", err)
	}
}

// resourceName is the planned name of a resource instance (key "" for a single instance).
func resourceName(t *testing.T, ev *alerting.Eval, resource, key string) string {
	t.Helper()
	each := cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(key), "value": cty.DynamicVal})
	v, err := ev.ResourceAttr(resource, "name", each)
	if err != nil {
		t.Fatal(err)
	}
	return v.AsString()
}
