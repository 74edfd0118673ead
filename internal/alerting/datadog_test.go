package alerting_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/farmobs/farm/internal/alerting"
)

const datadogDir = "../../terraform/datadog"

// ddRoot is the DataDog root module evaluated for one set of variables: what terraform would
// send to the DataDog API, by resource key.
type ddRoot struct {
	env          string
	sources      map[string]ddSource // by source key (argo, airflow)
	monitors     map[string][]byte   // "<source>_<kind>" → monitor JSON
	dashboards   map[string][]byte
	spansMetrics map[string][]byte // → SpansMetricCreateData JSON
}

type ddSource struct {
	Service       string `json:"service"`
	RunOperation  string `json:"run_operation"`
	TaskOperation string `json:"task_operation"`
	Label         string `json:"source_label"`
}

// renderDataDog evaluates the DataDog root with vars (JSON values by variable name) and fails
// the test if a variable is refused.
func renderDataDog(t *testing.T, vars map[string]string) ddRoot {
	t.Helper()
	m, err := alerting.LoadModule(datadogDir)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := m.With(vars)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("variables %v refused: %v", vars, err)
	}
	r := ddRoot{sources: map[string]ddSource{}}
	r.env = mustLocalJSON[map[string]string](t, ev, "template_vars")["env"]
	r.sources = mustLocalJSON[map[string]ddSource](t, ev, "sources")
	r.monitors = localObjects(t, ev, "monitors")
	r.dashboards = localObjects(t, ev, "dashboards")
	r.spansMetrics = localObjects(t, ev, "spans_metrics")
	return r
}

func localJSON(t *testing.T, ev *alerting.Eval, name string) []byte {
	t.Helper()
	v, err := ev.Local(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatalf("local %s: %v", name, err)
	}
	return b
}

func mustLocalJSON[T any](t *testing.T, ev *alerting.Eval, name string) T {
	t.Helper()
	var out T
	if err := json.Unmarshal(localJSON(t, ev, name), &out); err != nil {
		t.Fatalf("local %s: %v", name, err)
	}
	return out
}

func localObjects(t *testing.T, ev *alerting.Eval, name string) map[string][]byte {
	t.Helper()
	raw := mustLocalJSON[map[string]json.RawMessage](t, ev, name)
	out := make(map[string][]byte, len(raw))
	for k, v := range raw {
		out[k] = v
	}
	return out
}

// variants are variable sets the definitions must stay valid for: the defaults, and every knob
// turned.
var variants = map[string]map[string]string{
	"defaults": nil,
	"everything set": {
		"env":                          `"staging"`,
		"service_argo":                 `"argo-batch"`,
		"service_airflow":              `"composer"`,
		"notify":                       `["@slack-data-alerts", "@pagerduty-data"]`,
		"tags":                         `["team:data-platform"]`,
		"exclude_pipelines":            `["scratch", "experiments_dag"]`,
		"success_rate_monitor":         `{"critical_percent": 75, "warning_percent": 85.5, "notify": ["@ana@example.com"]}`,
		"last_run_monitor":             `{"auto_resolve_hours": 12}`,
		"run_duration_monitor":         `{"critical_seconds": 3600, "warning_seconds": 1800}`,
		"run_duration_anomaly_monitor": `{"enabled": true}`,
	},
}

// TestDataDogDefinitionsDecodeStrictly decodes every monitor, dashboard and span-based metric,
// as terraform would send it, into the official API models: an unknown field, an invalid enum
// value or a missing required field fails.
func TestDataDogDefinitionsDecodeStrictly(t *testing.T) {
	for name, vars := range variants {
		t.Run(name, func(t *testing.T) {
			r := renderDataDog(t, vars)
			if len(r.monitors) == 0 || len(r.dashboards) == 0 || len(r.spansMetrics) == 0 {
				t.Fatalf("rendered %d monitors, %d dashboards, %d span-based metrics: want some of each", len(r.monitors), len(r.dashboards), len(r.spansMetrics))
			}
			for key, body := range r.monitors {
				var m datadogV1.Monitor
				if err := alerting.DecodeStrict(body, &m); err != nil {
					t.Errorf("monitor %s: %v", key, err)
				}
			}
			for key, body := range r.dashboards {
				var d datadogV1.Dashboard
				if err := alerting.DecodeStrict(body, &d); err != nil {
					t.Errorf("dashboard %s: %v", key, err)
				}
			}
			for key, body := range r.spansMetrics {
				var sm datadogV2.SpansMetricCreateData
				if err := alerting.DecodeStrict(body, &sm); err != nil {
					t.Errorf("span-based metric %s: %v", key, err)
				}
			}
		})
	}
}

