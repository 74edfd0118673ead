package alerting_test

import (
	"fmt"
	"testing"

	"github.com/farmobs/farm/internal/alerting"
)

func TestFromStructuredLine(t *testing.T) {
	line := `{"time":"2026-03-02T01:00:00Z","severity":"WARNING","message":"poll failed","source":"argo/x","runs_seen":3,"logging.googleapis.com/labels":{"a":"b"}}`
	e, err := alerting.FromStructuredLine([]byte(line), "cloud_run_revision", map[string]string{"service_name": "farm-poll-x"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"severity": "WARNING", "jsonPayload.message": "poll failed", "jsonPayload.source": "argo/x",
		"jsonPayload.runs_seen": "3", "resource.labels.service_name": "farm-poll-x", "labels.a": "b",
		"timestamp": "2026-03-02T01:00:00Z",
	} {
		if v, ok := e.Get(path); !ok || fmt.Sprint(v) != want {
			t.Errorf("%s = %v (%v), want %s", path, v, ok, want)
		}
	}
	for _, gone := range []string{"jsonPayload.severity", "jsonPayload.time"} {
		if _, ok := e.Get(gone); ok {
			t.Errorf("%s stayed in the payload", gone)
		}
	}
	if _, err := alerting.FromStructuredLine([]byte("poll finished"), "cloud_run_revision", nil); err == nil {
		t.Error("a plain text line was taken for a structured one")
	}
}

func TestLogFilter(t *testing.T) {
	e, err := alerting.FromStructuredLine([]byte(`{"severity":"ERROR","message":"poll failed","source":"argo/batch","cursor_lag_seconds":120.5,"error":"argo: list: 500"}`),
		"cloud_run_revision", map[string]string{"service_name": "farm-poll-batch"})
	if err != nil {
		t.Fatal(err)
	}
	for filter, want := range map[string]bool{
		`jsonPayload.message="poll failed"`:                      true,
		`jsonPayload.message="poll finished"`:                    false,
		`jsonPayload.message=("poll finished" OR "poll failed")`: true,
		`severity>=ERROR`:                                        true,
		`severity>=CRITICAL`:                                     false,
		`severity=ERROR AND jsonPayload.source="argo/batch"`:     true,
		`severity=ERROR jsonPayload.source="argo/other"`:         false,
		`NOT severity=ERROR`:                                     false,
		`resource.labels.service_name=~"^farm-poll-"`:            true,
		`resource.labels.service_name=~"^other-poll-"`:           false,
		`resource.labels.service_name!~"^farm-"`:                 false,
		`jsonPayload.cursor_lag_seconds>=0`:                      true,
		`jsonPayload.cursor_lag_seconds>200`:                     false,
		`jsonPayload.runs_seen>=0`:                               false, // absent field
		`NOT httpRequest.status=409`:                             true,
		`jsonPayload.error:"500"`:                                true,
		`jsonPayload.error:*`:                                    true,
		`(jsonPayload.message="x" OR severity=ERROR) AND resource.type="cloud_run_revision"`: true,
	} {
		f, err := alerting.ParseLogFilter(filter)
		if err != nil {
			t.Errorf("%s: %v", filter, err)
			continue
		}
		if got := f.Match(e); got != want {
			t.Errorf("%s matched %v, want %v", filter, got, want)
		}
	}
}

// Syntax outside the supported subset is refused rather than misjudged.
func TestLogFilterRefusesUnsupportedSyntax(t *testing.T) {
	for _, filter := range []string{
		`"poll finished"`,             // global text search
		`jsonPayload.message=`,        // no value
		`(severity=ERROR`,             // unbalanced
		`jsonPayload.message="poll`,   // unterminated
		`resource.labels.x=~"(["`,     // bad regular expression
		`jsonPayload.a=("x" AND "y")`, // value list with AND
	} {
		if _, err := alerting.ParseLogFilter(filter); err == nil {
			t.Errorf("%s: parsed", filter)
		}
	}
}
