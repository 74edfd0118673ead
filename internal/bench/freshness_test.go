package bench

import (
	"strings"
	"testing"
	"time"
)

func TestRowChange(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		row     string
		want    time.Time
		dated   bool
		wantErr string
	}{
		{"argo running", `{"node_phase":"Running","node_started_at":"2026-12-06T09:30:31Z"}`, at("2026-12-06T09:30:31Z"), true, ""},
		{"argo finished", `{"node_started_at":"2026-12-06T09:30:31Z","node_finished_at":"2026-12-06T09:31:02Z"}`, at("2026-12-06T09:31:02Z"), true, ""},
		{"airflow success", `{"task_queued_at":"2026-12-06T09:29:51.425237Z","task_scheduled_at":"2026-12-06T09:29:51.425237Z","task_start_date":"2026-12-06T09:29:55.730568Z","task_end_date":"2026-12-06T09:29:58.282119Z","end_date":"2026-12-06T10:00:00Z"}`, at("2026-12-06T09:29:58.282119Z"), true, ""},
		{"airflow queued, null end", `{"task_queued_at":"2026-12-06T09:29:51Z","task_end_date":null}`, at("2026-12-06T09:29:51Z"), true, ""},
		{"pending: no own time (run times do not date a task)", `{"node_phase":"Pending","started_at":"2026-12-06T09:30:31Z"}`, time.Time{}, false, ""},
		{"not JSON", `{"node_started_at":`, time.Time{}, false, "unexpected end"},
		{"bad time", `{"task_end_date":"yesterday"}`, time.Time{}, false, "task_end_date"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, dated, err := rowChange([]byte(tc.row + "\n"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || dated != tc.dated || !got.Equal(tc.want) {
				t.Errorf("rowChange = %v, %v, %v; want %v, %v", got, dated, err, tc.want, tc.dated)
			}
		})
	}
}

func TestLagsOf(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	var samples []sample
	// 100 counted changes with lags of 1..100 ms, and changes before and after the window.
	for i := 1; i <= 100; i++ {
		c := t0.Add(time.Duration(i) * time.Second)
		samples = append(samples, sample{changed: c, arrived: c.Add(time.Duration(i) * time.Millisecond)})
	}
	samples = append(samples,
		sample{changed: t0, arrived: t0.Add(time.Hour)},                        // at the first output: baselined
		sample{changed: t0.Add(-time.Minute), arrived: t0.Add(time.Hour)},      // before it
		sample{changed: t0.Add(101 * time.Second), arrived: t0.Add(time.Hour)}, // in the margin
	)
	got := lagsOf(samples, t0, t0.Add(100*time.Second))
	want := Lags{N: 100, P50: 50 * time.Millisecond, P95: 95 * time.Millisecond, Max: 100 * time.Millisecond, Uncounted: 3}
	if got != want {
		t.Errorf("lagsOf = %+v, want %+v", got, want)
	}
	if got := lagsOf(nil, t0, t0); got.N != 0 || !strings.Contains(got.String(), "no change observed") {
		t.Errorf("no samples: %+v %q", got, got)
	}
	if one := lagsOf(samples[:1], t0, t0.Add(time.Hour)); one.P50 != time.Millisecond || one.P95 != time.Millisecond || one.Max != time.Millisecond {
		t.Errorf("one sample: %+v", one)
	}
}

func TestFreshnessChecks(t *testing.T) {
	f := Freshness{Interval: 10 * time.Second,
		Spans: Lags{N: 5, P50: time.Second, P95: 20*time.Second + time.Millisecond, Max: 21 * time.Second},
		Rows:  Lags{N: 5, P50: time.Second, P95: 20 * time.Second, Max: 21 * time.Second}}
	checks := f.Checks()
	if len(checks) != 2 || checks[0].Pass || !checks[1].Pass || checks[0].Known != "" {
		t.Errorf("checks = %+v: want a p95 over 20s a miss, one of 20s a pass", checks)
	}
	if (Freshness{Interval: time.Second}).Checks()[0].Pass {
		t.Error("no sample passed the target")
	}
}

func TestThroughputChecks(t *testing.T) {
	for _, tc := range []struct {
		perCore float64
		pass    bool
	}{{MinSpansPerCore, true}, {MinSpansPerCore - 1, false}, {0, false}} {
		if got := (Throughput{SpansSec: tc.perCore}).Checks(); len(got) != 1 || got[0].Pass != tc.pass || got[0].Known != "" {
			t.Errorf("%.0f spans/s per core: %+v, want pass %v", tc.perCore, got, tc.pass)
		}
	}
}
