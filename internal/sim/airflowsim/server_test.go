package airflowsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/clock"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type fixture struct {
	t   *testing.T
	sim *airflowsim.Server
	clk *clock.Manual
	url string
}

func newFixture(t *testing.T, opts airflowsim.Options) *fixture {
	t.Helper()
	clk := clock.NewManual(t0)
	opts.Clock = clk
	sim, err := airflowsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &fixture{t: t, sim: sim, clk: clk, url: srv.URL}
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// call sends a request and decodes the JSON answer (nil for a non-JSON body).
func (f *fixture) call(method, path string, body any, hdr ...string) (int, map[string]any, string) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.url+path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

func (f *fixture) get(path string) (int, map[string]any) {
	f.t.Helper()
	code, out, _ := f.call(http.MethodGet, path, nil)
	return code, out
}

func (f *fixture) addRuns(dag string, n int, tasks ...string) {
	f.t.Helper()
	for i := range n {
		ld := t0.Add(time.Duration(i) * time.Hour)
		spec := airflowsim.RunSpec{DagID: dag, RunID: "scheduled__" + ld.Format(time.RFC3339), LogicalDate: &ld}
		for _, id := range tasks {
			spec.Tasks = append(spec.Tasks, airflowsim.TaskSpec{ID: id, Retries: 1})
		}
		f.must(f.sim.TriggerRun(spec))
	}
}

func items(m map[string]any, key string) []map[string]any {
	raw, _ := m[key].([]any)
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i], _ = r.(map[string]any)
	}
	return out
}

func total(m map[string]any) int {
	n, _ := m["total_entries"].(float64)
	return int(n)
}

func TestDagRunListSilentlyCapsThePageSize(t *testing.T) {
	for _, api := range []string{"v1", "v2"} {
		t.Run(api, func(t *testing.T) {
			f := newFixture(t, airflowsim.Options{API: api})
			f.addRuns("big", 130, "a")
			code, page := f.get("/api/" + api + "/dags/~/dagRuns?limit=500&order_by=id")
			if code != 200 || len(items(page, "dag_runs")) != 100 || total(page) != 130 {
				t.Fatalf("limit=500: status %d, %d rows of %d; want 100 rows (the cap) of 130", code, len(items(page, "dag_runs")), total(page))
			}
			_, rest := f.get("/api/" + api + "/dags/~/dagRuns?limit=500&order_by=id&offset=100")
			if n := len(items(rest, "dag_runs")); n != 30 {
				t.Fatalf("offset 100: %d rows, want 30", n)
			}
			_, def := f.get("/api/" + api + "/dags/~/dagRuns")
			want := map[string]int{"v1": 100, "v2": 50}[api]
			if n := len(items(def, "dag_runs")); n != want {
				t.Fatalf("no limit: %d rows, want the default %d", n, want)
			}
		})
	}
}

func TestTaskInstanceListsCapOnlyOnV2GET(t *testing.T) {
	tasks := make([]string, 60)
	for i := range tasks {
		tasks[i] = fmt.Sprintf("t%02d", i)
	}
	v1 := newFixture(t, airflowsim.Options{API: "v1"})
	v1.addRuns("wide", 3, tasks...)
	if _, p := v1.get("/api/v1/dags/~/dagRuns/~/taskInstances?limit=150"); len(items(p, "task_instances")) != 150 {
		t.Fatalf("v1 GET task instances limit=150: %d rows, want 150 (not capped)", len(items(p, "task_instances")))
	}
	v2 := newFixture(t, airflowsim.Options{API: "v2"})
	v2.addRuns("wide", 3, tasks...)
	if _, p := v2.get("/api/v2/dags/~/dagRuns/~/taskInstances?limit=150"); len(items(p, "task_instances")) != 100 || total(p) != 180 {
		t.Fatalf("v2 GET task instances limit=150: %d rows of %d, want 100 of 180", len(items(p, "task_instances")), total(p))
	}
	_, p, _ := v2.call(http.MethodPost, "/api/v2/dags/~/dagRuns/~/taskInstances/list", map[string]any{"page_limit": 150})
	if len(items(p, "task_instances")) != 150 {
		t.Fatalf("v2 batch page_limit=150: %d rows, want 150 (batch bodies are not capped)", len(items(p, "task_instances")))
	}
}

