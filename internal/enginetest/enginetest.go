// Package enginetest is the harness of tests that run against the real
// engine: it connects (failing instead of skipping under CI=true), builds the
// test image once, and gives each test its own project, torn down even when
// the test fails.
package enginetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/internal/testimage"
	"github.com/reconcile-dev/reconcile/observed"
)

var (
	connectOnce sync.Once
	shared      *engine.Engine
	connectErr  error

	imageOnce sync.Once
	imageErr  error
)

// Require returns a connected engine. Without one the test is skipped, or
// fails when CI=true: CI must never pass by skipping the engine tests.
func Require(t testing.TB) *engine.Engine {
	t.Helper()
	connectOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shared, connectErr = engine.Connect(ctx)
		if connectErr == nil {
			connectErr = shared.Ping(ctx)
		}
	})
	if connectErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the docker engine is not reachable: %v", connectErr)
		}
		t.Skipf("docker engine not reachable: %v", connectErr)
	}
	return shared
}

// Image builds the test image once per test binary and returns its tag.
func Image(t testing.TB) string {
	t.Helper()
	e := Require(t)
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		imageErr = testimage.Ensure(ctx, e.Client, testimage.Tag)
	})
	if imageErr != nil {
		t.Fatalf("building the test image: %v", imageErr)
	}
	return testimage.Tag
}

// Project is a compose project owned by one test.
type Project struct {
	T      testing.TB
	Name   string
	Dir    string
	File   string
	Engine *engine.Engine
}

// NewProject writes compose.yaml into a fresh directory, from a text/template
// that may use {{.Image}} (the test image) and {{.Name}} (the project name),
// and tears the project down when the test ends.
func NewProject(t testing.TB, composeYAML string) *Project {
	t.Helper()
	p := newProject(t)
	Image(t)
	p.Write("compose.yaml", render(t, composeYAML, map[string]string{"Image": testimage.Tag, "Name": p.Name}))
	return p
}

// CopyProject copies the directory src (an example, say) into a fresh
// directory, so a test can edit its files, and tears the project down when
// the test ends. File is left empty: such projects have several.
func CopyProject(t testing.TB, src string) *Project {
	t.Helper()
	p := newProject(t)
	if err := os.CopyFS(p.Dir, os.DirFS(src)); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	p.File = ""
	return p
}

func newProject(t testing.TB) *Project {
	t.Helper()
	e := Require(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rt-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(b[:])
	p := &Project{T: t, Name: name, Dir: t.TempDir(), Engine: e}
	p.File = filepath.Join(p.Dir, "compose.yaml")
	t.Cleanup(p.down)
	return p
}

func render(t testing.TB, text string, data any) string {
	t.Helper()
	tpl, err := template.New("compose").Option("missingkey=error").Parse(text)
	if err != nil {
		t.Fatalf("compose template: %v", err)
	}
	var b strings.Builder
	if err := tpl.Execute(&b, data); err != nil {
		t.Fatalf("compose template: %v", err)
	}
	return b.String()
}

// Write writes a file of the project, rendered like the compose file.
func (p *Project) Write(name, content string) {
	p.T.Helper()
	path := filepath.Join(p.Dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.T.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.T.Fatal(err)
	}
}

// Rewrite replaces the compose file, rendered as in NewProject.
func (p *Project) Rewrite(composeYAML string) {
	p.T.Helper()
	p.Write("compose.yaml", render(p.T, composeYAML, map[string]string{"Image": testimage.Tag, "Name": p.Name}))
}

// Load loads the project's desired state from its compose.yaml.
func (p *Project) Load() *desired.State {
	p.T.Helper()
	return p.LoadWith(desired.Options{Files: []string{p.File}, ProjectName: p.Name})
}

// LoadWith loads a desired state with the given options.
func (p *Project) LoadWith(opts desired.Options) *desired.State {
	p.T.Helper()
	st, err := desired.Load(context.Background(), p.Engine.Compose, opts)
	if err != nil {
		p.T.Fatalf("loading %v: %v", opts.Files, err)
	}
	return st
}

// Snapshot observes the project.
func (p *Project) Snapshot() *observed.Snapshot {
	p.T.Helper()
	snap, err := observed.Observe(context.Background(), p.Engine.Client, p.Name, time.Now())
	if err != nil {
		p.T.Fatalf("observing %s: %v", p.Name, err)
	}
	return snap
}

// IDs maps container names of the project to their IDs.
func (p *Project) IDs() map[string]string {
	p.T.Helper()
	ids := map[string]string{}
	for _, c := range p.Snapshot().Containers {
		ids[c.Name] = c.ID
	}
	return ids
}

// Inspect inspects a container.
func (p *Project) Inspect(id string) container.InspectResponse {
	p.T.Helper()
	res, err := p.Engine.Client.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		p.T.Fatalf("inspecting %s: %v", id, err)
	}
	return res.Container
}

