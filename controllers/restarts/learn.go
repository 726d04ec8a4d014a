package restarts

import (
	"fmt"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Learn learns from one engine event, which the controller has tagged as
// the reconciler's own or not (reconciler.Seen): a stop, die or removal of
// ours is never read as a person's. It runs on the event stream's reader:
// it updates a few maps under the lock and signals the state writer,
// nothing slower.
func (r *Restarts) Learn(seen reconciler.Seen, d *desired.State) {
	ev, ours := seen.Event, seen.Ours
	if !ev.Replica() {
		return
	}
	var policy desired.RestartPolicy
	var svc *desired.Service
	if d != nil {
		if svc = d.Services[ev.Service]; svc != nil {
			policy = svc.Policy.Restart
		}
	}
	id, at := ev.ContainerID, ev.Time
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Action {
	case observed.ActionKill:
		if ours && seen.Op == plan.OpSignal {
			return // a reload's signal through the engine, not a kill
		}
		k := kill{signal: ev.Signal, at: at}
		if prev, ok := r.kills[id]; ok && ev.Signal == 9 && prev.signal != 9 && at.Sub(prev.at) < stopGraceBound {
			k.first = prev.signal
		}
		r.kills[id] = k
	case observed.ActionOOM:
		r.ooms[id] = at
	case observed.ActionDie:
		s := r.slot(ev.Service, ev.Number, id)
		r.die(s, id, ev.ExitCode, at, ours, policy, svc != nil && svc.HasHealthcheck)
		delete(r.awaiting, id)
		r.changed()
	case observed.ActionStop:
		s := r.slot(ev.Service, ev.Number, id)
		if ours {
			if seen.Op == plan.OpStopContainer {
				s.acting = time.Time{} // the hold-down stop is done
			}
			return // the reconciler's own stop, restart or removal
		}
		s.pendingDie = time.Time{}
		if !s.StoppedByUser {
			s.StoppedByUser, s.StoppedAt = true, at
			r.changed()
		}
	case observed.ActionStart:
		s := r.slot(ev.Service, ev.Number, id)
		r.start(s, at, ours, d, ev.Service, policy)
		r.started[id] = at
		delete(r.baseline, id)
		delete(r.upAtStart, id)
		r.changed()
	case observed.ActionHealthStatus:
		s := r.slot(ev.Service, ev.Number, id)
		switch ev.Health {
		case observed.HealthHealthy:
			s.HealthyAt = at
		case observed.HealthUnhealthy:
			s.UnhealthyAt = at
		}
	case observed.ActionDestroy:
		if s := r.slots[slotKey(ev.Service, ev.Number)]; s != nil && s.ContainerID == id {
			switch {
			case ours && seen.Op == plan.OpRecreateContainer:
				// our recreate: the replica lives on in its new container,
				// and so does its budget
				s.StoppedByUser, s.acting = false, time.Time{}
			case ours:
				// our removal (an extra replica, an orphan, a rollout's
				// old replica): the replica is gone, not taken down
				delete(r.slots, slotKey(ev.Service, ev.Number))
			case s.StoppedByUser:
				// stopped, then removed, by someone else: a person took it down
				s.RemovedByUser, s.RemovedHash, s.StoppedByUser = true, ev.ConfigHash, false
			default:
				delete(r.slots, slotKey(ev.Service, ev.Number))
			}
			r.changed()
		}
		delete(r.kills, id)
		delete(r.ooms, id)
		delete(r.started, id)
		delete(r.baseline, id)
		delete(r.awaiting, id)
		delete(r.cascaded, id)
		delete(r.upAtStart, id)
	}
}

// die learns the cause of an exit and when the next restart is due.
func (r *Restarts) die(s *Slot, id string, code int, at time.Time, ours bool, policy desired.RestartPolicy, hasCheck bool) {
	// the run that just ended resets the budget when it was long (and
	// healthy) enough
	if policy.Window == 0 && !s.StartedAt.IsZero() && at.Sub(s.StartedAt) >= policy.ResetAfter &&
		(!hasCheck || !s.HealthyAt.Before(s.StartedAt)) {
		s.Restarts = nil
	}
	s.ExitCode, s.LastExitAt = code, at
	k, killed := r.kills[id]
	killed = killed && at.Sub(k.at) < time.Minute
	oom, oomed := r.ooms[id]
	switch {
	case oomed && at.Sub(oom) < time.Minute:
		s.LastExit = fmt.Sprintf("OOMKilled (exit code %d)", code)
	case ours:
		// the die of the reconciler's own restart or stop: Done says why
	case killed && k.first != 0:
		s.LastExit = fmt.Sprintf("killed by signal %d after signal %d went unanswered (exit code %d)", k.signal, k.first, code)
	case killed:
		s.LastExit = fmt.Sprintf("killed by signal %d (exit code %d)", k.signal, code)
	default:
		s.LastExit = fmt.Sprintf("exit code %d", code)
	}
	delete(r.kills, id)
	delete(r.ooms, id)
	if !ours && killed && (k.signal != 9 || k.first != 0) {
		// maybe `docker stop`: wait for its stop event, from when the die
		// was read (a loaded daemon reads it late; the stop is behind it)
		s.pendingDie = at
		if now := r.Clock.Now(); now.After(at) {
			s.pendingDie = now
		}
	}
	// with its restart policy off (since before this exit), the engine
	// leaves the crash to the reconciler
	off := s.EngineRestartsOff && !at.Before(s.EngineRestartsOffAt)
	s.EngineRestarts = !killed && !ours && !off && engineRestarts(policy, code)
	s.NextAttempt = at.Add(backoff(s.used(at, policy), policy))
}

// start learns who started a container: the reconciler (already marked),
// the user (ending their stop), or the engine's own restart policy (counted
// against the budget); and queues `restart: true` dependents.
func (r *Restarts) start(s *Slot, at time.Time, ours bool, d *desired.State, service string, policy desired.RestartPolicy) {
	switch {
	case s.HeldDown:
		// the reconciler never starts a replica it holds down: someone
		// else did, whatever mark its hold-down stop left
		s.HeldDown, s.OverBudget, s.Restarts, s.acting = false, false, nil, time.Time{}
	case ours:
		s.acting = time.Time{} // counted when the executor reported it done
	case s.dieSeen() && !s.EngineRestarts && !s.StoppedByUser:
		// held down, or its last exit one the engine does not restart (a
		// docker kill): neither the engine nor the reconciler started it,
		// so the user did, and the replica gets a fresh budget
		s.HeldDown, s.OverBudget, s.Restarts = false, false, nil
	case s.StoppedByUser:
		s.StoppedByUser = false // the user started it again
	case s.dieSeen():
		// the engine's own restart; past a spent budget it is stopped
		s.OverBudget = s.exhausted(at, policy)
		s.Restarts = append(s.Restarts, at)
	}
	s.EngineRestarts = false
	s.pendingDie = time.Time{}
	s.StartedAt = at
	if d == nil || s.LastExitAt.IsZero() {
		return
	}
	for _, name := range d.Order {
		for _, dep := range d.Services[name].DependsOn {
			if dep.Service == service && dep.Restart {
				r.cascades[name] = cascade{dependency: service, at: at}
			}
		}
	}
}

// Relisted learns from a relist (on every connect to the engine): the
// containers exited at that moment exited while nobody watched, or their
// events may be lost, so their cause is unknown.
func (r *Restarts) Relisted(snap *observed.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.UpAtStart && !r.upDone {
		r.upDone = true
		for _, s := range r.slots {
			s.StoppedByUser, s.HeldDown, s.OverBudget, s.RemovedByUser = false, false, false, false
			s.Restarts, s.NextAttempt = nil, time.Time{}
		}
		for _, c := range snap.Containers {
			if c.State == observed.StateExited || c.State == observed.StateDead {
				r.upAtStart[c.ID] = true
			}
		}
		r.changed()
		return
	}
	for _, c := range snap.Containers {
		if c.State == observed.StateExited || c.State == observed.StateDead {
			r.baseline[c.ID] = true
		}
	}
}

// Listed notes when a list first showed an exit whose `die` has not been
// read: the list can be ahead of the stream, and the decision waits a
// little for the event that tells the cause.
func (r *Restarts) Listed(snap *observed.Snapshot) {
	now := r.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range snap.Containers {
		if c.State != observed.StateExited && c.State != observed.StateDead || r.baseline[c.ID] {
			continue
		}
		if _, ok := r.awaiting[c.ID]; ok {
			continue
		}
		if s := r.view(c.Service, c.Number, c.ID); !s.dieSeen() {
			r.awaiting[c.ID] = now
		}
	}
}
