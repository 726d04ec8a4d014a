package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestTheImageReconcilesAProject builds reconcile's image, runs it as
// docs/daemon.md says to run it beside a stack (the engine's socket through
// its group, the project's directory at the same absolute path, a named
// state volume, configuration by RECONCILE_* variables) and hardened as it
// says (its own unprivileged user, a read-only root filesystem, every
// capability dropped, no new privileges), and checks it turns healthy
// through its own healthcheck and brings a killed replica back.
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
	var sock syscall.Stat_t
	if err := syscall.Stat(socket, &sock); err != nil {
		t.Fatal(err)
	}
	// the documented block, pointed at this project and this image
	snippet := strings.NewReplacer(
		"/srv/myapp/compose.yaml", p.File,
		"/srv/myapp:/srv/myapp", p.Dir+":"+p.Dir,
		"reconcile:dev", tag,
		"/var/run/docker.sock:", socket+":",
	).Replace(documentedCompose(t))
	snippet = strings.Replace(snippet, "      RECONCILE_FILE:", "      RECONCILE_PROJECT_NAME: "+p.Name+"\n      RECONCILE_FILE:", 1)
	agentDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(agentDir, "compose.yaml"), []byte(snippet), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := p.Name + "-agent"
	compose := func(args ...string) {
		t.Helper()
		cmd := exec.Command(enginetest.ComposeCLI(t), append([]string{"-p", agent}, args...)...)
		cmd.Dir = agentDir
		cmd.Env = append(os.Environ(), "DOCKER_GID="+strconv.Itoa(int(sock.Gid)), "COMPOSE_PROGRESS=quiet")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { compose("down", "--volumes", "--timeout", "2") })
	compose("up", "-d")
	list, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "com.docker.compose.project="+agent)})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("the agent's container: %v, %d found", err, len(list.Items))
	}
	created := list.Items[0]
	if hc := p.Inspect(created.ID).HostConfig; !hc.ReadonlyRootfs || len(hc.CapDrop) != 1 || len(hc.SecurityOpt) != 1 || len(hc.GroupAdd) != 1 {
		t.Errorf("the agent does not run hardened as documented: %+v", hc)
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
	if u := p.Inspect(created.ID).Config.User; u != User {
		t.Errorf("the image runs as %q, want %q", u, User)
	}
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

// documentedCompose is the compose block docs/daemon.md gives for running
// the image.
func documentedCompose(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/daemon.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start, end := strings.Index(doc, "<!-- image-compose:begin -->"), strings.Index(doc, "<!-- image-compose:end -->")
	if start < 0 || end < start {
		t.Fatal("docs/daemon.md has no image-compose block")
	}
	block := doc[start:end]
	block = block[strings.Index(block, "```yaml\n")+len("```yaml\n"):]
	return block[:strings.Index(block, "```")]
}