// RemoveForce removes a container as `docker rm -f` does.
func (p *Project) RemoveForce(id string) {
	p.T.Helper()
	if _, err := p.Engine.Client.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true}); err != nil {
		p.T.Fatalf("removing %s: %v", id, err)
	}
}

// down removes everything of the project: containers, networks, volumes.
func (p *Project) down() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	zero := time.Duration(0)
	opts := api.DownOptions{RemoveOrphans: true, Volumes: true, Timeout: &zero}
	downErr := p.Engine.Compose.Down(ctx, p.Name, opts)
	// what compose's down leaves: a failed pre_start hook's runner, kept
	// for inspection
	filter := make(client.Filters).Add("label", api.ProjectLabel+"="+p.Name)
	left, err := p.Engine.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		p.T.Logf("listing what is left of project %s: %v", p.Name, err)
		return
	}
	for _, c := range left.Items {
		if _, err := p.Engine.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			p.T.Logf("removing %v of project %s: %v", c.Names, p.Name, err)
		}
	}
	if downErr == nil && len(left.Items) == 0 {
		return
	}
	// a network compose could not remove while a container was still going
	// (a daemon killed mid-start leaves one being removed, which holds its
	// endpoint): once the containers are gone, down again
	for ctx.Err() == nil {
		l, err := p.Engine.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
		if err != nil || len(l.Items) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.Engine.Compose.Down(ctx, p.Name, opts); err != nil {
		p.T.Logf("tearing down project %s: %v (first: %v)", p.Name, err, downErr)
	}
}

// Resources lists every container (with its ID and state), network and
// volume of the project straight from the engine: what bad input must leave
// untouched.
func (p *Project) Resources() map[string]string {
	p.T.Helper()
	ctx := context.Background()
	filter := make(client.Filters).Add("label", api.ProjectLabel+"="+p.Name)
	out := map[string]string{}
	cl, err := p.Engine.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		p.T.Fatal(err)
	}
	for _, c := range cl.Items {
		out["container "+strings.TrimPrefix(c.Names[0], "/")] = c.ID + " " + string(c.State)
	}
	nl, err := p.Engine.Client.NetworkList(ctx, client.NetworkListOptions{Filters: filter})
	if err != nil {
		p.T.Fatal(err)
	}
	for _, n := range nl.Items {
		out["network "+n.Name] = n.ID
	}
	vl, err := p.Engine.Client.VolumeList(ctx, client.VolumeListOptions{Filters: filter})
	if err != nil {
		p.T.Fatal(err)
	}
	for _, v := range vl.Items {
		out["volume "+v.Name] = v.CreatedAt
	}
	return out
}

// EventLog records the engine's container events of a project as they
// happen. It reads a live stream, not a replay: the engine keeps only 256
// events for replays, which parallel tests can exhaust.
type EventLog struct {
	mu     sync.Mutex
	events []events.Message
}

