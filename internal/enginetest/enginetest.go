// Package enginetest is the harness of tests that run against the real
// engine: it connects (failing instead of skipping under CI=true), builds the
// test image once, and gives each test its own project, torn down even when
// the test fails.
package enginetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
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
	e := Require(t)
	img := Image(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rt-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(b[:])
	p := &Project{T: t, Name: name, Dir: t.TempDir(), Engine: e}
	p.File = filepath.Join(p.Dir, "compose.yaml")
	p.Write("compose.yaml", render(t, composeYAML, map[string]string{"Image": img, "Name": name}))
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

// Load loads the project's desired state.
func (p *Project) Load() *desired.State {
	p.T.Helper()
	st, err := desired.Load(context.Background(), p.Engine.Compose, desired.Options{Files: []string{p.File}, ProjectName: p.Name})
	if err != nil {
		p.T.Fatalf("loading %s: %v", p.File, err)
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
	err := p.Engine.Compose.Down(ctx, p.Name, api.DownOptions{RemoveOrphans: true, Volumes: true, Timeout: &zero})
	if err != nil {
		p.T.Logf("tearing down project %s: %v", p.Name, err)
	}
}
