package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/swarmspec"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/dashboard"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/exitcode"
	"github.com/reconcile-dev/reconcile/internal/filewatch"
	"github.com/reconcile-dev/reconcile/internal/httpapi"
	"github.com/reconcile-dev/reconcile/internal/metrics"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
	"github.com/reconcile-dev/reconcile/reconciler/swarmloop"
)

// ErrNotManager: --swarm needs a swarm manager's engine.
var ErrNotManager = errors.New("the engine is not a swarm manager (docker swarm init, or --context a manager's engine)")

// Swarm is one stack's loop on a swarm (reconcile --swarm): the daemon
// and --once build it alike and run the same swarmloop.Controller.
type Swarm struct {
	Load   desired.Options
	Loader desired.ProjectLoader
	Engine *engine.Engine
	Log    *slog.Logger
	// Records receives every record; a Recorder for the stack.
	Records       *record.Recorder
	DryRun        bool
	RemoveOrphans bool
	Workers       int
	// HTTP are the daemon's options for its endpoints: Listen (none when
	// empty), AllowedHosts, ListenTokenFile, ListenInsecure and Version.
	HTTP Options

	ctl *swarmloop.Controller
}

// LoadStack loads the compose files and converts them for Swarm.
func LoadStack(ctx context.Context, loader desired.ProjectLoader, opts desired.Options) (*desired.State, *swarmspec.Stack, error) {
	d, err := desired.Load(ctx, loader, opts)
	if err != nil {
		return nil, nil, err
	}
	s, err := swarmspec.FromDesired(d)
	return d, s, err
}

// CheckManager fails unless eng is a swarm manager.
func CheckManager(ctx context.Context, c client.APIClient) error {
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return fmt.Errorf("asking the engine whether it is a swarm manager: %w", err)
	}
	if !info.Info.Swarm.ControlAvailable {
		return ErrNotManager
	}
	return nil
}

// Controller is the stack's loop, built once.
func (s *Swarm) Controller() *swarmloop.Controller {
	if s.ctl == nil {
		s.ctl = &swarmloop.Controller{
			Engine:        s.Engine.Client,
			Recorder:      s.Records,
			Log:           s.Log,
			DryRun:        s.DryRun,
			RemoveOrphans: s.RemoveOrphans,
		}
	}
	return s.ctl
}

// SwarmOutcome is how a --once run on a swarm ended.
type SwarmOutcome struct {
	Converged bool
	// Failed are the services Swarm gave up on (rolled back, paused).
	Failed map[string]string
	// Pending are the services not converged yet, with why.
	Pending map[string]string
	Steps   []swarmloop.Step
	Snap    *swarmstate.Snapshot
}

// Converge is --once --swarm: the loop runs until every service runs at
// the file's spec (healthy, or completed for a job), or Swarm gives up on
// one, or ctx ends.
func (s *Swarm) Converge(ctx context.Context, stack *swarmspec.Stack, poll time.Duration) (SwarmOutcome, error) {
	ctl := s.Controller()
	ctl.SetStack(stack)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctl.Run(runCtx, max(s.Workers, 1))
	}()
	defer func() { stop(); <-done }()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var out SwarmOutcome
	for {
		snap, steps, err := ctl.Look(ctx)
		if err != nil && ctx.Err() == nil {
			return out, err
		}
		if err == nil {
			out = outcome(snap, steps)
			if out.Converged {
				// the loop prunes when it next passes by; --once ends now,
				// so the configs and secrets a rotation replaced go first
				ctl.PruneObjects(ctx, snap)
				return out, nil
			}
			if len(out.Failed) > 0 {
				return out, nil
			}
		}
		select {
		case <-ctx.Done():
			return out, nil
		case <-tick.C:
		}
	}
}

func outcome(snap *swarmstate.Snapshot, steps []swarmloop.Step) SwarmOutcome {
	out := SwarmOutcome{Converged: true, Failed: map[string]string{}, Pending: map[string]string{}, Steps: steps, Snap: snap}
	for _, st := range steps {
		ok, failed, why := swarmloop.Converged(st, snap)
		switch {
		case failed:
			out.Failed[st.Service] = why
			out.Converged = false
		case !ok:
			out.Pending[st.Service] = why
			out.Converged = false
		}
	}
	return out
}

// SwarmWatched are the files a stack's daemon watches: the compose files,
// and the files its configs and secrets are made of, so that an edit of
// one is rotated without a deploy.
func SwarmWatched(d *desired.State) []string {
	out := slices.Clone(d.Files)
	for _, c := range d.Project.Configs {
		if c.File != "" && !bool(c.External) {
			out = append(out, c.File)
		}
	}
	for _, sec := range d.Project.Secrets {
		if sec.File != "" && !bool(sec.External) {
			out = append(out, sec.File)
		}
	}
	return out
}