// Record starts recording the project's container events until the test ends.
func (p *Project) Record() *EventLog {
	p.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &EventLog{}
	res := p.Engine.Client.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+p.Name),
	})
	// A labelled container created and removed tells when the subscription
	// is live: events before that could be missed. It is a one-off, so
	// observers leave it out.
	probe := p.Name + "-events-probe"
	live := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-res.Messages:
				if m.Actor.Attributes["name"] == probe {
					if m.Action == events.ActionCreate {
						close(live)
					}
					continue
				}
				log.mu.Lock()
				log.events = append(log.events, m)
				log.mu.Unlock()
			case <-res.Err:
				return
			}
		}
	}()
	p.T.Cleanup(func() { cancel(); <-done })
	c, err := p.Engine.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   probe,
		Config: &container.Config{Image: testimage.Tag, Labels: map[string]string{api.ProjectLabel: p.Name, api.OneoffLabel: "True"}},
	})
	if err != nil {
		p.T.Fatalf("creating the events probe: %v", err)
	}
	select {
	case <-live:
	case <-time.After(10 * time.Second):
		p.T.Fatal("the events subscription did not come live within 10s")
	}
	if _, err := p.Engine.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		p.T.Fatalf("removing the events probe: %v", err)
	}
	return log
}

// First returns the time of the first event of a container (by name) whose
// action starts with action, such as "start" or "health_status: healthy".
func (l *EventLog) First(containerName, action string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.events {
		if m.Actor.Attributes["name"] == containerName && strings.HasPrefix(string(m.Action), action) {
			return time.Unix(0, m.TimeNano), true
		}
	}
	return time.Time{}, false
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// Converge runs what `reconcile --once` runs (the daemon's project loop,
// once), in the test's process, with a state directory of its own, and
// returns its outcome.
func (p *Project) Converge(timeout time.Duration) daemon.Outcome {
	p.T.Helper()
	d := p.Load()
	loader, err := engine.Loader()
	if err != nil {
		p.T.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	proj, err := daemon.New(daemon.Config{
		Engine: p.Engine, Loader: loader, Log: log, Records: record.New(log, clock.Real{}, record.DefaultKeep),
		StateDir: p.T.TempDir(), Workers: 4, Once: true,
	}, d, desired.Options{Files: []string{p.File}, ProjectName: p.Name}, nil)
	if err != nil {
		p.T.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := proj.Converge(ctx, 0)
	if err != nil {
		p.T.Fatalf("converging %s: %v", p.Name, err)
	}
	return out
}

// DialFrom reports whether a TCP connection to addr opens from inside the
// network namespace of the container id, whatever its image holds: a test
// program container joins that namespace and dials.
func (p *Project) DialFrom(id, addr string) bool {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p.Engine.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: Image(p.T), Cmd: []string{"dial", addr}, Labels: map[string]string{api.ProjectLabel: p.Name, api.OneoffLabel: "True"}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode("container:" + id)},
	})
	if err != nil {
		p.T.Fatalf("creating a dialer in %s: %v", id, err)
	}
	defer func() {
		_, _ = p.Engine.Client.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
	}()
	wait := p.Engine.Client.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := p.Engine.Client.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		p.T.Fatalf("starting a dialer in %s: %v", id, err)
	}
	select {
	case res := <-wait.Result:
		return res.StatusCode == 0
	case err := <-wait.Error:
		p.T.Fatalf("waiting for the dialer in %s: %v", id, err)
	}
	return false
}

// Logs returns what a container wrote to stdout and stderr.
func (p *Project) Logs(id string) string {
	p.T.Helper()
	return p.LogsSince(id, time.Time{})
}

// LogsSince returns what a container wrote since a time.
func (p *Project) LogsSince(id string, since time.Time) string {
	p.T.Helper()
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true}
	if !since.IsZero() {
		opts.Since = since.Format(time.RFC3339Nano)
	}
	rc, err := p.Engine.Client.ContainerLogs(context.Background(), id, opts)
	if err != nil {
		p.T.Fatalf("reading logs of %s: %v", id, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		p.T.Fatalf("reading logs of %s: %v", id, err)
	}
	return out.String()
}