// TestDefinitionFilesAreValidJSON reads the files themselves: with their placeholders they are
// still JSON that DataDog's "Import JSON" takes, and templatefile would fail on a directive.
func TestDefinitionFilesAreValidJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(datadogDir, "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no definition file under %s (%v)", datadogDir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Errorf("%s is not valid JSON", f)
		}
		if strings.Contains(string(b), "%{") {
			t.Errorf("%s holds %%{, a template directive: templatefile would not pass it through", f)
		}
	}
}

// TestEveryDefinitionFileIsDeployed fails on a JSON file that main.tf does not use (or the
// reverse): with every switch on, each file renders into exactly one kind of resource.
func TestEveryDefinitionFileIsDeployed(t *testing.T) {
	r := renderDataDog(t, variants["everything set"])
	deployed := map[string]bool{}
	for key := range r.monitors {
		src, kind, _ := strings.Cut(key, "_")
		if _, ok := r.sources[src]; !ok {
			t.Errorf("monitor key %s does not start with a source", key)
		}
		deployed["monitors/"+kind+".json"] = true
	}
	for key := range r.dashboards {
		deployed["dashboards/"+key+".json"] = true
	}
	for key := range r.spansMetrics {
		deployed["spans_metrics/"+key+".json"] = true
	}
	files, _ := filepath.Glob(filepath.Join(datadogDir, "*", "*.json"))
	var want []string
	for _, f := range files {
		rel, _ := filepath.Rel(datadogDir, f)
		want = append(want, filepath.ToSlash(rel))
	}
	if got := slices.Sorted(maps.Keys(deployed)); !slices.Equal(got, want) {
		t.Errorf("deployed definitions %v, files %v", got, want)
	}
	if len(r.monitors) != 4*2 {
		t.Errorf("%d monitors with every kind on for both sources, want 8", len(r.monitors))
	}
}

// TestMonitors checks what DataDog itself checks on save and what makes these monitors per
// pipeline: a query alert whose threshold is the options' critical threshold, warnings on the
// right side, one alert per pipeline (resource_name), and the notification handles.
func TestMonitors(t *testing.T) {
	for name, vars := range variants {
		t.Run(name, func(t *testing.T) {
			r := renderDataDog(t, vars)
			cat := newCatalog(t, r)
			for key, body := range r.monitors {
				var m datadogV1.Monitor
				if err := alerting.DecodeStrict(body, &m); err != nil {
					t.Fatalf("monitor %s: %v", key, err)
				}
				if err := checkMonitor(m, cat, notifyOf(vars, key)); err != nil {
					t.Errorf("monitor %s: %v", key, err)
				}
			}
		})
	}
}

// monitorVariable is the variable of each monitor kind (the file name in monitors/).
var monitorVariable = map[string]string{
	"pipeline_success_rate":         "success_rate_monitor",
	"pipeline_last_run":             "last_run_monitor",
	"pipeline_run_duration":         "run_duration_monitor",
	"pipeline_run_duration_anomaly": "run_duration_anomaly_monitor",
}

