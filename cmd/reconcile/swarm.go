package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/swarmspec"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
	"github.com/reconcile-dev/reconcile/reconciler/swarmloop"
)

// swarmPoll is how often --once --swarm looks whether the stack converged.
const swarmPoll = 500 * time.Millisecond

// openSwarm loads and converts the stack, prints what Swarm does not
// honour, and connects to a manager: bad input is exit 2 before the
// engine is asked anything, an engine that is not a manager exit 3.
func openSwarm(ctx context.Context, g *globals, dryRun bool) (*daemon.Swarm, *desired.State, *swarmspec.Stack, error) {
	opts, err := g.options()
	if err != nil {
		return nil, nil, nil, err
	}
	loader, err := engine.Loader()
	if err != nil {
		return nil, nil, nil, err
	}
	d, stack, err := daemon.LoadStack(ctx, loader, opts)
	if d != nil {
		g.secrets.Include(d.Secrets)
	}
	if err != nil {
		return nil, nil, nil, withCode(exitInput, err)
	}
	for _, n := range stack.Notes {
		fmt.Fprintln(g.stderr, "swarm: "+n.String())
	}
	eng, err := g.connect(ctx)
	if err != nil {
		return nil, nil, nil, withCode(exitEngine, err)
	}
	if err := daemon.CheckManager(ctx, eng.Client); err != nil {
		return nil, nil, nil, withCode(exitEngine, err)
	}
	log := g.log.With("stack", d.Project.Name)
	return &daemon.Swarm{
		Load:          opts,
		Loader:        loader,
		Engine:        eng,
		Log:           log,
		Records:       record.New(log, clock.Real{}, record.DefaultKeep).For(d.Project.Name, log).Masking(g.secrets),
		DryRun:        dryRun,
		RemoveOrphans: g.removeOrphans,
		Workers:       onceWorkers,
	}, d, stack, nil
}

// runSwarmOnce is --once --swarm: exit 0 converged, 1 not converged within
// timeout or given up on by Swarm (rolled back, paused), 2 bad input, 3
// the engine unreachable or not a manager.
func runSwarmOnce(ctx context.Context, g *globals, timeout time.Duration) error {
	s, d, stack, err := openSwarm(ctx, g, false)
	if err != nil {
		return err
	}
	release, err := lockStack(g, d.Project.Name)
	if err != nil {
		return err
	}
	defer release()
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	out, err := s.Converge(runCtx, stack, swarmPoll)
	if err != nil {
		return withCode(exitEngine, err)
	}
	if out.Snap != nil {
		printSwarmStatus(g.stdout, out.Snap, out.Steps)
	}
	if out.Converged {
		s.Log.Info("converged", "took", time.Since(start).Round(time.Millisecond).String())
		return nil
	}
	if len(out.Failed) > 0 {
		fmt.Fprintln(g.stderr, "not converged: Swarm gave up on a definition:")
	} else {
		fmt.Fprintf(g.stderr, "not converged within %s:\n", timeout)
	}
	for _, name := range stack.Order {
		if why, ok := out.Failed[name]; ok {
			fmt.Fprintf(g.stderr, "  %s: failed: %s\n", name, why)
		} else if why, ok := out.Pending[name]; ok {
			fmt.Fprintf(g.stderr, "  %s: %s\n", name, why)
		}
	}
	return withCode(exitNotConverged, errSilent)
}

// runSwarmDaemon is the daemon with --swarm.
func runSwarmDaemon(ctx context.Context, g *globals, df daemon.Options) error {
	s, d, stack, err := openSwarm(ctx, g, df.DryRun)
	if err != nil {
		return err
	}
	release, err := lockStack(g, d.Project.Name)
	if err != nil {
		return err
	}
	defer release()
	s.Workers = df.Workers
	s.HTTP = df
	return s.Run(ctx, stack, daemon.SwarmWatched(d), df.Resync)
}

// lookAtSwarm is one look at the stack, acting on nothing: for diff and
// status.
func lookAtSwarm(ctx context.Context, g *globals) (*swarmspec.Stack, *swarmstate.Snapshot, []swarmloop.Step, error) {
	s, _, stack, err := openSwarm(ctx, g, true)
	if err != nil {
		return nil, nil, nil, err
	}
	ctl := s.Controller()
	ctl.SetStack(stack)
	snap, steps, err := ctl.Look(ctx)
	if err != nil {
		return nil, nil, nil, withCode(exitEngine, err)
	}
	return stack, snap, steps, nil
}

