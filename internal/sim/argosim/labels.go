package argosim

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A label selector as Kubernetes parses it (labels.ParseToRequirements), which is what the Argo
// Server uses for listOptions.labelSelector: requirements separated by commas (AND), each one of
// `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key>n`, `key<n`.

type selOp string

const (
	opExists       selOp = "exists"
	opDoesNotExist selOp = "!"
	opEquals       selOp = "="
	opDoubleEquals selOp = "=="
	opNotEquals    selOp = "!="
	opIn           selOp = "in"
	opNotIn        selOp = "notin"
	opGreaterThan  selOp = "gt"
	opLessThan     selOp = "lt"
)

type requirement struct {
	key    string
	op     selOp
	values []string
}

type selector []requirement

// matches reports whether labels satisfy every requirement. Negative operators match when the
// label is absent, as in Kubernetes and in the Argo Server's SQL ("not exists …").
func (s selector) matches(labels map[string]string) bool {
	for _, r := range s {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

func (r requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.key]
	switch r.op {
	case opExists:
		return ok
	case opDoesNotExist:
		return !ok
	case opEquals, opDoubleEquals, opIn:
		return ok && slices.Contains(r.values, v)
	case opNotEquals, opNotIn:
		return !ok || !slices.Contains(r.values, v)
	case opGreaterThan, opLessThan:
		if !ok {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.op == opGreaterThan {
			return have > want
		}
		return have < want
	}
	return false
}

type tokKind int

const (
	tokEnd tokKind = iota
	tokIdent
	tokComma
	tokOpen
	tokClose
	tokNot
	tokEquals
	tokDoubleEquals
	tokNotEquals
	tokGreater
	tokLess
	tokIn
	tokNotIn
)

type token struct {
	kind tokKind
	lit  string
}

func isSpecial(c byte) bool { return strings.IndexByte("=!(),><", c) >= 0 }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// lex splits a selector into tokens the way the Kubernetes lexer does: identifiers are runs of
// anything but whitespace and the special characters.
func lex(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == ',':
			out = append(out, token{tokComma, ","})
			i++
		case c == '(':
			out = append(out, token{tokOpen, "("})
			i++
		case c == ')':
			out = append(out, token{tokClose, ")"})
			i++
		case c == '>':
			out = append(out, token{tokGreater, ">"})
			i++
		case c == '<':
			out = append(out, token{tokLess, "<"})
			i++
		case c == '=' && i+1 < len(s) && s[i+1] == '=':
			out = append(out, token{tokDoubleEquals, "=="})
			i += 2
		case c == '=':
			out = append(out, token{tokEquals, "="})
			i++
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			out = append(out, token{tokNotEquals, "!="})
			i += 2
		case c == '!':
			out = append(out, token{tokNot, "!"})
			i++
		default:
			j := i
			for j < len(s) && !isSpace(s[j]) && !isSpecial(s[j]) {
				j++
			}
			lit := s[i:j]
			kind := tokIdent
			switch lit {
			case "in":
				kind = tokIn
			case "notin":
				kind = tokNotIn
			}
			out = append(out, token{kind, lit})
			i = j
		}
	}
	return out
}

type selParser struct {
	toks []token
	pos  int
}

// peek and next return the next token; in value position the keywords in/notin are identifiers.
func (p *selParser) peek(value bool) token {
	if p.pos >= len(p.toks) {
		return token{tokEnd, ""}
	}
	t := p.toks[p.pos]
	if value && (t.kind == tokIn || t.kind == tokNotIn) {
		t.kind = tokIdent
	}
	return t
}

func (p *selParser) next(value bool) token {
	t := p.peek(value)
	if p.pos < len(p.toks) {
		p.pos++
	}
	return t
}

// parseSelector parses a label selector. An empty selector selects everything.
func parseSelector(s string) (selector, error) {
	p := &selParser{toks: lex(s)}
	var sel selector
	for {
		t := p.peek(true)
		switch t.kind {
		case tokEnd:
			return sel, nil
		case tokIdent, tokNot:
		default:
			return nil, fmt.Errorf("found '%s', expected: !, identifier, or 'end of string'", t.lit)
		}
		r, err := p.requirement()
		if err != nil {
			return nil, fmt.Errorf("unable to parse requirement: %w", err)
		}
		sel = append(sel, r)
		switch t := p.next(true); t.kind {
		case tokEnd:
			return sel, nil
		case tokComma:
			if n := p.peek(true); n.kind != tokIdent && n.kind != tokNot {
				return nil, fmt.Errorf("found '%s', expected: identifier after ','", n.lit)
			}
		default:
			return nil, fmt.Errorf("found '%s', expected: ',' or 'end of string'", t.lit)
		}
	}
}

