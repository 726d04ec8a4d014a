package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconcile-dev/reconcile/controllers/reloads"
	"github.com/reconcile-dev/reconcile/controllers/restarts"
	"github.com/reconcile-dev/reconcile/controllers/rollouts"
	"github.com/reconcile-dev/reconcile/controllers/upstreams"
	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/filewatch"
	"github.com/reconcile-dev/reconcile/internal/metrics"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// project is one project's reconciler inside a daemon: its own controller
// and queue, restart state, lock, file watches and records. Nothing in it
// is shared with another project but the host's engine and HTTP endpoints,
// so that one project's invalid file or crash loop never delays another.
type project struct {
	h    *host
	name string
	opts desired.Options
	log  *slog.Logger

	records  *record.Recorder
	met      *metrics.Project
	ctrl     *reconciler.Controller
	restarts *restarts.Restarts
	rollouts *rollouts.Rollouts
	reloads  *reloads.Reloads
	// files watches the compose files; configs what services mount as
	// configuration.
	files   *filewatch.Watcher
	configs *filewatch.Watcher
	locks   []*statedir.Lock

	reloadMu sync.Mutex
	// reloading tracks the config reloads under way: shutdown waits for
	// them, for at most --shutdown-timeout.
	reloading sync.WaitGroup
	// saveFailed says a failed write of the restart state was recorded.
	saveFailed atomic.Bool

	stop context.CancelFunc
	done chan struct{}
}

// lockProject takes the project's lock in the state directory, and, once
// the engine's ID is known, the one under the engine: one reconciler per
// project on an engine, whatever its state directory.
func lockProject(stateDir, lockDir, engineID, name string) ([]*statedir.Lock, error) {
	var locks []*statedir.Lock
	dirs := []string{stateDir}
	if engineID != "" {
		dirs = append(dirs, statedir.EngineLockDir(lockDir, engineID))
	}
	for _, dir := range dirs {
		l, err := statedir.Acquire(dir, name)
		if err != nil {
			for _, held := range locks {
				_ = held.Release()
			}
			return nil, err
		}
		locks = append(locks, l)
	}
	return locks, nil
}