// notifyOf returns the handles monitor key must notify: its own notify, else var.notify.
func notifyOf(vars map[string]string, key string) []string {
	_, kind, _ := strings.Cut(key, "_")
	var own struct{ Notify []string }
	_ = json.Unmarshal([]byte(cmpOr(vars[monitorVariable[kind]], "{}")), &own)
	if own.Notify != nil {
		return own.Notify
	}
	var handles []string
	_ = json.Unmarshal([]byte(cmpOr(vars["notify"], "[]")), &handles)
	return handles
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func checkMonitor(m datadogV1.Monitor, cat catalog, notify []string) error {
	if m.Type != datadogV1.MONITORTYPE_QUERY_ALERT {
		return fmt.Errorf("type %s: FARM's pipeline monitors are metric monitors (query alert)", m.Type)
	}
	q, err := alerting.ParseMonitorQuery(m.Query)
	if err != nil {
		return err
	}
	th := m.GetOptions().Thresholds
	if th == nil || th.Critical == nil {
		return fmt.Errorf("no critical threshold in options")
	}
	if *th.Critical != q.Threshold {
		return fmt.Errorf("the query compares with %v but options.thresholds.critical is %v: DataDog refuses the monitor", q.Threshold, *th.Critical)
	}
	if w, ok := th.GetWarningOk(); ok && w != nil {
		below := strings.HasPrefix(q.Comparator, "<")
		if below && !(*w > q.Threshold) || !below && !(*w < q.Threshold) {
			return fmt.Errorf("warning %v is on the wrong side of critical %v for %s", *w, q.Threshold, q.Comparator)
		}
	}
	if alertWindow, ok := alerting.QueryArg(m.Query, "alert_window"); ok {
		tw := m.GetOptions().ThresholdWindows
		if tw == nil || tw.GetTriggerWindow() != alertWindow {
			return fmt.Errorf("anomaly alert_window %s must equal options.threshold_windows.trigger_window", alertWindow)
		}
	}
	for _, ref := range q.Metrics {
		if !slices.Equal(ref.GroupBy, []string{"resource_name"}) {
			return fmt.Errorf("%s is grouped by %v: a pipeline monitor alerts per pipeline, by resource_name", ref.Metric, ref.GroupBy)
		}
		if err := cat.check(ref, nil); err != nil {
			return err
		}
	}
	if !strings.Contains(m.GetName(), "{{resource_name.name}}") {
		return fmt.Errorf("name %q does not name the pipeline ({{resource_name.name}})", m.GetName())
	}
	for _, h := range notify {
		if !strings.Contains(m.GetMessage(), h) {
			return fmt.Errorf("message does not notify %s", h)
		}
	}
	if strings.Contains(m.GetMessage()+m.GetName(), "${") {
		return fmt.Errorf("a placeholder was left unrendered")
	}
	return nil
}

// TestDashboards checks every query of every widget, nested groups included, against what the
// trace function emits, and every formula against the queries it may use.
func TestDashboards(t *testing.T) {
	for name, vars := range variants {
		t.Run(name, func(t *testing.T) {
			r := renderDataDog(t, vars)
			cat := newCatalog(t, r)
			for key, body := range r.dashboards {
				var d datadogV1.Dashboard
				if err := alerting.DecodeStrict(body, &d); err != nil {
					t.Fatalf("dashboard %s: %v", key, err)
				}
				tv := map[string]alerting.Term{}
				for _, v := range d.TemplateVariables {
					tv[v.Name] = alerting.Term{Key: v.GetPrefix(), Value: v.GetDefault()}
				}
				n := 0
				for _, w := range widgets(d.Widgets) {
					for _, req := range w.requests {
						n++
						if err := checkRequest(req, cat, tv); err != nil {
							t.Errorf("dashboard %s, widget %q: %v", key, w.title, err)
						}
					}
				}
				if n == 0 {
					t.Errorf("dashboard %s has no query", key)
				}
			}
		})
	}
}

type widget struct {
	title    string
	requests []request
}

type request struct {
	queries  []datadogV1.FormulaAndFunctionQueryDefinition
	formulas []datadogV1.WidgetFormula
	classic  string
}

// widgets flattens groups and returns the requests of the widget kinds the dashboards use; any
// other kind with queries fails the test by not being listed here.
func widgets(ws []datadogV1.Widget) []widget {
	var out []widget
	for _, w := range ws {
		d := w.Definition
		switch {
		case d.GroupWidgetDefinition != nil:
			out = append(out, widgets(d.GroupWidgetDefinition.Widgets)...)
		case d.NoteWidgetDefinition != nil:
		case d.TimeseriesWidgetDefinition != nil:
			ww := widget{title: d.TimeseriesWidgetDefinition.GetTitle()}
			for _, r := range d.TimeseriesWidgetDefinition.Requests {
				ww.requests = append(ww.requests, request{r.Queries, r.Formulas, r.GetQ()})
			}
			out = append(out, ww)
		case d.ToplistWidgetDefinition != nil:
			ww := widget{title: d.ToplistWidgetDefinition.GetTitle()}
			for _, r := range d.ToplistWidgetDefinition.Requests {
				ww.requests = append(ww.requests, request{r.Queries, r.Formulas, r.GetQ()})
			}
			out = append(out, ww)
		case d.QueryValueWidgetDefinition != nil:
			ww := widget{title: d.QueryValueWidgetDefinition.GetTitle()}
			for _, r := range d.QueryValueWidgetDefinition.Requests {
				ww.requests = append(ww.requests, request{r.Queries, r.Formulas, r.GetQ()})
			}
			out = append(out, ww)
		default:
			out = append(out, widget{title: "a widget kind this test does not read", requests: []request{{classic: "?"}}})
		}
	}
	return out
}

func checkRequest(r request, cat catalog, tv map[string]alerting.Term) error {
	if r.classic != "" || len(r.queries) == 0 {
		return fmt.Errorf("use formulas and queries (data_source metrics), not the legacy q")
	}
	names := map[string]bool{}
	for _, q := range r.queries {
		mq := q.FormulaAndFunctionMetricQueryDefinition
		if mq == nil {
			return fmt.Errorf("query is not a metrics query")
		}
		names[mq.Name] = true
		refs, err := alerting.ParseMetricQuery(mq.Query)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			if err := cat.check(ref, tv); err != nil {
				return err
			}
		}
	}
	for _, f := range r.formulas {
		for _, id := range formulaIdents(f.Formula) {
			if !names[id] {
				return fmt.Errorf("formula %q uses %s, which is not one of its queries", f.Formula, id)
			}
		}
	}
	return nil
}

