package pollargo_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/functions/pollargo"
	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// The function end to end, configured from the environment as on Google Cloud: a simulated
// Argo Server behind a bearer token read from a mounted file, the file state store, the
// in-process Pub/Sub; one HTTP request per poll, every answer of the contract.
func TestPollArgoFunction(t *testing.T) {
	now := time.Now().UTC()
	sim := argosim.NewServer(clock.Real{}, argosim.Options{Token: "sa-token", Seed: 1})
	b := argosim.NewWorkflow("data", "etl-1", now.Add(-2*time.Minute))
	b.Pod("extract", argosim.NodeSucceeded, now.Add(-2*time.Minute), now.Add(-time.Minute))
	if _, err := sim.Put(b.Workflow()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stateFile := filepath.Join(dir, "state.json")
	for k, v := range map[string]string{
		"FARM_ARGO_URL": srv.URL, "FARM_ARGO_INSTANCE": "prod", "FARM_ARGO_TOKEN_FILE": tokenFile,
		"FARM_PROJECT_ID": "farm-test", "FARM_STATE_STORE": "file", "FARM_STATE_FILE": stateFile,
		"FARM_LOG_LEVEL": "warn", "FARM_MAX_BACKFILL_WINDOW": "24h",
	} {
		t.Setenv(k, v)
	}
	ps := polltest.PubSubEnv(t, "farm-test", "farm-run-deltas")

	post := func(body string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		pollargo.Handle(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer is not JSON: %s", rec.Body)
		}
		return rec.Code, out
	}
	code, out := post("")
	if code != http.StatusOK || out["source"] != "argo/prod" || out["runs_seen"] != 1.0 || out["events"] != 2.0 || out["cursor"] == nil {
		t.Fatalf("incremental poll: %d %v", code, out)
	}
	if n := len(ps.Messages()); n != 1 {
		t.Fatalf("%d messages published, want 1", n)
	}

	since := now.Add(-time.Hour).Format(time.RFC3339)
	if code, out := post(`{"since":"` + since + `","replay":true}`); code != http.StatusOK || out["mode"] != "replay" || out["events"] != 2.0 {
		t.Fatalf("replay: %d %v", code, out)
	}
	for _, tc := range []struct{ body, errHas string }{
		{`{"since":"yesterday"}`, "since"},
		{`{"since":"` + now.Add(-48*time.Hour).Format(time.RFC3339) + `"}`, "FARM_MAX_BACKFILL_WINDOW"},
		{`{"since":"` + since + `","dry_run":true}`, `unknown field "dry_run"`},
	} {
		if code, out := post(tc.body); code != http.StatusBadRequest || !strings.Contains(out["error"].(string), tc.errHas) {
			t.Errorf("%s: %d %v, want 400 naming %q", tc.body, code, out, tc.errHas)
		}
	}

	// Another poll holds the lease: the scheduler's call answers 409 at once.
	other := filestore.New(stateFile)
	if _, err := other.Acquire(t.Context(), "argo/prod", "other-poll", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if code, out := post(""); code != http.StatusConflict {
		t.Errorf("lease held: %d %v, want 409", code, out)
	}
	if err := other.Release(t.Context(), "argo/prod", "other-poll"); err != nil {
		t.Fatal(err)
	}

	// The Argo Server fails: 502, and the cursor stays.
	_, before := post("")
	sim.InjectFault(argosim.Fault{Kind: argosim.FaultInternal, Count: 100})
	code, out = post("")
	if code != http.StatusBadGateway || !strings.Contains(out["error"].(string), "500") {
		t.Fatalf("upstream failure: %d %v, want 502", code, out)
	}
	sim.ClearFaults()
	_, after := post("")
	if after["previous_cursor"] != before["cursor"] {
		t.Errorf("cursor moved by a failed poll: %v, want %v", after["previous_cursor"], before["cursor"])
	}
}
