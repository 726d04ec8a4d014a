package main

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// projectNetworks counts the project's networks on the engine.
func projectNetworks(t *testing.T, p *enginetest.Project) int {
	t.Helper()
	nl, err := p.Engine.Client.NetworkList(context.Background(), client.NetworkListOptions{
		Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+p.Name),
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(nl.Items)
}

// holds checks that cond stays true for d (a state nothing may undo).
func holds(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s: no longer so within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestComposeCommandsBesideTheDaemon runs the real compose CLI's commands
// on a project the daemon reconciles: each ends cleanly (exit 0), and the
// daemon then does what the README's table says.
func TestComposeCommandsBesideTheDaemon(t *testing.T) {
	p := enginetest.NewProject(t, daemonStack)
	_, base := startDaemon(t, p, nil)
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"api": 2, "worker": 1}))
	compose := func(args ...string) {
		t.Helper()
		if r := p.Compose(args...); r.Code != 0 {
			t.Fatalf("docker compose %v beside the daemon: %s", args, r)
		}
	}

	// up --scale: compose's create and start are left alone; the file wins after
	compose("up", "-d", "--scale", "api=4")
	eventually(t, 30*time.Second, "back to the file's 2 replicas", converged(p, map[string]int{"api": 2, "worker": 1}))

	// stop and start: the user's stop holds until the start
	compose("stop")
	holds(t, 3*time.Second, "stopped by the user", func() bool { r := running(p); return r["api"] == 0 && r["worker"] == 0 })
	compose("start")
	eventually(t, 30*time.Second, "started again", converged(p, map[string]int{"api": 2, "worker": 1}))

	// restart
	compose("restart")
	eventually(t, 30*time.Second, "running after a restart", converged(p, map[string]int{"api": 2, "worker": 1}))

	// read-only commands
	compose("ps")
	compose("logs", "worker")

	// pause: a paused container is drift
	compose("pause", "worker")
	eventually(t, 30*time.Second, "worker unpaused", func() bool {
		st := p.Inspect(p.IDs()[p.Name+"-worker-1"]).State
		return st.Running && !st.Paused
	})

	// kill: the restart policy decides (here none: "no", so it stays down)
	compose("kill", "worker")
	holds(t, 3*time.Second, "killed, restart: no", func() bool { return running(p)["worker"] == 0 })
	compose("start", "worker")
	eventually(t, 30*time.Second, "worker started", converged(p, map[string]int{"api": 2, "worker": 1}))

	// rm -sf: as down, for that service
	compose("rm", "-sf", "worker")
	holds(t, 3*time.Second, "worker removed by the user", func() bool { _, ok := p.IDs()[p.Name+"-worker-1"]; return !ok })
	compose("up", "-d", "worker")
	eventually(t, 30*time.Second, "worker up again", converged(p, map[string]int{"api": 2, "worker": 1}))

	// down: containers and networks go, and stay gone
	compose("down")
	holds(t, 5*time.Second, "taken down by the user", func() bool {
		return len(p.IDs()) == 0 && projectNetworks(t, p) == 0
	})
	if !hasRecord(records(t, base), "RemovedByUser", "") {
		t.Error("no RemovedByUser record")
	}

	// up again: the daemon keeps what compose made
	compose("up", "-d")
	eventually(t, 30*time.Second, "up again", converged(p, map[string]int{"api": 2, "worker": 1}))
	ids := p.IDs()
	holds(t, 3*time.Second, "compose's containers kept", func() bool { return maps.Equal(ids, p.IDs()) })
}
