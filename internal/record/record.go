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
)

// Record is one event: Reason is a CamelCase word a program can match on
// (ContainerMissing, Recreated, RestartBudgetExhausted...), Message the
// sentence a person reads.
type Record struct {
	Time      time.Time `json:"time"`
	Type      Type      `json:"type"`
	Reason    Reason    `json:"reason"`
	Service   string    `json:"service,omitempty"`
	Container string    `json:"container,omitempty"`
	Message   string    `json:"message"`
}

// DefaultKeep is how many recent records a Recorder keeps for /events.
const DefaultKeep = 1000

// Recorder logs records and keeps the recent ones for readers and live
// subscribers. It is safe for concurrent use.
type Recorder struct {
	log   *slog.Logger
	clock clock.Clock
	keep  int

	mu     sync.Mutex
	recent []Record
	subs   map[chan Record]struct{}

	// Count, when set, is told the type and reason of every record, for
	// metrics.
	Count func(typ Type, reason Reason)
}

// New returns a recorder that logs through log and keeps keep records.
func New(log *slog.Logger, clk clock.Clock, keep int) *Recorder {
	if keep <= 0 {
		keep = DefaultKeep
	}
	return &Recorder{log: log, clock: clk, keep: keep, subs: map[chan Record]struct{}{}}
}

// Event records one event; its type is the reason's, from the catalogue.
func (r *Recorder) Event(reason Reason, service, container, message string) {
	typ := reason.Type()
	rec := Record{Time: r.clock.Now(), Type: typ, Reason: reason, Service: service, Container: container, Message: message}
	level := slog.LevelInfo
	if typ == Warning {
		level = slog.LevelWarn
	}
	attrs := []any{"type", string(typ), "reason", string(reason)}
	if service != "" {
		attrs = append(attrs, "service", service)
	}
	if container != "" {
		attrs = append(attrs, "container", container)
	}
	r.log.Log(context.Background(), level, message, attrs...)
	if r.Count != nil {
		r.Count(typ, reason)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.recent = append(r.recent, rec)
	if over := len(r.recent) - r.keep; over > 0 {
		r.recent = append(r.recent[:0:0], r.recent[over:]...)
	}
	for ch := range r.subs {
		select {
		case ch <- rec:
		default: // a slow reader misses records rather than stalling the daemon
		}
	}
}

// Recent returns the kept records, oldest first.
func (r *Recorder) Recent() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recent...)
}

// Subscribe returns a channel of the records from now on, and a function
// that ends the subscription.
func (r *Recorder) Subscribe() (<-chan Record, func()) {
	ch := make(chan Record, 64)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[ch]; ok {
			delete(r.subs, ch)
			close(ch)
		}
	}
}
