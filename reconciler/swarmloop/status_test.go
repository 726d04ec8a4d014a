package swarmloop

import (
	"testing"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/swarmspec"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func task(slot int, node string, desiredState, state swarm.TaskState) swarm.Task {
	return swarm.Task{Slot: slot, NodeID: node, DesiredState: desiredState, Status: swarm.TaskStatus{State: state}}
}

// TestStatus: a stack's status in a project's words, tasks as containers
// with their nodes, shut-down tasks left out.
func TestStatus(t *testing.T) {
	stack := &swarmspec.Stack{Namespace: convert.NewNamespace("p"), Order: []string{"db", "api", "web"},
		DependsOn: map[string][]desired.Dependency{"api": {{Service: "db", Condition: "service_healthy", Required: true}}}}
	snap := snapWith(running(stored(spec("db")), 1, 1), running(stored(spec("api")), 1, 2))
	snap.Nodes = map[string]swarm.Node{"n1": {Description: swarm.NodeDescription{Hostname: "manager"}}, "n2": {Description: swarm.NodeDescription{Hostname: "worker-1"}}}
	snap.Tasks["db"] = []swarm.Task{
		task(1, "n2", swarm.TaskStateRunning, swarm.TaskStateRunning),
		task(1, "n1", swarm.TaskStateShutdown, swarm.TaskStateShutdown), // moved off the manager
	}
	failed := task(2, "n2", swarm.TaskStateRunning, swarm.TaskStateStarting)
	snap.Tasks["api"] = []swarm.Task{task(1, "n1", swarm.TaskStateRunning, swarm.TaskStateRunning), failed}
	steps := []Step{{Service: "db"}, {Service: "api", Action: Update, Why: "TaskTemplate.ContainerSpec.Env"}, {Service: "web", Action: Wait, Why: "waiting for api"}}

	st := Status(stack, snap, steps)
	if st.Project != "p" || st.Sync != plan.OutOfSync || st.Health != plan.Missing || len(st.Services) != 3 {
		t.Fatalf("stack: %s %s %s, %d services", st.Project, st.Sync, st.Health, len(st.Services))
	}
	db, api, web := st.Services[0], st.Services[1], st.Services[2]
	if db.Sync != plan.Synced || db.Health != plan.Healthy || db.Desired != 1 || db.Healthy != 1 || len(db.Containers) != 1 || db.Containers[0].Node != "worker-1" || db.Containers[0].Name != "p_db.1" {
		t.Errorf("db: %+v", db)
	}
	if api.Sync != plan.OutOfSync || api.Health != plan.Progressing || api.Reason != "TaskTemplate.ContainerSpec.Env" || api.Running != 1 || api.Desired != 2 || len(api.DependsOn) != 1 {
		t.Errorf("api: %+v", api)
	}
	if len(api.Containers) != 2 || api.Containers[0].State != "running" || api.Containers[1].State != "created" || api.Containers[1].LastExit != "task starting" || api.Containers[1].Node != "worker-1" {
		t.Errorf("api's tasks: %+v", api.Containers)
	}
	if web.Health != plan.Missing || web.Reason != "waiting for api" {
		t.Errorf("web: %+v", web)
	}
}
