package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/gitsource"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/dashboard"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/exitcode"
	"github.com/reconcile-dev/reconcile/internal/httpapi"
	"github.com/reconcile-dev/reconcile/internal/metrics"
	"github.com/reconcile-dev/reconcile/internal/notify"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Options are what the daemon runs with: the project flags it shares with
// every command, resolved by the command line (the -f project's load
// options, the state directory), and its own flags.
type Options struct {
	// Load loads the -f project; with an agent's flags and no -f files, no
	// such project is loaded.
	Load          desired.Options
	ProjectsDir   string
	Discover      bool
	DiscoverMatch string
	RemoveOrphans bool
	StateDir      string
	DockerContext string
	Log           *slog.Logger
	Version       string

	DryRun  bool
	LockDir string
	Listen  string
	// AllowedHosts are Host names requests to Listen may name besides the
	// loopback ones and the listen address's own.
	AllowedHosts []string
	// ListenTokenFile holds the bearer token every request but /healthz
	// must carry. Without one, Listen must be a loopback address unless
	// ListenInsecure says otherwise.
	ListenTokenFile string
	ListenInsecure  bool
	Resync          time.Duration
	Workers         int
	// EngineConcurrency bounds the engine operations in flight across
	// every project (0: unbounded).
	EngineConcurrency int
	ShutdownTimeout   time.Duration
	// Git, when set, is where the -f project's files come from (--git).
	Git          *GitSource
	Notify       []string
	NotifyFilter []string
	NotifyWindow time.Duration
}

// host is what a daemon has once, whatever the number of projects it
// reconciles: the engine connection and its one event stream, the HTTP
// endpoints, the metrics registry, the records' history, signals and
// systemd. Each project is a *Project of its own; inputs only enqueue.
type host struct {
	opts     Options
	log      *slog.Logger
	loader   desired.ProjectLoader
	eng      *engine.Engine
	met      *metrics.Metrics
	records  *record.Recorder
	stateDir string
	engineID string

	// slots bound the engine operations in flight, every project's
	slots execute.Slots

	// agent finds projects (--projects, --discover); nil for a daemon of
	// one project (-f).
	agent *agent

	// projects holds the running projects by name, replaced whole on a
	// change so that the events reader looks one up without a lock.
	projects atomic.Pointer[map[string]*Project]
	mu       sync.Mutex // serialises changes of projects

	// run ends at shutdown; work bounds the reconciles in progress then.
	run, work context.Context
	runners   sync.WaitGroup

	connected atomic.Bool
	// changes wakes the live status stream (/status/stream) after events.
	changes httpapi.Changes
	// systemd is told when the daemon is ready, alive and stopping.
	systemd systemd
	synced  atomic.Bool
	// gitPoke asks the git source for a fetch now (its webhook).
	gitPoke chan struct{}
}

