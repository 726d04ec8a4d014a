// Package daemon is reconcile's loop with its inputs: one Project per
// compose project (its Controller, policies, state, locks and file
// watches), run by the daemon beside others over one event stream, or once
// by `reconcile --once` (Converge). Both modes build the same Project and
// run the same Controller; what differs on purpose is an option of it
// (Config.Once), never a second loop.
package daemon

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

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/controllers/imageupdates"
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
	"github.com/reconcile-dev/reconcile/internal/secrets"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/observed/registry"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Config is what a Project is built from: the host's shared parts (the
// engine, the records' history, the metrics) and the mode.
type Config struct {
	Engine *engine.Engine
	Loader desired.ProjectLoader
	Log    *slog.Logger
	// Records is the host's history; the project records under its name.
	Records *record.Recorder
	// Metrics is the host's registry; nil keeps no metrics (--once).
	Metrics  *metrics.Metrics
	StateDir string
	Options  plan.Options
	DryRun   bool
	// Workers bounds how many services are reconciled at once.
	Workers int
	// EngineSlots bounds the engine operations in flight across every
	// project of the host (nil: unbounded).
	EngineSlots execute.Slots
	// Once runs the loop as `reconcile --once`: the files are read once and
	// not watched, and what the run finds stopped or removed when it starts
	// is brought up as compose's up would (restarts.Restarts.UpAtStart).
	// Everything decided after that is decided as the daemon decides.
	Once bool
	// Offline, when set, says the engine is known to be away.
	Offline func() bool
	// OptedOut is told that a running project's files now opt out of
	// reconciling (x-reconcile.enabled: false).
	OptedOut func(*Project)
	// HandEdited, when set, is asked before a watched file's change is
	// acted on; true says the change was an edit by hand that is not to
	// be applied (a git source's checkout: it was put back, and the
	// putting back is the change that reloads).
	HandEdited func(*Project) bool
}

// Project is one project's reconciler: its own controller and queue,
// restart state, lock, file watches and records. Nothing in it is shared
// with another project but the host's engine and HTTP endpoints, so that
// one project's invalid file or crash loop never delays another.
type Project struct {
	cfg  Config
	name string
	opts desired.Options
	log  *slog.Logger

	// secrets is the Set of the desired state in force: the project's log
	// and records are masked with it.
	secrets  secrets.Holder
	records  *record.Recorder
	met      *metrics.Project
	ctrl     *reconciler.Controller
	restarts *restarts.Restarts
	rollouts *rollouts.Rollouts
	reloads  *reloads.Reloads
	// images follows the tags of the services that ask for it; nil in
	// Once mode.
	images *imageupdates.Updater
	// files watches the compose files; configs what services mount as
	// configuration. Nil in Once mode.
	files   *filewatch.Watcher
	configs *filewatch.Watcher
	locks   []*statedir.Lock

	reloadMu sync.Mutex
	// notWatched are the configuration mounts said to be over the caps.
	notWatched map[string]bool
	// saveFailed says a failed write of the restart state was recorded.
	saveFailed atomic.Bool

	stop context.CancelFunc
	done chan struct{}
}

