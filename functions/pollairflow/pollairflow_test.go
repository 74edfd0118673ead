package pollairflow_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/functions/pollairflow"
	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/airflowsim"
)

// The function end to end: configuration from the environment (a simulated Airflow 3 with JWT
// auth, the file state store, the in-process Pub/Sub), one HTTP request per poll.
func TestPollAirflowFunction(t *testing.T) {
	sim, err := airflowsim.New(airflowsim.Options{API: "v2", Auth: airflowsim.Auth{Mode: "jwt", Username: "farm", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	ld := time.Now().UTC().Add(-time.Minute)
	if err := sim.TriggerRun(airflowsim.RunSpec{DagID: "etl", RunID: "r1", LogicalDate: &ld, Tasks: []airflowsim.TaskSpec{{ID: "load"}}}); err != nil {
		t.Fatal(err)
	}
	if err := sim.TI("etl", "r1", "load").Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	writeFile(t, pwFile, "pw\n")
	for k, v := range map[string]string{
		"FARM_AIRFLOW_URL": srv.URL, "FARM_AIRFLOW_AUTH": "jwt", "FARM_AIRFLOW_USERNAME": "farm", "FARM_AIRFLOW_PASSWORD_FILE": pwFile,
		"FARM_PROJECT_ID": "farm-test", "FARM_STATE_STORE": "file", "FARM_STATE_FILE": filepath.Join(dir, "state.json"),
		"FARM_LOG_LEVEL": "warn",
	} {
		t.Setenv(k, v)
	}
	ps := polltest.PubSubEnv(t, "farm-test", "farm-run-deltas")

	post := func(body string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		pollairflow.Handle(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	code, out := post("")
	if code != http.StatusOK || out["source"] != "airflow/127.0.0.1" || out["runs_seen"] != 1.0 || out["messages"] != 1.0 {
		t.Fatalf("incremental poll: %d %v", code, out)
	}
	if n := len(ps.Messages()); n != 1 {
		t.Fatalf("%d messages published", n)
	}
	if code, out := post(`{"since": "yesterday"}`); code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "since") {
		t.Fatalf("bad backfill body: %d %v", code, out)
	}
	sim.SetForbidden(true)
	if code, out := post(""); code != http.StatusBadGateway || !strings.Contains(out["error"].(string), `auth mode "jwt"`) {
		t.Fatalf("forbidden: %d %v", code, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