// Run is the daemon on a swarm: the loop, fed by the engine's events, the
// compose files' edits and a resync; a file that stops loading is
// reported and the last good stack kept.
func (s *Swarm) Run(ctx context.Context, stack *swarmspec.Stack, files []string, resync time.Duration) error {
	ctl := s.Controller()
	ctl.SetStack(stack)
	log := s.Log
	// the endpoints first: a bad --listen is refused before anything runs
	if s.HTTP.Listen != "" {
		srv, err := s.serve(stack.Namespace.Name())
		if err != nil {
			return exitcode.With(exitcode.Input, err)
		}
		defer srv.Close()
	}
	watcher, err := filewatch.New(clock.Real{}, log)
	if err != nil {
		return fmt.Errorf("watching the compose files: %w", err)
	}
	defer watcher.Close()
	if err := watcher.Set(files); err != nil {
		log.Warn("some compose files are not watched", "err", err)
	}
	go watcher.Run(ctx, func(changed []string) {
		d, st, err := LoadStack(ctx, s.Loader, s.Load)
		if err != nil {
			s.Records.Event(record.InvalidConfig, "", "", desired.OneLine(err.Error())+" (the last good compose files are kept)")
			return
		}
		for _, n := range st.Notes {
			log.Info("swarm: "+n.String(), "handled", n.Handled)
		}
		_ = watcher.Set(SwarmWatched(d))
		s.Records.Event(record.ConfigReloaded, "", "", fmt.Sprintf("compose files read again (%d changed)", len(changed)))
		ctl.SetStack(st)
	})
	go swarmstate.Watch(ctx, s.Engine.Client, stack.Namespace.Name(), clock.Real{}, log, ctl.EnqueueAll, func(ev swarmstate.Event) {
		if ev.Node != "" {
			ctl.EnqueueAll()
			return
		}
		ctl.Enqueue(ev.Service)
	})
	if resync > 0 {
		go func() {
			t := time.NewTicker(resync)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					ctl.EnqueueAll()
				}
			}
		}()
	}
	log.Info("watching the stack on the swarm", "services", len(stack.Order))
	ctl.Run(ctx, max(s.Workers, 1))
	log.Info("daemon stopped; the stack is left running")
	return nil
}

// serve starts the endpoints of a stack's daemon: /status and the
// dashboard read the loop's last look (tasks per node), /metrics counts its
// records and its stack's tasks per node and drift, /events its records.
func (s *Swarm) serve(name string) (*http.Server, error) {
	met := metrics.New(s.HTTP.Version, runtime.Version())
	met.CountEngineRequests(s.Engine.Calls)
	s.Records.SetCount(met.Record)
	pm := met.For(name)
	var changes httpapi.Changes
	ctl := s.Controller()
	ctl.Seen = func(st plan.ProjectStatus, steps []swarmloop.Step) {
		tasks, drift := map[[2]string]int{}, map[[2]string]int{}
		for _, svc := range st.Services {
			for _, c := range svc.Containers {
				if c.State == "running" {
					tasks[[2]string{svc.Service, c.Node}]++
				}
			}
		}
		for _, step := range steps {
			if step.Action != swarmloop.Nothing {
				drift[[2]string{step.Service, string(step.Action)}]++
			}
		}
		pm.Tasks(tasks)
		pm.Drift(drift)
		changes.Notify()
	}
	ctl.Reconciled = func(took time.Duration, retry bool, err error) {
		result := "success"
		switch {
		case err != nil:
			result = "error"
		case retry:
			result = "requeue"
		}
		pm.Reconciled(result, took, err != nil)
	}
	status := func(_ context.Context, project string) (any, error) {
		if project != "" && project != name {
			return nil, fmt.Errorf("%w: %s", httpapi.ErrNoProject, project)
		}
		st, ok := ctl.Served()
		if !ok {
			return nil, errors.New("the stack is not looked at yet")
		}
		return st, nil
	}
	api := &httpapi.Server{
		Registry: met.Registry,
		Records:  s.Records,
		Status:   status,
		Ready: func() (bool, string) {
			if _, ok := ctl.Served(); !ok {
				return false, "first look at the stack not done"
			}
			return true, ""
		},
		Changes: &changes,
		Page:    dashboard.Handler(),
	}
	return serveHTTP(s.Log, s.HTTP.Listen, s.HTTP, api)
}