// Run runs the daemon until SIGTERM or SIGINT (ctx), then lets the
// reconciles in progress finish, for at most the shutdown timeout, and
// returns nil: exit 0. Its errors carry their exit codes (exitcode.With).
func Run(ctx context.Context, opts Options) error {
	// A daemon lives beside the stacks it watches: it trades a little GC
	// work for a smaller footprint (measured: peak RSS 42 -> 38 MiB while
	// converging 50 containers). GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	loader, err := engine.Loader()
	if err != nil {
		return err
	}
	h := &host{opts: opts, log: opts.Log, loader: loader, stateDir: opts.StateDir, slots: execute.NewSlots(opts.EngineConcurrency), gitPoke: make(chan struct{}, 1)}
	agentMode := opts.ProjectsDir != "" || opts.Discover
	// The project named by -f (or found in the working directory, without
	// an agent's flags): bad input at start is exit 2, before any lock or
	// engine call.
	var first *desired.State
	firstOpts := opts.Load
	if !agentMode || len(opts.Load.Files) > 0 {
		if first, err = desired.Load(ctx, loader, firstOpts); err != nil {
			return err
		}
		if !agentMode {
			h.log = opts.Log.With("project", first.Project.Name)
		}
	}
	h.systemd = systemd{log: h.log}
	if _, err := path.Match(opts.DiscoverMatch, ""); err != nil {
		return exitcode.With(exitcode.Input, fmt.Errorf("--discover-match %q: %w", opts.DiscoverMatch, err))
	}
	if agentMode && opts.ProjectsDir != "" {
		if _, err := desired.ProjectDirs(opts.ProjectsDir); err != nil {
			return exitcode.With(exitcode.Input, fmt.Errorf("--projects %s: %w", opts.ProjectsDir, err))
		}
	}
	var notifier *notify.Notifier
	if len(opts.Notify) > 0 {
		senders, err := notify.NewSenders(opts.Notify)
		if err != nil {
			return exitcode.With(exitcode.Input, err)
		}
		filter, err := notify.ParseFilter(opts.NotifyFilter)
		if err != nil {
			return exitcode.With(exitcode.Input, err)
		}
		notifier = &notify.Notifier{Senders: senders, Filter: filter, Window: opts.NotifyWindow, Clock: clock.Real{}, Log: h.log}
	}
	var firstLocks []*statedir.Lock
	if first != nil {
		if firstLocks, err = LockProject(h.stateDir, "", "", first.Project.Name); err != nil {
			return exitcode.With(exitcode.Input, err)
		}
	}
	release := func() {
		for _, l := range firstLocks {
			_ = l.Release()
		}
	}
	if h.eng, err = engine.ConnectContext(ctx, opts.DockerContext); err != nil {
		release()
		return fmt.Errorf("%w: %w", engine.ErrUnreachable, err)
	}
	if first != nil {
		if err := LocalOnly(first, h.eng); err != nil {
			release()
			return err
		}
	}
	h.met = metrics.New(opts.Version, runtime.Version())
	h.met.CountEngineRequests(h.eng.Calls)
	h.records = record.New(h.log, clock.Real{}, record.DefaultKeep)
	h.records.SetCount(h.met.Record)
	if opts.Git != nil && first == nil {
		release()
		return exitcode.With(exitcode.Input, errors.New("--git takes one project (-f or the checkout's compose file)"))
	}
	if notifier != nil {
		recs, stopRecs := h.records.Subscribe()
		defer stopRecs()
		notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
		defer stopNotify()
		go notifier.Run(notifyCtx, recs)
	}
	empty := map[string]*Project{}
	h.projects.Store(&empty)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Reconciles in progress at shutdown run on under work for at most the
	// shutdown timeout, so that an action is not cut half-way.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	h.run, h.work = runCtx, work

	if opts.Listen != "" {
		srv, err := h.serve(opts.Listen)
		if err != nil {
			release()
			return exitcode.With(exitcode.Input, err)
		}
		defer srv.Close()
	}

	// One reconciler per project on an engine, whatever its state
	// directory: a second lock, in the runtime directory under the engine's
	// ID, which needs the engine to answer first. Until then /healthz
	// answers and /readyz says the engine is not connected; nothing acts.
	if h.engineID, err = waitForEngine(ctx, h.eng, h.log); err != nil || h.engineID == "" {
		release()
		return err // "" : stopped while waiting for the engine
	}
	if first != nil {
		elock, err := statedir.Acquire(statedir.EngineLockDir(opts.LockDir, h.engineID), first.Project.Name)
		if err != nil {
			release()
			return exitcode.With(exitcode.Input, err)
		}
		firstLocks = append(firstLocks, elock)
		if opts.Git != nil {
			h.records.SetRevision(short(opts.Git.Follower.Source.Applied()))
		}
		p, err := h.newProject(first, firstOpts, firstLocks)
		if err != nil {
			release()
			return err
		}
		h.start(p)
		h.revision()
		if opts.Git != nil {
			h.runners.Go(func() { h.followGit(runCtx, p) })
		}
	}
	if agentMode {
		if h.agent, err = newAgent(h, first); err != nil {
			stop()
			h.runners.Wait()
			return exitcode.With(exitcode.Internal, err)
		}
		defer h.agent.close()
		h.agent.scan(ctx, nil) // the directory's projects, before the first relist
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var wg sync.WaitGroup
	wg.Go(func() { h.watchEngine(runCtx) })
	wg.Go(func() { h.resyncLoop(runCtx) })
	wg.Go(func() { h.systemd.Watchdog(runCtx) })
	if h.agent != nil {
		wg.Go(func() { h.agent.run(runCtx) })
	}
	wg.Go(func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				for _, p := range h.list() {
					p.Reload("SIGHUP")
				}
				if h.agent != nil {
					h.agent.retryAll()
				}
			}
		}
	})
	mode := "acting"
	if opts.DryRun {
		mode = "dry run: reporting only"
	}
	attrs := []any{"mode", mode, "pid", os.Getpid()}
	if first != nil {
		attrs = append(attrs, "files", strings.Join(first.Files, ","), "lock", firstLocks[0].Path)
	}
	if h.agent != nil {
		attrs = append(attrs, "projects", opts.ProjectsDir, "discover", opts.Discover)
	}
	h.log.Info("daemon started", attrs...)

	go func() {
		<-runCtx.Done()
		select {
		case <-time.After(opts.ShutdownTimeout):
			h.log.Warn("shutdown timeout reached, cancelling the reconciles in progress")
			cancelWork()
		case <-work.Done():
		}
	}()
	<-runCtx.Done()
	h.systemd.Stopping()
	wg.Wait()
	h.runners.Wait() // each project's reconciles and reloads end, or are cancelled with work
	cancelWork()
	h.log.Info("daemon stopped")
	return nil
}