// formulaIdents returns the query names a formula refers to (identifiers not followed by "(").
func formulaIdents(f string) []string {
	var out []string
	for i := 0; i < len(f); {
		c := f[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			j := i
			for j < len(f) && (f[j] == '_' || f[j] >= 'a' && f[j] <= 'z' || f[j] >= 'A' && f[j] <= 'Z' || f[j] >= '0' && f[j] <= '9') {
				j++
			}
			if j >= len(f) || f[j] != '(' {
				out = append(out, f[i:j])
			}
			i = j
			continue
		}
		i++
	}
	return out
}

// TestSpansMetrics checks the span-based metrics: their filter names an emitted operation, and
// the attributes they compute and group by are tags its spans carry (the computed one numeric).
func TestSpansMetrics(t *testing.T) {
	r := renderDataDog(t, nil)
	ops := emitted(t)
	for key, body := range r.spansMetrics {
		var sm datadogV2.SpansMetricCreateData
		if err := alerting.DecodeStrict(body, &sm); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if _, err := spansMetricTags(sm, ops); err != nil {
			t.Errorf("span-based metric %s: %v", key, err)
		}
	}
}

// spansMetricTags checks a span-based metric and returns its operation and the tags it carries.
func spansMetricTags(sm datadogV2.SpansMetricCreateData, ops map[string]*operation) (spansMetric, error) {
	out := spansMetric{tags: map[string]bool{}}
	a := sm.Attributes
	filter := a.GetFilter()
	query := filter.GetQuery()
	var op *operation
	for term := range strings.FieldsSeq(query) {
		k, v, ok := strings.Cut(term, ":")
		if !ok {
			return out, fmt.Errorf("filter term %q is not key:value", term)
		}
		switch {
		case k == "operation_name":
			if op = ops[v]; op == nil {
				return out, fmt.Errorf("filter names operation %s, which pkg/trace does not emit", v)
			}
			out.op = v
		case k == "service" || k == "env" || k == "resource_name":
		case strings.HasPrefix(k, "@"):
			// checked below, once the operation is known
		default:
			return out, fmt.Errorf("filter term %q: unknown attribute", term)
		}
	}
	if op == nil {
		return out, fmt.Errorf("the filter must name one operation (operation_name:…): %q", query)
	}
	for term := range strings.FieldsSeq(query) {
		if k, _, _ := strings.Cut(term, ":"); strings.HasPrefix(k, "@") && !op.hasTag(k[1:]) {
			return out, fmt.Errorf("filter uses %s, a tag %s spans do not carry", k, out.op)
		}
	}
	if a.Compute.AggregationType == datadogV2.SPANSMETRICCOMPUTEAGGREGATIONTYPE_DISTRIBUTION {
		p := a.Compute.GetPath()
		if !strings.HasPrefix(p, "@") || !op.metrics[p[1:]] {
			return out, fmt.Errorf("compute path %q is not a numeric tag of %s spans", p, out.op)
		}
	}
	for _, g := range a.GroupBy {
		switch p := g.Path; {
		case p == "service" || p == "resource_name" || p == "operation_name":
		case p == "env" && op.meta["env"]:
		case strings.HasPrefix(p, "@") && op.hasTag(p[1:]):
		default:
			return out, fmt.Errorf("group_by %s is not a tag of %s spans", p, out.op)
		}
		out.tags[cmpOr(g.GetTagName(), strings.TrimPrefix(g.Path, "@"))] = true
	}
	return out, nil
}

