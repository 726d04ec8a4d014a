package reconciler

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconcile-dev/reconcile/observed"
)

// factTTL bounds how long an event's fact may patch snapshots: the list
// view lags the events by milliseconds, and a fact kept longer could
// outlive a change whose event was lost.
const factTTL = 2 * time.Second

// snapshots caches the project's snapshot between changes and patches
// fresh ones with what recent events said.
type snapshots struct {
	// gen counts what may have changed the engine's state (events, our own
	// actions); a cached snapshot is used only while gen has not moved, so
	// an idle daemon makes no list calls between resyncs.
	gen atomic.Uint64
	// full counts what may have changed more than containers (our own
	// actions, a relist, a container's destroy): while it has not moved
	// since the last full list, a look lists containers alone.
	full atomic.Uint64
	// markFull is full as Mark left it: a listing taken by someone else
	// after the mark is a full list as of then.
	markFull atomic.Uint64
	mu       sync.Mutex
	snap     *observed.Snapshot
	// latest is snap, for readers that must not wait for a list
	latest atomic.Pointer[observed.Snapshot]
	at     uint64
	fullAt uint64
	has    bool

	// facts holds what recent events say about containers. The engine
	// emits an event before its list view catches up (a `die` is sent
	// before the stopped state is saved where the list reads it), so a
	// snapshot listed after an event is patched with what the event says.
	factMu sync.Mutex
	facts  map[string]fact
}

type fact struct {
	observed.Fact
	gen uint64
	at  time.Time
}

// Observed notes an engine event: it invalidates the cached snapshot and,
// for an event that says what its container now is, keeps that for
// snapshots listed before the engine's list view caught up. It runs on the
// event reader: a counter and a map entry, nothing more.
func (c *Controller) Observed(ev observed.Event) {
	s := &c.snapshots
	if ev.Action == observed.ActionDestroy {
		s.full.Add(1) // compose's down removes the network after the containers
	}
	g := s.gen.Add(1)
	if ev.ContainerID != "" {
		c.details.forget(ev.ContainerID)
	}
	f := ev.Fact()
	if f.Kind == "" || ev.ContainerID == "" {
		return
	}
	s.factMu.Lock()
	defer s.factMu.Unlock()
	if s.facts == nil {
		s.facts = map[string]fact{}
	}
	s.facts[ev.ContainerID] = fact{Fact: f, gen: g, at: c.clock().Now()}
}

// Invalidate marks the cached snapshot stale, lists included: something
// may have changed (an action of ours, a relist).
func (c *Controller) Invalidate() {
	c.snapshots.full.Add(1)
	c.snapshots.gen.Add(1)
}

// Snapshot returns the current snapshot, from the cache when nothing has
// happened since it was taken. A fresh one is patched with recent events'
// facts and shown to the policies that learn from lists.
func (c *Controller) Snapshot(ctx context.Context) (*observed.Snapshot, error) {
	s := &c.snapshots
	s.mu.Lock()
	defer s.mu.Unlock()
	full := s.full.Load()
	g := s.gen.Load()
	if s.has && s.at == g && s.fullAt == full {
		return s.snap, nil
	}
	var snap *observed.Snapshot
	var err error
	if s.has && s.fullAt == full && c.ObserveContainers != nil {
		// only container events since the last full list: the lists of
		// networks, volumes and images hold (a bring-up of 100 services
		// makes 600 events, each worth a look)
		snap, err = c.ObserveContainers(ctx, s.snap)
	} else {
		snap, err = c.Observe(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("observing the project: %w", err)
	}
	c.adopt(snap, g)
	s.fullAt = full
	return snap, nil
}

// last is the snapshot the loop last took, stale or not; nil before the
// first.
// It never waits for a list in progress.
func (s *snapshots) last() *observed.Snapshot {
	return s.latest.Load()
}

// Mark invalidates the cached snapshot and returns the generation a list
// about to be taken by someone else (an agent's one listing of every
// project) stands for: what ResyncWith is given with it.
func (c *Controller) Mark() uint64 {
	c.snapshots.markFull.Store(c.snapshots.full.Add(1))
	return c.snapshots.gen.Add(1)
}

// adopt makes snap, listed at generation g, the cached snapshot: patched
// with recent events' facts and shown to the policies that learn from
// lists. The caller holds s.mu.
func (c *Controller) adopt(snap *observed.Snapshot, g uint64) {
	s := &c.snapshots
	s.patch(snap, g, c.clock().Now())
	s.snap, s.at, s.has = snap, g, true
	s.latest.Store(snap)
	for _, p := range c.Policies {
		if p.Listed != nil {
			p.Listed.Listed(snap)
		}
	}
}

// patch brings snap, listed at generation g, in line with the facts of
// events seen before the list was taken; facts the list already shows, or
// too old to trust, are dropped.
func (s *snapshots) patch(snap *observed.Snapshot, g uint64, now time.Time) {
	s.factMu.Lock()
	defer s.factMu.Unlock()
	for id, e := range s.facts {
		if e.gen > g {
			continue // newer than the list: the next snapshot will tell
		}
		if now.Sub(e.at) > factTTL {
			delete(s.facts, id)
			continue
		}
		i := slices.IndexFunc(snap.Containers, func(ctr observed.Container) bool { return ctr.ID == id })
		if i < 0 {
			if e.Kind == observed.FactGone || e.Kind == observed.FactStopped {
				delete(s.facts, id)
			}
			continue
		}
		if !apply(&snap.Containers, i, e.Fact) {
			delete(s.facts, id) // the list shows it already
		}
	}
}

// apply patches container i with f and reports whether the list was behind.
func apply(cs *[]observed.Container, i int, f observed.Fact) bool {
	ctr := &(*cs)[i]
	switch f.Kind {
	case observed.FactGone:
		*cs = slices.Delete(*cs, i, i+1)
		return true
	case observed.FactStopped:
		if ctr.State == observed.StateRunning {
			ctr.State, ctr.ExitCode, ctr.Health = observed.StateExited, f.ExitCode, observed.HealthNone
			return true
		}
	case observed.FactRunning:
		if ctr.State == observed.StateExited || ctr.State == observed.StateCreated || ctr.State == observed.StatePaused {
			ctr.State = observed.StateRunning
			return true
		}
	case observed.FactPaused:
		if ctr.State == observed.StateRunning {
			ctr.State = observed.StatePaused
			return true
		}
	case observed.FactHealthy, observed.FactUnhealthy:
		if h := string(f.Kind); ctr.State == observed.StateRunning && ctr.Health != h {
			ctr.Health = h
			return true
		}
	}
	return false
}
