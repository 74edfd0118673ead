package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
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

func TestMain(m *testing.M) { testenv.Main(m) }

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
		d, err := event.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("stdout line is not a RunDelta: %v\n%s", err, sc.Text())
		}
		ds = append(ds, d)
	}
	return ds
}

func eventIDs(ds []*event.RunDelta) map[string]bool {
	ids := map[string]bool{}
	for _, d := range ds {
		for _, e := range d.Events {
			ids[e.ID] = true
		}
	}
	return ids
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
	if !strings.Contains(errb.String(), `"message":"poll finished"`) || !strings.Contains(errb.String(), `"severity":"INFO"`) {
		t.Errorf("no \"poll finished\" log line, which the README promises, on stderr:\n%s", errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, ".farm", "state.json")); err != nil {
		t.Errorf("the embedded store kept nothing: %v", err)
	}
}

func TestPollRefusesBadSettings(t *testing.T) {
	cleanEnv(t)
	t.Setenv("FARM_POLL_OVERLAP", "five minutes")
	t.Setenv("FARM_ARGO_PAGE_SIZE", "0")
	err := run(context.Background(), []string{"poll", "argo"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "FARM_POLL_OVERLAP") || !strings.Contains(err.Error(), "FARM_ARGO_PAGE_SIZE") {
		t.Fatalf("err = %v, want both bad variables named", err)
	}
}

func TestCommandLine(t *testing.T) {
	cleanEnv(t)
	tests := []struct {
		args   []string
		errHas string
	}{
		{[]string{"nonsense"}, `unknown command "nonsense"`},
		{[]string{"poll"}, flag.ErrHelp.Error()},
		{[]string{"poll", "jenkins"}, "unknown source"},
		{[]string{"poll", "argo", "-replay"}, "need -since"},
		{[]string{"poll", "argo", "-since", "yesterday"}, "RFC 3339"},
	}
	for _, tc := range tests {
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("farm %v: err = %v, want %q", tc.args, err, tc.errHas)
		}
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &help, &bytes.Buffer{}); err != nil || !strings.Contains(help.String(), "serve") {
		t.Errorf("help: %v\n%s", err, help.String())
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
// rows land in the NDJSON files.
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
	// The receiver prints a trace once its run finished (the demo's Argo runs take seconds, its
	// Airflow runs minutes); the trace function logs what the agent accepted for each delta.
	airflowSpans := regexp.MustCompile(`"message":"traced run delta","run":"airflow/[^"]*"[^}]*"sent":[1-9]`)
	deadline := time.After(2 * time.Minute)
	for !(rows("argo") > 0 && rows("airflow") > 0 && strings.Contains(stdout.String(), "argo.node") && airflowSpans.MatchString(stderr.String())) {
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\nstderr:\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("after 2 minutes: argo rows %d, airflow rows %d, argo spans %v, airflow spans %v; stdout:\n%s\nstderr:\n%s", rows("argo"), rows("airflow"), strings.Contains(stdout.String(), "argo.node"), airflowSpans.MatchString(stderr.String()), stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if strings.Contains(stderr.String(), `"severity":"ERROR"`) {
		t.Errorf("errors logged while serving:\n%s", stderr.String())
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("serve: %v", err)
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
