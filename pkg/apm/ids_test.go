package apm

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/event"
)

func tp(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func delta(tenant, uid string, start *time.Time) *event.RunDelta {
	return &event.RunDelta{Tenant: tenant, Run: event.Run{Source: event.SourceArgo, Instance: "prod", Namespace: "data", UID: uid, StartedAt: start}}
}

func TestTraceIDs(t *testing.T) {
	start := tp("2026-03-02T01:00:00Z")
	base := traceIDOf(delta("acme", "u1", start), true)
	if base.high != uint64(start.Unix())<<32 {
		t.Errorf("high bits %x, want the run start's seconds << 32", base.high)
	}
	tests := []struct {
		name string
		id   traceID
		same bool
	}{
		{"another delta of the run", traceIDOf(delta("acme", "u1", tp("2026-03-02T02:00:00+01:00")), true), true},
		{"another run", traceIDOf(delta("acme", "u2", start), true), false},
		{"another tenant", traceIDOf(delta("other", "u1", start), true), false},
		{"re-executed run (argo retry)", traceIDOf(delta("acme", "u1", tp("2026-03-02T01:30:00Z")), true), false},
	}
	for _, tc := range tests {
		if (tc.id.low == base.low) != tc.same {
			t.Errorf("%s: low bits equal = %v, want %v", tc.name, tc.id.low == base.low, tc.same)
		}
	}
	if id := traceIDOf(delta("acme", "u1", start), false); id.high != 0 || id.low != base.low {
		t.Errorf("64-bit trace id %v: want the same low bits and no high bits", id)
	}
	if id := traceIDOf(delta("acme", "u1", nil), true); id.high != 0 {
		t.Errorf("a run without a start has high bits %x", id.high)
	}
}

func TestTraceIDGolden(t *testing.T) {
	got := traceIDOf(delta("acme", "u1", tp("2026-03-02T01:00:00Z")), true)
	const want = "69a4e11000000000" + "269939174924bc44"
	if got.String() != want {
		t.Errorf("trace id %s, want %s: the id scheme changed, which splits traces of runs in flight", got, want)
	}
	if s := spanIDOf(got, "node-1"); s != 0x12bdaee01f5bfe0b {
		t.Errorf("span id %#x changed", s)
	}
}

func TestID64IsPositiveAndNeverZero(t *testing.T) {
	if got := id64("ffffffffffffffff" + "0000000000000000"); got != 1<<63-1 {
		t.Errorf("id64 kept the sign bit: %#x", got)
	}
	if got := id64("8000000000000000" + "ff"); got != 1 {
		t.Errorf("id64 of a value that masks to 0 = %d, want 1", got)
	}
}

func TestTaskKey(t *testing.T) {
	try := func(typ string, mapIndex, attempt int) *event.TaskEvent {
		return &event.TaskEvent{NodeID: "n", Type: typ, Attempt: attempt, Airflow: &event.AirflowTask{MapIndex: mapIndex}}
	}
	tests := []struct {
		name   string
		source string
		e      *event.TaskEvent
		want   string
	}{
		{"argo retry child: the id is per attempt", event.SourceArgo, &event.TaskEvent{NodeID: "n", Type: "Pod", Attempt: 2}, "n"},
		{"airflow try", event.SourceAirflow, try("Task", -1, 2), "n#2"},
		{"airflow try never run", event.SourceAirflow, try("Task", -1, 0), "n#0"},
		{"airflow mapped instance try", event.SourceAirflow, try("MappedTask", 3, 1), "n#1"},
		{"airflow mapped aggregate: a group", event.SourceAirflow, try("MappedTask", -1, 1), "n"},
		{"airflow task group", event.SourceAirflow, &event.TaskEvent{NodeID: "n", Type: "TaskGroup", Attempt: 1}, "n"},
		{"airflow event without instance fields", event.SourceAirflow, &event.TaskEvent{NodeID: "n", Type: "Task", Attempt: 1}, "n"},
		{"airflow sensor poke: its try's key", event.SourceAirflow, &event.TaskEvent{NodeID: "n", Type: "Task", Attempt: 1, Status: event.StatusUpForResched,
			StartedAt: tp("2026-03-02T01:00:00Z"), Airflow: &event.AirflowTask{MapIndex: -1}}, "n#1"},
	}
	for _, tc := range tests {
		if got := taskKey(tc.source, tc.e); got != tc.want {
			t.Errorf("%s: key %q, want %q", tc.name, got, tc.want)
		}
	}
}

// Pokes of one try are told apart by their end, also when the server shows the same start for all.
func TestPokeKey(t *testing.T) {
	poke := func(start, end string) *event.TaskEvent {
		e := &event.TaskEvent{NodeID: "n[2]", Type: "MappedTask", Attempt: 1, Status: event.StatusUpForResched, StartedAt: tp(start),
			Airflow: &event.AirflowTask{MapIndex: 2}}
		if end != "" {
			e.FinishedAt = tp(end)
		}
		return e
	}
	a, b := pokeKey(poke("2026-03-02T01:00:00Z", "2026-03-02T01:01:00Z")), pokeKey(poke("2026-03-02T01:00:00Z", "2026-03-02T01:03:00Z"))
	if a != "n[2]#1/poke@2026-03-02T01:01:00Z" || a == b {
		t.Errorf("poke keys %q and %q: want distinct keys naming the try and the poke's end", a, b)
	}
	if k := pokeKey(poke("2026-03-02T01:00:00Z", "")); k != "n[2]#1/poke@2026-03-02T01:00:00Z" {
		t.Errorf("poke without an end: %q, want its start", k)
	}
}

func TestSpanTimes(t *testing.T) {
	a, b := tp("2026-03-02T01:00:00Z"), tp("2026-03-02T01:01:00Z")
	zero := &time.Time{}
	tests := []struct {
		name       string
		start, end *time.Time
		ok         bool
		wantStart  *time.Time
		wantEnd    *time.Time
	}{
		{"both", a, b, true, a, b},
		{"no end", a, nil, true, a, a},
		{"no start", nil, b, true, b, b},
		{"zero start", zero, b, true, b, b},
		{"end before start", b, a, true, b, b},
		{"none", nil, zero, false, nil, nil},
	}
	for _, tc := range tests {
		s, e, ok := spanTimes(tc.start, tc.end)
		if ok != tc.ok || (ok && (!s.Equal(*tc.wantStart) || !e.Equal(*tc.wantEnd))) {
			t.Errorf("%s: %v %v %v", tc.name, s, e, ok)
		}
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	if got := truncate("aé", 2); got != "a" {
		t.Errorf("truncate split a rune: %q", got)
	}
	if got := truncate("abc", 5); got != "abc" {
		t.Errorf("truncate changed a short string: %q", got)
	}
	long := strings.Repeat("x", maxTagValue+10)
	tg := newTags()
	tg.str("k", long)
	if len(tg.meta["k"]) != maxTagValue {
		t.Errorf("tag value of %d bytes, want it cut to %d", len(tg.meta["k"]), maxTagValue)
	}
}

func TestAgentSocket(t *testing.T) {
	tests := []struct {
		name   string
		vars   map[string]string
		socket bool // the agent's socket file exists
		want   string
	}{
		{"nothing set, no socket", nil, false, ""},
		{"nothing set, agent socket present", nil, true, agentSocketPath},
		{"unix URL", map[string]string{"DD_TRACE_AGENT_URL": "unix:///run/dd.sock"}, false, "/run/dd.sock"},
		{"http URL wins over the socket", map[string]string{"DD_TRACE_AGENT_URL": "http://agent:8126"}, true, ""},
		{"host wins over the socket", map[string]string{"DD_AGENT_HOST": "10.0.0.2"}, true, ""},
		{"port alone wins over the socket", map[string]string{"DD_TRACE_AGENT_PORT": "9126"}, true, ""},
		{"bad URL falls through to the host", map[string]string{"DD_TRACE_AGENT_URL": "ftp://x", "DD_AGENT_HOST": "h"}, true, ""},
		{"bad URL falls through to the socket", map[string]string{"DD_TRACE_AGENT_URL": "ftp://x"}, true, agentSocketPath},
	}
	for _, tc := range tests {
		e := env{
			lookup: func(k string) (string, bool) { v, ok := tc.vars[k]; return v, ok },
			exists: func(p string) bool { return tc.socket && p == agentSocketPath },
		}
		if got := e.agentSocket(); got != tc.want {
			t.Errorf("%s: socket %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestWith128BitIDs(t *testing.T) {
	for v, want := range map[string]bool{"": true, "true": true, "false": false, "0": false, "junk": true} {
		e := env{lookup: func(string) (string, bool) { return v, v != "" }}
		if got := e.with128BitIDs(); got != want {
			t.Errorf("DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED=%q: %v, want %v", v, got, want)
		}
	}
}

func TestRecorderCountsOnlyAcceptedTraces(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	var d deliveries
	c := &http.Client{Transport: recorder{next: http.DefaultTransport, out: &d}}
	send := func(path, count string) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+path, nil)
		req.Header.Set("X-Datadog-Trace-Count", count)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}
	send("/v0.4/traces", "3")
	send("/telemetry/proxy/api/v2/apmtelemetry", "5") // not a trace request
	status = http.StatusServiceUnavailable
	send("/v1.0/traces", "2")
	if err := d.check(3); err != nil {
		t.Errorf("3 of 3 accepted: %v", err)
	}
	err := d.check(5)
	if !errors.Is(err, ErrDelivery) || !strings.Contains(err.Error(), "3 of 5") || !strings.Contains(err.Error(), "503") {
		t.Errorf("check(5) = %v, want ErrDelivery: 3 of 5 accepted, naming the 503", err)
	}
}
