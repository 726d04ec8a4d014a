// Package logging builds reconcile's slog logger: short readable lines for a
// person at a terminal, JSON for everything else (journald, CI, collectors).
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/moby/term"
)

// Options choose the format and level.
type Options struct {
	// Format is "text", "json" or "" (auto: text on a terminal, else JSON).
	Format string
	// Level is debug, info, warn or error.
	Level string
}

// New returns a logger writing to w.
func New(w io.Writer, opts Options) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(orDefault(opts.Level, "info"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", opts.Level)
	}
	tty := IsTerminal(w)
	format := opts.Format
	if format == "" {
		format = "json"
		if tty {
			format = "text"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	case "text":
		_, noColor := os.LookupEnv("NO_COLOR")
		return slog.New(&textHandler{w: w, level: level, color: tty && !noColor, mu: &sync.Mutex{}}), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", opts.Format)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// IsTerminal reports whether w is a terminal: colour and redraws are for
// people, not for files and pipes.
func IsTerminal(w io.Writer) bool {
	// a writer that filters another (masking secrets) is a terminal when
	// what it writes to is
	for {
		u, ok := w.(interface{ Unwrap() io.Writer })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// textHandler prints "15:04:05 INF message key=value ...", the level
// coloured when color is set.
type textHandler struct {
	w     io.Writer
	level slog.Level
	color bool
	attrs []slog.Attr
	group string
	mu    *sync.Mutex
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.Format("15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(h.levelText(r.Level))
	b.WriteByte(' ')
	b.WriteString(Printable(r.Message))
	for _, a := range h.attrs {
		writeAttr(&b, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// Printable is text made safe for a terminal: a control character (an
// escape sequence a container's output or a file name may carry, a CR that
// would overwrite the line) is shown escaped (\x1b), never sent as is.
func Printable(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (h *textHandler) levelText(l slog.Level) string {
	name, code := "INF", "32"
	switch {
	case l >= slog.LevelError:
		name, code = "ERR", "31"
	case l >= slog.LevelWarn:
		name, code = "WRN", "33"
	case l < slog.LevelInfo:
		name, code = "DBG", "90"
	}
	if !h.color {
		return name
	}
	return "\x1b[" + code + "m" + name + "\x1b[0m"
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, ga := range a.Value.Group() {
			writeAttr(b, key, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(key)
	b.WriteByte('=')
	s := a.Value.String()
	if s == "" || strings.ContainsAny(s, " \t\n\"=") || strings.ContainsFunc(s, unicode.IsControl) {
		s = fmt.Sprintf("%q", s) // %q escapes control characters
	}
	b.WriteString(s)
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr{}, h.attrs...)
	for _, a := range attrs {
		if h.group != "" {
			a = slog.Attr{Key: h.group, Value: slog.GroupValue(a)}
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// Or is l, or a logger that drops everything when l is nil: components take
// an optional Log field and ask for it through this.
func Or(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
