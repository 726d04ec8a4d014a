package swarmloop

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/swarmspec"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
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

// TestReplacementsCascade: a dependency's task replaced by one of the
// same spec (Swarm restarted it, or moved it off a lost node) marks its
// restart: true dependents, and only them; a task replaced by a new spec
// (an update) does not.
func TestReplacementsCascade(t *testing.T) {
	stack := &swarmspec.Stack{Namespace: convert.NewNamespace("p"), Order: []string{"db", "api", "web"},
		DependsOn: map[string][]desired.Dependency{
			"api": {{Service: "db", Condition: "service_healthy", Restart: true}},
			"web": {{Service: "db", Condition: "service_healthy"}},
		}}
	t0 := time.Unix(1000, 0)
	mk := func(id string, at int, desiredState, state swarm.TaskState, env ...string) swarm.Task {
		tk := task(1, "n1", desiredState, state)
		tk.ID, tk.CreatedAt = id, t0.Add(time.Duration(at)*time.Second)
		tk.Spec = swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "img:1", Env: env}}
		return tk
	}
	look := func(tasks ...swarm.Task) *swarmstate.Snapshot {
		snap := snapWith()
		snap.Nodes = map[string]swarm.Node{"n1": {Status: swarm.NodeStatus{State: swarm.NodeStateReady}}}
		snap.Tasks["db"] = tasks
		return snap
	}
	t1 := mk("t1", 0, swarm.TaskStateRunning, swarm.TaskStateRunning)
	t1died := mk("t1", 0, swarm.TaskStateShutdown, swarm.TaskStateFailed)
	t1stopped := mk("t1", 0, swarm.TaskStateShutdown, swarm.TaskStateShutdown)
	t2 := mk("t2", 10, swarm.TaskStateRunning, swarm.TaskStateStarting)
	for _, tc := range []struct {
		name    string
		looks   []*swarmstate.Snapshot
		cascade string
	}{
		{"first look", []*swarmstate.Snapshot{look(t1died, t2)}, ""},
		{"the same task", []*swarmstate.Snapshot{look(t1), look(t1)}, ""},
		{"restarted by Swarm, seen at once", []*swarmstate.Snapshot{look(t1), look(t1died, t2)}, "db"},
		{"restarted by Swarm, seen after its restart delay", []*swarmstate.Snapshot{look(t1), look(t1died), look(t1died, t2)}, "db"},
		{"stopped by Swarm (a scale down) and a task later", []*swarmstate.Snapshot{look(t1), look(t1stopped), look(t1stopped, t2)}, ""},
		{"replaced by an update", []*swarmstate.Snapshot{look(t1), look(t1died, mk("t2", 10, swarm.TaskStateRunning, swarm.TaskStateStarting, "V=2"))}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Controller{}
			c.SetStack(stack)
			for _, snap := range tc.looks {
				c.noticeReplacements(stack, snap)
			}
			if got := c.memory("api").Cascade; got != tc.cascade {
				t.Errorf("api (restart: true) cascade %q, want %q", got, tc.cascade)
			}
			if got := c.memory("web").Cascade; got != "" {
				t.Errorf("web (no restart: true) cascade %q", got)
			}
		})
	}
}

// TestSpent: a slot whose last task ended by itself and has no successor,
// under a restart_policy with max_attempts, has its budget spent; a slot
// held ready through a restart delay, one shut down by Swarm, or a policy
// without a bound is not.
func TestSpent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	mk := func(slot, at int, desiredState, state swarm.TaskState) swarm.Task {
		tk := task(slot, "n1", desiredState, state)
		tk.ID, tk.CreatedAt = fmt.Sprintf("t%d-%d", slot, at), t0.Add(time.Duration(at)*time.Second)
		return tk
	}
	bounded := stored(spec("api"))
	bounded.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(2)}
	bounded.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: "on-failure", MaxAttempts: u64(2)}
	unbounded := stored(spec("api"))
	for _, tc := range []struct {
		name  string
		spec  swarm.ServiceSpec
		tasks []swarm.Task
		want  []int
	}{
		{"slot 2 spent", bounded, []swarm.Task{
			mk(1, 0, swarm.TaskStateRunning, swarm.TaskStateRunning),
			mk(2, 0, swarm.TaskStateShutdown, swarm.TaskStateFailed), mk(2, 5, swarm.TaskStateShutdown, swarm.TaskStateFailed),
		}, []int{2}},
		{"held ready through a restart delay", bounded, []swarm.Task{
			mk(1, 0, swarm.TaskStateRunning, swarm.TaskStateRunning),
			mk(2, 0, swarm.TaskStateShutdown, swarm.TaskStateFailed), mk(2, 5, swarm.TaskStateReady, swarm.TaskStatePending),
		}, nil},
		{"shut down by Swarm", bounded, []swarm.Task{
			mk(1, 0, swarm.TaskStateRunning, swarm.TaskStateRunning), mk(2, 0, swarm.TaskStateShutdown, swarm.TaskStateShutdown),
		}, nil},
		{"no max_attempts", unbounded, []swarm.Task{mk(1, 0, swarm.TaskStateShutdown, swarm.TaskStateFailed)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapWith(running(tc.spec, 1, 2))
			snap.Tasks["api"] = tc.tasks
			var got []int
			for _, s := range Spent(snap, "api") {
				got = append(got, s.Slot)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("spent slots %v, want %v", got, tc.want)
			}
			if ok, failed, why := Converged(Step{Service: "api"}, snap); len(tc.want) > 0 && (ok || !failed || !strings.Contains(why, "RestartBudgetExhausted")) {
				t.Errorf("converged %v, failed %v: %s", ok, failed, why)
			}
		})
	}
}
