package secrets

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
)

// Holder is the Set in force for a project: replaced when its files load
// again (a failed load keeps the last good one). The zero value masks
// nothing; it is safe for concurrent use.
type Holder struct{ p atomic.Pointer[Set] }

// Store makes s the Set in force.
func (h *Holder) Store(s *Set) { h.p.Store(s) }

// Include adds s's values to the Set in force (a CLI command that prints
// about several projects masks them all).
func (h *Holder) Include(s *Set) {
	for {
		cur := h.p.Load()
		next := &Set{}
		if cur != nil {
			next.values = append(next.values, cur.values...)
		}
		if s != nil {
			next.Add(s.values...)
		}
		if h.p.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Mask masks text with the Set in force.
func (h *Holder) Mask(text string) string {
	if h == nil {
		return text
	}
	return h.p.Load().Mask(text)
}

// Handler wraps a log handler so that the message and every string, error
// and Stringer attribute of a record are masked with h's Set before next
// sees them: a project's log cannot print a value an engine error quoted.
func Handler(next slog.Handler, h *Holder) slog.Handler {
	return &handler{next: next, h: h}
}

type handler struct {
	next slog.Handler
	h    *Holder
	// ops are the With and WithGroup calls, applied to next at each record:
	// an attribute given to With before the project's Set was known is
	// masked with the Set in force when it is printed.
	ops []op
}

// op is one With (attrs) or WithGroup (group) call.
type op struct {
	attrs []slog.Attr
	group string
}

func (m *handler) Enabled(ctx context.Context, l slog.Level) bool { return m.next.Enabled(ctx, l) }

func (m *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, m.h.Mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(m.attr(a))
		return true
	})
	next := m.next
	for _, o := range m.ops {
		if o.attrs == nil {
			next = next.WithGroup(o.group)
			continue
		}
		masked := make([]slog.Attr, len(o.attrs))
		for i, a := range o.attrs {
			masked[i] = m.attr(a)
		}
		next = next.WithAttrs(masked)
	}
	return next.Handle(ctx, out)
}

func (m *handler) with(o op) slog.Handler {
	ops := append(m.ops[:len(m.ops):len(m.ops)], o)
	return &handler{next: m.next, h: m.h, ops: ops}
}

func (m *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return m
	}
	return m.with(op{attrs: as})
}

func (m *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return m
	}
	return m.with(op{group: name})
}

func (m *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, m.h.Mask(v.String()))
	case slog.KindGroup:
		g := v.Group()
		masked := make([]any, len(g))
		for i, ga := range g {
			masked[i] = m.attr(ga)
		}
		return slog.Group(a.Key, masked...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, m.h.Mask(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, m.h.Mask(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// Writer masks each write to w with h's Set: the CLI's output, whose lines
// are each written whole.
func Writer(w io.Writer, h *Holder) io.Writer { return &writer{w: w, h: h} }

type writer struct {
	w io.Writer
	h *Holder
}

func (m *writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(m.w, m.h.Mask(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap is the writer written to, for a caller that asks whether it is a
// terminal.
func (m *writer) Unwrap() io.Writer { return m.w }