func TestStrictAndLenientValidation(t *testing.T) {
	old := newFixture(t, airflowsim.Options{API: "v1", Version: "2.5.3"})
	code, body := old.get("/api/v1/dags/~/dagRuns?updated_at_gte=2026-01-01T00:00:00Z")
	if code != 400 || !strings.Contains(fmt.Sprint(body["detail"]), "updated_at_gte") {
		t.Fatalf("2.5.3 updated_at_gte: %d %v, want 400 naming the extra parameter", code, body)
	}
	v1 := newFixture(t, airflowsim.Options{API: "v1", Version: "2.10.0"})
	if code, _ := v1.get("/api/v1/dags/~/dagRuns?updated_at_gte=2026-01-01T00:00:00Z"); code != 200 {
		t.Fatalf("2.10 updated_at_gte: %d, want 200", code)
	}
	if code, body := v1.get("/api/v1/dags/~/dagRuns/~/taskInstances?order_by=start_date"); code != 400 {
		t.Fatalf("2.10.0 order_by on task instances: %d %v, want 400 (not in its spec)", code, body)
	}
	if code, body := v1.get("/api/v1/dags/~/dagRuns?start_date_gte=2026-01-01T00:00:00"); code != 400 || body["title"] != "Bad Request" {
		t.Fatalf("v1 naive datetime: %d %v, want a 400 problem", code, body)
	}
	if code, _ := v1.get("/api/v1/dags/~/dagRuns?start_date_gte=2026-01-01T00:00:00+00:00"); code != 200 {
		t.Fatalf("v1 unescaped +00:00 (arrives as a space): %d, want 200 as Airflow restores the +", code)
	}
	v2 := newFixture(t, airflowsim.Options{API: "v2"})
	code, body = v2.get("/api/v2/dags/~/dagRuns?start_date_gte=2026-01-01T00:00:00")
	if code != 422 || !strings.Contains(fmt.Sprint(body["detail"]), "timezone") {
		t.Fatalf("v2 naive datetime: %d %v, want 422 timezone_aware", code, body)
	}
	if code, _ := v2.get("/api/v2/dags/~/dagRuns?no_such_filter=1"); code != 200 {
		t.Fatalf("v2 unknown parameter: %d, want 200 (FastAPI ignores it)", code)
	}
	if code, body := v2.get("/api/v2/dags/~/dagRuns?order_by=bogus"); code != 400 {
		t.Fatalf("v2 order_by=bogus: %d %v, want 400", code, body)
	}
}

func TestBatchBodies(t *testing.T) {
	v1 := newFixture(t, airflowsim.Options{API: "v1"})
	v1.addRuns("d", 3, "a")
	v1.clk.Advance(time.Hour)
	code, page, _ := v1.call(http.MethodPost, "/api/v1/dags/~/dagRuns/list", map[string]any{"updated_at_gte": v1.clk.Now().Format(time.RFC3339)})
	if code != 200 || total(page) != 3 {
		t.Fatalf("v1 dagRuns/list with updated_at_gte after every update: %d, %d runs; want 200 and all 3 (the key is silently ignored)", code, total(page))
	}
	code, body, _ := v1.call(http.MethodPost, "/api/v1/dags/~/dagRuns/~/taskInstances/list", map[string]any{"page_limit": 10})
	if code != 400 || !strings.Contains(fmt.Sprint(body["detail"]), "Unknown field") {
		t.Fatalf("v1 task-instance batch with page_limit: %d %v, want 400 Unknown field", code, body)
	}
	v2 := newFixture(t, airflowsim.Options{API: "v2"})
	code, body, _ = v2.call(http.MethodPost, "/api/v2/dags/~/dagRuns/list", map[string]any{"updated_at_gte": "2026-01-01T00:00:00Z"})
	if code != 422 || !strings.Contains(fmt.Sprint(body["detail"]), "extra_forbidden") {
		t.Fatalf("v2 dagRuns/list with updated_at_gte: %d %v, want 422 extra_forbidden", code, body)
	}
}

