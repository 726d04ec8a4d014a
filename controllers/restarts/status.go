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