// newProject builds a project's reconciler for d; it holds locks from
// then on (released by close).
func newProject(h *host, d *desired.State, opts desired.Options, locks []*statedir.Lock) (*project, error) {
	name := d.Project.Name
	log := h.g.log.With("project", name)
	p := &project{h: h, name: name, opts: opts, log: log, locks: locks, done: make(chan struct{})}
	p.records = h.records.For(name, log)
	p.met = h.met.For(name)
	p.ctrl = &reconciler.Controller{
		Observe: func(ctx context.Context) (*observed.Snapshot, error) {
			return observed.Observe(ctx, h.eng.Client, name, time.Now())
		},
		Compose: h.eng.Compose,
		Engine:  h.eng.Client,
		Exec:    h.eng.Client,
		Images:  h.eng.Compose,
		Options: plan.Options{RemoveOrphans: h.g.removeOrphans},
		DryRun:  h.f.dryRun,
		Log:     log,
		Clock:   clock.Real{},
		Records: p.records,
		Metrics: p.met,
		Workers: h.f.workers,
		Offline: func() bool { return !h.connected.Load() },
	}
	rs, err := restarts.New(clock.Real{}, statedir.StateFile(h.stateDir, name), log, func(err error) {
		p.met.StateSaveFailed()
		if !p.saveFailed.Swap(true) {
			p.records.Event(record.StateNotSaved, "", "", fmt.Sprintf("writing the restart state: %v; retrying every %s", err, statedir.SaveRetry))
		}
	})
	if err != nil {
		return nil, withCode(exitInternal, err)
	}
	if rs.Discarded != "" {
		p.records.Event(record.StateDiscarded, "", "", fmt.Sprintf("the restart state could not be read (%v): moved to %s; restart counts start anew", rs.DiscardedBecause, rs.Discarded))
	}
	p.restarts = rs
	p.reloads = &reloads.Reloads{
		Engine:  h.eng.Client,
		Observe: p.ctrl.Snapshot,
		Records: p.records,
		Log:     log,
		Clock:   clock.Real{},
		OnRestart: func(service string, number int, id string) {
			p.ctrl.ExpectOwn(plan.Operation{Type: plan.OpRestartContainer, Service: service, Number: number, ContainerID: id})
		},
	}
	if p.configs, err = filewatch.New(clock.Real{}, log); err != nil {
		_ = rs.Close()
		return nil, withCode(exitInternal, err)
	}
	if p.files, err = filewatch.New(clock.Real{}, log); err != nil {
		_ = rs.Close()
		p.configs.Close()
		return nil, withCode(exitInternal, err)
	}
	ups := &upstreams.Upstreams{
		Reloader: p.reloads,
		Records:  p.records,
		Pending:  p.ctrl.Pending,
		Enqueue:  p.ctrl.Enqueue,
		Clock:    clock.Real{},
		Written:  p.configs.Accept,
		Log:      log,
	}
	p.reloads.BeforeRestart = ups.Drain
	ro, err := rollouts.New(clock.Real{}, statedir.File{Path: statedir.RolloutFile(h.stateDir, name)}, log)
	if err != nil {
		_ = rs.Close()
		p.configs.Close()
		p.files.Close()
		return nil, withCode(exitInternal, err)
	}
	ro.Remember(d)
	p.rollouts = ro
	// Rollouts reviews first (it replaces a changed service's replicas in
	// batches), then upstreams: a replica must leave the load balancer's
	// file before a restart or removal of it may run.
	p.ctrl.Policies = []reconciler.Policy{
		{Name: "rollouts", Decide: ro, Account: ro},
		{Name: "upstreams", Decide: ups, Sync: ups, Status: ups},
		{Name: "restarts", Decide: rs, Account: rs, Learn: rs, Listed: rs, Relisted: rs, LeftDown: rs, Status: rs},
	}
	p.watchConfigs(d)
	p.ctrl.SetDesired(d)
	if err := p.files.Set(d.Files); err != nil {
		log.Warn("some compose files cannot be watched", "error", err)
	}
	return p, nil
}

// run reconciles the project until ctx ends (the daemon stops, or the
// agent lets the project go), then lets its reconciles finish under work
// and releases what the project holds.
func (p *project) run(ctx, work context.Context) {
	defer close(p.done)
	defer p.close()
	var wg sync.WaitGroup
	wg.Go(func() {
		p.files.Run(ctx, func(changed []string) { p.reload("changed: " + strings.Join(changed, ", ")) })
	})
	wg.Go(func() {
		p.configs.Run(ctx, func(changed []string) { p.configChanged(ctx, work, changed) })
	})
	p.ctrl.Run(ctx, work)
	wg.Wait()
	p.reloading.Wait() // reloads under way finish, or are cancelled with work
}

// close writes what the restart state owes and gives up the watches and
// locks.
func (p *project) close() {
	_ = p.restarts.Close()
	p.files.Close()
	p.configs.Close()
	for _, l := range p.locks {
		_ = l.Release()
	}
}

// event notes one engine event of the project and queues its service; it
// runs on the events reader.
func (p *project) event(ev observed.Event) {
	p.ctrl.Event(ev)
}

// reload re-reads the compose files. An invalid edit is reported and the
// last good desired state stays in force: nothing is torn down.
func (p *project) reload(why string) {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	d, err := desired.Load(context.Background(), p.h.loader, p.opts)
	if err != nil {
		service := ""
		var ie *desired.InputError
		if errors.As(err, &ie) {
			service = ie.Service
		}
		p.records.Event(record.InvalidConfig, service, "", desired.OneLine(err.Error())+"; keeping the last good configuration")
		return
	}
	if d.Project.Name != p.name {
		p.records.Event(record.InvalidConfig, "", "", fmt.Sprintf("the edit renames the project to %q: a project keeps its name while reconciled (restart the daemon to rename it); keeping the last good configuration", d.Project.Name))
		return
	}
	if err := localOnly(d, p.h.eng); err != nil {
		p.records.Event(record.InvalidConfig, "", "", desired.OneLine(err.Error())+"; keeping the last good configuration")
		return
	}
	if err := p.files.Set(d.Files); err != nil {
		p.log.Warn("some compose files cannot be watched", "error", err)
	}
	p.watchConfigs(d)
	p.rollouts.Remember(d)
	old := p.ctrl.Desired()
	p.records.Event(record.ConfigReloaded, "", "", fmt.Sprintf("desired state reloaded (%s): %s", why, changedServices(old, d)))
	p.ctrl.SetDesired(d)
	if d.Disabled {
		p.h.optedOut(p)
	}
}

