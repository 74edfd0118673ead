package airflow

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/event"
)

func TestDeriveState(t *testing.T) {
	for _, c := range []struct {
		states []string
		active bool
		want   string
	}{
		{[]string{"success", "queued"}, false, "running"},
		{[]string{"success", "up_for_retry"}, true, "running"},
		{[]string{"none", "none"}, true, "none"},
		{[]string{"success", "none"}, true, "running"},
		{[]string{"success", "none"}, false, "success"},
		{[]string{"success", "failed", "upstream_failed"}, false, "failed"},
		{[]string{"success", "upstream_failed"}, false, "upstream_failed"},
		{[]string{"skipped", "skipped"}, false, "skipped"},
		{[]string{"skipped", "success"}, false, "success"},
		{[]string{"removed"}, false, "removed"},
	} {
		if got := deriveState(c.states, c.active); got != c.want {
			t.Errorf("deriveState(%v, active=%v) = %s, want %s", c.states, c.active, got, c.want)
		}
	}
}

func TestAttemptAndTimes(t *testing.T) {
	s, e := time.Unix(100, 0), time.Unix(200, 0)
	for _, c := range []struct {
		ti           TaskInstance
		attempt      int
		start, ended bool
	}{
		{TaskInstance{State: "", TryNumber: 0}, 0, false, false},
		{TaskInstance{State: "", TryNumber: 2, Start: &s, End: &e}, 3, false, false}, // cleared
		{TaskInstance{State: "queued", TryNumber: 2, Start: &s, End: &e}, 2, false, false},
		{TaskInstance{State: "running", TryNumber: 2, Start: &s}, 2, true, false},
		{TaskInstance{State: "up_for_retry", TryNumber: 1, Start: &s, End: &e}, 1, true, true},
		{TaskInstance{State: "upstream_failed", TryNumber: 0, Start: &s, End: &e}, 0, true, true},
	} {
		ev := taskEvent(&c.ti, "running")
		if ev.Attempt != c.attempt || (ev.StartedAt != nil) != c.start || (ev.FinishedAt != nil) != c.ended {
			t.Errorf("%+v: attempt %d start %v end %v", c.ti, ev.Attempt, ev.StartedAt, ev.FinishedAt)
		}
	}
}

func TestParseRelease(t *testing.T) {
	for v, want := range map[string][3]int{
		"2.10.5": {2, 10, 5}, "2.10.2+composer": {2, 10, 2}, "3.0.0rc1": {}, "3.1.0-dev": {3, 1, 0}, "banana": {},
	} {
		if got := parseRelease(v); got != want {
			t.Errorf("parseRelease(%q) = %v, want %v", v, got, want)
		}
	}
	old := ServerInfo{API: "v1", release: parseRelease("2.5.3")}
	if old.UpdatedAtFilter() || old.TriesEndpoint() || !(ServerInfo{API: "v2"}).TriesEndpoint() {
		t.Error("feature gates")
	}
}

func TestJWTTimes(t *testing.T) {
	tok := func(payload string) string {
		return "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	exp, iat, ok := jwtTimes(tok(`{"exp": 1772445600, "iat": 1772445000}`))
	if !ok || exp.Unix() != 1772445600 || iat.Unix() != 1772445000 {
		t.Errorf("exp %v iat %v ok %v", exp, iat, ok)
	}
	for _, bad := range []string{"opaque-token", tok(`{"sub":"x"}`), "a.!!!.c"} {
		if _, _, ok := jwtTimes(bad); ok {
			t.Errorf("%q read as a JWT with exp", bad)
		}
	}
}

// The engine skips a run whose fingerprint it knows without diffing it, so every field the dedupe
// rules compare (pkg/poll/diff.go) must move the fingerprint.
func TestFingerprintCoversDiffedFields(t *testing.T) {
	at := func(s int) *time.Time { v := time.Unix(int64(s), 0).UTC(); return &v }
	base := TaskInstance{TaskID: "wait", MapIndex: -1, TryNumber: 1, State: "running", Start: at(100), QueuedWhen: at(90)}
	for name, mutate := range map[string]func(*TaskInstance){
		"state":       func(t *TaskInstance) { t.State = "success" },
		"try":         func(t *TaskInstance) { t.TryNumber = 2 },
		"start":       func(t *TaskInstance) { t.Start = at(101) },
		"end":         func(t *TaskInstance) { t.End = at(200) },
		"queued time": func(t *TaskInstance) { t.QueuedWhen = at(150) }, // a rescheduled sensor running again
		"map index":   func(t *TaskInstance) { t.MapIndex = 0 },
	} {
		changed := base
		mutate(&changed)
		if fingerprint("run", []TaskInstance{base}) == fingerprint("run", []TaskInstance{changed}) {
			t.Errorf("%s changed, fingerprint did not", name)
		}
	}
	if fingerprint("run", []TaskInstance{base}) == fingerprint("run2", []TaskInstance{base}) {
		t.Error("run part changed, fingerprint did not")
	}
}

func TestRunPartIgnoresSchedulerChurn(t *testing.T) {
	at := func(s int) *time.Time { v := time.Unix(int64(s), 0).UTC(); return &v }
	yes := true
	base := event.Run{Phase: "running", RunType: "scheduled", StartedAt: at(10), LogicalDate: at(0), Message: "note"}
	for name, c := range map[string]struct {
		mutate  func(*event.Run)
		changes bool
	}{
		"last scheduling decision": {func(r *event.Run) { r.LastSchedulingDecision = at(99) }, false},
		"data interval":            {func(r *event.Run) { r.DataIntervalStart, r.DataIntervalEnd = at(0), at(86400) }, false},
		"external trigger":         {func(r *event.Run) { r.ExternalTrigger = &yes }, false},
		"phase":                    {func(r *event.Run) { r.Phase = "success" }, true},
		"note":                     {func(r *event.Run) { r.Message = "rerun" }, true},
		"end":                      {func(r *event.Run) { r.FinishedAt = at(20) }, true},
	} {
		r := base
		c.mutate(&r)
		if got := runPart(&r) != runPart(&base); got != c.changes {
			t.Errorf("%s: run part changed %v, want %v", name, got, c.changes)
		}
	}
}