func (p *selParser) requirement() (requirement, error) {
	r := requirement{op: opExists}
	t := p.next(true)
	if t.kind == tokNot {
		r.op = opDoesNotExist
		t = p.next(true)
	}
	if t.kind != tokIdent {
		return r, fmt.Errorf("found '%s', expected: identifier", t.lit)
	}
	r.key = t.lit
	if err := validateLabelKey(r.key); err != nil {
		return r, err
	}
	// "!key" takes no operator; whatever follows is the caller's to reject.
	if n := p.peek(true); r.op == opDoesNotExist || n.kind == tokEnd || n.kind == tokComma {
		return r, nil
	}
	op := p.next(false)
	var err error
	switch op.kind {
	case tokIn, tokNotIn:
		r.op = map[tokKind]selOp{tokIn: opIn, tokNotIn: opNotIn}[op.kind]
		r.values, err = p.valueSet()
	case tokEquals, tokDoubleEquals, tokNotEquals, tokGreater, tokLess:
		r.op = map[tokKind]selOp{tokEquals: opEquals, tokDoubleEquals: opDoubleEquals, tokNotEquals: opNotEquals, tokGreater: opGreaterThan, tokLess: opLessThan}[op.kind]
		r.values, err = p.exactValue()
	default:
		return r, fmt.Errorf("found '%s', expected: in, notin, =, ==, !=, gt, lt", op.lit)
	}
	if err != nil {
		return r, err
	}
	return r, r.validate()
}

func (p *selParser) exactValue() ([]string, error) {
	if n := p.peek(true); n.kind == tokEnd || n.kind == tokComma {
		return []string{""}, nil
	}
	t := p.next(true)
	if t.kind != tokIdent {
		return nil, fmt.Errorf("found '%s', expected: identifier", t.lit)
	}
	return []string{t.lit}, nil
}

// valueSet parses "(a, b)"; empty members such as "(,a)" count as the empty value, as upstream.
func (p *selParser) valueSet() ([]string, error) {
	if t := p.next(true); t.kind != tokOpen {
		return nil, fmt.Errorf("found '%s' expected: '('", t.lit)
	}
	var vals []string
	add := func(v string) {
		if !slices.Contains(vals, v) {
			vals = append(vals, v)
		}
	}
	if t := p.peek(true); t.kind == tokClose {
		p.next(true)
		return []string{""}, nil
	} else if t.kind != tokIdent && t.kind != tokComma {
		return nil, fmt.Errorf("found '%s', expected: ',', ')' or identifier", t.lit)
	}
	for {
		t := p.next(true)
		switch t.kind {
		case tokIdent:
			add(t.lit)
			switch n := p.peek(true); n.kind {
			case tokComma:
				continue
			case tokClose:
				p.next(true)
				return vals, nil
			default:
				return nil, fmt.Errorf("found '%s', expected: ',' or ')'", n.lit)
			}
		case tokComma:
			if len(vals) == 0 {
				add("")
			}
			switch n := p.peek(true); n.kind {
			case tokClose:
				p.next(true)
				add("")
				return vals, nil
			case tokComma:
				p.next(true)
				add("")
			}
		default:
			return nil, fmt.Errorf("found '%s', expected: ',', or identifier", t.lit)
		}
	}
}

func (r requirement) validate() error {
	switch r.op {
	case opIn, opNotIn:
		if len(r.values) == 0 {
			return fmt.Errorf("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
		}
	case opGreaterThan, opLessThan:
		if _, err := strconv.ParseInt(r.values[0], 10, 64); err != nil {
			return fmt.Errorf("values[0]: Invalid value: %q: for 'Gt', 'Lt' operators, the value must be an integer", r.values[0])
		}
	}
	for i, v := range r.values {
		if err := validateLabelValue(v); err != nil {
			return fmt.Errorf("values[%d][%s]: Invalid value: %q: %w", i, r.key, v, err)
		}
	}
	return nil
}

var (
	labelNameRE = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	dnsSubRE    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

const labelNameRule = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"

// validateLabelKey checks a qualified name: an optional DNS-subdomain prefix and "/", then a
// name of at most 63 characters.
func validateLabelKey(key string) error {
	name := key
	if prefix, rest, ok := strings.Cut(key, "/"); ok {
		if prefix == "" || len(prefix) > 253 || !dnsSubRE.MatchString(prefix) {
			return fmt.Errorf("key: Invalid value: %q: prefix part must be a lowercase RFC 1123 subdomain", key)
		}
		name = rest
	}
	if name == "" || len(name) > 63 || !labelNameRE.MatchString(name) {
		return fmt.Errorf("key: Invalid value: %q: name part %s, and be at most 63 characters", key, labelNameRule)
	}
	return nil
}

func validateLabelValue(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 63 || !labelNameRE.MatchString(v) {
		return fmt.Errorf("a valid label value %s, and be at most 63 characters", labelNameRule)
	}
	return nil
}
