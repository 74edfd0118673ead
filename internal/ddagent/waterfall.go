package ddagent

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// WriteWaterfall writes t as an indented tree, one span per line, children under their parent in
// start order:
//
//	trace 69a5e0c40000000012f0a3c7d1e2b4a5  argo-workflows  4 spans
//	argo.workflow etl-nightly            +0s      5m0s
//	├─ argo.node extract                 +5s      1m30s
//	│  └─ argo.node extract(0)           +5s      30.25s  ERROR Failed: exit code 1
//	└─ argo.node notify                  +4m51s   0s      [skipped]
//
// Columns are the offset from the earliest span and the duration. Error spans are marked with
// their error.type and error.message; a span with a meta "status" other than a success shows it
// in brackets. Spans whose parent has not arrived are listed after the tree, marked as such.
func WriteWaterfall(w io.Writer, t Trace) error {
	if len(t.Spans) == 0 {
		return nil
	}
	p := newPlot(t.Spans)
	p.header(t)
	for _, s := range p.roots {
		p.walk(s, "", "", "")
	}
	for _, s := range p.orphans {
		p.walk(s, "", "", fmt.Sprintf("(parent %d not received)", s.ParentID))
	}
	return p.write(w)
}

type line struct {
	label, offset, duration, mark string
}

type plot struct {
	base     int64
	children map[uint64][]Span
	roots    []Span
	orphans  []Span
	seen     map[uint64]bool
	title    string
	lines    []line
}

func newPlot(spans []Span) *plot {
	p := &plot{children: map[uint64][]Span{}, seen: map[uint64]bool{}, base: spans[0].Start}
	ids := make(map[uint64]bool, len(spans))
	for _, s := range spans {
		ids[s.SpanID] = true
		p.base = min(p.base, s.Start)
	}
	for _, s := range spans {
		switch {
		case s.IsRoot():
			p.roots = append(p.roots, s)
		case ids[s.ParentID] && s.ParentID != s.SpanID:
			p.children[s.ParentID] = append(p.children[s.ParentID], s)
		default:
			p.orphans = append(p.orphans, s)
		}
	}
	byStart := func(a, b Span) int { return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.SpanID, b.SpanID)) }
	slices.SortStableFunc(p.roots, byStart)
	slices.SortStableFunc(p.orphans, byStart)
	for _, c := range p.children {
		slices.SortStableFunc(c, byStart)
	}
	return p
}

func (p *plot) header(t Trace) {
	first := t.Spans[0]
	if root, ok := t.Root(); ok {
		first = root
	}
	p.title = fmt.Sprintf("trace %s  %s  %d spans", first.TraceID128(), first.Service, len(t.Spans))
}

// walk adds s and its subtree. lead prefixes s's own line, indent its children's lines; note is
// appended to s's mark.
func (p *plot) walk(s Span, lead, indent, note string) {
	l := line{
		label:    lead + s.Name + " " + resourceLabel(s),
		offset:   "+" + roundDuration(s.Start-p.base).String(),
		duration: roundDuration(s.Duration).String(),
		mark:     joinMarks(mark(s), note),
	}
	if p.seen[s.SpanID] {
		// The same span id twice: show it, but do not print its children again (and never loop).
		l.mark = joinMarks(l.mark, "(duplicate span id)")
		p.lines = append(p.lines, l)
		return
	}
	p.seen[s.SpanID] = true
	p.lines = append(p.lines, l)
	kids := p.children[s.SpanID]
	for i, c := range kids {
		if i == len(kids)-1 {
			p.walk(c, indent+"└─ ", indent+"   ", "")
		} else {
			p.walk(c, indent+"├─ ", indent+"│  ", "")
		}
	}
}

func (p *plot) write(w io.Writer) error {
	labelW, offW, durW := 0, 0, 0
	for _, l := range p.lines {
		labelW = max(labelW, len([]rune(l.label)))
		offW = max(offW, len(l.offset))
		durW = max(durW, len([]rune(l.duration)))
	}
	var b strings.Builder
	b.WriteString(p.title + "\n")
	for _, l := range p.lines {
		pad := labelW - len([]rune(l.label))
		row := fmt.Sprintf("%s%s  %-*s  %s%s", l.label, strings.Repeat(" ", pad), offW, l.offset,
			l.duration, strings.Repeat(" ", durW-len([]rune(l.duration))))
		if l.mark != "" {
			row += "  " + l.mark
		}
		b.WriteString(strings.TrimRight(row, " ") + "\n")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// resourceLabel is the span's resource, with the map index of a mapped Airflow task instance:
// the resource leaves it out (it is the airflow.map_index tag) so DataDog's per-resource metrics
// aggregate a task's instances, but in a waterfall the instances must be told apart.
func resourceLabel(s Span) string {
	if mi, ok := s.Metrics["airflow.map_index"]; ok && mi >= 0 {
		return fmt.Sprintf("%s[%d]", s.Resource, int(mi))
	}
	return s.Resource
}

func mark(s Span) string {
	if s.Error != 0 {
		msg := s.Meta["error.message"]
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i] + " …"
		}
		if r := []rune(msg); len(r) > 120 {
			msg = string(r[:120]) + "…"
		}
		head := "ERROR"
		if typ := s.Meta["error.type"]; typ != "" {
			head += " " + typ
		}
		if msg == "" {
			return head
		}
		return head + ": " + msg
	}
	switch st := s.Meta["status"]; st {
	case "", "succeeded", "success":
		return ""
	default:
		return "[" + st + "]"
	}
}

func joinMarks(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "  " + b
}

// roundDuration keeps milliseconds (Argo reports seconds, Airflow microseconds); below a
// millisecond it keeps everything.
func roundDuration(ns int64) time.Duration {
	d := time.Duration(ns)
	if d > -time.Millisecond && d < time.Millisecond {
		return d
	}
	return d.Round(time.Millisecond)
}
