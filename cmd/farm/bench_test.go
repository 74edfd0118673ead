package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/bench"
	"github.com/farmobs/farm/pkg/event"
)

func TestParseBench(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		configs []string // names, in order
		wantErr string
	}{
		{"defaults", nil, []string{"argo-1000-1%", "argo-1000-10%", "argo-10000-1%", "argo-10000-10%", "argo-10000x100-1%", "argo-100000-1%",
			"airflow-5000-10000dags-1%", "airflow2-5000-10000dags-1%", "airflow2-500-1000dags-10%", "airflow-1000-100dags-1%", "airflow-1000-100dags-10%", "airflow-1000-1000dags-1%", "airflow-1000-1000dags-10%"}, ""},
		{"quick", []string{"-quick", "-churn", "0.05"}, []string{"argo-200-5%", "airflow-100-10dags-5%", "airflow-100-100dags-5%"}, ""},
		{"argo only", []string{"-runs", "50", "-churn", "1", "-airflow-runs", "0", "-large-tasks", "0", "-scale-runs", "0", "-airflow-estate=false"}, []string{"argo-50-100%"}, ""},
		{"scale", []string{"-runs", "50", "-churn", "1", "-airflow-runs", "0", "-large-tasks", "0"}, []string{"argo-50-100%", "argo-100000-1%", "airflow-5000-10000dags-1%", "airflow2-5000-10000dags-1%", "airflow2-500-1000dags-10%"}, ""},
		{"bad runs", []string{"-runs", "1k"}, nil, `-runs: "1k"`},
		{"churn out of range", []string{"-churn", "0.5,2"}, nil, `-churn: "2"`},
		{"no polls", []string{"-polls", "0"}, nil, "-polls"},
		{"stray argument", []string{"-quick", "now"}, nil, `unexpected argument "now"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseBench(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range p.configs() {
				names = append(names, c.Name)
			}
			if strings.Join(names, " ") != strings.Join(tc.configs, " ") {
				t.Errorf("configurations %v, want %v", names, tc.configs)
			}
		})
	}
}

// TestServeSim is the child process's side: it prints its URL, serves the estate and its control
// endpoint, and ends when its stdin closes.
func TestServeSim(t *testing.T) {
	stopR, stopW := io.Pipe()
	outR, outW := io.Pipe()
	e := bench.Estate{Kind: event.SourceArgo, Runs: 5, Tasks: 6, Churn: 0.5, Seed: 1, Interval: time.Minute}
	done := make(chan error, 1)
	go func() { done <- serveSim(t.Context(), e, stopR, outW) }()
	url, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url = strings.TrimSpace(url)
	resp, err := http.Post(url+"/_farm/advance?by=2m", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var info bench.Info
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || !info.Now.Equal(bench.Epoch.Add(2*time.Minute)) || info.ActiveRuns < 5 {
		t.Fatalf("info %+v, %v: want the clock 2m after the epoch and 5 active runs", info, err)
	}
	resp, err = http.Get(url + "/api/v1/workflows/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("workflow list: %s", resp.Status)
	}
	stopW.Close()
	if err := <-done; err != nil {
		t.Fatalf("serveSim after stdin closed: %v", err)
	}
	if bad := estateFlags(e); len(bad)%2 != 0 {
		t.Errorf("estate flags %v are not name/value pairs", bad)
	}
}

func TestFidelityCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	err := cmdFidelity(t.Context(), []string{"-day", "40m", "-runs", "4", "-tasks", "6", "-source", "argo"}, &out, &errOut)
	if err != nil && !strings.Contains(err.Error(), "fidelity targets missed") {
		t.Fatalf("fidelity: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"== argo: 40m of simulated time", "; superseded before any poll could see it: ", "task transitions exposed", "duplicated, different id", "largest time error"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "== airflow") {
		t.Error("-source argo ran Airflow too")
	}
	if err := cmdFidelity(t.Context(), []string{"-day", "soon"}, io.Discard, io.Discard); err == nil {
		t.Error("bad -day: want an error")
	}
}

// MISS lines and the exit code agree: a miss fails the command unless it is a known trade-off,
// which says so and why.
func TestBenchVerdict(t *testing.T) {
	checks := []bench.Check{
		{Target: "a", Pass: true, Detail: "fine"},
		{Target: "b", Detail: "2 x changed + 4", Known: "the lease and the commit (BENCHMARKS.md)"},
		{Target: "c", Detail: "3.1x"},
	}
	var out bytes.Buffer
	for _, c := range checks {
		out.WriteString(c.String() + "\n")
	}
	if n := verdict(&out, checks); n != 1 {
		t.Errorf("%d failing misses, want 1", n)
	}
	for _, want := range []string{"PASS  a: fine", "MISS (known trade-off)  b: 2 x changed + 4\n      known: the lease", "MISS  c: 3.1x", "targets: 1 passed, 1 missed as known trade-offs, 1 missed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := verdict(io.Discard, checks[:2]); n != 0 {
		t.Errorf("a known trade-off fails the run (%d)", n)
	}
}

// TestFreshness runs the freshness measurement on the real local runner (this test binary as
// `farm serve`): spans and rows of the simulated orchestrators arrive, each dated by the change it
// shows. The figures themselves are the benchmark's, not asserted here.
func TestFreshness(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local runner for 25 s")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := bench.MeasureFreshness(t.Context(), bench.FreshnessConfig{
		Command: []string{self, "serve"}, Env: []string{asFarm + "=1"},
		Interval: 2 * time.Second, Duration: 25 * time.Second, Margin: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]bench.Lags{"spans": f.Spans, "rows": f.Rows} {
		if l.N == 0 {
			t.Errorf("%s: no change observed: %s", name, l)
			continue
		}
		// A lag is arrival minus the change: never negative (the runner cannot show a change
		// before it happened), and the percentiles are ordered.
		if l.P50 <= 0 || l.P95 < l.P50 || l.Max < l.P95 {
			t.Errorf("%s: lags out of order: %s", name, l)
		}
	}
	if len(f.Checks()) != 2 {
		t.Errorf("checks = %v, want one per output", f.Checks())
	}
}
