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