// built is a program built once per test process.
type built struct {
	once sync.Once
	path string
	err  error
}

// build builds pkg in the module at dir (relative to the repository root)
// into a temporary directory left to the system's cleaning, once; flags
// are go build's, given the module's directory.
func (b *built) build(t testing.TB, dir, pkg, name string, flags func(dir string) ([]string, error)) string {
	t.Helper()
	b.once.Do(func() {
		_, self, _, ok := runtime.Caller(0)
		if !ok {
			b.err = errors.New("locating the source tree")
			return
		}
		tmp, err := os.MkdirTemp("", name+"-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(tmp, name)
		modDir := filepath.Join(filepath.Dir(self), "..", "..", dir)
		args := []string{"build", "-o", b.path}
		if flags != nil {
			more, err := flags(modDir)
			if err != nil {
				b.err = fmt.Errorf("building %s: %w", name, err)
				return
			}
			args = append(args, more...)
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = modDir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s: %w: %s", name, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

var reconcileBin, composeBin built

// Binary builds the reconcile command once per test process and returns its
// path: end-to-end tests run it as users do, exit codes and all.
func Binary(t testing.TB) string {
	t.Helper()
	return reconcileBin.build(t, ".", "./cmd/reconcile", "reconcile", nil)
}

// ComposeCLI builds the real compose command line (tools/compose pins it at
// the SDK's version) once per test process and returns its path, for tests
// that hold reconcile's containers against `docker compose up`'s. It is
// stamped with its version as compose's release build stamps it (as `make
// compose-cli` does), which its com.docker.compose.version label carries.
func ComposeCLI(t testing.TB) string {
	t.Helper()
	return composeBin.build(t, "tools/compose", "github.com/docker/compose/v5/cmd", "docker-compose", func(dir string) ([]string, error) {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/docker/compose/v5")
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("reading compose's version: %w", err)
		}
		return []string{"-ldflags", "-X github.com/docker/compose/v5/internal.Version=" + strings.TrimSpace(string(out))}, nil
	})
}

// Result is what one run of the reconcile binary did.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Run runs the reconcile binary in dir with args and extra environment.
func Run(t testing.TB, dir string, env []string, args ...string) Result {
	t.Helper()
	return runProgram(t, Binary(t), dir, env, args)
}

// runProgram runs a program to its end (at most 5 minutes) and returns what it
// did.
func runProgram(t testing.TB, bin, dir string, env, args []string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s %v: %v", filepath.Base(bin), args, err)
	}
	return r
}

// BuildScript runs a slow image-building script (such as an example's
// build.sh) for a test that needs its images; -short skips such tests.
func BuildScript(t testing.TB, script string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds images from Debian packages (minutes on a cold machine)")
	}
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v", script, err)
	}
}

// Count counts the events of a container (by name) whose action starts with
// action, at or after since.
func (l *EventLog) Count(containerName, action string, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.events {
		if m.Actor.Attributes["name"] == containerName && strings.HasPrefix(string(m.Action), action) && !time.Unix(0, m.TimeNano).Before(since) {
			n++
		}
	}
	return n
}

// Events returns a copy of everything recorded so far.
func (l *EventLog) Events() []events.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]events.Message(nil), l.events...)
}

// Compose runs the compose CLI on the project and returns what it did.
func (p *Project) Compose(args ...string) Result {
	p.T.Helper()
	return runProgram(p.T, ComposeCLI(p.T), p.Dir, []string{"COMPOSE_PROGRESS=quiet"}, append([]string{"-f", p.File, "-p", p.Name}, args...))
}

// RemoveImagesOf removes, when the test ends, every image of the engine
// that a tag or digest of repo (a test registry's "127.0.0.1:PORT/app")
// names: an image pulled by digest has no tag, so the engine's reference
// filter misses it.
func RemoveImagesOf(t testing.TB, e *engine.Engine, repo string) {
	t.Cleanup(func() { testimage.RemoveImages(context.Background(), e.Client, repo) })
}