// DefaultEngineConcurrency is how many engine operations (a compose up of
// one service, a start, a removal) a daemon has in flight at once, across
// every project: the engine serialises much of their work (measured in
// the agent benchmark), so more only queue up inside it.
const DefaultEngineConcurrency = 8

// engineRetry paces the wait for an engine that does not answer at start.
const engineRetry = time.Second

// newProject builds a project of this daemon for d, holding locks.
func (h *host) newProject(d *desired.State, opts desired.Options, locks []*statedir.Lock) (*Project, error) {
	cfg := Config{
		Engine:   h.eng,
		Loader:   h.loader,
		Log:      h.opts.Log,
		Records:  h.records,
		Metrics:  h.met,
		StateDir: h.stateDir,
		Options:  plan.Options{RemoveOrphans: h.opts.RemoveOrphans},
		DryRun:   h.opts.DryRun,
		Workers:  h.opts.Workers,

		EngineSlots: h.slots,
		Offline:     func() bool { return !h.connected.Load() },
		OptedOut:    h.optedOut,
	}
	if h.opts.Git != nil {
		cfg.HandEdited = h.handEdited
	}
	p, err := New(cfg, d, opts, locks)
	if err != nil {
		return nil, exitcode.With(exitcode.Internal, err)
	}
	return p, nil
}

// waitForEngine waits until the engine answers and returns its ID; "" when
// ctx ended first (SIGTERM while waiting: exit 0).
func waitForEngine(ctx context.Context, eng *engine.Engine, log *slog.Logger) (string, error) {
	for said := false; ; said = true {
		infoCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := eng.Client.Info(infoCtx, client.InfoOptions{})
		cancel()
		if err == nil && res.Info.ID != "" {
			return res.Info.ID, nil
		}
		if !said {
			log.Warn("the engine does not answer yet; waiting for it", "error", err)
		}
		select {
		case <-ctx.Done():
			return "", nil
		case <-time.After(engineRetry):
		}
	}
}

// start runs p until the daemon stops or the agent lets it go.
func (h *host) start(p *Project) {
	h.mu.Lock()
	defer h.mu.Unlock()
	next := map[string]*Project{}
	for k, v := range *h.projects.Load() {
		next[k] = v
	}
	next[p.Name()] = p
	h.projects.Store(&next)
	p.Start(h.run, h.work, &h.runners)
}

// release stops reconciling p, leaving its containers as they are, and
// waits until it has let go of its locks and state.
func (h *host) release(p *Project, why string) {
	h.mu.Lock()
	cur := *h.projects.Load()
	if cur[p.Name()] != p {
		h.mu.Unlock()
		return
	}
	next := map[string]*Project{}
	for k, v := range cur {
		if k != p.Name() {
			next[k] = v
		}
	}
	h.projects.Store(&next)
	h.mu.Unlock()
	p.Stop()
	h.met.Forget(p.Name())
	p.Records().Event(record.ProjectReleased, "", "", "let go: "+why+"; its containers are left as they are")
	h.changes.Notify()
}