// watchConfigs watches the configuration files and directories the
// services mount.
func (p *project) watchConfigs(d *desired.State) {
	if p.h.eng.Remote() {
		return // the mounts name the engine's files, not this machine's
	}
	if err := p.configs.Set(slices.Collect(maps.Keys(reloads.ConfigSources(d)))); err != nil {
		p.log.Warn("some configuration mounts cannot be watched", "error", err)
	}
}

// configChanged runs the reload action of each service that mounts a
// changed path, services side by side, each reload on its own. Reloads run
// under work, so that shutdown lets them finish within its timeout.
func (p *project) configChanged(run, work context.Context, changed []string) {
	d := p.ctrl.Desired()
	sources := reloads.ConfigSources(d)
	why := map[string][]string{}
	for _, path := range changed {
		for _, svc := range sources[path] {
			why[svc] = append(why[svc], path)
		}
	}
	for svc, paths := range why {
		if p.h.f.dryRun {
			p.records.Event(record.ReloadSkipped, svc, "", "changed: "+strings.Join(paths, ", ")+" (dry run: not reloading)")
			continue
		}
		if run.Err() != nil {
			return // shutting down: no new reload
		}
		p.reloading.Go(func() {
			if err := p.reloads.Reload(work, d, svc, "changed: "+strings.Join(paths, ", ")); err != nil {
				p.log.Warn("reload failed", "service", svc, "error", err)
			}
		})
	}
}

// changedServices says which services a reload changed, for the record.
func changedServices(old, d *desired.State) string {
	var changed []string
	for _, name := range d.Order {
		o, ok := old.Services[name]
		if !ok {
			changed = append(changed, name+" (added)")
			continue
		}
		if plan.ExpectedHash(o.Config, nil) != plan.ExpectedHash(d.Services[name].Config, nil) {
			changed = append(changed, name)
		} else if o.Replicas != d.Services[name].Replicas {
			changed = append(changed, fmt.Sprintf("%s (replicas %d -> %d)", name, o.Replicas, d.Services[name].Replicas))
		}
	}
	for _, name := range old.Order {
		if _, ok := d.Services[name]; !ok {
			changed = append(changed, name+" (removed)")
		}
	}
	if len(changed) == 0 {
		return "no service definition changed"
	}
	return "services changed: " + strings.Join(changed, ", ")
}

// localOnly refuses, for an engine on another machine, what needs the
// engine's own files: upstream files written for a load balancer's bind
// mount, and reload actions on edits of bind-mounted files (the engine's
// mounts name paths on its machine, not this one). One line, exit 2. The
// default reload (a rolling restart on such an edit) is simply off there:
// watchConfigs watches nothing.
func localOnly(d *desired.State, eng *engine.Engine) error {
	if !eng.Remote() {
		return nil
	}
	for _, name := range d.Order {
		s := d.Services[name]
		switch {
		case len(s.Policy.Upstreams) > 0:
			return d.InputError(name, desired.ExtensionKey+".upstreams",
				fmt.Errorf("needs the engine's files (the load balancer reads the file through a bind mount), and the engine at %s is remote", eng.Host))
		case len(s.Policy.Reload.Check)+len(s.Policy.Reload.Exec) > 0 || s.Policy.Reload.Signal != "":
			return d.InputError(name, desired.ExtensionKey+".reload",
				fmt.Errorf("needs the engine's files (it follows edits of bind-mounted files), and the engine at %s is remote", eng.Host))
		}
	}
	return nil
}
