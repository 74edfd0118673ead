package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/event"
)

// asFarm makes the test binary run as the farm binary, for tests that start it as a child (the
// local runner that the freshness benchmark watches).
const asFarm = "FARM_TEST_RUN_AS_FARM"

func TestMain(m *testing.M) {
	if os.Getenv(asFarm) == "1" {
		main()
	}
	testenv.Main(m)
}

// cleanEnv gives the test the environment of a fresh machine, in a fresh directory: nothing
// configured. Every variable the runner may set is registered with t.Setenv, so it is restored.
func cleanEnv(t *testing.T) string {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FARM_") || strings.HasPrefix(k, "DD_") || strings.HasSuffix(k, "_EMULATOR_HOST") || k == "GOOGLE_CLOUD_PROJECT" || k == "PORT" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, k := range []string{"FARM_PROJECT_ID", "FARM_STATE_STORE", "FARM_SINK", "FARM_STATE_FILE", "FARM_SINK_DIR", "FARM_ARGO_URL", "FARM_AIRFLOW_URL", "FARM_ARGO_INSTANCE", "FARM_AIRFLOW_INSTANCE", "PUBSUB_EMULATOR_HOST", "DD_TRACE_AGENT_URL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func deltas(t *testing.T, out []byte) []*event.RunDelta {
	t.Helper()
	var ds []*event.RunDelta
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		d := new(event.RunDelta)
		err := json.Unmarshal(sc.Bytes(), d)
		if err == nil {
			err = d.Validate()
		}
		if err != nil {
			t.Fatalf("stdout line is not a RunDelta: %v\n%s", err, sc.Text())
		}
		ds = append(ds, d)
	}
	return ds
}

