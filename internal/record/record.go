// Package record keeps the daemon's event records: what drifted and what was
// done about it, in the shape of Kubernetes events, so that operators read
// them in the logs and learners read them as a timeline (/events).
package record

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/secrets"
)

// Record is one event: Reason is a CamelCase word a program can match on
// (ContainerMissing, Recreated, RestartBudgetExhausted...), Message the
// sentence a person reads.
type Record struct {
	Time   time.Time `json:"time"`
	Type   Type      `json:"type"`
	Reason Reason    `json:"reason"`
	// Project is the compose project the record is about; empty for what
	// concerns the whole agent (the engine connection).
	Project   string `json:"project,omitempty"`
	Service   string `json:"service,omitempty"`
	Container string `json:"container,omitempty"`
	Message   string `json:"message"`
	// Revision is the commit of the git source in force when the record
	// was made (--git), 12 hex digits; empty without one.
	Revision string `json:"revision,omitempty"`
}

// DefaultKeep is how many recent records a Recorder keeps for /events.
const DefaultKeep = 1000

// Recorder logs records and keeps the recent ones for readers and live
// subscribers. Recorders made by For share one history, stamping their
// project on what they record. It is safe for concurrent use.
type Recorder struct {
	log     *slog.Logger
	clock   clock.Clock
	project string
	h       *history
	// secrets masks every message before it is logged, kept or sent.
	secrets *secrets.Holder
}

// history is what the recorders of one daemon share.
type history struct {
	keep   int
	mu     sync.Mutex
	recent []Record
	subs   map[chan Record]struct{}
	count  func(typ Type, reason Reason, project string)
	// revision is stamped on every record (SetRevision).
	revision string
}

// New returns a recorder that logs through log and keeps keep records.
func New(log *slog.Logger, clk clock.Clock, keep int) *Recorder {
	if keep <= 0 {
		keep = DefaultKeep
	}
	return &Recorder{log: log, clock: clk, h: &history{keep: keep, subs: map[chan Record]struct{}{}}}
}

// For returns a recorder for one project's records, sharing r's history,
// subscribers and count; log, when set, is the project's logger.
func (r *Recorder) For(project string, log *slog.Logger) *Recorder {
	if log == nil {
		log = r.log.With("project", project)
	}
	return &Recorder{log: log, clock: r.clock, project: project, h: r.h}
}

// Masking returns a recorder like r whose messages are masked with h's Set
// before anything sees them: the one place a project's records, and so its
// log lines, /events, the dashboard and notifications, are kept secret-free.
func (r *Recorder) Masking(h *secrets.Holder) *Recorder {
	cp := *r
	cp.secrets = h
	return &cp
}

// SetCount makes count be told the type, reason and project of every
// record from now on, for metrics.
func (r *Recorder) SetCount(count func(typ Type, reason Reason, project string)) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.count = count
}

// SetRevision stamps rev (the git source's commit in force) on every
// record from now on, whichever project's recorder makes it.
func (r *Recorder) SetRevision(rev string) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.revision = rev
}

// Revision is the commit SetRevision stamps.
func (r *Recorder) Revision() string {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	return r.h.revision
}

// Event records one event; its type is the reason's, from the catalogue.
func (r *Recorder) Event(reason Reason, service, container, message string) {
	typ := reason.Type()
	message = r.secrets.Mask(message)
	rec := Record{Time: r.clock.Now(), Type: typ, Reason: reason, Project: r.project, Service: service, Container: container, Message: message}
	level := slog.LevelInfo
	if typ == Warning {
		level = slog.LevelWarn
	}
	attrs := []any{"type", string(typ), "reason", string(reason)}
	h := r.h
	h.mu.Lock()
	rec.Revision = h.revision
	h.mu.Unlock()
	if rec.Revision != "" {
		attrs = append(attrs, "revision", rec.Revision)
	}
	if service != "" {
		attrs = append(attrs, "service", service)
	}
	if container != "" {
		attrs = append(attrs, "container", container)
	}
	r.log.Log(context.Background(), level, message, attrs...)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count != nil {
		h.count(typ, reason, r.project)
	}
	h.recent = append(h.recent, rec)
	if over := len(h.recent) - h.keep; over > 0 {
		h.recent = append(h.recent[:0:0], h.recent[over:]...)
	}
	for ch := range h.subs {
		select {
		case ch <- rec:
		default: // a slow reader misses records rather than stalling the daemon
		}
	}
}

// Recent returns the kept records, oldest first.
func (r *Recorder) Recent() []Record {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	return append([]Record(nil), r.h.recent...)
}

// Subscribe returns a channel of the records from now on, and a function
// that ends the subscription.
func (r *Recorder) Subscribe() (<-chan Record, func()) {
	ch := make(chan Record, 64)
	r.h.mu.Lock()
	r.h.subs[ch] = struct{}{}
	r.h.mu.Unlock()
	return ch, func() {
		r.h.mu.Lock()
		defer r.h.mu.Unlock()
		if _, ok := r.h.subs[ch]; ok {
			delete(r.h.subs, ch)
			close(ch)
		}
	}
}
