package restarts

import (
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Annotate adds restart figures to a status: per container the restarts
// used and allowed, the next attempt and the last exit; a service with a
// spent budget or a user's stop is Degraded with that reason.
func (r *Restarts) Annotate(st *plan.ProjectStatus, d *desired.State, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range st.Services {
		ss := &st.Services[i]
		svc := d.Services[ss.Service]
		if svc == nil {
			continue
		}
		p := svc.Policy.Restart
		ss.RestartsAllowed = p.MaxAttempts
		for j := range ss.Containers {
			cs := &ss.Containers[j]
			s := r.slots[slotKey(ss.Service, cs.Number)]
			if s == nil {
				continue
			}
			used := s.used(now, p)
			running := cs.State == observed.StateRunning
			if running && p.Window == 0 && now.Sub(s.StartedAt) >= p.ResetAfter && (!svc.HasHealthcheck || cs.Health == observed.HealthHealthy) {
				used = 0 // ran long enough: the budget is whole again
			}
			cs.RestartsUsed = used
			ss.RestartsUsed = max(ss.RestartsUsed, used)
			if s.LastExit != "" {
				cs.LastExit = s.LastExit
				if ss.LastExit == "" || s.LastExitAt.After(ss.LastExitAt) {
					ss.LastExit, ss.LastExitAt = s.LastExit, s.LastExitAt
				}
			}
			exhausted := !running && downForBudget(s, used, p)
			if !running {
				cs.LeftDown = string(leftDownWhy(*s, now, p))
			}
			if !running && s.NextAttempt.After(now) && !exhausted && !s.StoppedByUser {
				t := s.NextAttempt
				cs.NextAttempt = &t
				if ss.NextAttempt == nil || t.Before(*ss.NextAttempt) {
					ss.NextAttempt = &t
				}
			}
			switch {
			case exhausted:
				ss.Health, ss.Reason = plan.Degraded, string(record.RestartBudgetExhausted)
			case !running && s.StoppedByUser && ss.Reason != string(record.RestartBudgetExhausted):
				ss.Health, ss.Reason = plan.Degraded, string(record.StoppedByUser)
			}
		}
		if ss.Health == plan.Degraded && st.Health != plan.Missing {
			st.Health = plan.Degraded
		}
	}
}

// downForBudget reports whether a stopped replica is down because its
// budget is spent: held down, or its policy would restart its last exit and
// no restart is left.
func downForBudget(s *Slot, used int, p desired.RestartPolicy) bool {
	if s.HeldDown {
		return true
	}
	if p.MaxAttempts == 0 || used < p.MaxAttempts || s.StoppedByUser || p.Mode == desired.RestartNo {
		return false
	}
	return p.Mode != desired.RestartOnFailure || s.ExitCode != 0
}

// LeftDown tells which replicas of a service the restart policy leaves down
// on purpose: held down with a spent budget, stopped by a person, or
// stopped and removed by a person (absent, while its definition is the one
// it had). They do not hold dependents back while the service's other
// replicas meet the dependents' condition.
func (r *Restarts) LeftDown(d *desired.State, service string, snap *observed.Snapshot, now time.Time) plan.LeftDown {
	svc := d.Services[service]
	if svc == nil {
		return plan.LeftDown{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leftDown(svc, snap.ByService(), now)
}

// leftDown is LeftDown with mu held.
func (r *Restarts) leftDown(svc *desired.Service, byService map[string][]observed.Container, now time.Time) plan.LeftDown {
	service, p := svc.Name, svc.Policy.Restart
	left := plan.LeftDown{Containers: map[string]string{}}
	for _, c := range byService[service] {
		if c.State != observed.StateExited && c.State != observed.StateDead {
			continue
		}
		if why := leftDownWhy(r.view(service, c.Number, c.ID), now, p); why != "" {
			left.Containers[c.ID] = string(why)
		}
	}
	left.Absent = len(r.absentRemoved(svc, byService))
	return left
}

// leftDownWhy is why a stopped replica is left down on purpose, or "".
func leftDownWhy(s Slot, now time.Time, p desired.RestartPolicy) record.Reason {
	switch {
	case s.StoppedByUser:
		return record.StoppedByUser
	case downForBudget(&s, s.used(now, p), p):
		return record.RestartBudgetExhausted
	}
	return ""
}
