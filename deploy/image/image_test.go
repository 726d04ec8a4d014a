package image

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestTheImageReconcilesAProject builds reconcile's image, runs it as users
// run it beside their stacks (the engine's socket mounted, the project's
// directory at the same absolute path, configuration by RECONCILE_*
// variables), and checks it turns healthy through its own healthcheck and
// brings a killed replica back.
func TestTheImageReconcilesAProject(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  web:
    image: {{.Image}}
    restart: always
`)
	ctx := context.Background()
	c := p.Engine.Client
	tag := "reconcile-test-self:" + p.Name[len(p.Name)-8:]
	if err := Build(ctx, c, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true}) })

	socket := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		socket = strings.TrimPrefix(h, "unix://")
	}
	created, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: p.Name + "-agent",
		Config: &container.Config{Image: tag, Env: []string{
			"RECONCILE_FILE=" + p.File,
			"RECONCILE_PROJECT_NAME=" + p.Name,
		}},
		HostConfig: &container.HostConfig{Binds: []string{
			socket + ":/var/run/docker.sock",
			p.Dir + ":" + p.Dir + ":ro", // compose's labels and bind mounts name host paths
			t.TempDir() + ":/state",
		}},
	})
	if err != nil {
		t.Fatalf("creating the agent container: %v", err)
	}
	t.Cleanup(func() {
		_, _ = c.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("starting the agent container: %v", err)
	}
	logs := func() string { return p.Logs(created.ID) }

	wait := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s; the agent's log:\n%s", what, timeout, logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	web := p.Name + "-web-1"
	running := func() bool {
		id, ok := p.IDs()[web]
		return ok && p.Inspect(id).State.Running
	}
	wait("the agent brings the project up", 60*time.Second, running)
	wait("the agent's healthcheck healthy", 60*time.Second, func() bool {
		st := p.Inspect(created.ID).State
		return st.Health != nil && st.Health.Status == container.Healthy
	})
	id := p.IDs()[web]
	before := p.Inspect(id).State.StartedAt
	if _, err := c.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	wait("the killed replica started again", 30*time.Second, func() bool {
		st := p.Inspect(id).State
		return st.Running && st.StartedAt != before
	})
}
