package swarmloop

import (
	"fmt"
	"slices"

	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/desired/swarmspec"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Status is where the stack stands, in the words of a project's status, so
// that /status, the dashboard, /metrics and `status -o json` read a stack
// as they read a project on one host: a service's containers are its
// current tasks, each with the node it runs on. Swarm calls a task running
// only once its healthcheck passed, so running tasks are healthy ones. Pure:
// from a snapshot and the steps decided on it.
func Status(stack *swarmspec.Stack, snap *swarmstate.Snapshot, steps []Step) plan.ProjectStatus {
	ps := plan.ProjectStatus{Project: stack.Namespace.Name(), Sync: plan.Synced, Health: plan.Healthy, Services: []plan.ServiceStatus{}}
	worst := map[string]int{plan.Healthy: 0, plan.Progressing: 1, plan.Degraded: 2, plan.Missing: 3}
	for _, step := range steps {
		st := serviceStatus(stack, snap, step)
		if st.Sync == plan.OutOfSync {
			ps.Sync = plan.OutOfSync
		}
		if worst[st.Health] > worst[ps.Health] {
			ps.Health = st.Health
		}
		ps.Services = append(ps.Services, st)
	}
	return ps
}

func serviceStatus(stack *swarmspec.Stack, snap *swarmstate.Snapshot, step Step) plan.ServiceStatus {
	st := plan.ServiceStatus{Service: step.Service, Sync: plan.Synced, DependsOn: []plan.DependencyStatus{}, Containers: []plan.ContainerStatus{}}
	for _, d := range stack.DependsOn[step.Service] {
		st.DependsOn = append(st.DependsOn, plan.DependencyStatus{Service: d.Service, Condition: d.Condition, Restart: d.Restart, Required: d.Required})
	}
	if step.Action != Nothing {
		st.Sync = plan.OutOfSync
	}
	svc, exists := snap.Services[step.Service]
	if !exists {
		st.Health, st.Reason = plan.Missing, "not created yet"
		if step.Why != "" {
			st.Reason = step.Why
		}
		return st
	}
	job := IsJob(svc.Spec)
	if ss := svc.ServiceStatus; ss != nil {
		st.Desired, st.Running = int(ss.DesiredTasks), int(ss.RunningTasks)
		st.Healthy = st.Running
		if job {
			// a job's count is of completions
			st.Healthy = int(ss.CompletedTasks)
			if rj := svc.Spec.Mode.ReplicatedJob; rj != nil && rj.TotalCompletions != nil {
				st.Desired = int(*rj.TotalCompletions)
			}
		}
	}
	if st.Sync == plan.Synced {
		st.Updated = st.Healthy
	}
	for _, t := range snap.Tasks[step.Service] {
		if !current(t, job) {
			continue
		}
		st.Containers = append(st.Containers, taskStatus(stack, step.Service, t, snap))
	}
	slices.SortFunc(st.Containers, func(a, b plan.ContainerStatus) int { return a.Number - b.Number })
	switch ok, failed, why := Converged(step, snap); {
	case ok:
		st.Health = plan.Healthy
	case failed:
		st.Health, st.Reason = plan.Degraded, why
	default:
		st.Health, st.Reason = plan.Progressing, why
	}
	return st
}

// current is a task Swarm means to run now (or, for a job, to complete):
// not one it shut down or replaced.
func current(t swarm.Task, job bool) bool {
	if job {
		return t.DesiredState == swarm.TaskStateComplete || t.DesiredState == swarm.TaskStateRunning
	}
	return t.DesiredState == swarm.TaskStateRunning
}

// taskStatus is one task as a container of the status: its name as the
// engine names its container (stack_service.slot), the state in a
// container's words (the dashboard's marks), and its node.
func taskStatus(stack *swarmspec.Stack, service string, t swarm.Task, snap *swarmstate.Snapshot) plan.ContainerStatus {
	name := stack.Namespace.Scope(service)
	number := t.Slot
	if number == 0 { // a global service's task: one per node
		name += "." + t.NodeID
	} else {
		name += fmt.Sprintf(".%d", t.Slot)
	}
	c := plan.ContainerStatus{Name: name, Number: number, Node: snap.NodeName(t.NodeID)}
	switch t.Status.State {
	case swarm.TaskStateRunning:
		c.State = "running"
	case swarm.TaskStateComplete:
		c.State = "exited"
		zero := 0
		c.ExitCode = &zero
	case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateShutdown, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		c.State = "exited"
		if cs := t.Status.ContainerStatus; cs != nil {
			code := cs.ExitCode
			c.ExitCode = &code
		}
	default: // new, pending, assigned, accepted, preparing, ready, starting
		c.State = "created"
	}
	if c.State != "running" {
		c.LastExit = "task " + string(t.Status.State)
		if t.Status.Err != "" {
			c.LastExit += ": " + t.Status.Err
		}
	}
	return c
}