// swarmDiff is diff --swarm: what a deploy would do, service by service.
// Exit 0 when nothing would change, 1 otherwise (0 with --exit-code=false).
func swarmDiff(ctx context.Context, g *globals, exitCode bool) error {
	stack, snap, steps, err := lookAtSwarm(ctx, g)
	if err != nil {
		return err
	}
	changes := 0
	for _, name := range sortedKeys(stack.Networks) {
		if _, ok := snap.Networks[name]; !ok {
			fmt.Fprintf(g.stdout, "+ network %s\n", name)
			changes++
		}
	}
	for _, o := range swarmloop.Objects(stack.Configs, stack.Secrets) {
		if p := swarmloop.Place(o, snap); p.Create {
			fmt.Fprintf(g.stdout, "+ %s %s\n", o.Kind, p.Name)
			changes++
		}
	}
	for _, st := range steps {
		switch st.Action {
		case swarmloop.Create:
			fmt.Fprintf(g.stdout, "+ service %s\n", st.Service)
		case swarmloop.Update:
			fmt.Fprintf(g.stdout, "~ service %s: %s\n", st.Service, strings.Join(st.Changed, ", "))
		case swarmloop.Wait:
			if _, exists := snap.Services[st.Service]; !exists {
				fmt.Fprintf(g.stdout, "+ service %s (after its dependencies: %s)\n", st.Service, st.Why)
			} else {
				fmt.Fprintf(g.stdout, "~ service %s (after its dependencies: %s)\n", st.Service, st.Why)
			}
		case swarmloop.Held:
			fmt.Fprintf(g.stdout, "! service %s: %s\n", st.Service, st.Why)
		default:
			continue
		}
		changes++
	}
	for name := range snap.Services {
		if !slices.Contains(stack.Order, name) {
			fmt.Fprintf(g.stdout, "? service %s: not in the compose files (--remove-orphans removes it)\n", name)
		}
	}
	if changes == 0 {
		fmt.Fprintf(g.stdout, "stack %s matches the compose files\n", stack.Namespace.Name())
		return nil
	}
	if exitCode {
		return withCode(exitNotConverged, errSilent)
	}
	return nil
}

// swarmStatus is status --swarm: a table, or with -o json the status a
// daemon's /status serves (a project's status: tasks as containers, each
// with its node).
func swarmStatus(ctx context.Context, g *globals, output string) error {
	stack, snap, steps, err := lookAtSwarm(ctx, g)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(g.stdout, swarmloop.Status(stack, snap, steps))
	}
	printSwarmStatus(g.stdout, snap, steps)
	return nil
}

// printSwarmStatus is one line per service: mode, tasks running of
// desired, where they run, and where it stands.
func printSwarmStatus(w io.Writer, snap *swarmstate.Snapshot, steps []swarmloop.Step) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tMODE\tTASKS\tNODES\tSTATE")
	for _, st := range steps {
		svc, ok := snap.Services[st.Service]
		mode, tasks := "-", "-"
		if ok {
			mode = modeOf(svc.Spec.Mode)
			if ss := svc.ServiceStatus; ss != nil {
				tasks = fmt.Sprintf("%d/%d", ss.RunningTasks, ss.DesiredTasks)
			}
		}
		var nodes []string
		for node, n := range snap.Placement(st.Service) {
			nodes = append(nodes, fmt.Sprintf("%s:%d", node, n))
		}
		slices.Sort(nodes)
		state := "converged"
		if ok, failed, why := swarmloop.Converged(st, snap); failed {
			state = "failed: " + why
		} else if !ok {
			state = why
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Service, mode, tasks, strings.Join(nodes, ","), state)
	}
	_ = tw.Flush()
}

func modeOf(m swarm.ServiceMode) string {
	switch {
	case m.Global != nil:
		return "global"
	case m.ReplicatedJob != nil:
		return "replicated-job"
	case m.GlobalJob != nil:
		return "global-job"
	}
	return "replicated"
}

// lockStack takes the project's lock, as a daemon of it on one host does:
// one reconciler of a project at a time, whichever its mode.
func lockStack(g *globals, name string) (release func(), err error) {
	dir, err := g.stateDirectory()
	if err != nil {
		return nil, withCode(exitInput, err)
	}
	locks, err := daemon.LockProject(dir, "", "", name)
	if err != nil {
		return nil, withCode(exitInput, err)
	}
	return func() {
		for _, l := range locks {
			_ = l.Release()
		}
	}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
