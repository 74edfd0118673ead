package alerting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// LogEntry is a Cloud Logging entry as a filter sees it: resource, severity, labels,
// httpRequest and jsonPayload, as nested maps keyed like the LogEntry's JSON.
type LogEntry map[string]any

// FromStructuredLine turns one JSON line a Cloud Run service writes to stdout into the entry Cloud
// Logging stores, following its structured-logging rules: `severity` becomes the entry's severity,
// `time` (or `timestamp`) its timestamp, `httpRequest` and `logging.googleapis.com/labels` their
// own fields; every other field, `message` included, stays in jsonPayload.
func FromStructuredLine(line []byte, resourceType string, resourceLabels map[string]string) (LogEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var payload map[string]any
	if err := dec.Decode(&payload); err != nil {
		return nil, fmt.Errorf("not a structured log line: %w", err)
	}
	labels := map[string]any{}
	for k, v := range resourceLabels {
		labels[k] = v
	}
	e := LogEntry{
		"resource": map[string]any{"type": resourceType, "labels": labels},
		"severity": "DEFAULT",
	}
	if s, ok := payload["severity"].(string); ok && severityRank(s) >= 0 {
		e["severity"] = strings.ToUpper(s)
		delete(payload, "severity")
	}
	for _, k := range []string{"time", "timestamp"} {
		if v, ok := payload[k]; ok {
			e["timestamp"] = v
			delete(payload, k)
		}
	}
	if v, ok := payload["httpRequest"]; ok {
		e["httpRequest"] = v
		delete(payload, "httpRequest")
	}
	if v, ok := payload["logging.googleapis.com/labels"]; ok {
		e["labels"] = v
		delete(payload, "logging.googleapis.com/labels")
	}
	e["jsonPayload"] = payload
	return e, nil
}

// Get returns the value at a dotted path (jsonPayload.source), and whether it exists.
func (e LogEntry) Get(path string) (any, bool) {
	var cur any = map[string]any(e)
	for _, part := range splitPath(path) {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func splitPath(path string) []string {
	var parts []string
	for path != "" {
		if path[0] == '"' {
			end := strings.IndexByte(path[1:], '"')
			if end < 0 {
				return append(parts, path[1:])
			}
			parts = append(parts, path[1:end+1])
			path = strings.TrimPrefix(path[end+2:], ".")
			continue
		}
		part, rest, _ := strings.Cut(path, ".")
		parts = append(parts, part)
		path = rest
	}
	return parts
}

var severities = []string{"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"}

func severityRank(s string) int {
	for i, name := range severities {
		if strings.EqualFold(s, name) {
			return i
		}
	}
	return -1
}

// LogFilter is a parsed Cloud Logging query. It implements the subset of the Logging query
// language FARM's log-based metrics use: comparisons (=, !=, <, <=, >, >=, :, =~, !~) of a field
// path with a value or a parenthesised OR list of values, AND (also implicit), OR, NOT and
// parentheses. Anything else is a parse error, so a filter this code cannot judge fails the test.
type LogFilter struct{ root node }

type node interface{ eval(LogEntry) bool }

// ParseLogFilter parses a Logging query.
func ParseLogFilter(s string) (*LogFilter, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unexpected %q at token %d of %q", p.toks[p.pos].text, p.pos, s)
	}
	return &LogFilter{root: n}, nil
}

// Match reports whether the entry matches.
func (f *LogFilter) Match(e LogEntry) bool { return f.root.eval(e) }

type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokOp
	tokLParen
	tokRParen
)

type token struct {
	kind tokKind
	text string
}

var filterOps = []string{"=~", "!~", "!=", ">=", "<=", "=", ">", "<", ":"}

func lexFilter(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case unicode.IsSpace(rune(c)):
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "("})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, ")"})
			i++
		case c == '"':
			str, n, err := readQuoted(s[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokString, str})
			i += n
		default:
			if op := opAt(s[i:]); op != "" {
				toks = append(toks, token{tokOp, op})
				i += len(op)
				continue
			}
			j := i
			for j < len(s) && !unicode.IsSpace(rune(s[j])) && s[j] != '(' && s[j] != ')' && opAt(s[j:]) == "" {
				if s[j] == '"' { // a quoted path segment: labels."a.b"
					_, n, err := readQuoted(s[j:])
					if err != nil {
						return nil, err
					}
					j += n
					continue
				}
				j++
			}
			toks = append(toks, token{tokWord, s[i:j]})
			i = j
		}
	}
	return toks, nil
}