type spansMetric struct {
	op   string
	tags map[string]bool
}

// catalog is what a query may name: the emitted operations with their trace-metric tags, the
// span-based metrics, and for the env and service tags the values the spans carry.
type catalog struct {
	ops          map[string]*operation
	sourceOfOp   map[string]string
	services     map[string]string // by source
	env          string
	spansMetrics map[string]spansMetric
}

func newCatalog(t *testing.T, r ddRoot) catalog {
	t.Helper()
	c := catalog{ops: emitted(t), sourceOfOp: map[string]string{}, services: map[string]string{}, env: r.env, spansMetrics: map[string]spansMetric{}}
	for src, s := range r.sources {
		c.sourceOfOp[s.RunOperation] = src
		c.sourceOfOp[s.TaskOperation] = src
		c.services[src] = s.Service
	}
	for key, body := range r.spansMetrics {
		var sm datadogV2.SpansMetricCreateData
		if err := alerting.DecodeStrict(body, &sm); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		info, err := spansMetricTags(sm, c.ops)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		c.spansMetrics[sm.Id] = info
	}
	return c
}

// Suffixes of span-derived trace metrics (DataDog's trace metrics namespace):
// trace.<operation>.<suffix>, and trace.<operation> itself, the latency distribution.
var traceMetricSuffixes = []string{"", "hits", "errors", "apdex", "duration", "hits.by_http_status", "errors.by_http_status"}

// check fails when ref names a metric, an operation or a tag the trace function does not emit,
// or an env or service other than the spans'. tv are the dashboard's template variables.
func (c catalog) check(ref alerting.MetricRef, tv map[string]alerting.Term) error {
	op, allowed, err := c.classify(ref.Metric)
	if err != nil {
		return err
	}
	terms := slices.Clone(ref.Filter)
	for i, term := range terms {
		if term.Var == "" {
			continue
		}
		v, ok := tv[term.Var]
		if !ok {
			return fmt.Errorf("%s uses $%s, which is not a template variable", ref.Metric, term.Var)
		}
		terms[i] = v
	}
	for _, term := range terms {
		if !allowed[term.Key] {
			return fmt.Errorf("%s is filtered on %s, which is not one of its tags %v", ref.Metric, term.Key, slices.Sorted(maps.Keys(allowed)))
		}
		if term.Negated || term.Value == "*" {
			continue
		}
		switch term.Key {
		case "env":
			if term.Value != c.env {
				return fmt.Errorf("%s is filtered on env:%s; FARM's spans carry env:%s", ref.Metric, term.Value, c.env)
			}
		case "service":
			if want := c.services[c.sourceOfOp[op]]; term.Value != want {
				return fmt.Errorf("%s is filtered on service:%s; %s spans have service %s", ref.Metric, term.Value, op, want)
			}
		}
	}
	for _, g := range ref.GroupBy {
		if !allowed[g] {
			return fmt.Errorf("%s is grouped by %s, which is not one of its tags %v", ref.Metric, g, slices.Sorted(maps.Keys(allowed)))
		}
	}
	return nil
}

// classify returns the operation a metric derives from and the tags it has.
func (c catalog) classify(metric string) (string, map[string]bool, error) {
	if sm, ok := c.spansMetrics[metric]; ok {
		return sm.op, sm.tags, nil
	}
	name, ok := strings.CutPrefix(metric, "trace.")
	if !ok {
		return "", nil, fmt.Errorf("metric %s is neither a trace metric nor one of FARM's span-based metrics", metric)
	}
	for op, o := range c.ops {
		rest, ok := strings.CutPrefix(name, op)
		if !ok || (rest != "" && rest[0] != '.') {
			continue
		}
		if !slices.Contains(traceMetricSuffixes, strings.TrimPrefix(rest, ".")) {
			return "", nil, fmt.Errorf("metric %s: %q is not a trace metric suffix %v", metric, rest, traceMetricSuffixes[1:])
		}
		if !o.stats {
			return "", nil, fmt.Errorf("metric %s: DataDog computes no trace metrics for %s spans: they are neither top-level nor measured", metric, op)
		}
		if _, ok := c.sourceOfOp[op]; !ok {
			return "", nil, fmt.Errorf("metric %s: operation %s is not in main.tf's sources", metric, op)
		}
		// Trace metrics carry env, service, version, resource_name: no span tag.
		allowed := map[string]bool{"service": true, "resource_name": true, "env": o.meta["env"], "version": o.meta["version"]}
		return op, allowed, nil
	}
	return "", nil, fmt.Errorf("metric %s names an operation pkg/trace does not emit (it emits %v)", metric, slices.Sorted(maps.Keys(c.ops)))
}

