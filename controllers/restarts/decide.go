package restarts

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// verdict is the decision on one operation.
type verdict struct {
	hold   bool
	after  time.Duration
	report *reconciler.Report
}

func allow() verdict { return verdict{} }

func hold(after time.Duration, rep *reconciler.Report) verdict {
	return verdict{hold: true, after: after, report: rep}
}

// report is a decision's record about container c. A replica the policy
// leaves down (budget spent, not restarted by its policy) is Stuck: nothing
// will start it again without a person or a change of the file.
func report(reason record.Reason, c observed.Container, occurrence, msg string) *reconciler.Report {
	stuck := reason == record.RestartBudgetExhausted || reason == record.NotRestarted
	return &reconciler.Report{Reason: reason, Container: c.Name, Message: msg, Occurrence: c.ID + "|" + occurrence, Stuck: stuck}
}

// Review decides which starts, restarts and creations of a service's
// replicas may happen now (a replica the user stopped and removed is not
// created again), and adds the restarts a `restart: true` cascade owes and
// the stop that ends the engine's own restart loop of a replica whose
// budget is spent. It reads the restart state and changes nothing: what is
// allowed is counted when the executor reports it done (Done).
func (r *Restarts) Review(in reconciler.Review) reconciler.Decision {
	var dec reconciler.Decision
	svc := in.Desired.Services[in.Service]
	if svc == nil {
		return dec
	}
	policy := svc.Policy.Restart
	byID := map[string]observed.Container{}
	for _, c := range in.Snapshot.ByService()[in.Service] {
		byID[c.ID] = c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	removed := r.removedByUser(in, svc)
	for _, n := range in.Plan.Nodes {
		if n.Op.Type == plan.OpCreateContainer {
			// compose numbers a new replica after the highest, so a
			// person's removal holds creations by count, not by number
			if len(removed) > 0 {
				dec.Hold = append(dec.Hold, n)
				dec.Reports = append(dec.Reports, removed[0])
				removed = removed[1:]
			}
			continue
		}
		c, ok := byID[n.Op.ContainerID]
		if !ok {
			continue
		}
		var v verdict
		switch n.Op.Type {
		case plan.OpStartContainer:
			if c.State == observed.StateCreated {
				continue // never started: compose up would start it
			}
			v = r.mayStart(in, policy, c)
		case plan.OpRestartContainer:
			v = r.mayRestartUnhealthy(in, policy, c)
		default:
			continue
		}
		if v.hold {
			dec.Hold = append(dec.Hold, n)
		}
		dec.Later(v.after)
		if v.report != nil {
			dec.Reports = append(dec.Reports, *v.report)
		}
	}
	for _, c := range in.Snapshot.ByService()[in.Service] {
		if op, rep := r.holdDown(in, svc, c); op != nil {
			dec.Add = append(dec.Add, *op)
			dec.Reports = append(dec.Reports, *rep)
		}
		if op := r.engineLoop(in, svc, c); op != nil {
			dec.Add = append(dec.Add, *op)
		}
	}
	r.cascade(in, svc, &dec)
	return dec
}

// holdDown ends the engine's own restart loop of a replica whose budget is
// spent: `restart: always` and `unless-stopped` (and on-failure beyond the
// engine's own count) restart a crash forever, and only a stop makes the
// engine leave a container down.
func (r *Restarts) holdDown(in reconciler.Review, svc *desired.Service, c observed.Container) (*plan.Operation, *reconciler.Report) {
	p := svc.Policy.Restart
	s := r.view(in.Service, c.Number, c.ID)
	if s.HeldDown || s.isActing(in.Now) || !s.exhausted(in.Now, p) {
		return nil, nil
	}
	var looping bool
	switch c.State {
	case observed.StateRestarting:
		looping = true // the engine waits out its backoff before the next start
	case observed.StateExited, observed.StateDead:
		looping = s.dieSeen() && s.EngineRestarts
	case observed.StateRunning:
		looping = s.OverBudget
	}
	if !looping {
		return nil, nil
	}
	used := s.used(in.Now, p)
	return &plan.Operation{
			Type: plan.OpStopContainer, ResourceID: plan.ReplicaID(in.Service, c.Number),
			Cause:   fmt.Sprintf("%s; %d of %d restarts used: the engine's own restart loop is ended", s.LastExit, used, p.MaxAttempts),
			Service: in.Service, Container: c.Name, ContainerID: c.ID, Number: c.Number, StopTimeout: svc.StopGracePeriod,
		}, report(record.RestartBudgetExhausted, c, s.spentAt(),
			fmt.Sprintf("%s; %d of %d restarts used: stopped, the engine restarts it no more; left down", s.LastExit, used, p.MaxAttempts))
}

// engineLoop takes the last restart of a budget from the engine: once a
// replica the engine restarts by itself has one restart left, its own
// restart policy is turned off, so that the engine's next restart is the
// last it makes (one already due still happens) or the reconciler makes it,
// and the crash after it is left down. A stop racing the engine's restart
// cannot promise that: the engine restarts about 800 ms after the fourth
// crash, and a loaded daemon was seen to stop it later, one start too many.
// The compose file's policy comes back once the budget frees.
func (r *Restarts) engineLoop(in reconciler.Review, svc *desired.Service, c observed.Container) *plan.Operation {
	p := svc.Policy.Restart
	if p.MaxAttempts <= 0 || !engineRestarts(p, 1) {
		return nil
	}
	s := r.view(in.Service, c.Number, c.ID)
	last := s.used(in.Now, p) >= p.MaxAttempts-1
	op := plan.Operation{Type: plan.OpSetRestartPolicy, ResourceID: plan.ReplicaID(in.Service, c.Number),
		Service: in.Service, Container: c.Name, ContainerID: c.ID, Number: c.Number}
	switch {
	case !s.EngineRestartsOff && last:
		op.RestartPolicy = string(desired.RestartNo)
		op.Cause = fmt.Sprintf("%d of %d restarts used: the last is the reconciler's to make or the engine's already due, and the crash after it is left down", s.used(in.Now, p), p.MaxAttempts)
		return &op
	case s.EngineRestartsOff && !last:
		op.RestartPolicy, op.RestartRetries = string(p.Mode), p.EngineRetries
		op.Cause = "its restart budget is free again: the compose file's restart policy"
		return &op
	}
	return nil
}

// removedByUser reports the replicas of the service a person stopped and
// then removed (absentRemoved): as many creations are held.
func (r *Restarts) removedByUser(in reconciler.Review, svc *desired.Service) []reconciler.Report {
	var out []reconciler.Report
	for _, s := range r.absentRemoved(svc, in.Snapshot.ByService()) {
		out = append(out, reconciler.Report{Reason: record.RemovedByUser, Container: plan.ContainerName(in.Desired, in.Service, s.Number), Occurrence: s.RemovedHash,
			Message: "stopped, then removed (docker compose down, or stop and rm): left absent until it is created again or its definition changes"})
	}
	return out
}

// absentRemoved are the slots of the service's replicas a person stopped
// and then removed, absent now, while the definition is the one they had;
// by number. Called with mu held.
func (r *Restarts) absentRemoved(svc *desired.Service, byService map[string][]observed.Container) []*Slot {
	present := map[int]bool{}
	for _, c := range byService[svc.Name] {
		present[c.Number] = true
	}
	hash := ""
	var out []*Slot
	for _, k := range slices.Sorted(maps.Keys(r.slots)) {
		s := r.slots[k]
		if s.Service != svc.Name || !s.RemovedByUser || present[s.Number] {
			continue
		}
		if hash == "" {
			hash = plan.ExpectedHash(svc.Config, byService)
		}
		if s.RemovedHash == "" || s.RemovedHash == hash { // a new definition: the removal no longer holds
			out = append(out, s)
		}
	}
	return out
}

// mayStart decides for an exited container.
func (r *Restarts) mayStart(in reconciler.Review, p desired.RestartPolicy, c observed.Container) verdict {
	s := r.view(in.Service, c.Number, c.ID)
	now := in.Now
	switch {
	case r.upAtStart[c.ID]:
		return allow() // found stopped by a one-shot run: up brings it up
	case s.StoppedByUser:
		return hold(0, report(record.StoppedByUser, c, s.StoppedAt.String(),
			"stopped gracefully (docker stop): left down until it is started or its definition changes"))
	case !s.dieSeen():
		// The list shows an exit whose `die` has not been read: either the
		// event is still on its way (the list can be ahead of the stream),
		// so wait for it, or the container exited while nobody watched
		// (it was down at the last relist, or the wait ran out).
		if !r.baseline[c.ID] {
			first, ok := r.awaiting[c.ID]
			if !ok {
				first = now
			}
			if now.Sub(first) < EventWait {
				return hold(eventPoll, nil)
			}
		}
		// The cause is unknown. Mirror the engine at its own start-up,
		// which restarts only `always`.
		if p.Mode == desired.RestartAlways {
			return allow()
		}
		return hold(0, report(record.NotRestarted, c, "unknown",
			fmt.Sprintf("exited (code %d) before reconcile watched it; restart: %s restarts such containers only when the policy is always", c.ExitCode, p.Mode)))
	case !s.pendingDie.IsZero() && now.Sub(s.pendingDie) < r.StopGrace:
		return hold(r.StopGrace-now.Sub(s.pendingDie), nil)
	case p.Mode == desired.RestartNo:
		return hold(0, report(record.NotRestarted, c, s.LastExitAt.String(), fmt.Sprintf("%s; restart policy is \"no\"", s.LastExit)))
	case p.Mode == desired.RestartOnFailure && c.ExitCode == 0:
		return hold(0, nil)
	}
	return r.budgeted(&s, now, s.NextAttempt, p, c, "restarting after "+s.LastExit)
}

// mayRestartUnhealthy decides for a running container gone unhealthy: its
// backoff runs from when it turned unhealthy.
func (r *Restarts) mayRestartUnhealthy(in reconciler.Review, p desired.RestartPolicy, c observed.Container) verdict {
	if !p.OnUnhealthy {
		return hold(0, report(record.UnhealthyNotRestarted, c, "", "unhealthy; restart on unhealthy is off for this service"))
	}
	if k, ok := r.kills[c.ID]; ok && k.signal != 9 && in.Now.Sub(k.at) < in.Desired.Services[in.Service].StopGracePeriod+r.StopGrace {
		// a polite kill signal without its die yet: someone is stopping it
		// (docker stop), and a stopping process fails its healthcheck
		return hold(r.StopGrace, nil)
	}
	s := r.view(in.Service, c.Number, c.ID)
	due := in.Now
	if !s.UnhealthyAt.IsZero() && !s.UnhealthyAt.Before(s.StartedAt) {
		due = s.UnhealthyAt.Add(backoff(s.used(in.Now, p), p))
	}
	return r.budgeted(&s, in.Now, due, p, c, "restarting an unhealthy container")
}

// budgeted holds a restart when the budget is spent or backoff is owed.
func (r *Restarts) budgeted(s *Slot, now, due time.Time, p desired.RestartPolicy, c observed.Container, why string) verdict {
	if used := s.used(now, p); p.MaxAttempts > 0 && used >= p.MaxAttempts {
		return hold(0, report(record.RestartBudgetExhausted, c, s.spentAt(),
			fmt.Sprintf("%s; %d of %d restarts used: left down", s.LastExit, used, p.MaxAttempts)))
	}
	if now.Before(due) {
		wait := due.Sub(now)
		return hold(wait, report(record.BackOff, c, due.String(), fmt.Sprintf("%s in %s (backoff)", why, wait.Round(time.Millisecond))))
	}
	return allow()
}

// cascade adds restarts of a service's running containers once a
// `restart: true` dependency that restarted meets its condition again.
func (r *Restarts) cascade(in reconciler.Review, svc *desired.Service, dec *reconciler.Decision) {
	cs, ok := r.cascades[in.Service]
	if !ok {
		return
	}
	byService := in.Snapshot.ByService()
	for _, dep := range svc.DependsOn {
		if dep.Service != cs.dependency {
			continue
		}
		depSvc := in.Desired.Services[dep.Service]
		if depSvc == nil {
			break
		}
		st, why := plan.CheckReadiness(dep.Condition, depSvc, byService[dep.Service], r.leftDown(depSvc, byService, in.Now))
		if st == plan.ConditionMet && dep.Condition == "service_healthy" && !r.healthyAfter(dep.Service, byService[dep.Service], cs.at) {
			st, why = plan.ConditionWaiting, "health from before its restart counts as starting"
		}
		if st != plan.ConditionMet {
			dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.DependencyNotReady, Occurrence: "cascade|" + cs.at.String(),
				Message: fmt.Sprintf("waiting for %s to be %s again (%s) before restarting", dep.Service, plan.ConditionWords(dep.Condition), why)})
			dec.Later(cascadeRetry)
			return
		}
	}
	for _, c := range byService[in.Service] {
		if c.State != observed.StateRunning || r.cascaded[c.ID].Equal(cs.at) {
			continue
		}
		if started, ok := r.started[c.ID]; ok && started.After(cs.at) {
			continue // started after the dependency: nothing stale to restart
		}
		dec.Add = append(dec.Add, plan.Operation{
			Type: plan.OpRestartContainer, ResourceID: plan.ReplicaID(in.Service, c.Number),
			Cause: "dependency " + cs.dependency + " restarted (depends_on restart: true)", Service: in.Service,
			Container: c.Name, ContainerID: c.ID, Number: c.Number, StopTimeout: svc.StopGracePeriod,
			Payload: cascadeRestart{dependency: cs.dependency},
		})
	}
}

func (r *Restarts) healthyAfter(service string, containers []observed.Container, at time.Time) bool {
	for _, c := range containers {
		s := r.slots[slotKey(service, c.Number)]
		if s != nil && s.ContainerID == c.ID && s.HealthyAt.After(at) {
			return true
		}
	}
	return false
}
