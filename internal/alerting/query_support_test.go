package alerting

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MetricRef is one metric a DataDog metric query reads, e.g.
// `sum:trace.argo.workflow.hits{env:prod,service:argo} by {resource_name}.as_count()`.
type MetricRef struct {
	Aggregator string   // space aggregation: avg, sum, max, p95…
	Metric     string   // trace.argo.workflow.hits
	Filter     []Term   // the {…} scope
	GroupBy    []string // the by {…} tags
}

// Term is one element of a metric query's scope.
type Term struct {
	Key, Value string
	Negated    bool
	// Var is a dashboard template variable ($env), whose prefix is the key.
	Var string
}

// MonitorQuery is a metric monitor's query: time aggregation and window, the metrics it reads,
// and its comparison.
type MonitorQuery struct {
	TimeAggregator, Window string
	Metrics                []MetricRef
	Comparator             string
	Threshold              float64
	Body                   string // between the window and the comparison
}

var (
	metricRefRE  = regexp.MustCompile(`\b(avg|sum|min|max|count|p\d{2,3}(?:\.\d+)?):([A-Za-z][A-Za-z0-9_.]*)\{([^{}]*)\}(?:\s*by\s*\{([^{}]*)\})?`)
	monitorRE    = regexp.MustCompile(`^(avg|sum|min|max|change|pct_change|percentile\(\d+\))\((last_\d+[mhdw])\):(.+?)\s*(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?)\s*$`)
	filterTermRE = regexp.MustCompile(`^(!?)([A-Za-z_][A-Za-z0-9_.\-/]*):(\S+)$`)
	varTermRE    = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)
	tagRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-/]*$`)
	quotedRE     = regexp.MustCompile(`'[^']*'|"[^"]*"`)
)

// ParseMetricQuery returns the metrics a query reads. Anything that looks like a metric but is not
// in the form this parser knows is an error, so no metric escapes the checks.
func ParseMetricQuery(q string) ([]MetricRef, error) {
	var refs []MetricRef
	for _, m := range metricRefRE.FindAllStringSubmatch(q, -1) {
		ref := MetricRef{Aggregator: m[1], Metric: m[2]}
		for t := range strings.SplitSeq(m[3], ",") {
			term, err := parseTerm(strings.TrimSpace(t))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m[0], err)
			}
			if term != nil {
				ref.Filter = append(ref.Filter, *term)
			}
		}
		if m[4] != "" {
			for g := range strings.SplitSeq(m[4], ",") {
				g = strings.TrimSpace(g)
				if !tagRE.MatchString(g) {
					return nil, fmt.Errorf("%s: group-by %q is not a tag name", m[0], g)
				}
				ref.GroupBy = append(ref.GroupBy, g)
			}
		}
		refs = append(refs, ref)
	}
	rest := quotedRE.ReplaceAllString(metricRefRE.ReplaceAllString(q, ""), "")
	if strings.ContainsAny(rest, ":{}") {
		return nil, fmt.Errorf("query %q has a part this parser does not understand: %q", q, rest)
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("query %q reads no metric", q)
	}
	return refs, nil
}

func parseTerm(t string) (*Term, error) {
	switch {
	case t == "*":
		return nil, nil
	case varTermRE.MatchString(t):
		return &Term{Var: t[1:]}, nil
	}
	m := filterTermRE.FindStringSubmatch(t)
	if m == nil {
		return nil, fmt.Errorf("scope term %q is not tag:value, !tag:value, $variable or *", t)
	}
	return &Term{Negated: m[1] == "!", Key: m[2], Value: m[3]}, nil
}

// ParseMonitorQuery reads a metric monitor query ("query alert").
func ParseMonitorQuery(q string) (MonitorQuery, error) {
	m := monitorRE.FindStringSubmatch(q)
	if m == nil {
		return MonitorQuery{}, fmt.Errorf("query %q is not <aggregation>(last_<n><unit>):<expression> <comparator> <number>", q)
	}
	refs, err := ParseMetricQuery(m[3])
	if err != nil {
		return MonitorQuery{}, err
	}
	th, err := strconv.ParseFloat(m[5], 64)
	if err != nil {
		return MonitorQuery{}, err
	}
	return MonitorQuery{TimeAggregator: m[1], Window: m[2], Body: m[3], Metrics: refs, Comparator: m[4], Threshold: th}, nil
}

// QueryArg returns a named argument of a function call in the query, such as
// alert_window='last_2h' in anomalies(…).
func QueryArg(q, name string) (string, bool) {
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\s*=\s*'([^']*)'`)
	m := re.FindStringSubmatch(q)
	if m == nil {
		return "", false
	}
	return m[1], true
}