// TestSourcesAreTheTraceFunctions ties main.tf's sources to the code: each source's operations
// are the ones pkg/trace uses for it, and its service is the one the spans carry by default.
func TestSourcesAreTheTraceFunctions(t *testing.T) {
	r := renderDataDog(t, nil)
	ops := emitted(t)
	if got := slices.Sorted(maps.Keys(r.sources)); !slices.Equal(got, []string{"airflow", "argo"}) {
		t.Fatalf("main.tf sources are %v, want argo and airflow (pkg/event's sources)", got)
	}
	for src, s := range r.sources {
		for _, op := range []string{s.RunOperation, s.TaskOperation} {
			o := ops[op]
			if o == nil {
				t.Errorf("source %s: operation %s is not emitted by pkg/trace", src, op)
				continue
			}
			if !o.services[s.Service] {
				t.Errorf("source %s: default service %s, but %s spans have service %v", src, s.Service, op, slices.Sorted(maps.Keys(o.services)))
			}
		}
	}
}

// TestVariablesRefuseBadValues: a wrong value is refused by a validation, with a message that
// says what to do.
func TestVariablesRefuseBadValues(t *testing.T) {
	m, err := alerting.LoadModule(datadogDir)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"sources": `["argo", "spark"]`}, "distinct values among"},
		{map[string]string{"sources": `[]`}, "non-empty list"},
		{map[string]string{"notify": `["slack-data"]`}, "@-handle"},
		{map[string]string{"env": `"Prod"`}, "lowercase"},
		{map[string]string{"success_rate_monitor": `{"critical_percent": 95, "warning_percent": 90}`}, "warning_percent must be above critical_percent"},
		{map[string]string{"success_rate_monitor": `{"critical_percent": 120}`}, "percentages"},
		{map[string]string{"run_duration_monitor": `{"critical_seconds": 600, "warning_seconds": 900}`}, "warning_seconds must be below"},
		{map[string]string{"last_run_monitor": `{"auto_resolve_hours": 48}`}, "1 to 24"},
		{map[string]string{"exclude_pipelines": `["a,b"]`}, "without spaces, commas"},
		{map[string]string{"datadog_app_url": `"app.datadoghq.com"`}, "https://"},
	}
	for _, c := range cases {
		ev, err := m.With(c.vars)
		if err == nil {
			err = ev.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error saying %q", c.vars, err, c.want)
		}
	}
}

// TestTuning: the variables change what they say and nothing else.
func TestTuning(t *testing.T) {
	base := renderDataDog(t, nil)
	tuned := renderDataDog(t, variants["everything set"])
	monitor := func(r ddRoot, key string) datadogV1.Monitor {
		t.Helper()
		var m datadogV1.Monitor
		if err := alerting.DecodeStrict(r.monitors[key], &m); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return m
	}
	if _, ok := base.monitors["argo_pipeline_run_duration_anomaly"]; ok {
		t.Error("the anomaly monitor is on by default")
	}
	sr := monitor(tuned, "airflow_pipeline_success_rate")
	if got := sr.Options.Thresholds; got.GetCritical() != 75 || got.GetWarning() != 85.5 || !strings.HasSuffix(sr.Query, "< 75") {
		t.Errorf("success rate thresholds: critical %v warning %v query %q", got.GetCritical(), got.GetWarning(), sr.Query)
	}
	if !strings.Contains(sr.Query, "!resource_name:scratch") || !strings.Contains(sr.Query, "service:composer") || !strings.Contains(sr.Query, "env:staging") {
		t.Errorf("success rate query does not carry the scope: %s", sr.Query)
	}
	if !slices.Contains(sr.Tags, "team:data-platform") {
		t.Errorf("tags %v lack team:data-platform", sr.Tags)
	}
	if lr := monitor(tuned, "argo_pipeline_last_run"); lr.Options.GetTimeoutH() != 12 {
		t.Errorf("last run timeout_h %v, want 12", lr.Options.GetTimeoutH())
	}
	if lr := monitor(base, "argo_pipeline_last_run"); lr.Options.TimeoutH.IsSet() {
		t.Error("the last run monitor auto-resolves by default: only a successful run should resolve it")
	}
	d := monitor(tuned, "argo_pipeline_run_duration")
	if d.Options.Thresholds.GetCritical() != 3600 || !strings.HasSuffix(d.Query, "> 3600") {
		t.Errorf("run duration: critical %v, query %q", d.Options.Thresholds.GetCritical(), d.Query)
	}
	only := renderDataDog(t, map[string]string{"sources": `["airflow"]`, "dashboard_enabled": "false", "queue_time_metric_enabled": "false"})
	for key := range only.monitors {
		if !strings.HasPrefix(key, "airflow_") {
			t.Errorf("monitor %s exists with sources = [airflow]", key)
		}
	}
	if len(only.dashboards)+len(only.spansMetrics) != 0 {
		t.Error("the dashboard or the span-based metric exists though switched off")
	}
}

