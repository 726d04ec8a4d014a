package enginetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

// swarmOurs says the tests made the swarm (and LeaveSwarm leaves it).
var (
	swarmMu   sync.Mutex
	swarmOurs bool
)

// Stack is a stack on a single-node swarm, owned by one test.
type Stack struct {
	T      testing.TB
	Name   string
	Dir    string
	File   string
	Engine *engine.Engine
}

// NewStack makes the engine a single-node swarm manager (unless it is one
// already), writes compose.yaml as NewProject does, and when the test ends
// removes the stack (services, networks, configs, secrets, and waits for
// its containers). The swarm is left by TestMain once every Swarm test ran,
// not after each: on engine 20.10 leaving a swarm breaks name resolution
// in every compose project running then (moby/moby#45144), which is why
// `make test` runs the Swarm tests after all others, alone (test-swarm).
func NewStack(t testing.TB, composeYAML string) *Stack {
	t.Helper()
	e := Require(t)
	Image(t)
	joinSwarm(t, e)
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := "st" + hex.EncodeToString(b[:])
	s := &Stack{T: t, Name: name, Dir: t.TempDir(), Engine: e}
	s.File = filepath.Join(s.Dir, "compose.yaml")
	t.Cleanup(s.remove)
	(&Project{T: t, Dir: s.Dir}).Write("compose.yaml", render(t, composeYAML, map[string]string{"Image": testimage.Tag, "Name": name}))
	return s
}

// Write writes a file into the stack's directory.
func (s *Stack) Write(name, content string) { (&Project{T: s.T, Dir: s.Dir}).Write(name, content) }

func joinSwarm(t testing.TB, e *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	swarmMu.Lock()
	defer swarmMu.Unlock()
	info, err := e.Client.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatalf("asking the engine about its swarm: %v", err)
	}
	if info.Info.Swarm.LocalNodeState != swarm.LocalNodeStateActive {
		if _, err := e.Client.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
			t.Fatalf("docker swarm init: %v", err)
		}
		swarmOurs = true
	}
}

// LeaveSwarm leaves the swarm the tests made, if they made one, and
// removes docker_gwbridge: the engine as it was found. A test binary that
// uses NewStack calls it from TestMain, once its tests ran.
func LeaveSwarm() {
	swarmMu.Lock()
	defer swarmMu.Unlock()
	if !swarmOurs || shared == nil {
		return
	}
	e := shared
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Client.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
		fmt.Fprintf(os.Stderr, "docker swarm leave: %v\n", err)
	}
	swarmOurs = false
	// the ingress sandbox's endpoint goes a moment after the leave; on
	// this engine it has been seen to outlive it for good (after a
	// cluster's worker was killed), and then the network is kept: a later
	// swarm init uses it again
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.Client.NetworkRemove(ctx, "docker_gwbridge", client.NetworkRemoveOptions{})
		if err == nil || strings.Contains(err.Error(), "not found") {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "docker_gwbridge is kept: %v\n", err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// remove is docker stack rm, waited for.
func (s *Stack) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Engine.Client
	f := make(client.Filters).Add("label", convert.LabelNamespace+"="+s.Name)
	if l, err := c.ServiceList(ctx, client.ServiceListOptions{Filters: f}); err == nil {
		for _, svc := range l.Items {
			_, _ = c.ServiceRemove(ctx, svc.ID, client.ServiceRemoveOptions{})
		}
	}
	// the tasks' containers go first: a network or config in use stays.
	// Running ones are stopped by Swarm; an exited one (a job's completed
	// task) is left to the task reaper, which took a minute: removed here.
	for ctx.Err() == nil {
		l, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil || len(l.Items) == 0 {
			break
		}
		for _, ctr := range l.Items {
			if ctr.State != "running" {
				_, _ = c.ContainerRemove(ctx, ctr.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l, err := c.ConfigList(ctx, client.ConfigListOptions{Filters: f}); err == nil {
		for _, o := range l.Items {
			_, _ = c.ConfigRemove(ctx, o.ID, client.ConfigRemoveOptions{})
		}
	}
	if l, err := c.SecretList(ctx, client.SecretListOptions{Filters: f}); err == nil {
		for _, o := range l.Items {
			_, _ = c.SecretRemove(ctx, o.ID, client.SecretRemoveOptions{})
		}
	}
	for ctx.Err() == nil {
		l, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
		if err != nil || len(l.Items) == 0 {
			return
		}
		for _, n := range l.Items {
			_, _ = c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Service inspects the stack's service name.
func (s *Stack) Service(name string) swarm.Service {
	s.T.Helper()
	res, err := s.Engine.Client.ServiceInspect(context.Background(), s.Name+"_"+name, client.ServiceInspectOptions{})
	if err != nil {
		s.T.Fatalf("inspecting service %s: %v", name, err)
	}
	return res.Service
}

// Tasks lists the tasks of the stack's service name.
func (s *Stack) Tasks(name string) []swarm.Task {
	s.T.Helper()
	f := make(client.Filters).Add("service", s.Name+"_"+name)
	res, err := s.Engine.Client.TaskList(context.Background(), client.TaskListOptions{Filters: f})
	if err != nil {
		s.T.Fatalf("listing the tasks of %s: %v", name, err)
	}
	return res.Items
}
