//go:build cluster

package main

// The multi-node tests: a manager (the host's engine) and two workers,
// each a dockerd in its own network namespace, made by
// scripts/swarm-cluster.sh up (make test-cluster runs them between up and
// down).

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

func clusterDir() string {
	if d := os.Getenv("RECONCILE_CLUSTER_DIR"); d != "" {
		return d
	}
	return "/tmp/reconcile-cluster"
}

// requireCluster fails unless the engine manages a swarm of three ready,
// active nodes. The test that kills a worker's engine runs last.
func requireCluster(t *testing.T) {
	t.Helper()
	e := enginetest.Require(t)
	l, err := e.Client.NodeList(context.Background(), client.NodeListOptions{})
	ready := 0
	for _, n := range l.Items {
		if n.Status.State == swarm.NodeStateReady && n.Spec.Availability == swarm.NodeAvailabilityActive {
			ready++
		}
	}
	if err != nil || ready < 3 {
		t.Fatalf("no cluster of three ready, active nodes (run scripts/swarm-cluster.sh up, or make test-cluster): %d of %d, %v", ready, len(l.Items), err)
	}
}

// placement is where service's running tasks are, by node hostname.
func placement(t *testing.T, s *enginetest.Stack, service string) map[string]int {
	t.Helper()
	nodes, err := s.Engine.Client.NodeList(context.Background(), client.NodeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host := map[string]string{}
	for _, n := range nodes.Items {
		host[n.ID] = n.Description.Hostname
	}
	out := map[string]int{}
	for _, task := range s.Tasks(service) {
		if task.DesiredState == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateRunning {
			out[host[task.NodeID]]++
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// execOnNode runs docker exec on the node that runs a task: the manager's
// engine is this machine's, a worker's answers on its own socket.
func execOnNode(t *testing.T, s *enginetest.Stack, task swarm.Task, args ...string) string {
	t.Helper()
	n, err := s.Engine.Client.NodeInspect(context.Background(), task.NodeID, client.NodeInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := []string{"exec", task.Status.ContainerStatus.ContainerID}
	if host := n.Node.Description.Hostname; strings.HasPrefix(host, "worker") {
		cmd = append([]string{"-H", "unix://" + filepath.Join(clusterDir(), "w"+strings.TrimPrefix(host, "worker"), "docker.sock")}, cmd...)
	}
	out, err := exec.Command("docker", append(cmd, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// TestClusterHandUpdateRotationAndParity: on three nodes, one api task on
// each, docker stack deploy of the same v3 file after reconcile changes no
// spec and replaces no task; under the daemon a hand service update is put
// back, and an edited config is rotated: every task, on every node, reads
// the new content.
func TestClusterHandUpdateRotationAndParity(t *testing.T) {
	requireCluster(t)
	s := enginetest.NewStack(t, `version: "3.9"
services:
  api:
    image: {{.Image}}
    environment: {WATCH_FILE: /etc/app.conf}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    configs: [{source: app, target: /etc/app.conf}]
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
      placement: {max_replicas_per_node: 1}
      update_config: {parallelism: 1, order: stop-first}
configs:
  app: {file: ./app.conf}
`)
	s.Write("app.conf", "workers=2\n")
	if r := swarmOnce(t, s, "--timeout", "4m"); r.Code != 0 {
		t.Fatalf("reconcile --swarm --once on the cluster: %s", r)
	}
	if p := placement(t, s, "api"); len(p) != 3 {
		t.Fatalf("the api runs on %v, want one task on each of three nodes", p)
	}
	spec, _ := json.Marshal(s.Service("api").Spec)
	tasks := taskIDs(t, s, "api")
	docker(t, "stack", "deploy", "--resolve-image", "never", "-c", s.File, s.Name)
	if after, _ := json.Marshal(s.Service("api").Spec); string(after) != string(spec) {
		t.Errorf("docker stack deploy changed the spec:\nreconcile's: %s\nafter:       %s", spec, after)
	}
	if d := reconcile(t, s.Dir, nil, "--swarm", "diff", "-f", s.File, "-p", s.Name); d.Code != 0 {
		t.Errorf("diff after docker stack deploy: %s", d)
	}
	if got := taskIDs(t, s, "api"); !slices.Equal(got, tasks) {
		t.Errorf("docker stack deploy replaced tasks: %v, then %v", tasks, got)
	}

	d := swarmDaemon(t, s, "--log-format", "text")
	docker(t, "service", "update", "-d", "--env-add", "HAND=1", s.Name+"_api")
	d.WaitFor("TaskTemplate.ContainerSpec.Env", 30*time.Second)
	waitFor(t, "the hand env put back, three tasks running", 3*time.Minute, func() bool {
		env := s.Service("api").Spec.TaskTemplate.ContainerSpec.Env
		return !slices.Contains(env, "HAND=1") && len(placement(t, s, "api")) == 3 && runningOf(t, s, "api") == 3
	})

	s.Write("app.conf", "workers=8\n")
	d.WaitFor("reason=ObjectRemoved", 3*time.Minute)
	waitFor(t, "three tasks on the new config", 3*time.Minute, func() bool {
		ref := s.Service("api").Spec.TaskTemplate.ContainerSpec.Configs[0]
		n := 0
		for _, task := range s.Tasks("api") {
			if task.DesiredState == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateRunning &&
				task.Spec.ContainerSpec.Configs[0].ConfigID == ref.ConfigID {
				n++
			}
		}
		return strings.HasPrefix(ref.ConfigName, s.Name+"_app-") && n == 3
	})
	for _, task := range s.Tasks("api") {
		if task.DesiredState != swarm.TaskStateRunning || task.Status.ContainerStatus == nil {
			continue
		}
		if got := execOnNode(t, s, task, "/testapp", "get", "http://127.0.0.1:8080/config"); !strings.Contains(got, "workers=8") {
			t.Errorf("task %s reads %q", task.ID, got)
		}
	}
}

// TestClusterDeployDrainAndNodeLoss: on three nodes, the stack is deployed
// in dependency order with the api spread over the nodes; a drained worker
// and a worker whose engine is killed are reported by the daemon with the
// tasks Swarm moved, and the stack keeps its replica counts on the nodes
// left, dependents still ordered.
func TestClusterDeployDrainAndNodeLoss(t *testing.T) {
	requireCluster(t)
	s := enginetest.NewStack(t, strings.Replace(swarmStack, "deploy: {replicas: 2, endpoint_mode: dnsrr}",
		"deploy: {replicas: 6, endpoint_mode: dnsrr, placement: {max_replicas_per_node: 3}}", 1))
	r := swarmOnce(t, s, "--timeout", "4m")
	if r.Code != 0 {
		t.Fatalf("reconcile --swarm --once on the cluster: %s", r)
	}
	spread := placement(t, s, "api")
	if len(spread) < 2 {
		t.Errorf("the api runs on %v: not spread over the nodes", spread)
	}
	if created, migrated := s.Service("api").CreatedAt, firstAt(t, s, "migrate", swarm.TaskStateComplete); created.Before(migrated) {
		t.Errorf("api created at %s, before migrate completed at %s", created, migrated)
	}

	d := swarmDaemon(t, s, "--log-format", "text")

	docker(t, "node", "update", "--availability", "drain", "worker2")
	t.Cleanup(func() { _ = exec.Command("docker", "node", "update", "--availability", "active", "worker2").Run() })
	d.WaitFor("node worker2 is drained", 60*time.Second)
	waitFor(t, "the api's six tasks on the nodes left", 3*time.Minute, func() bool {
		p := placement(t, s, "api")
		return p["worker2"] == 0 && p["vm"]+p["worker1"] == 6
	})

	// worker1's engine killed: Swarm marks the node down after its
	// heartbeats stop, and moves its tasks to the manager
	pid, err := os.ReadFile(filepath.Join(clusterDir(), "w1", "docker.pid"))
	if err != nil {
		t.Fatalf("worker1's pid: %v", err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatalf("killing worker1's engine: %v", err)
	}
	d.WaitFor("node worker1 is down", 2*time.Minute)
	// at most three per node, and one node left: three run (the engine's
	// own count still holds the tasks of the lost node as running)
	waitFor(t, "the api's tasks rescheduled off worker1", 3*time.Minute, func() bool {
		p := placement(t, s, "api")
		return p["vm"] == 3 && p["worker1"] == 0 && p["worker2"] == 0
	})
	out := d.Output()
	for _, want := range []string{"reason=NodeDown", "the stack's tasks now run on"} {
		if !strings.Contains(out, want) {
			t.Errorf("the daemon said nothing of %q:\n%s", want, out)
		}
	}
}