// TestServicesMatchTheDeployment: the DataDog root's defaults are the trace function's and the
// Google root's, so the two roots applied with their defaults agree.
func TestServicesMatchTheDeployment(t *testing.T) {
	dd := variableDefaults(t, datadogDir, "env", "service_argo", "service_airflow")
	gcp := variableDefaults(t, googleDir, "environment", "trace_service_argo", "trace_service_airflow")
	cfg := defaultConfig(t)
	for _, c := range []struct{ name, dd, gcp, code string }{
		{"env", dd["env"], gcp["environment"], gcp["environment"]},
		{"argo service", dd["service_argo"], gcp["trace_service_argo"], cfg.Trace.ServiceArgo},
		{"airflow service", dd["service_airflow"], gcp["trace_service_airflow"], cfg.Trace.ServiceAirflow},
	} {
		if c.dd != c.gcp || c.dd != c.code {
			t.Errorf("%s: DataDog root default %q, Google root default %q, code default %q", c.name, c.dd, c.gcp, c.code)
		}
	}
}

// variableDefaults returns the defaults of string variables of the module in dir.
func variableDefaults(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	m, err := alerting.LoadModule(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := m.Defaults()
	out := map[string]string{}
	for _, n := range names {
		v, ok := d[n]
		if !ok || v.Type() != cty.String || v.IsNull() {
			t.Fatalf("%s: variable %s has no string default", dir, n)
		}
		out[n] = v.AsString()
	}
	return out
}

// TestResourcesSendTheRenderedDefinitions evaluates the resources' own arguments: each resource
// is created once per rendered definition and sends exactly that JSON.
func TestResourcesSendTheRenderedDefinitions(t *testing.T) {
	m, err := alerting.LoadModule(datadogDir)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := m.With(variants["everything set"])
	if err != nil {
		t.Fatal(err)
	}
	noEach := cty.ObjectVal(map[string]cty.Value{"key": cty.DynamicVal, "value": cty.DynamicVal})
	for _, c := range []struct{ resource, local, body string }{
		{"datadog_monitor_json.pipeline", "monitors", "monitor"},
		{"datadog_dashboard_json.farm", "dashboards", "dashboard"},
		{"datadog_spans_metric.farm", "spans_metrics", "name"},
	} {
		forEach, err := ev.ResourceAttr(c.resource, "for_each", noEach)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ev.Local(c.local)
		if !forEach.RawEquals(want) || forEach.LengthInt() == 0 {
			t.Errorf("%s: for_each is not local.%s", c.resource, c.local)
			continue
		}
		for key, value := range forEach.AsValueMap() {
			each := cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(key), "value": value})
			got, err := ev.ResourceAttr(c.resource, c.body, each)
			if err != nil {
				t.Fatal(err)
			}
			if c.body == "name" {
				if got.AsString() != value.GetAttr("id").AsString() {
					t.Errorf("%s[%s]: name %s, want the definition's id", c.resource, key, got.AsString())
				}
				continue
			}
			wantJSON, _ := ctyjson.Marshal(value, value.Type())
			if !jsonEqual(t, []byte(got.AsString()), wantJSON) {
				t.Errorf("%s[%s] sends something else than the rendered definition", c.resource, key)
			}
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}
