package execute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Composer is the part of the Compose SDK the executor drives: every
// container it creates goes through compose, so it carries the same name,
// labels and config hash as one made by `docker compose up`.
type Composer interface {
	Up(ctx context.Context, project *types.Project, options api.UpOptions) error
	Create(ctx context.Context, project *types.Project, options api.CreateOptions) error
}

// ContainerEngine is the moby client's single-container actions, for
// operations on one existing container that compose only offers per service.
type ContainerEngine interface {
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerRestart(ctx context.Context, id string, options client.ContainerRestartOptions) (client.ContainerRestartResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerUnpause(ctx context.Context, id string, options client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	NetworkDisconnect(ctx context.Context, network string, options client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)
	ContainerUpdate(ctx context.Context, id string, options client.ContainerUpdateOptions) (client.ContainerUpdateResult, error)
	ContainerKill(ctx context.Context, id string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
}

// SnapshotFunc takes a fresh snapshot; waits poll it.
type SnapshotFunc func(ctx context.Context) (*observed.Snapshot, error)

// Executor applies plans. It decides nothing: each operation type maps to one
// function, and the graph's edges alone decide the order.
type Executor struct {
	Desired *desired.State
	Compose Composer
	Engine  ContainerEngine
	// Exec runs a service's post_start hooks after the executor starts or
	// restarts one of its containers itself (compose runs them on its own
	// starts). Needed only for services that have them.
	Exec    engine.Execer
	Observe SnapshotFunc
	Log     *slog.Logger
	Clock   clock.Clock
	// PollInterval paces waits on dependency conditions.
	PollInterval time.Duration
	// Concurrency bounds how many operations of this plan run at once.
	Concurrency int
	// Slots, when set, bounds the operations in flight across every
	// executor sharing them (one host's engine).
	Slots Slots
	// HookTimeout bounds each post_start hook (DefaultHookTimeout when 0).
	HookTimeout time.Duration
	// OnBegin, when set, is told about every operation just before it
	// runs, so that the events it causes can be told from anyone else's.
	OnBegin func(n *plan.Node)
	// OnDone, when set, is told about every finished operation (a group
	// counts once per node), done, failed or skipped: what happened is
	// accounted from this, never from a decision to run it.
	OnDone func(n *plan.Node, err error, took time.Duration)
}

// ErrSkipped marks an operation not run because one it depends on failed.
var ErrSkipped = errors.New("skipped")

// Execute runs the plan's operations as their dependencies allow, up to
// Concurrency at a time. A failed operation skips those that depend on it;
// the others go on. The error joins every failure.
func (e *Executor) Execute(ctx context.Context, p *plan.Plan) error {
	if p.Empty() {
		return nil
	}
	conc := max(e.Concurrency, 1)
	groups := map[string][]*plan.Node{}
	for _, n := range p.Nodes {
		if n.Group != "" {
			groups[n.Group] = append(groups[n.Group], n)
		}
	}
	type outcome struct {
		nodes []*plan.Node
		err   error
		took  time.Duration
	}
	status := map[*plan.Node]error{} // set once finished; nil = success
	started := map[*plan.Node]bool{}
	results := make(chan outcome)
	running := 0
	var errs []error

	// unit returns the nodes that run together with n.
	unit := func(n *plan.Node) []*plan.Node {
		if n.Group != "" {
			return groups[n.Group]
		}
		return []*plan.Node{n}
	}
	// readiness: all deps of every node in the unit finished; failed if any
	// of them failed.
	readiness := func(nodes []*plan.Node) (ready bool, failed *plan.Node) {
		ready = true
		for _, n := range nodes {
			for _, d := range n.DependsOn {
				if contains(nodes, d) {
					continue
				}
				err, done := status[d]
				if !done {
					ready = false
				} else if err != nil {
					failed = d
				}
			}
		}
		return ready, failed
	}

	for {
		progress := true
		for progress {
			progress = false
			for _, n := range p.Nodes {
				if started[n] || running >= conc {
					continue
				}
				nodes := unit(n)
				ready, failed := readiness(nodes)
				if !ready {
					continue
				}
				for _, m := range nodes {
					started[m] = true
				}
				if failed != nil {
					err := fmt.Errorf("%w: #%d %s failed", ErrSkipped, failed.ID, failed.Op.ResourceID)
					for _, m := range nodes {
						status[m] = err
						e.done(m, err, 0)
					}
					progress = true
					continue
				}
				running++
				if e.OnBegin != nil {
					for _, m := range nodes {
						e.OnBegin(m)
					}
				}
				go func(nodes []*plan.Node) {
					if err := e.Slots.acquire(ctx); err != nil {
						results <- outcome{nodes: nodes, err: err}
						return
					}
					defer e.Slots.release()
					start := e.now()
					err := e.run(ctx, nodes)
					results <- outcome{nodes: nodes, err: err, took: e.now().Sub(start)}
				}(nodes)
			}
		}
		if running == 0 {
			break
		}
		out := <-results
		running--
		for _, n := range out.nodes {
			status[n] = out.err
			e.done(n, out.err, out.took)
		}
		if out.err != nil && !errors.Is(out.err, ErrGone) {
			errs = append(errs, fmt.Errorf("%s %s: %w", out.nodes[0].Op.Type, out.nodes[0].Op.ResourceID, out.err))
		}
	}
	return errors.Join(errs...)
}

func (e *Executor) done(n *plan.Node, err error, took time.Duration) {
	log := e.logger().With("op", n.Op.Type.String(), "resource", n.Op.ResourceID, "cause", n.Op.Cause)
	switch {
	case errors.Is(err, ErrGone):
		log.Debug("operation moot: its container went away", "reason", err)
	case errors.Is(err, ErrSkipped):
		log.Warn("operation skipped", "reason", err)
	case err != nil:
		log.Error("operation failed", "error", err, "took", took.Round(time.Millisecond).String())
	default:
		level := slog.LevelInfo
		if e.OnDone != nil {
			level = slog.LevelDebug // the daemon's records say it already
		}
		log.Log(context.Background(), level, "operation done", "took", took.Round(time.Millisecond).String())
	}
	if e.OnDone != nil {
		e.OnDone(n, err, took)
	}
}

// run carries out one unit of the plan; a failure that retrying cannot fix
// comes back as a *PermanentError.
func (e *Executor) run(ctx context.Context, nodes []*plan.Node) error {
	return classify(nodes[0].Op, e.act(ctx, nodes))
}

func (e *Executor) act(ctx context.Context, nodes []*plan.Node) error {
	n := nodes[0]
	op := n.Op
	e.logger().Debug("operation start", "op", op.Type.String(), "resource", op.ResourceID, "container", op.Container)
	if n.Group != "" {
		return e.upService(ctx, op.Service)
	}
	switch op.Type {
	case plan.OpCreateNetwork:
		return e.createResources(ctx, op.NetworkKey, "")
	case plan.OpCreateVolume:
		return e.createResources(ctx, "", op.Volume)
	case plan.OpStartContainer:
		if _, err := e.Engine.ContainerStart(ctx, op.ContainerID, client.ContainerStartOptions{}); err != nil {
			return wrap(err, "starting container %s", op.Container)
		}
		return e.postStart(ctx, op.Service, op.ContainerID, op.Container)
	case plan.OpRestartContainer:
		t := seconds(op.StopTimeout)
		if _, err := e.Engine.ContainerRestart(ctx, op.ContainerID, client.ContainerRestartOptions{Timeout: &t}); err != nil {
			return wrap(err, "restarting container %s", op.Container)
		}
		return e.postStart(ctx, op.Service, op.ContainerID, op.Container)
	case plan.OpUnpauseContainer:
		_, err := e.Engine.ContainerUnpause(ctx, op.ContainerID, client.ContainerUnpauseOptions{})
		return wrap(err, "unpausing container %s", op.Container)
	case plan.OpRemoveContainer:
		t := seconds(op.StopTimeout)
		if _, err := e.Engine.ContainerStop(ctx, op.ContainerID, client.ContainerStopOptions{Timeout: &t}); err != nil && !cerrdefs.IsNotFound(err) {
			return wrap(err, "stopping container %s", op.Container)
		}
		_, err := e.Engine.ContainerRemove(ctx, op.ContainerID, client.ContainerRemoveOptions{Force: true})
		if cerrdefs.IsNotFound(err) {
			return nil // already gone: that is what was wanted
		}
		return wrap(err, "removing container %s", op.Container)
	case plan.OpStopContainer:
		t := seconds(op.StopTimeout)
		_, err := e.Engine.ContainerStop(ctx, op.ContainerID, client.ContainerStopOptions{Timeout: &t})
		return wrap(err, "stopping container %s", op.Container)
	case plan.OpSetRestartPolicy:
		_, err := e.Engine.ContainerUpdate(ctx, op.ContainerID, client.ContainerUpdateOptions{
			RestartPolicy: &container.RestartPolicy{Name: container.RestartPolicyMode(op.RestartPolicy), MaximumRetryCount: op.RestartRetries},
		})
		return wrap(err, "setting the restart policy of container %s to %s", op.Container, op.RestartPolicy)
	case plan.OpDisconnectNetwork:
		_, err := e.Engine.NetworkDisconnect(ctx, op.Network, client.NetworkDisconnectOptions{Container: op.ContainerID})
		return wrap(err, "disconnecting container %s from network %s", op.Container, op.Network)
	case plan.OpWaitCondition:
		return e.wait(ctx, op)
	case plan.OpAddReplica:
		return e.addReplicas(ctx, op)
	case plan.OpExec:
		return e.exec(ctx, op)
	case plan.OpSignal:
		_, err := e.Engine.ContainerKill(ctx, op.ContainerID, client.ContainerKillOptions{Signal: op.Signal})
		return wrap(err, "sending %s to container %s", op.Signal, op.Container)
	case plan.OpWriteFile:
		return writeFile(op)
	}
	return fmt.Errorf("no executor for operation %s", op.Type)
}

// upService runs compose's `up` on a project narrowed to one service: compose
// creates missing replicas, recreates diverged ones and starts them, and
// touches no other service.
func (e *Executor) upService(ctx context.Context, service string) error {
	// The service and its dependencies: compose stamps a container's
	// depends_on label from the service's depends_on, which a project
	// narrowed to the service alone has lost, and its file-less commands
	// (`docker compose -p NAME stop`, `down`) order by that label. Only the
	// service itself is created and started (Services), dependencies are
	// never recreated, and the daemon brings a service up only once its
	// dependencies meet their conditions.
	project, err := e.Desired.Project.WithSelectedServices([]string{service})
	if err != nil {
		return fmt.Errorf("narrowing project to service %s: %w", service, err)
	}
	// Only the networks and volumes of these services: compose creates
	// every missing resource of the project it is given, and two calls
	// racing to create one network make two networks of the same name (the
	// plan creates them first, under a lock).
	project = project.WithoutUnnecessaryResources()
	start, err := startOnly(e.Desired.Project, service)
	if err != nil {
		return err
	}
	timeout := e.Desired.Services[service].StopGracePeriod
	err = e.Compose.Up(ctx, project, api.UpOptions{
		Create: api.CreateOptions{
			Services:             []string{service},
			Recreate:             api.RecreateDiverged,
			RecreateDependencies: api.RecreateNever,
			Inherit:              true,
			IgnoreOrphans:        true,
			QuietPull:            true,
			Timeout:              &timeout,
		},
		Start: api.StartOptions{Project: start, Services: []string{service}},
	})
	return wrap(err, "compose up of service %s", service)
}

// startOnly is the project compose's start phase is given: the service
// alone. Compose starts every stopped container of every service in that
// project, dependencies included, so a dependency's replica left down on
// purpose (a spent budget, a person's stop) would be started by the up of
// a dependent; reconcile has checked the dependencies before acting.
func startOnly(p *types.Project, service string) (*types.Project, error) {
	start, err := p.WithSelectedServices([]string{service}, types.IgnoreDependencies)
	if err != nil {
		return nil, fmt.Errorf("narrowing project to service %s alone: %w", service, err)
	}
	return start, nil
}

// addReplicas runs compose's `up` of one service scaled to op.Replicas,
// recreating none of the replicas there: compose creates the missing ones
// (numbered after the highest, named, labelled and hashed as its own up
// does) from the desired definition, or from op.Config (a rollback's
// previous definition), and starts them.
func (e *Executor) addReplicas(ctx context.Context, op plan.Operation) error {
	project, err := e.Desired.Project.WithSelectedServices([]string{op.Service})
	if err != nil {
		return fmt.Errorf("narrowing project to service %s: %w", op.Service, err)
	}
	project = project.WithoutUnnecessaryResources()
	svc := project.Services[op.Service]
	if op.Config != nil {
		// the labels compose's loader adds (working dir, config files) are
		// the project's, and not part of a definition kept as JSON
		labels := svc.CustomLabels
		svc = *op.Config
		svc.Name, svc.CustomLabels = op.Service, labels
	}
	svc.SetScale(op.Replicas)
	project.Services[op.Service] = svc
	start, err := startOnly(project, op.Service)
	if err != nil {
		return err
	}
	timeout := e.Desired.Services[op.Service].StopGracePeriod
	err = e.Compose.Up(ctx, project, api.UpOptions{
		Create: api.CreateOptions{
			Services:             []string{op.Service},
			Recreate:             api.RecreateNever,
			RecreateDependencies: api.RecreateNever,
			Inherit:              true,
			IgnoreOrphans:        true,
			QuietPull:            true,
			Timeout:              &timeout,
		},
		Start: api.StartOptions{Project: start, Services: []string{op.Service}},
	})
	return wrap(err, "compose up of service %s scaled to %d", op.Service, op.Replicas)
}

// createResources has compose create one network or volume, from a project
// holding that resource and no service, so it carries compose's labels.
func (e *Executor) createResources(ctx context.Context, networkKey, volumeKey string) error {
	src := e.Desired.Project
	p := *src
	p.Services = types.Services{}
	p.DisabledServices = maps.Clone(src.DisabledServices)
	if p.DisabledServices == nil {
		p.DisabledServices = types.Services{}
	}
	maps.Copy(p.DisabledServices, src.Services)
	p.Networks = types.Networks{}
	p.Volumes = types.Volumes{}
	what := ""
	if networkKey != "" {
		p.Networks[networkKey] = src.Networks[networkKey]
		what = "network " + src.Networks[networkKey].Name
	}
	if volumeKey != "" {
		p.Volumes[volumeKey] = src.Volumes[volumeKey]
		what = "volume " + src.Volumes[volumeKey].Name
	}
	err := e.Compose.Create(ctx, &p, api.CreateOptions{IgnoreOrphans: true, Recreate: api.RecreateNever, RecreateDependencies: api.RecreateNever})
	return wrap(err, "creating %s", what)
}

// wait polls snapshots until the dependency meets its condition. A wait on
// an optional dependency (required: false) never fails its dependents.
func (e *Executor) wait(ctx context.Context, op plan.Operation) error {
	dep := e.Desired.Services[op.Service]
	interval := e.PollInterval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	for {
		snap, err := e.Observe(ctx)
		if err != nil {
			return fmt.Errorf("observing %s: %w", op.Service, err)
		}
		state, why := plan.CheckCondition(op.Condition, dep, snap.ByService()[op.Service])
		switch state {
		case plan.ConditionMet:
			return nil
		case plan.ConditionFailed:
			if !op.Required {
				e.logger().Warn("optional dependency not ready, going on", "service", op.Service, "condition", op.Condition, "reason", why)
				return nil
			}
			return fmt.Errorf("dependency %s: %s: %s", op.Service, op.Condition, why)
		}
		select {
		case <-ctx.Done():
			if !op.Required {
				return nil
			}
			return fmt.Errorf("waiting for %s to be %s (%s): %w", op.Service, op.Condition, why, ctx.Err())
		case <-e.clock().After(interval):
		}
	}
}

func (e *Executor) logger() *slog.Logger { return logging.Or(e.Log) }

func (e *Executor) clock() clock.Clock { return clock.Or(e.Clock) }

func (e *Executor) now() time.Time { return e.clock().Now() }

func seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

func contains(nodes []*plan.Node, n *plan.Node) bool {
	for _, m := range nodes {
		if m == n {
			return true
		}
	}
	return false
}
