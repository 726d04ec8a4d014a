package execute

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

	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

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

func (f *fakeEngine) ContainerKill(_ context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error) {
	f.record("kill " + id + " " + o.Signal)
	return client.ContainerKillResult{}, nil
}

func (f *fakeEngine) Up(_ context.Context, project *types.Project, opts api.UpOptions) error {
	defer f.enter()()
	names := opts.Create.Services
	if len(names) != 1 || opts.Create.Recreate != api.RecreateDiverged || opts.Create.RecreateDependencies != api.RecreateNever ||
		!slices.Equal(opts.Start.Services, names) {
		return fmt.Errorf("unexpected up of %v with %+v", names, opts.Create)
	}
	svc := names[0]
	// the project holds the service and its dependencies, with depends_on
	// intact, so that compose labels the containers as `up` would
	if deps := f.w.d.Project.Services[svc].DependsOn; len(project.Services[svc].DependsOn) != len(deps) {
		return fmt.Errorf("up of %s lost its depends_on: %v", svc, project.Services[svc].DependsOn)
	}
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

func (f *fakeEngine) executor(w *world) *Executor {
	return &Executor{Desired: w.d, Compose: f, Engine: f, Observe: f.observe, PollInterval: time.Millisecond, Concurrency: 4}
}

func TestExecutorRunsThePlanInDependencyOrder(t *testing.T) {
	w := newWorld(load(t, stack))
	w.snap.Networks, w.snap.Volumes = nil, nil
	f := &fakeEngine{w: w, upState: map[string]string{"db": "running:healthy", "migrate": "exited:0"}}
	pl := w.diff(plan.Options{}).Plan
	var done []string
	var mu sync.Mutex
	ex := f.executor(w)
	ex.OnDone = func(n *plan.Node, err error, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		done = append(done, fmt.Sprintf("#%d %v", n.ID, err))
	}
	if err := ex.Execute(context.Background(), pl); err != nil {
		t.Fatal(err)
	}
	pos := func(call string) int {
		i := slices.Index(f.calls, call)
		if i < 0 {
			t.Fatalf("no call %q in %v", call, f.calls)
		}
		return i
	}
	for _, order := range [][2]string{
		{"create network back", "up db"}, {"create volume data", "up db"}, {"up db", "up migrate"},
		{"up migrate", "up api"}, {"create network front", "up api"}, {"up api", "up web"},
	} {
		if pos(order[0]) > pos(order[1]) {
			t.Errorf("%q ran after %q: %v", order[0], order[1], f.calls)
		}
	}
	ups := 0
	for _, c := range f.calls {
		if c == "up api" {
			ups++
		}
	}
	if ups != 1 {
		t.Errorf("api's two CreateContainer operations made %d compose up calls, want 1", ups)
	}
	if len(done) != len(pl.Nodes) {
		t.Errorf("OnDone told about %d operations, plan has %d", len(done), len(pl.Nodes))
	}
}

func TestExecutorSkipsDependentsOfAFailure(t *testing.T) {
	w := newWorld(load(t, stack))
	f := &fakeEngine{w: w, upState: map[string]string{"db": "running:healthy", "migrate": "exited:0"},
		failUp: map[string]error{"migrate": errors.New("no space left")}}
	pl := w.diff(plan.Options{}).Plan
	skipped := 0
	ex := f.executor(w)
	ex.OnDone = func(_ *plan.Node, err error, _ time.Duration) {
		if errors.Is(err, ErrSkipped) {
			skipped++
		}
	}
	err := ex.Execute(context.Background(), pl)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err = %v", err)
	}
	if slices.Contains(f.calls, "up api") || slices.Contains(f.calls, "up web") {
		t.Errorf("dependents of the failed migrate ran: %v", f.calls)
	}
	if skipped != 5 { // migrate's wait, api x2, api's wait, web
		t.Errorf("%d operations skipped, want 5", skipped)
	}
}

func TestExecutorWaitFailsOnUnhealthyRequiredDependency(t *testing.T) {
	w := newWorld(load(t, stack))
	f := &fakeEngine{w: w, upState: map[string]string{"db": "running:unhealthy"}}
	err := f.executor(w).Execute(context.Background(), w.diff(plan.Options{}).Plan)
	if err == nil || !strings.Contains(err.Error(), "p-db-1 is unhealthy") {
		t.Fatalf("err = %v", err)
	}
	if slices.Contains(f.calls, "up migrate") {
		t.Error("migrate started although db is unhealthy")
	}
}

func TestExecutorOptionalDependencyDoesNotBlock(t *testing.T) {
	w := newWorld(load(t, `
services:
  app:
    image: app
    depends_on: {cache: {condition: service_healthy, required: false}}
  cache: {image: c, healthcheck: {test: ["CMD", "true"]}}`))
	f := &fakeEngine{w: w, upState: map[string]string{"cache": "running:unhealthy"}}
	if err := f.executor(w).Execute(context.Background(), w.diff(plan.Options{}).Plan); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.calls, "up app") {
		t.Errorf("app did not start: %v", f.calls)
	}
}

func TestExecutorWaitEndsWithTheContext(t *testing.T) {
	w := newWorld(load(t, stack))
	f := &fakeEngine{w: w, upState: map[string]string{"db": "running:starting"}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := f.executor(w).Execute(ctx, w.diff(plan.Options{}).Plan)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for db to be service_healthy") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecutorSingleContainerOperations(t *testing.T) {
	w := newWorld(load(t, stack))
	w.add("db", 1, "running:unhealthy")
	w.add("migrate", 1, "exited:0")
	w.add("api", 1, "paused")
	w.add("api", 2, "exited:1")
	w.add("api", 3, "running").ID = "id-api-3-gone"
	w.add("web", 1, "running").Networks["bridge"] = "bridge-id"
	f := &fakeEngine{w: w}
	if err := f.executor(w).Execute(context.Background(), w.diff(plan.Options{}).Plan); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"restart id-db-1 timeout=10", "unpause id-api-1", "start id-api-2",
		"stop id-api-3-gone timeout=10", "remove id-api-3-gone", "disconnect id-web-1 from bridge-id",
	} {
		if !slices.Contains(f.calls, want) {
			t.Errorf("missing call %q in %v", want, f.calls)
		}
	}
}

func TestExecutorBoundsConcurrency(t *testing.T) {
	w := newWorld(load(t, `
services:
  a: {image: x}
  b: {image: x}
  c: {image: x}
  d: {image: x}
  e: {image: x}`))
	f := &fakeEngine{w: w, delay: 20 * time.Millisecond}
	ex := f.executor(w)
	ex.Concurrency = 2
	if err := ex.Execute(context.Background(), w.diff(plan.Options{}).Plan); err != nil {
		t.Fatal(err)
	}
	if p := f.peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
}
