package alerting_test

import (
	"strings"
	"testing"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"

	"github.com/farmobs/farm/internal/alerting"
)

const validMonitor = `{
	"name": "m", "type": "query alert", "query": "avg(last_5m):avg:x{*} > 1", "message": "hi",
	"tags": ["a:b"], "priority": 3,
	"options": {"thresholds": {"critical": 1, "warning": 0.5}, "on_missing_data": "resolve", "timeout_h": 2}
}`

const validDashboard = `{
	"title": "d", "layout_type": "ordered", "reflow_type": "auto",
	"template_variables": [{"name": "env", "prefix": "env", "default": "prod"}],
	"widgets": [{"definition": {"type": "group", "layout_type": "ordered", "widgets": [
		{"definition": {"type": "timeseries", "requests": [{"response_format": "timeseries",
			"queries": [{"data_source": "metrics", "name": "q", "query": "avg:x{*}"}],
			"formulas": [{"formula": "q"}]}]}}
	]}}]
}`

const validSpansMetric = `{"id": "m.x", "type": "spans_metrics", "attributes": {
	"compute": {"aggregation_type": "distribution", "path": "@a", "include_percentiles": true},
	"filter": {"query": "operation_name:x"}, "group_by": [{"path": "@b", "tag_name": "b"}]}}`

// TestDecodeStrict proves DecodeStrict refuses what the generated models silently keep: each
// broken document must fail, naming the place.
func TestDecodeStrict(t *testing.T) {
	cases := []struct {
		name, doc, want string
		into            func() any
	}{
		{"valid monitor", validMonitor, "", monitor},
		{"valid dashboard", validDashboard, "", dashboard},
		{"valid span-based metric", validSpansMetric, "", newSpansMetric},

		{"unknown top-level field", replace(validMonitor, `"priority": 3`, `"priority": 3, "severity": "high"`), "Monitor has no field severity", monitor},
		{"unknown nested field", replace(validMonitor, `"timeout_h": 2`, `"timeout_h": 2, "auto_resolve": true`), "$.options: MonitorOptions has no field auto_resolve", monitor},
		{"unknown field deep in a widget", replace(validDashboard, `"formula": "q"`, `"formula": "q", "colour": "red"`), "WidgetFormula has no field colour", dashboard},
		{"invalid enum", replace(validMonitor, `"query alert"`, `"query alrt"`), `$.type: "query alrt" is not a value`, monitor},
		{"invalid nested enum", replace(validMonitor, `"resolve"`, `"sometimes"`), `$.options.on_missing_data: "sometimes" is not a value`, monitor},
		{"invalid enum in a oneOf variant", replace(validDashboard, `"data_source": "metrics"`, `"data_source": "metric"`), "matches none of the variants", dashboard},
		{"unknown widget type", replace(validDashboard, `"type": "timeseries"`, `"type": "timeseries_v2"`), "$.widgets[0].definition.widgets[0].definition: not a valid WidgetDefinition: it matches none", dashboard},
		{"missing required field", replace(validMonitor, `"query": "avg(last_5m):avg:x{*} > 1",`, ``), "required field query missing", monitor},
		{"missing nested required field", replace(validDashboard, `"layout_type": "ordered", "widgets"`, `"widgets"`), "$.widgets[0].definition: not a valid GroupWidgetDefinition: required field layout_type missing", dashboard},
		{"wrong type", replace(validMonitor, `"critical": 1`, `"critical": "high"`), "$.options.thresholds", monitor},
		{"invalid v2 enum", replace(validSpansMetric, `"distribution"`, `"histogram"`), `aggregation_type: "histogram" is not a value`, newSpansMetric},
		{"missing v2 required field", replace(validSpansMetric, `"path": "@b", `, ``), "required field path missing", newSpansMetric},
		{"not JSON", `{"name": `, "unexpected end of JSON input", monitor},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := alerting.DecodeStrict([]byte(c.doc), c.into())
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused a valid document: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted a document that should fail with %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func monitor() any        { return &datadogV1.Monitor{} }
func dashboard() any      { return &datadogV1.Dashboard{} }
func newSpansMetric() any { return &datadogV2.SpansMetricCreateData{} }

func replace(doc, old, new string) string {
	if !strings.Contains(doc, old) {
		panic("fixture lacks " + old)
	}
	return strings.Replace(doc, old, new, 1)
}