// optedOut is told that a running project's files now say
// x-reconcile.enabled: false; an agent lets it go, a daemon given the
// project by -f keeps it.
func (h *host) optedOut(p *Project) {
	if h.agent != nil {
		go h.agent.optedOut(p)
	}
}

// lookup returns the running project of that name, or nil.
func (h *host) lookup(name string) *Project { return (*h.projects.Load())[name] }

// list returns the running projects, by name.
func (h *host) list() []*Project {
	m := *h.projects.Load()
	out := make([]*Project, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[name])
	}
	return out
}

// watchEngine follows the engine's events, one stream for every project;
// every (re)connect relists.
func (h *host) watchEngine(ctx context.Context) {
	w := &observed.Watcher{
		Source: h.eng.Client,
		Clock:  clock.Real{},
		Log:    h.log,
		OnConnect: func(ctx context.Context) error {
			// exits found now happened while nobody watched (or their
			// events were lost with the connection)
			if err := h.relist(ctx); err != nil {
				return err
			}
			if !h.connected.Swap(true) {
				h.records.Event(record.EngineConnected, "", "", "connected to the engine at "+h.eng.Client.DaemonHost()+"; relisted "+h.what())
			}
			h.synced.Store(true)
			h.systemd.Ready()
			return nil
		},
		// Each event is noted and queued; nothing slow runs here.
		OnEvent: func(ev observed.Event) {
			h.log.Debug("engine event", "action", string(ev.Action), "project", ev.Project, "service", ev.Service, "container", ev.Container)
			if p := h.lookup(ev.Project); p != nil {
				p.Event(ev)
			} else if h.agent != nil && ev.Action == observed.ActionCreate {
				h.agent.kickEngine() // a project the agent may discover
			}
			h.changes.Notify() // wakes a dashboard, if one is open
		},
		OnPanic: func(ev observed.Event, r any) {
			h.records.Event(record.EventPanic, ev.Service, ev.Container, fmt.Sprintf("handling %s panicked: %v; dropped, the next relist repairs it", ev.Action, r))
		},
		Handled: h.met.EventHandled,
		OnDisconnect: func(err error) {
			if h.connected.Swap(false) {
				h.records.Event(record.EngineDisconnected, "", "", fmt.Sprintf("lost the engine's event stream: %v; reconnecting", err))
			} else if !h.synced.Load() {
				h.log.Warn("engine not reachable yet, retrying", "error", err)
			}
		},
	}
	if h.agent == nil {
		if ps := h.list(); len(ps) == 1 {
			w.Project = ps[0].Name() // one project: the engine filters for it
		}
	}
	_ = w.Run(ctx)
}

// what says what a relist covers, for the record.
func (h *host) what() string {
	if h.agent == nil {
		return "the project"
	}
	return fmt.Sprintf("%d project(s)", len(h.list()))
}

