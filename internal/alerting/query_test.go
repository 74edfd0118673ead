package alerting_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/farmobs/farm/internal/alerting"
)

func TestParseMonitorQuery(t *testing.T) {
	q, err := alerting.ParseMonitorQuery("sum(last_1w):100 * (sum:trace.a.hits{env:prod,service:s,!resource_name:x} by {resource_name}.as_count() - default_zero(sum:trace.a.errors{env:prod} by {resource_name}.as_count())) / sum:trace.a.hits{*} by {resource_name}.as_count() < 80.5")
	if err != nil {
		t.Fatal(err)
	}
	if q.TimeAggregator != "sum" || q.Window != "last_1w" || q.Comparator != "<" || q.Threshold != 80.5 || len(q.Metrics) != 3 {
		t.Fatalf("parsed %+v", q)
	}
	want := alerting.MetricRef{Aggregator: "sum", Metric: "trace.a.hits", GroupBy: []string{"resource_name"}, Filter: []alerting.Term{
		{Key: "env", Value: "prod"}, {Key: "service", Value: "s"}, {Key: "resource_name", Value: "x", Negated: true},
	}}
	if !reflect.DeepEqual(q.Metrics[0], want) {
		t.Errorf("first metric %+v, want %+v", q.Metrics[0], want)
	}
	if q.Metrics[2].Filter != nil {
		t.Errorf("{*} gave terms %v", q.Metrics[2].Filter)
	}

	a, err := alerting.ParseMonitorQuery("avg(last_1w):anomalies(max:trace.a{env:x} by {resource_name}, 'agile', 3, direction='above', alert_window='last_2h') >= 1")
	if err != nil || len(a.Metrics) != 1 || a.Metrics[0].Aggregator != "max" {
		t.Fatalf("anomaly query: %+v, %v", a, err)
	}
	if w, ok := alerting.QueryArg("anomalies(x, alert_window='last_2h')", "alert_window"); !ok || w != "last_2h" {
		t.Errorf("alert_window = %q, %v", w, ok)
	}
}

func TestParseMetricQueryTemplateVariables(t *testing.T) {
	refs, err := alerting.ParseMetricQuery("p95:farm.q{$env,$svc} by {pipeline,task}")
	if err != nil {
		t.Fatal(err)
	}
	if got := refs[0]; got.Metric != "farm.q" || got.Filter[0].Var != "env" || got.Filter[1].Var != "svc" || !reflect.DeepEqual(got.GroupBy, []string{"pipeline", "task"}) {
		t.Fatalf("parsed %+v", got)
	}
}

// A query the parser cannot fully read is an error, never a silently skipped metric.
func TestParseQueryRefusesWhatItCannotRead(t *testing.T) {
	for q, want := range map[string]string{
		"avg:trace.a.hits{env:prod OR env:dev}":              "is not tag:value",
		"avg:trace.a.hits{env:prod} by {resource name}":      "is not a tag name",
		"trace.a.hits{env:prod}":                             "does not understand",
		"avg(last_5m):avg:x{*}":                              "is not <aggregation>",
		"avg(last_5m):avg:x{*} > high":                       "is not <aggregation>",
		"1 + 2":                                              "reads no metric",
		"avg:x{env:prod} + weird:syntax:here{a:b} by {c}{d}": "does not understand",
	} {
		var err error
		if strings.HasPrefix(q, "avg(") {
			_, err = alerting.ParseMonitorQuery(q)
		} else {
			_, err = alerting.ParseMetricQuery(q)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error saying %q", q, err, want)
		}
	}
}