func TestPollArgoOnEmbeddedDefaults(t *testing.T) {
	dir := cleanEnv(t)
	ctx := context.Background()

	var dry, dryErr bytes.Buffer
	if err := run(ctx, []string{"poll", "argo", "-dry-run"}, &dry, &dryErr); err != nil {
		t.Fatalf("dry run: %v\n%s", err, dryErr.String())
	}
	if !strings.Contains(dryErr.String(), "SIMULATED") {
		t.Errorf("the runner does not say it polls a simulation:\n%s", dryErr.String())
	}
	// Quiet by default: a few readable notices, then the summary; no JSON log line.
	notes, _, _ := strings.Cut(dryErr.String(), "{\n")
	lines := strings.Split(strings.TrimSpace(notes), "\n")
	readable := regexp.MustCompile(`^\d\d:\d\d:\d\d [^{]+$`)
	for _, l := range lines {
		if !readable.MatchString(l) || strings.Contains(l, "WARN") {
			t.Errorf("not a quiet readable notice: %q", l)
		}
	}
	if len(lines) > 4 {
		t.Errorf("%d lines before the summary, want the few notices:\n%s", len(lines), notes)
	}
	planned := deltas(t, dry.Bytes())
	if len(planned) == 0 {
		t.Fatal("a dry run of the simulated estate printed no RunDelta")
	}

	var out, errb bytes.Buffer
	if err := run(ctx, []string{"poll", "argo"}, &out, &errb); err != nil {
		t.Fatalf("poll: %v\n%s", err, errb.String())
	}
	first := deltas(t, out.Bytes())
	if len(first) == 0 {
		t.Fatal("the poll published nothing")
	}
	for _, d := range first {
		if d.Run.Source != event.SourceArgo || d.Run.Instance != "simulated-argo" || d.Tenant != "default" {
			t.Errorf("delta %s: run %+v tenant %q", d.ID, d.Run, d.Tenant)
		}
	}
	var summary struct {
		RunsSeen int       `json:"runs_seen"`
		Events   int       `json:"events"`
		Cursor   time.Time `json:"cursor"`
	}
	if i := strings.LastIndex(errb.String(), "{\n"); i < 0 || json.Unmarshal([]byte(errb.String()[i:]), &summary) != nil || summary.RunsSeen == 0 || summary.Cursor.IsZero() {
		t.Errorf("no poll summary on stderr:\n%s", errb.String())
	}
	// The one summary line per poll that the README promises, readable in the quiet default.
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d .*poll argo.*: \d+ runs seen, \d+ changed`).MatchString(errb.String()) {
		t.Errorf("no readable \"poll finished\" line on stderr:\n%s", errb.String())
	}
	// The simulated estate's state was its own: gone with it, and nothing in the shared file.
	left, _ := filepath.Glob(filepath.Join(dir, ".farm", "simulated", "*"))
	if _, err := os.Stat(filepath.Join(dir, ".farm", "state.json")); err == nil || len(left) > 0 {
		t.Errorf("a simulated estate's state outlived it: %v, %v", err, left)
	}

	// Every start is a new simulated estate, compared with nothing of the previous one: no run
	// "vanished" (each restart used to report the previous estate's active runs gone).
	var again bytes.Buffer
	if err := run(ctx, []string{"poll", "argo", "-dry-run"}, io.Discard, &again); err != nil {
		t.Fatalf("poll again: %v\n%s", err, again.String())
	}
	if strings.Contains(again.String(), "vanished") || !strings.Contains(again.String(), `"runs_gone": 0`) {
		t.Errorf("a restart compared the new estate with the previous one:\n%s", again.String())
	}
}

func TestPollRefusesBadSettings(t *testing.T) {
	cleanEnv(t)
	t.Setenv("FARM_POLL_OVERLAP", "five minutes")
	t.Setenv("FARM_ARGO_PAGE_SIZE", "0")
	t.Setenv("FARM_LOG_LEVEL", "verbose")
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"poll", "argo"}, &bytes.Buffer{}, &stderr)
	for _, name := range []string{"FARM_POLL_OVERLAP", "FARM_ARGO_PAGE_SIZE", "FARM_LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("err = %v, want %s named", err, name)
		}
	}
	// Refused before anything started: no simulator said a word.
	if strings.Contains(stderr.String(), "SIMULATED") {
		t.Errorf("simulators started before the settings were checked:\n%s", stderr.String())
	}
}

// The settings serve reads are refused at start, all at once, each by name, before any simulator
// starts: a bad level, interval or port, and an agent address where no agent answers.
func TestServeRefusesBadSettings(t *testing.T) {
	cleanEnv(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	t.Setenv("PORT", strconv.Itoa(busy.Addr().(*net.TCPAddr).Port))
	t.Setenv("FARM_LOG_LEVEL", "verbose")
	t.Setenv("FARM_LOG_FORMAT", "pretty")
	t.Setenv("FARM_POLL_INTERVAL", "-1s")
	t.Setenv("FARM_SIM_AIRFLOW_API", "v3")
	var stderr bytes.Buffer
	err = run(context.Background(), nil, &bytes.Buffer{}, &stderr)
	for _, want := range []string{"FARM_LOG_LEVEL", "FARM_LOG_FORMAT", "FARM_POLL_INTERVAL", "FARM_SIM_AIRFLOW_API", "PORT", "in use", "set PORT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
	if strings.Contains(stderr.String(), "SIMULATED") {
		t.Errorf("simulators started before the settings were checked:\n%s", stderr.String())
	}

	cleanEnv(t)
	t.Setenv("PORT", freePort(t))
	t.Setenv("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")
	stderr.Reset()
	err = run(context.Background(), nil, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "DD_TRACE_AGENT_URL") || !strings.Contains(err.Error(), "no DataDog agent answers") {
		t.Errorf("err = %v, want DD_TRACE_AGENT_URL refused: no agent answers there", err)
	}
	if strings.Contains(stderr.String(), "SIMULATED") {
		t.Errorf("simulators started although the agent setting is wrong:\n%s", stderr.String())
	}
}

func TestCommandLine(t *testing.T) {
	cleanEnv(t)
	tests := []struct {
		args   []string
		errHas string
		code   int
	}{
		{[]string{"nonsense"}, `unknown command "nonsense"`, 2},
		{[]string{"poll"}, "which source", 2},
		{[]string{"poll", "jenkins"}, "unknown source", 2},
		{[]string{"poll", "argo", "-replay"}, "need -since", 2},
		{[]string{"poll", "argo", "-since", "yesterday"}, "RFC 3339", 2},
		{[]string{"poll", "argo", "-dry-run", "now"}, `unexpected argument "now"`, 2},
		{[]string{"poll", "argo", "-bogus"}, "flag provided but not defined", 2},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`, 2},
		{[]string{"-port", "x", "extra"}, `unexpected argument "extra"`, 2},
		{[]string{"serve", "-interval", "-5s", "-port", "0"}, "-interval must be positive", 1},
	}
	for _, tc := range tests {
		var stderr bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("farm %v: err = %v, want %q", tc.args, err, tc.errHas)
		}
		if code := exitCode(err, false, io.Discard); code != tc.code {
			t.Errorf("farm %v: exit %d, want %d", tc.args, code, tc.code)
		}
		if strings.Contains(stderr.String(), "SIMULATED") {
			t.Errorf("farm %v started simulators:\n%s", tc.args, stderr.String())
		}
	}
	// -h prints the usage on stdout and exits 0, starting nothing.
	for _, args := range [][]string{{"help"}, {"-h"}, {"serve", "-h"}, {"poll", "-h"}, {"poll", "argo", "-h"}, {"-h", "poll"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if code := exitCode(err, false, io.Discard); code != 0 || !strings.Contains(stdout.String(), "usage: farm") {
			t.Errorf("farm %v: exit %d (%v), stdout:\n%s", args, code, err, stdout.String())
		}
		if strings.Contains(stderr.String(), "SIMULATED") {
			t.Errorf("farm %v started simulators:\n%s", args, stderr.String())
		}
	}
	var stderr bytes.Buffer
	if code := exitCode(context.Canceled, true, &stderr); code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("Ctrl-C: exit %d, %q", code, stderr.String())
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestServeRunsEveryFunction is the newcomer's `go run ./cmd/farm`: the simulated estates are
// polled on a schedule, RunDeltas flow through the in-process Pub/Sub to the Trace and
// BigQuerySink functions served by the functions framework, traces reach the local receiver and
// rows land in the NDJSON files. Both orchestrators' waterfalls appear within the first minute,
// on a quiet terminal: readable notices, one line per poll, no per-message log line, no JSON.
func TestServeRunsEveryFunction(t *testing.T) {
	dir := cleanEnv(t)
	t.Setenv("FARM_LOCAL_AGENT_ADDR", "127.0.0.1:"+freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testenv.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-port", freePort(t), "-interval", "1s"}, &stdout, &stderr) }()

	rows := func(table string) int {
		b, _ := os.ReadFile(filepath.Join(dir, ".farm", "bigquery", table+".ndjson"))
		return bytes.Count(b, []byte("\n"))
	}
	// The receiver prints a trace once its run finished.
	deadline := time.After(time.Minute)
	for !(rows("argo") > 0 && rows("airflow") > 0 && strings.Contains(stdout.String(), "argo.workflow") && strings.Contains(stdout.String(), "airflow.dag_run")) {
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\nstderr:\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("after a minute: argo rows %d, airflow rows %d; stdout:\n%s\nstderr:\n%s", rows("argo"), rows("airflow"), stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("serve: %v", err)
	}
	log := stderr.String()
	pollLine := regexp.MustCompile(`^\d\d:\d\d:\d\d poll (argo/simulated-argo|airflow/simulated-airflow): \d+ runs seen, \d+ changed, \d+ events in \d+ messages`)
	polls := 0
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		switch {
		case pollLine.MatchString(line):
			polls++
		case strings.Contains(line, "{") || strings.Contains(line, "traced run delta") || strings.Contains(line, "rows written"):
			t.Errorf("noise on the quiet terminal: %s", line)
		case strings.Contains(line, " WARN ") || strings.Contains(line, " ERROR "):
			t.Errorf("a warning or error in a clean run: %s", line)
		}
	}
	if polls < 2 {
		t.Errorf("%d poll lines, want one per poll of each source:\n%s", polls, log)
	}
	for _, want := range []string{"polling a SIMULATED argo estate", "polling a SIMULATED airflow estate", "local receiver", "Ctrl-C stops", "Goodbye"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "\n"); n > 12+polls {
		t.Errorf("%d lines on stderr for %d polls:\n%s", n, polls, log)
	}
}

// The full JSON log, with Cloud Logging's severity, is one setting away. (`poll`: a second
// `serve` in this process would find the functions configured by the first.)
func TestPollFullJSONLog(t *testing.T) {
	cleanEnv(t)
	t.Setenv("FARM_LOG_FORMAT", "json")
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"poll", "argo", "-dry-run"}, io.Discard, &stderr); err != nil {
		t.Fatalf("poll: %v\n%s", err, stderr.String())
	}
	var notices int
	for _, line := range strings.Split(stderr.String(), "\n") {
		if !strings.HasPrefix(line, `{"time"`) {
			continue // the poll's indented summary
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["message"] == nil {
			t.Errorf("not a Cloud Logging JSON line: %s", line)
		}
		if rec["severity"] == "NOTICE" {
			notices++
		}
	}
	if notices == 0 {
		t.Errorf("no NOTICE line:\n%s", stderr.String())
	}
}

// With a BigQuery emulator configured, the runner creates the dataset, tables and views from the
// embedded schema files before serving.
func TestServePreparesABigQueryEmulator(t *testing.T) {
	cleanEnv(t)
	bq := testenv.StartBigQuery(t, "farm-local")
	t.Setenv("FARM_PROJECT_ID", "farm-local")
	t.Setenv("FARM_STATE_STORE", "file")
	t.Setenv("FARM_SINK", "bigquery")
	t.Setenv("FARM_BIGQUERY_ENDPOINT", bq.Endpoint)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := prepareBigQuery(t.Context(), cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	c := bq.Client(t)
	for _, table := range []string{"argo", "airflow", "argo_dedup", "task_duration_daily"} {
		if _, err := c.Dataset("farm").Table(table).Metadata(t.Context()); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
}

// The simulated Airflow speaks either API: Airflow 2's runs carry external_trigger, Airflow 3's
// have none (it was removed), which tells the two mappings apart end to end.
func TestPollSimulatedAirflowBothAPIs(t *testing.T) {
	for _, tc := range []struct {
		api      string
		external bool
	}{{"", false}, {"v2", false}, {"v1", true}} {
		t.Run("api="+tc.api, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("FARM_SIM_AIRFLOW_API", tc.api)
			var out, errb bytes.Buffer
			if err := run(context.Background(), []string{"poll", "airflow", "-dry-run"}, &out, &errb); err != nil {
				t.Fatalf("poll: %v\n%s", err, errb.String())
			}
			ds := deltas(t, out.Bytes())
			if len(ds) == 0 {
				t.Fatal("no RunDelta")
			}
			for _, d := range ds {
				if got := d.Run.ExternalTrigger != nil; got != tc.external || d.Run.Source != event.SourceAirflow {
					t.Fatalf("run %s of %s: external_trigger present %v, want %v", d.Run.UID, d.Run.Source, got, tc.external)
				}
			}
		})
	}
	cleanEnv(t)
	t.Setenv("FARM_SIM_AIRFLOW_API", "v3")
	err := run(context.Background(), []string{"poll", "airflow", "-dry-run"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "FARM_SIM_AIRFLOW_API") {
		t.Fatalf("err = %v, want the bad variable named", err)
	}
}

// `poll -since T1 -until T2 -replay` publishes the window's runs only: a window that ended before
// the simulated estates began has none, though their active runs are listed (they used to be
// published); a window reaching now has them.
func TestPollBackfillIsItsWindow(t *testing.T) {
	for _, source := range []string{"argo", "airflow"} {
		t.Run(source, func(t *testing.T) {
			cleanEnv(t)
			now := time.Now().UTC()
			early := []string{"poll", source, "-dry-run", "-replay", "-since", now.Add(-2 * time.Hour).Format(time.RFC3339), "-until", now.Add(-30 * time.Minute).Format(time.RFC3339)}
			var out, errb bytes.Buffer
			if err := run(context.Background(), early, &out, &errb); err != nil {
				t.Fatalf("%v: %v\n%s", early, err, errb.String())
			}
			if ds := deltas(t, out.Bytes()); len(ds) != 0 {
				t.Errorf("a window that ended before any run began published %d deltas, e.g. run %s started %v", len(ds), ds[0].Run.Name, ds[0].Run.StartedAt)
			}
			out.Reset()
			late := []string{"poll", source, "-dry-run", "-replay", "-since", now.Add(-time.Hour).Format(time.RFC3339)}
			if err := run(context.Background(), late, &out, &errb); err != nil {
				t.Fatalf("%v: %v\n%s", late, err, errb.String())
			}
			if ds := deltas(t, out.Bytes()); len(ds) == 0 {
				t.Error("a window reaching now published nothing")
			}
		})
	}
}

func TestFilterLines(t *testing.T) {
	r, w := io.Pipe()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { filterLines(r, &out, frameworkNoise); close(done) }()
	if _, err := io.WriteString(w, "Serving function: \"Trace\"\ntrace 6b15  argo-workflows  3 spans\nFunction error: trace run x: agent down\npanic message: boom\nno newline"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	<-done
	if want := "trace 6b15  argo-workflows  3 spans\npanic message: boom\nno newline"; out.String() != want {
		t.Errorf("filtered %q, want %q", out.String(), want)
	}
}