// relist lists everything afresh and queues every service: on connect, on
// reconnect and periodically. A daemon of one project lists it; an agent
// lists every compose project at once (four calls, whatever their number),
// hands each project its part and discovers from it.
func (h *host) relist(ctx context.Context) error {
	ps := h.list()
	if h.agent == nil {
		for _, p := range ps {
			if err := p.Controller().Resync(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	marks := make([]uint64, len(ps))
	for i, p := range ps {
		marks[i] = p.Controller().Mark()
	}
	all, err := observed.ObserveAll(ctx, h.eng.Client, time.Now())
	if err != nil {
		return err
	}
	for i, p := range ps {
		p.Controller().ResyncWith(all.Of(p.Name()), marks[i])
	}
	h.agent.listed(all)
	return nil
}

// resyncLoop relists everything periodically: the event stream can lose
// events, and a full list costs a fixed number of calls.
func (h *host) resyncLoop(ctx context.Context) {
	if h.opts.Resync <= 0 {
		return
	}
	t := time.NewTicker(h.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !h.connected.Load() {
				continue // the watcher relists when it reconnects
			}
			if err := h.relist(ctx); err != nil && ctx.Err() == nil {
				h.log.Warn("periodic resync failed", "error", err)
			}
		}
	}
}

// AgentStatus is /status of an agent: every project's status, and the
// projects it found but does not reconcile, with why.
type AgentStatus struct {
	Projects []plan.ProjectStatus `json:"projects"`
	Problems []ProjectProblem     `json:"problems,omitempty"`
}

// status is /status and /status/stream of one project, or of all: from the
// snapshot each project's loop last took, never a list of its own. /status
// (inspect set) explains each stopped container with one inspect per stop,
// kept; the stream (nil) asks the engine nothing.
func (h *host) status(ctx context.Context, name string, inspect observed.Inspector) (any, error) {
	if name != "" || h.agent == nil {
		ps := h.list()
		switch {
		case name == "" && len(ps) == 1:
			st, err := ps[0].Controller().Served(ctx, inspect)
			st.Revision = h.records.Revision()
			ps[0].annotateImages(&st)
			return st, err
		case name == "" && len(ps) == 0:
			// a daemon of one project takes it on once the engine answers
			return nil, errors.New("the project is not reconciled yet: waiting for the engine")
		}
		p := h.lookup(name)
		if p == nil {
			return nil, fmt.Errorf("%w: %s", httpapi.ErrNoProject, name)
		}
		st, err := p.Controller().Served(ctx, inspect)
		p.annotateImages(&st)
		return st, err
	}
	st := AgentStatus{Projects: []plan.ProjectStatus{}, Problems: h.agent.problems()}
	for _, p := range h.list() {
		ps, err := p.Controller().Served(ctx, inspect)
		if err != nil {
			return nil, fmt.Errorf("status of project %s: %w", p.Name(), err)
		}
		st.Projects = append(st.Projects, ps)
	}
	return st, nil
}

// allowedHosts are the Host names the endpoints answer besides loopback
// ones: the listen address's own (unless it listens on every address) and
// those given.
func allowedHosts(addr string, more []string) []string {
	out := slices.Clone(more)
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			out = append(out, host)
		}
	}
	return out
}

// serve starts the HTTP endpoints on addr.
func (h *host) serve(addr string) (*http.Server, error) {
	api := &httpapi.Server{
		Registry: h.met.Registry,
		Records:  h.records,
		Status: func(ctx context.Context, project string) (any, error) {
			return h.status(ctx, project, h.eng.Client)
		},
		Ready: func() (bool, string) {
			switch {
			case !h.connected.Load():
				return false, "engine not connected"
			case !h.synced.Load():
				return false, "first sync not done"
			}
			return true, ""
		},
		LiveStatus: func(ctx context.Context, project string) (any, error) {
			return h.status(ctx, project, nil)
		},
		Changes: &h.changes,
		Page:    dashboard.Handler(),
	}
	if h.opts.Git != nil {
		api.GitHook = gitsource.Webhook(h.opts.Git.WebhookSecret, h.pokeGit)
	}
	return serveHTTP(h.log, addr, h.opts, api)
}

// serveHTTP starts api's endpoints on addr, for the daemon of a project,
// an agent or a stack alike: the bearer token read from its file, a listen
// beyond loopback refused without one (unless --listen-insecure), the Host
// allowlist.
func serveHTTP(log *slog.Logger, addr string, opts Options, api *httpapi.Server) (*http.Server, error) {
	if opts.ListenTokenFile != "" {
		token, err := httpapi.ReadToken(opts.ListenTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--listen-token-file: %w", err)
		}
		api.Token = token
	}
	if api.Token == "" && !httpapi.Loopback(addr) {
		if !opts.ListenInsecure {
			return nil, fmt.Errorf("--listen %s %w", addr, httpapi.ErrBeyondLoopback)
		}
		log.Warn("HTTP endpoints bound beyond loopback without a token (--listen-insecure): anyone who reaches them reads the status, records and metrics", "listen", addr)
	}
	api.AllowedHosts = allowedHosts(addr, opts.AllowedHosts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	// IdleTimeout ends idle keep-alive connections; the live streams keep
	// theirs open by writing, every statusRefresh at the latest.
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "error", err)
		}
	}()
	log.Info("serving HTTP", "listen", ln.Addr().String())
	return srv, nil
}
