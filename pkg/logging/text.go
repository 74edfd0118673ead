package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Headline turns a record into one line for a person (without the time), or reports false when
// the record is not one it knows. The local runner gives one for the poll summary.
type Headline func(r slog.Record) (string, bool)

// NewText returns a logger writing one readable line per record to w:
//
//	15:04:05 WARN spans not delivered; the message will be redelivered  run=argo/x error="…"
//
// Quiet (the local runner's default) shows only what a person watching needs: notices, warnings
// and errors, and the records a headline knows (one line per poll), whatever their level; a
// warning or error repeated within a minute (same message, or same component) is shown once, and
// counted on its next showing. Not quiet, every record at level or above is shown. headlines may
// be nil.
func NewText(w io.Writer, level slog.Leveler, quiet bool, headlines ...Headline) *slog.Logger {
	return slog.New(&textHandler{out: &lockedWriter{w: w}, level: level, quiet: quiet, headlines: headlines,
		repeats: &repeats{last: map[string]*shown{}}})
}

// repeatWindow is how long a repeated warning stays hidden in quiet mode.
const repeatWindow = time.Minute

type repeats struct {
	mu   sync.Mutex
	last map[string]*shown
}

type shown struct {
	at         time.Time // when it was last shown
	suppressed int       // repeats hidden since
}

// admit reports whether a record with key, at t, is shown, and how many like it were hidden since
// it was last shown.
func (r *repeats) admit(key string, t time.Time) (bool, int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.last[key]
	if ok && t.Sub(s.at) < repeatWindow {
		s.suppressed++
		return false, 0, time.Time{}
	}
	if !ok {
		s = &shown{}
		r.last[key] = s
	}
	n, since := s.suppressed, s.at
	s.at, s.suppressed = t, 0
	return true, n, since
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}

type textHandler struct {
	out       *lockedWriter
	level     slog.Leveler
	quiet     bool
	headlines []Headline
	repeats   *repeats
	attrs     []slog.Attr // from WithAttrs, keys already prefixed by their groups
	group     string      // prefix of attributes added later, "a.b."
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool {
	if h.quiet && len(h.headlines) > 0 {
		return true // a headline may promote any level; Handle decides
	}
	return l >= h.minLevel()
}

func (h *textHandler) minLevel() slog.Level {
	min := h.level.Level()
	if h.quiet {
		min = max(min, LevelNotice)
	}
	return min
}

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	// One flat record: the logger's attributes, then the record's, each named with its groups.
	flat := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	flat.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		flat.AddAttrs(slog.Attr{Key: h.group + a.Key, Value: a.Value})
		return true
	})
	var b strings.Builder
	b.WriteString(r.Time.Local().Format(time.TimeOnly))
	b.WriteByte(' ')
	for _, hl := range h.headlines {
		if line, ok := hl(flat); ok {
			if !h.quiet && r.Level < h.level.Level() {
				return nil
			}
			b.WriteString(line)
			b.WriteByte('\n')
			h.out.write([]byte(b.String()))
			return nil
		}
	}
	if r.Level < h.minLevel() {
		return nil
	}
	var hidden int
	var since time.Time
	if h.quiet && r.Level >= slog.LevelWarn {
		key := r.Message
		flat.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" { // a library's own log: its messages vary, its voice does not
				key = "component=" + a.Value.String()
			}
			return true
		})
		var ok bool
		if ok, hidden, since = h.repeats.admit(r.Level.String()+" "+key, r.Time); !ok {
			return nil
		}
	}
	if tag := levelTag(r.Level); tag != "" {
		b.WriteString(tag)
		b.WriteByte(' ')
	}
	b.WriteString(r.Message)
	sep := "  "
	flat.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, &sep, a.Key, a.Value)
		return true
	})
	if hidden > 0 {
		fmt.Fprintf(&b, "  (and %d more like it since %s)", hidden, since.Local().Format(time.TimeOnly))
	}
	b.WriteByte('\n')
	h.out.write([]byte(b.String()))
	return nil
}

func levelTag(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= LevelNotice:
		return ""
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

func writeAttr(b *strings.Builder, sep *string, key string, v slog.Value) {
	v = v.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, a := range v.Group() {
			writeAttr(b, sep, key+"."+a.Key, a.Value)
		}
		return
	}
	if key == "" {
		return
	}
	b.WriteString(*sep)
	*sep = " "
	b.WriteString(key)
	b.WriteByte('=')
	var s string
	switch v.Kind() {
	case slog.KindTime:
		s = v.Time().Format(time.RFC3339)
	case slog.KindDuration:
		s = v.Duration().String()
	default:
		s = v.String()
	}
	if needsQuote(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		c.attrs = append(c.attrs, slog.Attr{Key: h.group + a.Key, Value: a.Value})
	}
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

// String describes the handler (for debugging a logger's setup).
func (h *textHandler) String() string {
	return fmt.Sprintf("text handler (level %s, quiet %v)", h.level.Level(), h.quiet)
}
