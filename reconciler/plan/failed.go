package plan

import (
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
)

// DependencyFailure is a dependent held by a dependency that cannot meet
// its depends_on condition without a change: a container failed it and
// nothing will restart it (a one-shot that exited non-zero under restart
// "no", a replica unhealthy with no unhealthy restart, one with no
// healthcheck for service_healthy). compose's up reports these at once.
type DependencyFailure struct {
	Service, Dependency, Condition, Why string
}

func (f DependencyFailure) Error() string {
	return fmt.Sprintf("its dependency %s cannot become %s: %s, and nothing will restart it", f.Dependency, ConditionWords(f.Condition), f.Why)
}

// FailedDependencies lists, in dependency order, the required dependencies
// of each service that failed for good. Pure: the snapshot and the policies
// decide.
func FailedDependencies(d *desired.State, snap *observed.Snapshot) []DependencyFailure {
	byService := snap.ByService()
	var out []DependencyFailure
	for _, name := range d.Order {
		for _, dep := range d.Services[name].DependsOn {
			ds, ok := d.Services[dep.Service]
			if !ok || !dep.Required || ds.Replicas == 0 {
				continue
			}
			for _, c := range byService[dep.Service] {
				if why := failedForGood(dep.Condition, ds, c); why != "" {
					out = append(out, DependencyFailure{Service: name, Dependency: dep.Service, Condition: dep.Condition, Why: why})
					break
				}
			}
		}
	}
	return out
}

// failedForGood says why c fails condition with no restart to come, or "".
func failedForGood(condition string, s *desired.Service, c observed.Container) string {
	down := c.State == observed.StateExited || c.State == observed.StateDead
	mode := s.Policy.Restart.Mode
	restartsOnExit := mode == desired.RestartAlways || mode == desired.RestartUnlessStopped ||
		mode == desired.RestartOnFailure && c.ExitCode != 0
	switch condition {
	case types.ServiceConditionCompletedSuccessfully:
		if down && c.ExitCode != 0 && !restartsOnExit {
			return fmt.Sprintf("%s exited with code %d", c.Name, c.ExitCode)
		}
	case types.ServiceConditionHealthy:
		switch {
		case down && !restartsOnExit:
			return fmt.Sprintf("%s exited with code %d", c.Name, c.ExitCode)
		case c.State == observed.StateRunning && c.Health == observed.HealthUnhealthy && !s.Policy.Restart.OnUnhealthy:
			return c.Name + " is unhealthy"
		case c.State == observed.StateRunning && c.Health == observed.HealthNone && !s.HasHealthcheck:
			return c.Name + " has no healthcheck"
		}
	}
	return ""
}
