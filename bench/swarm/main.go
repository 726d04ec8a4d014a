// Command swarm times a 10-service stack with dependencies on a swarm
// (scripts/swarm-cluster.sh up: a manager and two workers on this
// machine): `reconcile --swarm --once` against `docker stack deploy`
// followed by polling until every service's tasks run (healthy: every
// service has a healthcheck), alternating, in the same run; then the
// daemon's idle cost on the deployed stack.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
	"github.com/reconcile-dev/reconcile/internal/engine"
)

// stack is v3 as docker stack deploy takes it: depends_on as a list (which
// stack deploy ignores and reconcile orders by), dnsrr endpoints (this
// kernel has no IPVS), a healthcheck on every service.
const stack = `version: "3.9"
x-svc: &svc
  image: reconcile-testapp:latest
  healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 10}
services:
  db: {<<: *svc, deploy: {endpoint_mode: dnsrr}, environment: {START_DELAY: 2s}}
  cache: {<<: *svc, deploy: {endpoint_mode: dnsrr}}
  auth: {<<: *svc, depends_on: [db], deploy: {endpoint_mode: dnsrr, replicas: 2}}
  orders: {<<: *svc, depends_on: [db, cache], deploy: {endpoint_mode: dnsrr, replicas: 2}}
  catalog: {<<: *svc, depends_on: [db, cache], deploy: {endpoint_mode: dnsrr, replicas: 2}}
  search: {<<: *svc, depends_on: [catalog], deploy: {endpoint_mode: dnsrr}}
  worker: {<<: *svc, depends_on: [orders], deploy: {endpoint_mode: dnsrr, replicas: 2}}
  api: {<<: *svc, depends_on: [auth, orders, catalog], deploy: {endpoint_mode: dnsrr, replicas: 3}}
  web: {<<: *svc, depends_on: [api, search], deploy: {endpoint_mode: dnsrr, replicas: 2}}
  edge: {<<: *svc, depends_on: [web], deploy: {endpoint_mode: dnsrr}}
`

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	rounds := flag.Int("rounds", 3, "deploys of each tool (0: the idle cost alone)")
	idle := flag.Duration("idle", time.Minute, "how long the daemon's idle cost is measured")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		benchkit.Exit(err)
	}
	benchkit.Exit(run(abs, *rounds, *idle))
}

func run(bin string, rounds int, idle time.Duration) error {
	ctx := context.Background()
	eng, err := engine.Connect(ctx)
	if err != nil {
		return err
	}
	nodes, err := eng.Client.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return fmt.Errorf("the engine is no swarm manager (scripts/swarm-cluster.sh up): %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-swarm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(stack), 0o644); err != nil {
		return err
	}
	fmt.Printf("a 10-service stack (17 tasks, every one healthchecked, dependencies 4 deep) on %d nodes\n", len(nodes.Items))
	var rec, dep []time.Duration
	for i := range rounds {
		name := fmt.Sprintf("bsr%d", i)
		start := time.Now()
		out, err := exec.Command(bin, "--swarm", "--once", "-f", file, "-p", name, "--timeout", "10m", "--state-dir", dir+"/state").CombinedOutput()
		if err != nil {
			return fmt.Errorf("reconcile --swarm --once: %w\n%s", err, out)
		}
		rec = append(rec, time.Since(start))
		if err := remove(ctx, eng, name); err != nil {
			return err
		}
		name = fmt.Sprintf("bsd%d", i)
		start = time.Now()
		if out, err := exec.Command("docker", "stack", "deploy", "--resolve-image", "never", "-c", file, name).CombinedOutput(); err != nil {
			return fmt.Errorf("docker stack deploy: %w\n%s", err, out)
		}
		if err := untilRunning(ctx, eng, name, 10*time.Minute); err != nil {
			return err
		}
		dep = append(dep, time.Since(start))
		if err := remove(ctx, eng, name); err != nil {
			return err
		}
		fmt.Printf("round %d: reconcile --swarm --once %.1f s, docker stack deploy + poll %.1f s\n", i+1, rec[i].Seconds(), dep[i].Seconds())
	}
	if rounds > 0 {
		benchkit.Report("reconcile --swarm --once, to every task running healthy", rec)
		benchkit.Report("docker stack deploy, then polled until every task runs healthy", dep)
		fmt.Printf("ratio of the medians: %.2f\n", benchkit.Pct(rec, 50).Seconds()/benchkit.Pct(dep, 50).Seconds())
	}

	// the daemon on a deployed stack, idle
	name := "bsidle"
	if out, err := exec.Command(bin, "--swarm", "--once", "-f", file, "-p", name, "--timeout", "10m", "--state-dir", dir+"/state").CombinedOutput(); err != nil {
		return fmt.Errorf("deploying for the idle measure: %w\n%s", err, out)
	}
	defer remove(ctx, eng, name)
	d := exec.Command(bin, "--swarm", "-f", file, "-p", name, "--state-dir", dir+"/state", "--log-format", "json")
	if err := d.Start(); err != nil {
		return err
	}
	defer func() { _ = d.Process.Kill(); _ = d.Wait() }()
	time.Sleep(5 * time.Second) // past its first look at every service
	before, err := benchkit.CPUSeconds(d.Process.Pid)
	if err != nil {
		return err
	}
	time.Sleep(idle)
	after, err := benchkit.CPUSeconds(d.Process.Pid)
	if err != nil {
		return err
	}
	rss, err := benchkit.ProcStatus(d.Process.Pid, "VmRSS:")
	if err != nil {
		return err
	}
	fmt.Printf("daemon idle on the stack for %s: %.2f %% of a core, RSS %.1f MiB\n", idle, 100*(after-before)/idle.Seconds(), float64(rss)/1024)
	return nil
}

// untilRunning polls until every service of the stack runs all its tasks.
func untilRunning(ctx context.Context, eng *engine.Engine, name string, timeout time.Duration) error {
	f := make(client.Filters).Add("label", convert.LabelNamespace+"="+name)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		l, err := eng.Client.ServiceList(ctx, client.ServiceListOptions{Filters: f, Status: true})
		if err != nil {
			return err
		}
		done := len(l.Items) == 10
		for _, s := range l.Items {
			if s.ServiceStatus == nil || s.ServiceStatus.RunningTasks < s.ServiceStatus.DesiredTasks || s.ServiceStatus.DesiredTasks == 0 {
				done = false
			}
		}
		if done {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("stack %s not running within %s", name, timeout)
}

// remove is docker stack rm, waited for until the stack's containers are
// gone from the manager.
func remove(ctx context.Context, eng *engine.Engine, name string) error {
	if out, err := exec.Command("docker", "stack", "rm", name).CombinedOutput(); err != nil {
		return fmt.Errorf("docker stack rm: %w\n%s", err, out)
	}
	f := make(client.Filters).Add("label", convert.LabelNamespace+"="+name)
	for range 600 {
		l, err := eng.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		n, nerr := eng.Client.NetworkList(ctx, client.NetworkListOptions{Filters: f})
		if err == nil && nerr == nil && len(l.Items) == 0 && len(n.Items) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("stack %s not removed: %s", name, strings.TrimSpace(name))
}