func opAt(s string) string {
	for _, op := range filterOps {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	return ""
}

func readQuoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated string in %q", s)
}

type filterParser struct {
	toks []token
	pos  int
}

func (p *filterParser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *filterParser) keyword(k string) bool {
	t, ok := p.peek()
	if ok && t.kind == tokWord && t.text == k {
		p.pos++
		return true
	}
	return false
}

func (p *filterParser) or() (node, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		left = orNode{left, right}
	}
	return left, nil
}

func (p *filterParser) and() (node, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.kind == tokRParen || (t.kind == tokWord && t.text == "OR") {
			return left, nil
		}
		p.keyword("AND")
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		left = andNode{left, right}
	}
}

func (p *filterParser) unary() (node, error) {
	if p.keyword("NOT") {
		n, err := p.unary()
		return notNode{n}, err
	}
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("filter ends where a comparison is expected")
	}
	if t.kind == tokLParen {
		p.pos++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if t, ok := p.peek(); !ok || t.kind != tokRParen {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return n, nil
	}
	return p.comparison()
}

func (p *filterParser) comparison() (node, error) {
	field, ok := p.peek()
	if !ok || field.kind != tokWord {
		return nil, fmt.Errorf("expected a field, got %q", field.text)
	}
	p.pos++
	op, ok := p.peek()
	if !ok || op.kind != tokOp {
		return nil, fmt.Errorf("field %s: a bare word is a global search, which FARM's filters do not use", field.text)
	}
	p.pos++
	values, err := p.values()
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", field.text, op.text, err)
	}
	c := cmpNode{path: field.text, op: op.text, values: values}
	if op.text == "=~" || op.text == "!~" {
		for _, v := range values {
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, fmt.Errorf("%s%s: %w", field.text, op.text, err)
			}
			c.res = append(c.res, re)
		}
	}
	return c, nil
}

// values reads a value, or a parenthesised list of values joined by OR.
func (p *filterParser) values() ([]string, error) {
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("missing value")
	}
	if t.kind == tokString || t.kind == tokWord {
		p.pos++
		return []string{t.text}, nil
	}
	if t.kind != tokLParen {
		return nil, fmt.Errorf("unexpected %q", t.text)
	}
	p.pos++
	var out []string
	for {
		t, ok := p.peek()
		if !ok || (t.kind != tokString && t.kind != tokWord) {
			return nil, fmt.Errorf("expected a value in the list")
		}
		out = append(out, t.text)
		p.pos++
		if p.keyword("OR") {
			continue
		}
		if t, ok := p.peek(); ok && t.kind == tokRParen {
			p.pos++
			return out, nil
		}
		return nil, fmt.Errorf("a value list is (v1 OR v2 …)")
	}
}

type orNode struct{ a, b node }
type andNode struct{ a, b node }
type notNode struct{ n node }

func (n orNode) eval(e LogEntry) bool  { return n.a.eval(e) || n.b.eval(e) }
func (n andNode) eval(e LogEntry) bool { return n.a.eval(e) && n.b.eval(e) }
func (n notNode) eval(e LogEntry) bool { return !n.n.eval(e) }

type cmpNode struct {
	path, op string
	values   []string
	res      []*regexp.Regexp
}

func (c cmpNode) eval(e LogEntry) bool {
	v, ok := e.Get(c.path)
	if !ok {
		return false
	}
	for i, want := range c.values {
		if c.match(v, want, i) {
			return true
		}
	}
	return false
}

func (c cmpNode) match(v any, want string, i int) bool {
	got := fmt.Sprint(v)
	switch c.op {
	case ":":
		return want == "*" || strings.Contains(strings.ToLower(got), strings.ToLower(want))
	case "=~":
		return c.res[i].MatchString(got)
	case "!~":
		return !c.res[i].MatchString(got)
	case "=":
		return compare(c.path, got, want) == 0
	case "!=":
		return compare(c.path, got, want) != 0
	}
	r := compare(c.path, got, want)
	switch c.op {
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	}
	return false
}

// compare orders severities by level, numbers by value and anything else as text.
func compare(path, got, want string) int {
	if path == "severity" {
		return severityRank(got) - severityRank(want)
	}
	g, err1 := strconv.ParseFloat(got, 64)
	w, err2 := strconv.ParseFloat(want, 64)
	if err1 == nil && err2 == nil {
		switch {
		case g < w:
			return -1
		case g > w:
			return 1
		}
		return 0
	}
	return strings.Compare(got, want)
}