// LockProject takes the project's lock in the state directory, and, once
// the engine's ID is known, the one under the engine: one reconciler per
// project on an engine, whatever its state directory.
func LockProject(stateDir, lockDir, engineID, name string) ([]*statedir.Lock, error) {
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

// New builds a project's reconciler for d; it holds locks from then on,
// and gives them back (with everything else it opened) when it fails.
// Close releases them.
func New(cfg Config, d *desired.State, opts desired.Options, locks []*statedir.Lock) (_ *Project, err error) {
	name := d.Project.Name
	p := &Project{cfg: cfg, name: name, opts: opts, locks: locks, done: make(chan struct{}), notWatched: map[string]bool{}}
	p.secrets.Store(d.Secrets)
	log := slog.New(secrets.Handler(cfg.Log.Handler(), &p.secrets)).With("project", name)
	p.log = log
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.records = cfg.Records.For(name, log).Masking(&p.secrets)
	var met reconciler.Metrics
	if cfg.Metrics != nil {
		p.met = cfg.Metrics.For(name)
		met = p.met
	}
	p.ctrl = &reconciler.Controller{
		Observe: func(ctx context.Context) (*observed.Snapshot, error) {
			return observed.Observe(ctx, cfg.Engine.Client, name, time.Now())
		},
		ObserveContainers: func(ctx context.Context, base *observed.Snapshot) (*observed.Snapshot, error) {
			return observed.ObserveContainers(ctx, cfg.Engine.Client, name, base, time.Now())
		},
		Compose: cfg.Engine.Compose,
		Engine:  cfg.Engine.Client,
		Exec:    cfg.Engine.Client,
		Images:  cfg.Engine.Compose,
		Options: cfg.Options,
		DryRun:  cfg.DryRun,
		Log:     log,
		Clock:   clock.Real{},
		Records: p.records,
		Metrics: met,
		Workers: cfg.Workers,
		Offline: cfg.Offline,

		EngineSlots: cfg.EngineSlots,
	}
	p.restarts, err = restarts.New(clock.Real{}, statedir.StateFile(cfg.StateDir, name), log, func(err error) {
		if p.met != nil {
			p.met.StateSaveFailed()
		}
		if !p.saveFailed.Swap(true) {
			p.records.Event(record.StateNotSaved, "", "", fmt.Sprintf("writing the restart state: %v; retrying every %s", err, statedir.SaveRetry))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("opening the restart state of project %s: %w", name, err)
	}
	rs := p.restarts
	rs.UpAtStart = cfg.Once
	if rs.Discarded != "" {
		p.records.Event(record.StateDiscarded, "", "", fmt.Sprintf("the restart state could not be read (%v): moved to %s; restart counts start anew", rs.DiscardedBecause, rs.Discarded))
	}
	p.reloads = &reloads.Reloads{
		Observe: p.ctrl.Snapshot,
		Records: p.records,
		Log:     log,
		Clock:   clock.Real{},
	}
	var written func(string)
	if !cfg.Once {
		if p.configs, err = filewatch.New(clock.Real{}, log); err != nil {
			return nil, fmt.Errorf("watching the configuration of project %s: %w", name, err)
		}
		if p.files, err = filewatch.New(clock.Real{}, log); err != nil {
			return nil, fmt.Errorf("watching the compose files of project %s: %w", name, err)
		}
		written = p.configs.Accept
	}
	ups := &upstreams.Upstreams{
		Reloader: p.reloads,
		Records:  p.records,
		Pending:  p.ctrl.Pending,
		Enqueue:  p.ctrl.Enqueue,
		Clock:    clock.Real{},
		Written:  written,
		Log:      log,
	}
	p.reloads.BeforeRestart = ups.Drain
	if p.rollouts, err = rollouts.New(clock.Real{}, statedir.File{Path: statedir.RolloutFile(cfg.StateDir, name)}, log); err != nil {
		return nil, fmt.Errorf("opening the rollouts of project %s: %w", name, err)
	}
	if !cfg.Once {
		p.images = &imageupdates.Updater{
			Registry: registry.Client{},
			Local:    engineImages{cfg.Engine.Client},
			Records:  p.records,
			Clock:    clock.Real{},
			Log:      log,
			File:     statedir.ImagesFile(cfg.StateDir, name),
			Apply:    p.Reload,
		}
		if err := p.images.Load(); err != nil {
			return nil, fmt.Errorf("opening the image updates of project %s: %w", name, err)
		}
		p.images.Override(d)
	}
	ro := p.rollouts
	ro.Remember(d)
	// Rollouts reviews first (it replaces a changed service's replicas in
	// batches), then upstreams: a replica must leave the load balancer's
	// file before a restart or removal of it may run.
	p.ctrl.Policies = []reconciler.Policy{
		{Name: "rollouts", Decide: ro, Account: ro, Status: ro},
		{Name: "reloads", Sync: p.reloads},
		{Name: "upstreams", Decide: ups, Sync: ups, Status: ups},
		{Name: "restarts", Decide: rs, Account: rs, Learn: rs, Listed: rs, Relisted: rs, LeftDown: rs, Status: rs},
	}
	p.watchConfigs(d)
	p.ctrl.SetDesired(d)
	if p.files != nil {
		if err := p.files.Set(d.Files); err != nil {
			log.Warn("some compose files cannot be watched", "error", err)
		}
	}
	return p, nil
}

// AnnotateFromState adds to st the restart figures a daemon of the project
// keeps in stateDir, reading the state file without writing it: `reconcile
// status` with no daemon to ask. A state file that cannot be read adds
// nothing.
func AnnotateFromState(st *plan.ProjectStatus, d *desired.State, stateDir string, now time.Time) {
	r, err := restarts.New(clock.Real{}, statedir.ReadOnly(statedir.StateFile(stateDir, d.Project.Name)), nil, nil)
	if err != nil {
		return
	}
	r.Annotate(st, d, now)
	_ = r.Close() // read only: nothing is owed
	u := &imageupdates.Updater{File: statedir.ImagesFile(stateDir, d.Project.Name)}
	if u.Load() == nil {
		u.Annotate(st)
	}
}

// Name is the project's name.
func (p *Project) Name() string { return p.name }

// Controller is the project's controller.
func (p *Project) Controller() *reconciler.Controller { return p.ctrl }

// Records is the project's recorder.
func (p *Project) Records() *record.Recorder { return p.records }

// Start runs the project on wg until run ends or Stop; reconciles in
// progress then finish under work.
func (p *Project) Start(run, work context.Context, wg *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(run)
	p.stop = cancel
	wg.Go(func() { p.Run(ctx, work) })
}

// Stop ends a started project and waits until it has let go of its locks
// and state.
func (p *Project) Stop() {
	p.stop()
	<-p.done
}

// Run reconciles the project until ctx ends (the daemon stops, or the
// agent lets the project go), then lets its reconciles finish under work
// and releases what the project holds.
func (p *Project) Run(ctx, work context.Context) {
	defer close(p.done)
	defer p.Close()
	var wg sync.WaitGroup
	if p.files != nil {
		wg.Go(func() {
			p.files.Run(ctx, func(changed []string) { p.Reload("changed: " + strings.Join(changed, ", ")) })
		})
		wg.Go(func() {
			p.configs.Run(ctx, p.configChanged)
		})
	}
	if p.images != nil {
		wg.Go(func() { p.followImages(ctx) })
	}
	p.ctrl.Run(ctx, work)
	wg.Wait()
}

// imageCheck is how often the services' image_updates intervals are
// looked at (each service's own interval says when its registry is asked).
const imageCheck = time.Second

// followImages asks the registries of the services that follow their tags
// when their intervals pass, and hands the updater the project's records
// (its rollouts' verdicts), until ctx ends. Never on the events reader.
func (p *Project) followImages(ctx context.Context) {
	recs, stop := p.records.Subscribe()
	defer stop()
	tick := time.NewTicker(imageCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case rec, ok := <-recs:
			if !ok {
				return
			}
			if rec.Project == p.name {
				p.images.Observe(rec)
			}
		case <-tick.C:
			if d := p.ctrl.Desired(); d != nil {
				p.images.Check(ctx, d)
			}
		}
	}
}

// annotateImages marks the services whose new digest is rolling out.
func (p *Project) annotateImages(st *plan.ProjectStatus) {
	if p.images != nil {
		p.images.Annotate(st)
	}
}

// engineImages says which digest of an image's repository the engine holds.
type engineImages struct{ c client.APIClient }

func (e engineImages) LocalDigest(ctx context.Context, image string) (string, error) {
	res, err := e.c.ImageInspect(ctx, image)
	if err != nil {
		return "", nil // not here (yet): the registry's digest is the start
	}
	return imageupdates.LocalDigestOf(image, res.RepoDigests), nil
}

// Close writes what the restart state owes and gives up the watches and
// locks; it takes what New got as far as it got.
func (p *Project) Close() {
	if p.restarts != nil {
		_ = p.restarts.Close()
	}
	if p.files != nil {
		p.files.Close()
	}
	if p.configs != nil {
		p.configs.Close()
	}
	for _, l := range p.locks {
		_ = l.Release()
	}
	p.locks = nil
}

// Event hands one engine event of the project to its controller; it runs
// on the events reader.
func (p *Project) Event(ev observed.Event) {
	p.ctrl.Event(ev)
}

// reload re-reads the compose files. An invalid edit is reported and the
// last good desired state stays in force: nothing is torn down.
func (p *Project) Reload(why string) {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.cfg.HandEdited != nil && p.cfg.HandEdited(p) {
		return
	}
	d, err := desired.Load(context.Background(), p.cfg.Loader, p.opts)
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
	if err := LocalOnly(d, p.cfg.Engine); err != nil {
		p.records.Event(record.InvalidConfig, "", "", desired.OneLine(err.Error())+"; keeping the last good configuration")
		return
	}
	if p.files != nil {
		if err := p.files.Set(d.Files); err != nil {
			p.log.Warn("some compose files cannot be watched", "error", err)
		}
	}
	if p.images != nil {
		p.images.Override(d)
	}
	p.secrets.Store(d.Secrets)
	p.watchConfigs(d)
	p.rollouts.Remember(d)
	old := p.ctrl.Desired()
	p.records.Event(record.ConfigReloaded, "", "", fmt.Sprintf("desired state reloaded (%s): %s", why, changedServices(old, d)))
	p.ctrl.SetDesired(d)
	if d.Disabled && p.cfg.OptedOut != nil {
		p.cfg.OptedOut(p)
	}
}

// watchConfigs watches the configuration files and directories the
// services mount.
func (p *Project) watchConfigs(d *desired.State) {
	if p.configs == nil || p.cfg.Engine.Remote() {
		return // the mounts name the engine's files, not this machine's
	}
	sources := reloads.ConfigSources(d)
	err := p.configs.Set(slices.Collect(maps.Keys(sources)))
	if err == nil {
		return
	}
	// a mount over the caps (a monitoring agent's /:/rootfs:ro, /sys, a
	// device) is said once per path, naming its services, and not watched
	var other []error
	for _, e := range unjoin(err) {
		var over *filewatch.OverCapsError
		if !errors.As(e, &over) {
			other = append(other, e)
			continue
		}
		path := over.Path
		if p.notWatched[path] {
			continue
		}
		p.notWatched[path] = true
		for _, svc := range sources[path] {
			p.records.Event(record.ConfigNotWatched, svc, "", fmt.Sprintf("%s is mounted read-only but is not watched as configuration: over %d files, %d MiB or %d levels, or kernel files (/proc, /sys, /dev) or a device; its edits reload nothing",
				path, filewatch.MaxFiles, filewatch.MaxBytes>>20, filewatch.MaxDepth))
		}
	}
	if len(other) > 0 {
		p.log.Warn("some configuration mounts cannot be watched", "error", errors.Join(other...))
	}
}

// unjoin unpacks a joined error.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// configChanged notes that each service mounting a changed path owes a
// reload, and queues it: the reload runs in the service's own reconcile.
func (p *Project) configChanged(changed []string) {
	if p.cfg.HandEdited != nil && p.cfg.HandEdited(p) {
		return
	}
	d := p.ctrl.Desired()
	sources := reloads.ConfigSources(d)
	why := map[string][]string{}
	for _, path := range changed {
		for _, svc := range sources[path] {
			why[svc] = append(why[svc], path)
		}
	}
	for svc, paths := range why {
		if p.cfg.DryRun {
			p.records.Event(record.ReloadSkipped, svc, "", "changed: "+strings.Join(paths, ", ")+" (dry run: not reloading)")
			continue
		}
		p.reloads.Changed(svc, "changed: "+strings.Join(paths, ", "))
		p.ctrl.Enqueue(svc)
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

// LocalOnly refuses, for an engine on another machine, what needs the
// engine's own files: upstream files written for a load balancer's bind
// mount, and reload actions on edits of bind-mounted files (the engine's
// mounts name paths on its machine, not this one). One line, exit 2. The
// default reload (a rolling restart on such an edit) is simply off there:
// watchConfigs watches nothing.
func LocalOnly(d *desired.State, eng *engine.Engine) error {
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
