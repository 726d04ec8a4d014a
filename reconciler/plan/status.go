package plan

import (
	"fmt"
	"strings"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
)

// Sync and health words, in the style of Argo CD: sync says whether what runs
// matches the file, health whether it works.
const (
	Synced    = "Synced"
	OutOfSync = "OutOfSync"

	Healthy     = "Healthy"
	Progressing = "Progressing"
	Degraded    = "Degraded"
	Missing     = "Missing"
)

// ServiceStatus is where one service stands.
type ServiceStatus struct {
	Service string `json:"service"`
	Desired int    `json:"desired"`
	Running int    `json:"running"`
	Healthy int    `json:"healthy"`
	// Updated counts the replicas that run the desired definition (as
	// Kubernetes' updatedReplicas): below Desired while a change rolls.
	Updated int    `json:"updated"`
	Sync    string `json:"sync"`
	Health  string `json:"health"`
	// Reason is a few words on why the service is not Healthy and Synced.
	Reason string `json:"reason,omitempty"`
	// Restart figures, filled in by the daemon's restart controller (and by
	// status from its state file): the most restarts any replica has used
	// of those allowed (0: unlimited), the earliest next attempt, the
	// latest exit and its cause.
	RestartsUsed    int        `json:"restartsUsed"`
	RestartsAllowed int        `json:"restartsAllowed"`
	NextAttempt     *time.Time `json:"nextAttempt,omitempty"`
	LastExit        string     `json:"lastExit,omitempty"`
	LastExitAt      time.Time  `json:"lastExitAt,omitzero"`
	// ImageUpdate is the digest an image update is rolling out
	// (x-reconcile.image_updates), its verdict awaited.
	ImageUpdate string `json:"imageUpdate,omitempty"`
	// DependsOn is the service's depends_on, for a picture of the project.
	DependsOn  []DependencyStatus `json:"dependsOn"`
	Containers []ContainerStatus  `json:"containers"`
}

// DependencyStatus is one depends_on entry: the service waited for, the
// condition, and whether its restart restarts this one (restart: true).
type DependencyStatus struct {
	Service   string `json:"service"`
	Condition string `json:"condition"`
	Restart   bool   `json:"restart,omitempty"`
	Required  bool   `json:"required"`
}

