package plan

import (
	"fmt"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
)

// ConditionState says whether a dependency meets a depends_on condition.
type ConditionState int

const (
	ConditionWaiting ConditionState = iota
	ConditionMet
	// ConditionFailed means the condition cannot be met without a change:
	// an unhealthy container, a one-shot that failed, a check that is missing.
	ConditionFailed
)

// LeftDown are the replicas of one service that a policy leaves down on
// purpose: containers by ID (with the reason), and replicas a person removed
// that stay absent.
type LeftDown struct {
	Containers map[string]string
	Absent     int
}

// Merge adds what another policy leaves down.
func (l LeftDown) Merge(o LeftDown) LeftDown {
	out := LeftDown{Containers: map[string]string{}, Absent: l.Absent + o.Absent}
	for k, v := range l.Containers {
		out.Containers[k] = v
	}
	for k, v := range o.Containers {
		out.Containers[k] = v
	}
	return out
}

// Empty reports whether nothing is left down.
func (l LeftDown) Empty() bool { return len(l.Containers) == 0 && l.Absent == 0 }

// CheckReadiness is CheckCondition with the replicas left down on purpose
// set aside: they neither fail the condition nor count towards it, so one
// tired replica does not hold every dependent down. The condition still
// needs at least one replica meeting it; a dependency whose every replica
// is left down holds its dependents, as compose's up would.
func CheckReadiness(condition string, dep *desired.Service, containers []observed.Container, left LeftDown) (ConditionState, string) {
	if left.Empty() || dep.Replicas == 0 {
		return CheckCondition(condition, dep, containers)
	}
	kept := make([]observed.Container, 0, len(containers))
	var names []string
	for _, c := range containers {
		if _, down := left.Containers[c.ID]; down {
			names = append(names, c.Name)
			continue
		}
		kept = append(kept, c)
	}
	excused := len(names) + left.Absent
	if excused == 0 {
		return CheckCondition(condition, dep, containers)
	}
	if excused >= dep.Replicas || len(kept) == 0 {
		st, why := CheckCondition(condition, dep, containers)
		if st == ConditionMet {
			return st, why
		}
		return ConditionWaiting, "every replica is left down (" + why + ")"
	}
	narrowed := *dep
	narrowed.Replicas = dep.Replicas - excused
	st, why := CheckCondition(condition, &narrowed, kept)
	if st == ConditionMet && len(names) > 0 {
		why += " (" + strings.Join(names, ", ") + " left down)"
	}
	return st, why
}

// CheckCondition evaluates a depends_on condition on the observed containers
// of the dependency, with compose's meaning of each condition, and says why
// when it is not met.
func CheckCondition(condition string, dep *desired.Service, containers []observed.Container) (ConditionState, string) {
	if dep.Replicas == 0 {
		return ConditionMet, "scaled to zero"
	}
	if len(containers) == 0 {
		return ConditionWaiting, "no container yet"
	}
	switch condition {
	case types.ServiceConditionCompletedSuccessfully:
		done := 0
		for _, c := range containers {
			switch {
			case c.State == observed.StateExited && c.ExitCode == 0:
				done++
			case c.State == observed.StateExited || c.State == observed.StateDead:
				return ConditionFailed, fmt.Sprintf("%s exited with code %d", c.Name, c.ExitCode)
			}
		}
		if done >= dep.Replicas {
			return ConditionMet, "completed successfully"
		}
		return ConditionWaiting, "not completed yet"
	case types.ServiceConditionHealthy:
		healthy := 0
		for _, c := range containers {
			switch {
			case c.State == observed.StateRunning && c.Health == observed.HealthHealthy:
				healthy++
			case c.State == observed.StateRunning && c.Health == observed.HealthUnhealthy:
				return ConditionFailed, c.Name + " is unhealthy"
			case c.State == observed.StateRunning && c.Health == observed.HealthNone:
				return ConditionFailed, c.Name + " has no healthcheck"
			case c.State == observed.StateExited || c.State == observed.StateDead:
				return ConditionFailed, fmt.Sprintf("%s exited with code %d", c.Name, c.ExitCode)
			}
		}
		if healthy >= dep.Replicas {
			return ConditionMet, "healthy"
		}
		return ConditionWaiting, fmt.Sprintf("%d of %d healthy", healthy, dep.Replicas)
	default: // service_started
		started := 0
		for _, c := range containers {
			switch c.State {
			case observed.StateRunning, observed.StateRestarting, observed.StateExited:
				started++
			}
		}
		if started >= dep.Replicas {
			return ConditionMet, "started"
		}
		return ConditionWaiting, fmt.Sprintf("%d of %d started", started, dep.Replicas)
	}
}

// completed reports whether c is a one-shot container that has done its job:
// it exited with code 0 and its policy does not ask for it to run again.
func completed(s *desired.Service, c observed.Container) bool {
	if c.State != observed.StateExited || c.ExitCode != 0 {
		return false
	}
	switch s.Policy.Restart.Mode {
	case desired.RestartNo, desired.RestartOnFailure:
		return true
	}
	return false
}

// ConditionWords says a depends_on condition in words: "completed
// successfully" for service_completed_successfully.
func ConditionWords(condition string) string {
	return strings.ReplaceAll(strings.TrimPrefix(condition, "service_"), "_", " ")
}
