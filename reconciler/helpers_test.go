package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"
	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// load reads a compose file given inline through the SDK's loader, as
// project "p"; no engine is involved.
func load(t *testing.T, yaml string) *desired.State {
	t.Helper()
	return desiredtest.Load(t, yaml)
}

// world builds snapshots for a desired state: by default every network and
// volume exists and containers carry the hash compose would stamp.
type world struct {
	d    *desired.State
	snap *observed.Snapshot
}

func newWorld(d *desired.State) *world {
	w := &world{d: d, snap: &observed.Snapshot{Project: d.Project.Name, Images: map[string]string{}}}
	for key, n := range d.Project.Networks {
		w.snap.Networks = append(w.snap.Networks, observed.Network{ID: "id-" + n.Name, Name: n.Name, Key: key})
	}
	for key, v := range d.Project.Volumes {
		w.snap.Volumes = append(w.snap.Volumes, observed.Volume{Name: v.Name, Key: key})
	}
	return w
}

// add adds container number n of service in state (with health and exit
// code after a colon: "running:healthy", "exited:1").
func (w *world) add(service string, n int, state string) *observed.Container {
	s := w.d.Services[service]
	st, detail, _ := strings.Cut(state, ":")
	c := observed.Container{
		ID: fmt.Sprintf("id-%s-%d", service, n), Name: fmt.Sprintf("p-%s-%d", service, n), Service: service, Number: n,
		State: st, Networks: map[string]string{},
	}
	if s != nil {
		c.ConfigHash = plan.ExpectedHash(s.Config, w.snap.ByService())
		for key := range s.Config.Networks {
			name := w.d.Project.Networks[key].Name
			c.Networks[name] = "id-" + name
		}
	}
	switch st {
	case observed.StateRunning:
		c.Health = detail
	case observed.StateExited:
		fmt.Sscanf(detail, "%d", &c.ExitCode)
	}
	w.snap.Containers = append(w.snap.Containers, c)
	return &w.snap.Containers[len(w.snap.Containers)-1]
}

// running adds replicas 1..n of each service, running and, for services with
// a healthcheck, healthy.
func (w *world) running(services ...string) *world {
	for _, name := range services {
		s := w.d.Services[name]
		state := "running"
		if s.HasHealthcheck {
			state = "running:healthy"
		}
		for i := 1; i <= s.Replicas; i++ {
			w.add(name, i, state)
		}
	}
	return w
}

// stack is the plan package tests' stack: a database, a one-shot
// migration, two API replicas and a web front.
const stack = `
services:
  db:
    image: db
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    volumes: [data:/data]
    networks: [back]
  migrate:
    image: app
    depends_on: {db: {condition: service_healthy}}
    networks: [back]
  api:
    image: app
    deploy: {replicas: 2}
    restart: always
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    networks: [back, front]
  web:
    image: web
    depends_on: [api]
    networks: [front]
networks: {back: {}, front: {}}
volumes: {data: {}}
`

// fakeEngine plays compose and the engine over a world: `up` of a service
// makes its replicas exist in the state the test chooses.
type fakeEngine struct {
	mu      sync.Mutex
	w       *world
	calls   []string
	upState map[string]string // service -> state its containers get
	failUp  map[string]error
	delay   time.Duration
	active  atomic.Int32
	peak    atomic.Int32
}

func (f *fakeEngine) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeEngine) enter() func() {
	n := f.active.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	return func() { f.active.Add(-1) }
}

func (f *fakeEngine) Up(_ context.Context, project *types.Project, opts api.UpOptions) error {
	defer f.enter()()
	names := opts.Create.Services
	if len(names) != 1 || opts.Create.Recreate != api.RecreateDiverged || opts.Create.RecreateDependencies != api.RecreateNever {
		return fmt.Errorf("unexpected up of %v with %+v", names, opts.Create)
	}
	svc := names[0]
	f.record("up " + svc)
	if err := f.failUp[svc]; err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	state := f.upState[svc]
	if state == "" {
		state = "running"
	}
	for i := 1; i <= f.w.d.Services[svc].Replicas; i++ {
		f.w.add(svc, i, state)
	}
	return nil
}

func (f *fakeEngine) Create(_ context.Context, project *types.Project, _ api.CreateOptions) error {
	defer f.enter()()
	if len(project.Services) != 0 {
		return errors.New("resource creation must not touch services")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, n := range project.Networks {
		f.calls = append(f.calls, "create network "+key)
		f.w.snap.Networks = append(f.w.snap.Networks, observed.Network{ID: "id-" + n.Name, Name: n.Name, Key: key})
	}
	for key, v := range project.Volumes {
		f.calls = append(f.calls, "create volume "+key)
		f.w.snap.Volumes = append(f.w.snap.Volumes, observed.Volume{Name: v.Name, Key: key})
	}
	return nil
}

func (f *fakeEngine) ContainerStart(_ context.Context, id string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	f.record("start " + id)
	f.set(id, observed.StateRunning, "")
	return client.ContainerStartResult{}, nil
}

func (f *fakeEngine) ContainerRestart(_ context.Context, id string, o client.ContainerRestartOptions) (client.ContainerRestartResult, error) {
	f.record(fmt.Sprintf("restart %s timeout=%d", id, *o.Timeout))
	f.set(id, observed.StateRunning, observed.HealthHealthy)
	return client.ContainerRestartResult{}, nil
}

func (f *fakeEngine) ContainerStop(_ context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	f.record(fmt.Sprintf("stop %s timeout=%d", id, *o.Timeout))
	return client.ContainerStopResult{}, nil
}

func (f *fakeEngine) ContainerRemove(_ context.Context, id string, _ client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	f.record("remove " + id)
	if strings.HasSuffix(id, "-gone") {
		return client.ContainerRemoveResult{}, cerrdefs.ErrNotFound
	}
	return client.ContainerRemoveResult{}, nil
}

func (f *fakeEngine) ContainerUnpause(_ context.Context, id string, _ client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error) {
	f.record("unpause " + id)
	f.set(id, observed.StateRunning, "")
	return client.ContainerUnpauseResult{}, nil
}

func (f *fakeEngine) ContainerUpdate(_ context.Context, id string, o client.ContainerUpdateOptions) (client.ContainerUpdateResult, error) {
	f.record(fmt.Sprintf("update %s restart=%s", id, o.RestartPolicy.Name))
	return client.ContainerUpdateResult{}, nil
}

func (f *fakeEngine) ContainerKill(_ context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error) {
	f.record("kill " + id + " " + o.Signal)
	return client.ContainerKillResult{}, nil
}

func (f *fakeEngine) NetworkDisconnect(_ context.Context, network string, o client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
	f.record("disconnect " + o.Container + " from " + network)
	return client.NetworkDisconnectResult{}, nil
}

// set changes a container's state as the engine would after an action.
func (f *fakeEngine) set(id, state, health string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.w.snap.Containers {
		if c := &f.w.snap.Containers[i]; c.ID == id {
			c.State, c.Health = state, health
		}
	}
}

func (f *fakeEngine) observe(context.Context) (*observed.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	snap := *f.w.snap
	snap.Containers = slices.Clone(f.w.snap.Containers)
	return &snap, nil
}

// waitFor polls cond until it holds, failing after 2 s.

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(time.Millisecond)
	}
}