// ContainerStatus is one container of a service.
type ContainerStatus struct {
	Name     string `json:"name"`
	Number   int    `json:"number"`
	State    string `json:"state"`
	Health   string `json:"health,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	// LastExit explains a stopped container: exit code, OOMKilled, ...
	LastExit     string `json:"lastExit,omitempty"`
	RestartCount *int   `json:"restartCount,omitempty"`
	// RestartsUsed and NextAttempt come from the restart controller.
	RestartsUsed int        `json:"restartsUsed,omitempty"`
	NextAttempt  *time.Time `json:"nextAttempt,omitempty"`
	// Upstreams names the load-balancer upstream blocks whose file lists
	// this container now (from the upstream controller).
	Upstreams []string `json:"upstreams,omitempty"`
	// Node is the node a Swarm task runs on (--swarm: a service's
	// containers are its current tasks); empty on one host.
	Node string `json:"node,omitempty"`
	// LeftDown says why a stopped container is left down on purpose
	// (RestartBudgetExhausted, StoppedByUser): it does not hold dependents
	// back while another replica of its service meets their condition.
	LeftDown string `json:"leftDown,omitempty"`
}

// ProjectStatus is the status of every service, in dependency order.
type ProjectStatus struct {
	Project  string          `json:"project"`
	Sync     string          `json:"sync"`
	Health   string          `json:"health"`
	Services []ServiceStatus `json:"services"`
	// Revision is the git source's commit whose files are in force
	// (--git), 12 hex digits.
	Revision string `json:"revision,omitempty"`
}

// Status summarises desired against observed state, using the drift of a
// Diff of the same inputs.
func Status(d *desired.State, o *observed.Snapshot, res *Result) ProjectStatus {
	ps := ProjectStatus{Project: d.Project.Name, Sync: Synced, Health: Healthy}
	byService := o.ByService()
	worst := map[string]int{Healthy: 0, Progressing: 1, Degraded: 2, Missing: 3}
	for _, name := range d.Order {
		s := d.Services[name]
		st := serviceStatus(s, byService[name], res.ForService(name))
		if st.Sync == OutOfSync {
			ps.Sync = OutOfSync
		}
		if worst[st.Health] > worst[ps.Health] {
			ps.Health = st.Health
		}
		ps.Services = append(ps.Services, st)
	}
	for _, dr := range res.Drift {
		if dr.Service == "" || d.Services[dr.Service] == nil {
			ps.Sync = OutOfSync // networks, volumes, orphans
		}
	}
	return ps
}

func serviceStatus(s *desired.Service, containers []observed.Container, drift []Drift) ServiceStatus {
	st := ServiceStatus{Service: s.Name, Desired: s.Replicas, Sync: Synced, Containers: []ContainerStatus{}, DependsOn: []DependencyStatus{}}
	for _, d := range s.DependsOn {
		st.DependsOn = append(st.DependsOn, DependencyStatus{Service: d.Service, Condition: d.Condition, Restart: d.Restart, Required: d.Required})
	}
	if len(drift) > 0 {
		st.Sync = OutOfSync
	}
	var done, progressing, bad int
	var reasons []string
	obsolete := map[string]bool{}
	for _, d := range drift {
		if d.Kind == DriftConfigDiverged || d.Kind == DriftImageChanged {
			obsolete[d.ContainerID] = true
		}
	}
	for _, c := range containers {
		if !obsolete[c.ID] {
			st.Updated++
		}
		cs := ContainerStatus{Name: c.Name, Number: c.Number, State: c.State, Health: c.Health}
		if c.State == observed.StateExited || c.State == observed.StateRestarting || c.State == observed.StateDead {
			code := c.ExitCode
			cs.ExitCode = &code
			cs.LastExit = lastExit(c)
		}
		if c.Details != nil {
			rc := c.Details.RestartCount
			cs.RestartCount = &rc
		}
		st.Containers = append(st.Containers, cs)

		switch {
		case c.State == observed.StateRunning && (c.Health == observed.HealthHealthy || c.Health == observed.HealthNone):
			st.Running++
			st.Healthy++
		case c.State == observed.StateRunning && c.Health == observed.HealthStarting:
			st.Running++
			progressing++
			reasons = append(reasons, c.Name+" health starting")
		case c.State == observed.StateRunning: // unhealthy
			st.Running++
			bad++
			reasons = append(reasons, c.Name+" unhealthy")
		case completed(s, c):
			done++
		case c.State == observed.StateCreated || c.State == observed.StateRestarting:
			progressing++
			reasons = append(reasons, c.Name+" "+c.State)
		default:
			bad++
			reasons = append(reasons, c.Name+" "+cs.LastExit)
		}
	}
	switch {
	case s.Replicas > 0 && len(containers) == 0:
		st.Health = Missing
		reasons = append(reasons, "no container")
	case bad > 0:
		st.Health = Degraded
	case st.Healthy+done < s.Replicas && progressing == 0:
		st.Health = Degraded
		reasons = append(reasons, fmt.Sprintf("%d of %d replicas up", st.Healthy+done, s.Replicas))
	case progressing > 0 || st.Healthy+done < s.Replicas:
		st.Health = Progressing
	default:
		st.Health = Healthy
		if done > 0 && st.Running == 0 {
			st.Reason = "completed"
		}
	}
	if st.Health != Healthy {
		st.Reason = strings.Join(reasons, "; ")
	}
	if st.Sync == OutOfSync {
		var causes []string
		for _, d := range drift {
			if d.Container != "" && strings.Contains(st.Reason, d.Container) {
				continue // its state already says it
			}
			causes = append(causes, d.Subject()+": "+d.Cause)
		}
		st.Reason = strings.Trim(strings.Join(append([]string{st.Reason}, causes...), "; "), "; ")
	}
	return st
}

// lastExit explains how a container stopped, as precisely as the snapshot
// allows: OOMKilled and the engine's error come from Details.
func lastExit(c observed.Container) string {
	switch {
	case c.Details != nil && c.Details.OOMKilled:
		return fmt.Sprintf("OOMKilled (exit %d)", c.ExitCode)
	case c.Details != nil && c.Details.Error != "":
		return fmt.Sprintf("exited (code %d): %s", c.ExitCode, c.Details.Error)
	case c.ExitCode == 137:
		return "killed (exit 137)"
	case c.State == observed.StateDead:
		return "dead"
	}
	return fmt.Sprintf("exited (code %d)", c.ExitCode)
}

// Converged reports whether every desired container runs (healthy where it
// has a check) or, for one-shot services, completed successfully, and
// nothing is left to do. Drift that is only reported does not count.
func Converged(ps ProjectStatus, res *Result) bool {
	for _, s := range ps.Services {
		if s.Health != Healthy {
			return false
		}
	}
	for _, d := range res.Drift {
		if d.Actionable {
			return false
		}
	}
	return true
}
