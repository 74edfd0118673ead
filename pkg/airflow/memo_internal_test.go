package airflow

import (
	"slices"
	"testing"
	"time"
	"unsafe"
)

func TestMerged(t *testing.T) {
	ref := RunRef{"etl", "r1"}
	at := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.UTC)
	ti := func(task string, mapIndex int, state string) TaskInstance {
		return TaskInstance{DagID: ref.DagID, RunID: ref.RunID, TaskID: task, MapIndex: mapIndex, State: state, TryNumber: 1, Start: &at}
	}
	rows := func(tis ...TaskInstance) []tiRow {
		out := make([]tiRow, len(tis))
		for i := range tis {
			out[i] = rowOf(&tis[i])
		}
		return out
	}
	for _, c := range []struct {
		name    string
		memo    []tiRow
		changed []TaskInstance
		want    []string
	}{
		{"a changed row replaces the remembered one", rows(ti("a", -1, "running"), ti("b", -1, "")),
			[]TaskInstance{ti("a", -1, "success")}, []string{"a success", "b "}},
		{"expanded instances replace the unmapped row", rows(ti("fan", -1, ""), ti("done", -1, "")),
			[]TaskInstance{ti("fan", 0, "queued"), ti("fan", 1, "queued")}, []string{"done ", "fan[0] queued", "fan[1] queued"}},
		{"an unmapped row replaces the expanded instances (a run created again)", rows(ti("fan", 0, "running"), ti("fan", 1, "running"), ti("done", -1, "")),
			[]TaskInstance{ti("fan", -1, "")}, []string{"done ", "fan "}},
		{"a new mapped instance joins the others", rows(ti("fan", 0, "success")),
			[]TaskInstance{ti("fan", 1, "queued")}, []string{"fan[0] success", "fan[1] queued"}},
		{"nothing changed", rows(ti("a", -1, "running")), nil, []string{"a running"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, m := range merged(ref, c.memo, c.changed) {
				got = append(got, NodeID(m.TaskID, m.MapIndex)+" "+m.State)
				if m.DagID != ref.DagID || m.RunID != ref.RunID || m.Start == nil || !m.Start.Equal(at) {
					t.Errorf("%s: run %s/%s, start %v; want %s and %v", m.TaskID, m.DagID, m.RunID, m.Start, ref, at)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("merged: %q, want %q", got, c.want)
			}
		})
	}
}

// A remembered row reads back as the row it was made of, in every field the fingerprint covers:
// a run completed from memory has the fingerprint a full read gives it.
func TestRowRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.FixedZone("", 0))
	end := at.Add(time.Minute)
	for _, in := range []TaskInstance{
		{TaskID: "a", MapIndex: -1, State: "success", TryNumber: 2, Start: &at, End: &end, QueuedWhen: &at},
		{TaskID: "fan", MapIndex: 7, State: "", TryNumber: 0},
	} {
		r := rowOf(&in)
		out := r.instance(RunRef{"etl", "r1"})
		if !r.same(&in) || !r.same(&out) {
			t.Errorf("%s: the row is not the same as what it was made of or reads back as", in.TaskID)
		}
		if fingerprint("rp", []TaskInstance{in}) != fingerprint("rp", []TaskInstance{out}) {
			t.Errorf("%s: the fingerprint changed through the memory", in.TaskID)
		}
	}
	if n := unsafe.Sizeof(tiRow{}); n != 64 {
		t.Errorf("a remembered row takes %d bytes, want 64: one is kept per task instance of every active run", n)
	}
}

func TestSameRun(t *testing.T) {
	ld := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	later := ld.Add(time.Hour)
	base := Run{RunRef: RunRef{"etl", "r1"}, RunType: "scheduled", LogicalDate: &ld, QueuedAt: &ld}
	for _, c := range []struct {
		name   string
		change func(*Run)
		want   bool
	}{
		{"the same run, started since", func(r *Run) { r.State, r.Start = "running", &later }, true},
		{"created again with another logical date", func(r *Run) { r.LogicalDate = &later }, false},
		{"queued again (cleared, or created again)", func(r *Run) { r.QueuedAt = &later }, false},
		{"another run type", func(r *Run) { r.RunType = "manual" }, false},
		{"run_after appears", func(r *Run) { r.RunAfter = &ld }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			other := base
			c.change(&other)
			if got := sameRun(&base, &other); got != c.want {
				t.Errorf("sameRun = %v, want %v", got, c.want)
			}
		})
	}
}