func TestDatetimeShapesAndNullLogicalDate(t *testing.T) {
	v1 := newFixture(t, airflowsim.Options{API: "v1"})
	v1.addRuns("d", 1, "a")
	_, p := v1.get("/api/v1/dags/~/dagRuns")
	run := items(p, "dag_runs")[0]
	if ld, _ := run["logical_date"].(string); !strings.HasSuffix(ld, "+00:00") || run["execution_date"] != ld {
		t.Fatalf("v1 run dates %v / %v, want +00:00 offsets and execution_date = logical_date", run["logical_date"], run["execution_date"])
	}
	v2 := newFixture(t, airflowsim.Options{API: "v2"})
	v2.must(v2.sim.TriggerRun(airflowsim.RunSpec{DagID: "d", RunID: "manual__x", RunType: "manual", Tasks: []airflowsim.TaskSpec{{ID: "a"}}}))
	_, p = v2.get("/api/v2/dags/~/dagRuns")
	run = items(p, "dag_runs")[0]
	if run["logical_date"] != nil || !strings.HasSuffix(run["run_after"].(string), "Z") || run["queued_at"] == nil {
		t.Fatalf("v2 manual run: logical_date %v run_after %v queued_at %v; want null, a Z time, set", run["logical_date"], run["run_after"], run["queued_at"])
	}
	if _, ok := run["execution_date"]; ok {
		t.Fatal("v2 run has execution_date; Airflow 3 removed it")
	}
	if err := v1.sim.TriggerRun(airflowsim.RunSpec{DagID: "d", RunID: "x"}); err == nil {
		t.Fatal("v1 accepted a run without a logical date")
	}
}

func TestRetryTrySemanticsAndTries(t *testing.T) {
	for _, api := range []string{"v1", "v2"} {
		t.Run(api, func(t *testing.T) {
			f := newFixture(t, airflowsim.Options{API: api})
			f.addRuns("d", 1, "grp.load")
			ti := f.sim.TI("d", "scheduled__"+t0.Format(time.RFC3339), "grp.load")
			if st, try, _ := ti.State(); st != "" || try != 0 {
				t.Fatalf("new instance: %q try %d, want null try 0", st, try)
			}
			f.must(ti.Advance(airflowsim.Scheduled, airflowsim.Queued))
			f.clk.Advance(time.Minute)
			f.must(ti.Advance(airflowsim.Running))
			f.clk.Advance(time.Minute)
			f.must(ti.Advance(airflowsim.UpForRetry))
			if _, try, _ := ti.State(); try != 1 {
				t.Fatalf("up_for_retry after the first try shows try %d, want 1 (2.10+: incremented when scheduled)", try)
			}
			f.clk.Advance(time.Minute)
			f.must(ti.Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running))
			f.clk.Advance(time.Minute)
			f.must(ti.Advance(airflowsim.Success))
			st, try, _ := ti.State()
			if st != airflowsim.Success || try != 2 {
				t.Fatalf("after the retry: %s try %d, want success try 2", st, try)
			}
			code, tries := f.get("/api/" + api + "/dags/d/dagRuns/" + url.PathEscape("scheduled__"+t0.Format(time.RFC3339)) + "/taskInstances/grp.load/tries")
			rows := items(tries, "task_instances")
			if code != 200 || len(rows) != 2 || rows[0]["try_number"] != 1.0 || rows[0]["state"] != "up_for_retry" || rows[1]["state"] != "success" {
				t.Fatalf("tries: %d %v; want try 1 up_for_retry then try 2 success", code, rows)
			}
			if err := ti.Advance(airflowsim.Running); err == nil {
				t.Fatal("success -> running was accepted")
			}
		})
	}
}

func TestTriesListARetryingTryTwiceBefore2104(t *testing.T) {
	for version, want := range map[string]int{"2.10.0": 2, "2.10.4": 1} {
		t.Run(version, func(t *testing.T) {
			f := newFixture(t, airflowsim.Options{API: "v1", Version: version})
			f.addRuns("d", 1, "a")
			run := "scheduled__" + t0.Format(time.RFC3339)
			f.must(f.sim.TI("d", run, "a").Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running, airflowsim.UpForRetry))
			_, tries := f.get("/api/v1/dags/d/dagRuns/" + url.PathEscape(run) + "/taskInstances/a/tries")
			if rows := items(tries, "task_instances"); len(rows) != want {
				t.Fatalf("%d rows for one try waiting to retry, want %d", len(rows), want)
			}
		})
	}
}

