package bench

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/event"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

func TestEstateValidate(t *testing.T) {
	ok := Estate{Kind: event.SourceArgo, Runs: 1, Tasks: 1, Churn: 0.1, Interval: time.Minute}
	tests := []struct {
		name   string
		change func(*Estate)
		want   string // "" for valid
	}{
		{"valid argo", func(*Estate) {}, ""},
		{"valid airflow", func(e *Estate) { e.Kind, e.DAGs = event.SourceAirflow, 3 }, ""},
		{"unknown kind", func(e *Estate) { e.Kind = "luigi" }, `kind "luigi"`},
		{"no runs", func(e *Estate) { e.Runs = 0 }, "runs > 0"},
		{"churn above 1", func(e *Estate) { e.Churn = 1.5 }, "churn 1.5"},
		{"zero churn", func(e *Estate) { e.Churn = 0 }, "churn 0"},
		{"sub-second interval", func(e *Estate) { e.Interval = time.Millisecond }, "at least 1s"},
		{"airflow without DAGs", func(e *Estate) { e.Kind = event.SourceAirflow }, "dags > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.change(&e)
			err := e.validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid estate refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// serveSim serves an estate from this process, as `farm bench sim` does from another.
func serveSim(t *testing.T, e Estate) string {
	t.Helper()
	sim, err := NewSim(e)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRunTinyEstates runs the whole measurement path on small estates: the engine against the
// Firestore emulator and the in-process Pub/Sub, the floor against the same pages.
func TestRunTinyEstates(t *testing.T) {
	testenv.FirestoreEmulator(t)
	for _, e := range []Estate{
		{Kind: event.SourceArgo, Runs: 30, Tasks: 12, Churn: 0.3, Seed: 3, Interval: time.Minute},
		{Kind: event.SourceAirflow, Runs: 20, Tasks: 8, Churn: 0.3, DAGs: 5, Seed: 3, Interval: time.Minute},
	} {
		t.Run(e.Kind, func(t *testing.T) {
			cfg := Config{Name: "tiny-" + e.Kind, Estate: e, Polls: 2, SimURL: serveSim(t, e), CompareFull: true}
			rep, err := Run(t.Context(), cfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Store != "firestore-emulator" {
				t.Errorf("store %q, want the Firestore emulator", rep.Store)
			}
			if len(rep.Polls) != 2 || rep.Cold.RunsChanged < e.Runs {
				t.Fatalf("%d measured polls and %d runs changed at the cold poll; want 2 and at least %d", len(rep.Polls), rep.Cold.RunsChanged, e.Runs)
			}
			changed := 0
			for i, p := range rep.Polls {
				res := p.Result
				changed += res.RunsChanged
				if res.StoreReads < res.RunsChanged || res.StoreWrites < res.RunsChanged {
					t.Errorf("poll %d: %d reads and %d writes for %d changed runs: the store's counts are not reaching the engine", i, res.StoreReads, res.StoreWrites, res.RunsChanged)
				}
				switch {
				case e.Kind == event.SourceAirflow && (p.FloorCalls == 0 || p.FloorBytes == 0 || p.FloorBytes > res.APIBytes):
					t.Errorf("poll %d: floor read %d bytes in %d calls, poll %d bytes: the floor must read the same pages, no more", i, p.FloorBytes, p.FloorCalls, res.APIBytes)
				case e.Kind == event.SourceArgo && (p.PhysicalCalls == 0 || p.PhysicalBytes > res.APIBytes || p.PhysicalLoaded == 0):
					t.Errorf("poll %d: physical floor read %d bytes in %d calls (%d of changed runs), poll %d bytes: it must read the slim pages and the changed runs, no more than the poll", i, p.PhysicalBytes, p.PhysicalCalls, p.PhysicalLoaded, res.APIBytes)
				case e.Kind == event.SourceArgo && (p.FullResult.APIBytes <= res.APIBytes || p.FloorBytes <= res.APIBytes || p.Full.Wall <= 0):
					t.Errorf("poll %d: %d bytes, the full-listing poll %d and today's floor %d: listing only the changed runs must read less", i, res.APIBytes, p.FullResult.APIBytes, p.FloorBytes)
				}
				if p.Poll.Wall <= 0 || p.Poll.PeakHeap == 0 || p.Poll.PeakRSS == 0 {
					t.Errorf("poll %d: usage %+v not measured", i, p.Poll)
				}
			}
			if changed == 0 || len(rep.Sample) == 0 {
				t.Fatalf("no run changed in the measured polls (sample %d): the estate's churn does not reach the polls", len(rep.Sample))
			}
			s := rep.Summarize()
			var out strings.Builder
			rep.WritePolls(&out)
			if !strings.Contains(out.String(), "mean") || s.Polls != 2 {
				t.Errorf("report:\n%s", out.String())
			}
			for _, c := range append(StoreChecks([]*Report{rep}), ScaleChecks(rep)...) {
				t.Log(c)
			}
		})
	}
}

func TestEncodeThroughput(t *testing.T) {
	testenv.FirestoreEmulator(t)
	e := Estate{Kind: event.SourceArgo, Runs: 10, Tasks: 10, Churn: 0.5, Seed: 5, Interval: time.Minute}
	rep, err := Run(t.Context(), Config{Name: "tp", Estate: e, Polls: 1, SimURL: serveSim(t, e)}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := EncodeThroughput(t.Context(), rep.Sample)
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for _, d := range rep.Sample {
		events += len(d.Delta.Events)
	}
	if tp.Rows != events {
		t.Errorf("%d rows for %d events: the sink writes one row per event", tp.Rows, events)
	}
	if tp.Spans == 0 || tp.SpansSec <= 0 || tp.RowsSec <= 0 {
		t.Errorf("throughput %+v: nothing measured", tp)
	}
	if _, err := EncodeThroughput(t.Context(), nil); err == nil {
		t.Error("no deltas: want an error")
	}
}

func TestMeasurePeakHeap(t *testing.T) {
	const size = 64 << 20
	var keep []byte
	u, err := Measure(func() error {
		keep = make([]byte, size)
		for i := range keep {
			keep[i] = byte(i)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakHeap < size {
		t.Errorf("peak heap %s while %s were live", MiB(u.PeakHeap), MiB(size))
	}
	if u.PeakRSS < size {
		t.Errorf("peak RSS %s while %s were written", MiB(u.PeakRSS), MiB(size))
	}
	if u.CPU <= 0 {
		t.Errorf("CPU time %v for writing %s", u.CPU, MiB(size))
	}
	keep = nil
	if err := ResetPeakRSS(); err != nil {
		t.Fatal(err)
	}
	if after := peakRSS(); after >= u.PeakRSS {
		t.Errorf("peak RSS %s after reset, %s before: not reset", MiB(after), MiB(u.PeakRSS))
	}
}

func TestRemoteErrors(t *testing.T) {
	url := serveSim(t, Estate{Kind: event.SourceArgo, Runs: 2, Tasks: 5, Churn: 1, Interval: time.Minute})
	r := Remote{URL: url}
	before, err := r.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.Advance(t.Context(), 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Now.Sub(before.Now); got != 90*time.Second {
		t.Errorf("advanced by %v, want 90s", got)
	}
	if _, err := r.Advance(t.Context(), -time.Second); err == nil || !strings.Contains(err.Error(), "non-negative") {
		t.Errorf("negative advance: error %v", err)
	}
	if _, err := (Remote{URL: "http://127.0.0.1:1"}).Info(t.Context()); err == nil {
		t.Error("no simulator listening: want an error")
	}
}