// The start a rescheduled sensor shows, per start behaviour, while the try goes on and at its end;
// a deferred task keeps its start whatever the behaviour (Airflow skips start_date on resume).
func TestSensorStartBehaviours(t *testing.T) {
	for _, c := range []struct {
		name     string
		behave   airflowsim.SensorStart
		poke2, d string
	}{
		{"per poke (default)", airflowsim.StartPerPoke, "2026-03-02T10:02:00Z", "2026-03-02T10:00:00Z"},
		{"first poke", airflowsim.StartFirstPoke, "2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, airflowsim.Options{API: "v2", SensorStart: c.behave})
			f.addRuns("d", 1, "sensor", "deferrable")
			run := "scheduled__" + t0.Format(time.RFC3339)
			s, d := f.sim.TI("d", run, "sensor"), f.sim.TI("d", run, "deferrable")
			f.must(s.Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running))
			f.must(d.Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running, airflowsim.Deferred))
			f.clk.Advance(time.Minute)
			f.must(s.Advance(airflowsim.UpForReschedule))
			f.clk.Advance(time.Minute)
			f.must(s.Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running))
			f.must(d.Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running))
			starts := map[string]any{}
			_, p := f.get("/api/v2/dags/d/dagRuns/" + url.PathEscape(run) + "/taskInstances")
			for _, ti := range items(p, "task_instances") {
				starts[ti["task_id"].(string)] = ti["start_date"]
			}
			if starts["sensor"] != c.poke2 || starts["deferrable"] != c.d {
				t.Errorf("second poke's start %v, want %s; resumed deferral's start %v, want %s", starts["sensor"], c.poke2, starts["deferrable"], c.d)
			}
			if _, try, _ := s.State(); try != 1 {
				t.Errorf("try %d, want 1", try)
			}
		})
	}
	if _, err := airflowsim.New(airflowsim.Options{SensorStart: 7}); err == nil {
		t.Error("an unknown start behaviour was accepted")
	}
}

func TestClearRescheduleAndMapping(t *testing.T) {
	f := newFixture(t, airflowsim.Options{API: "v2"})
	f.addRuns("d", 1, "sensor", "fan")
	run := "scheduled__" + t0.Format(time.RFC3339)
	s := f.sim.TI("d", run, "sensor")
	f.must(s.Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running))
	f.clk.Advance(time.Minute)
	f.must(s.Advance(airflowsim.UpForReschedule))
	f.clk.Advance(time.Minute)
	f.must(s.Advance(airflowsim.Scheduled, airflowsim.Queued, airflowsim.Running, airflowsim.Success))
	if _, try, _ := s.State(); try != 1 {
		t.Fatalf("a rescheduled sensor shows try %d, want 1 (a reschedule is the same try)", try)
	}
	_, p := f.get("/api/v2/dags/d/dagRuns/" + url.PathEscape(run) + "/taskInstances")
	for _, ti := range items(p, "task_instances") {
		// The default is Airflow 2.0–3.2's: every poke overwrites start_date.
		if ti["task_id"] == "sensor" && (ti["start_date"] != "2026-03-02T10:02:00Z" || ti["end_date"] != "2026-03-02T10:02:00Z") {
			t.Fatalf("rescheduled sensor %v..%v, want the last poke's start and end 10:02:00Z", ti["start_date"], ti["end_date"])
		}
	}
	f.must(s.Advance(airflowsim.None))
	if st, try, _ := s.State(); st != "" || try != 1 {
		t.Fatalf("cleared: %q try %d, want null keeping try 1", st, try)
	}
	f.must(s.Advance(airflowsim.Scheduled))
	if _, try, _ := s.State(); try != 2 {
		t.Fatalf("scheduled after a clear: try %d, want 2", try)
	}
	f.must(f.sim.Expand("d", run, "fan", 3))
	f.must(f.sim.MappedTI("d", run, "fan", 2).Advance(airflowsim.Scheduled))
	_, p = f.get("/api/v2/dags/~/dagRuns/~/taskInstances?limit=100")
	var mapped []float64
	for _, ti := range items(p, "task_instances") {
		if ti["task_id"] == "fan" {
			mapped = append(mapped, ti["map_index"].(float64))
		}
	}
	if fmt.Sprint(mapped) != "[0 1 2]" {
		t.Fatalf("mapped instances %v, want [0 1 2] (the -1 instance replaced)", mapped)
	}
}

func TestUnorderedV1ListMovesUpdatedRows(t *testing.T) {
	f := newFixture(t, airflowsim.Options{API: "v1", Version: "2.10.0"})
	f.addRuns("d", 1, "a", "b", "c")
	order := func() string {
		_, p := f.get("/api/v1/dags/~/dagRuns/~/taskInstances")
		var ids []string
		for _, ti := range items(p, "task_instances") {
			ids = append(ids, ti["task_id"].(string))
		}
		return strings.Join(ids, ",")
	}
	if got := order(); got != "a,b,c" {
		t.Fatalf("initial order %s", got)
	}
	f.must(f.sim.TI("d", "scheduled__"+t0.Format(time.RFC3339), "a").Advance(airflowsim.Scheduled))
	if got := order(); got != "b,c,a" {
		t.Fatalf("after updating a: %s, want b,c,a (the updated row moved: offset paging over this is unstable)", got)
	}
}

func TestRoutesAndVersions(t *testing.T) {
	v2 := newFixture(t, airflowsim.Options{API: "v2"})
	code, body, _ := v2.call(http.MethodGet, "/api/v1/version", nil)
	if code != 404 || !strings.Contains(fmt.Sprint(body["error"]), "removed in Airflow 3") {
		t.Fatalf("Airflow 3 /api/v1: %d %v", code, body)
	}
	if code, body := v2.get("/api/v2/version"); code != 200 || body["version"] != "3.0.2" {
		t.Fatalf("v2 version: %d %v", code, body)
	}
	v1 := newFixture(t, airflowsim.Options{API: "v1"})
	code, _, raw := v1.call(http.MethodGet, "/api/v2/version", nil)
	if code != 404 || !strings.Contains(raw, "<html>") {
		t.Fatalf("Airflow 2 /api/v2: %d %q, want its HTML 404", code, raw)
	}
	if _, err := airflowsim.New(airflowsim.Options{API: "v1", Version: "3.0.0"}); err == nil {
		t.Fatal("Airflow 3 serving v1 was accepted")
	}
}

func TestAuthModes(t *testing.T) {
	basic := newFixture(t, airflowsim.Options{API: "v1", Auth: airflowsim.Auth{Mode: "basic", Username: "u", Password: "p"}})
	if code, _ := basic.get("/api/v1/dags/~/dagRuns"); code != 401 {
		t.Fatalf("no credentials: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodGet, basic.url+"/api/v1/dags/~/dagRuns", nil)
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("basic auth: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	basic.sim.SetForbidden(true)
	resp, _ = http.DefaultClient.Do(req)
	if resp.StatusCode != 403 {
		t.Fatalf("forbidden: %d, want 403", resp.StatusCode)
	}
	resp.Body.Close()

	jwt := newFixture(t, airflowsim.Options{API: "v2", Auth: airflowsim.Auth{Mode: "jwt", Username: "u", Password: "p", JWTTTL: 10 * time.Minute}})
	code, _, _ := jwt.call(http.MethodPost, "/auth/token", map[string]string{"username": "u", "password": "bad"})
	if code != 401 {
		t.Fatalf("bad password: %d, want 401", code)
	}
	code, tok, _ := jwt.call(http.MethodPost, "/auth/token", map[string]string{"username": "u", "password": "p"})
	if code != 201 || tok["access_token"] == nil {
		t.Fatalf("token: %d %v", code, tok)
	}
	bearer := "Bearer " + tok["access_token"].(string)
	if code, _, _ := jwt.call(http.MethodGet, "/api/v2/dags/~/dagRuns", nil, "Authorization", bearer); code != 200 {
		t.Fatalf("with the JWT: %d", code)
	}
	jwt.clk.Advance(11 * time.Minute)
	if code, _, _ := jwt.call(http.MethodGet, "/api/v2/dags/~/dagRuns", nil, "Authorization", bearer); code != 401 {
		t.Fatalf("with an expired JWT: %d, want 401", code)
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t, airflowsim.Options{API: "v1"})
	f.sim.InjectFault(airflowsim.Fault{PathPrefix: "/api/v1/dags/~/dagRuns", Status: 503, RetryAfter: "7", Times: 1})
	req, _ := http.NewRequest(http.MethodGet, f.url+"/api/v1/dags/~/dagRuns", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("fault: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _ := f.get("/api/v1/dags/~/dagRuns"); code != 200 {
		t.Fatalf("after a one-time fault: %d", code)
	}
	f.sim.InjectFault(airflowsim.Fault{PathPrefix: "/api/v1/version", Hang: true})
	hc := &http.Client{Timeout: 50 * time.Millisecond}
	if resp, err := hc.Get(f.url + "/api/v1/version"); err == nil {
		resp.Body.Close()
		t.Fatal("a hanging call answered")
	}
	reqs := f.sim.Requests()
	if len(reqs) != 3 || reqs[0].Status != 503 || reqs[1].Status != 200 {
		t.Fatalf("request log %+v", reqs)
	}
}
