package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/httpapi"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/internal/notify"
	"github.com/reconcile-dev/reconcile/internal/secrets"
	"github.com/reconcile-dev/reconcile/internal/session"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
)

// globals are the flags every command shares: compose's project flags and
// logging.
type globals struct {
	files         []string
	projectName   string
	projectDir    string
	envFiles      []string
	profiles      []string
	scale         []string
	removeOrphans bool
	logFormat     string
	logLevel      string
	stateDir      string
	dockerContext string
	// projectsDir and discover make the daemon an agent of many projects.
	projectsDir   string
	discover      bool
	discoverMatch string
	// listenTokenFile is the daemon's bearer token: required by a daemon
	// that has one, sent by the commands that read it (events, healthcheck).
	listenTokenFile string
	// swarm makes the project a stack on a swarm (docker stack deploy's).
	swarm bool
	// git takes the project's files from a repository (--git).
	git gitFlags

	stdout, stderr io.Writer
	log            *slog.Logger
	// secrets holds the loaded projects' Sets: stdout and stderr are
	// masked with it, whatever prints there. Shared by copies of globals
	// (one per project of status --projects).
	secrets *secrets.Holder
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{secrets: &secrets.Holder{}}
	g.stdout, g.stderr = secrets.Writer(stdout, g.secrets), secrets.Writer(stderr, g.secrets)
	var once bool
	var timeout, settle time.Duration
	onceOutput := "text"
	var df daemon.Options
	root := &cobra.Command{
		Use:   "reconcile",
		Short: "Keep a Docker Compose project converged to its compose files",
		Long: `reconcile makes a compose file mean what it says: it compares the project's
compose files with what the engine runs, and applies the difference through the
Compose SDK, in dependency order.

  reconcile            run as a daemon: keep the project converged as the engine
                       and the compose files change (SIGTERM or Ctrl-C to stop)
  reconcile --once     converge, wait until converged, exit 0 (or 1 on timeout)
  reconcile diff       show drift and the plan without acting
  reconcile status     where each service stands`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagsFromEnv(cmd.Flags(), os.LookupEnv); err != nil {
				return withCode(exitInput, err)
			}
			log, err := logging.New(g.stderr, logging.Options{Format: g.logFormat, Level: g.logLevel})
			if err != nil {
				return withCode(exitInput, err)
			}
			g.log = log
			engine.RouteSDKLogs(log)
			if loadsAProject[cmd.Name()] {
				acting := cmd.Name() == "reconcile"
				return g.openGit(cmd.Context(), acting, acting && !once)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.swarm && !once {
				return runSwarmDaemon(cmd.Context(), g, df)
			}
			if g.swarm {
				return runSwarmOnce(cmd.Context(), g, timeout)
			}
			if !once {
				return runDaemon(cmd.Context(), g, df)
			}
			if err := checkOutput(onceOutput); err != nil {
				return err
			}
			if onceOutput == "json" {
				return runOnceJSON(cmd.Context(), g, timeout, settle)
			}
			return runOnce(cmd.Context(), g, timeout, settle)
		},
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitInput, err) })

	pf := root.PersistentFlags()
	pf.StringArrayVarP(&g.files, "file", "f", nil, "compose file (repeatable; merged in order, as compose does)")
	pf.StringVarP(&g.projectName, "project-name", "p", "", "project name (default: COMPOSE_PROJECT_NAME, the file's name:, or the directory)")
	pf.StringVar(&g.projectDir, "project-directory", "", "project directory (default: the first compose file's directory)")
	pf.StringArrayVar(&g.envFiles, "env-file", nil, "env file for interpolation (repeatable; default: COMPOSE_ENV_FILES or .env)")
	pf.StringArrayVar(&g.profiles, "profile", nil, "profile to enable (repeatable; default: COMPOSE_PROFILES)")
	pf.StringArrayVar(&g.scale, "scale", nil, "SERVICE=N: run N replicas of SERVICE (repeatable), as compose up --scale")
	pf.BoolVar(&g.removeOrphans, "remove-orphans", false, "remove containers of services no longer in the compose files")
	pf.StringVar(&g.logFormat, "log-format", "", "text or json (default: text on a terminal, json otherwise)")
	pf.StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	pf.StringVar(&g.projectsDir, "projects", "", "agent: reconcile every project under this directory (each subdirectory with a compose file), picking up new ones and letting removed ones go")
	pf.BoolVar(&g.discover, "discover", false, "agent: also reconcile the compose projects found on the engine, from compose's labels (working dir, config files)")
	pf.StringVar(&g.discoverMatch, "discover-match", "*", "agent: with --discover, only the projects whose name matches this glob (prod-*)")
	pf.StringVar(&g.dockerContext, "context", "", "docker CLI context to reach the engine through (default: DOCKER_HOST, DOCKER_CONTEXT, or the current context)")
	pf.StringVar(&g.listenTokenFile, "listen-token-file", "", "file holding the bearer token of the HTTP endpoints: the daemon requires it of every request but /healthz; events and healthcheck send it")
	pf.BoolVar(&g.swarm, "swarm", false, "Swarm mode: the project is a stack on the swarm whose manager the engine is, with docker stack deploy's names, labels and specs; reconcile adds depends_on order and gates, drift reverted, config and secret rotation, and --once's wait and exit code (docs/swarm.md)")
	g.git.register(pf)
	pf.StringVar(&g.stateDir, "state-dir", "", "directory of the daemon's project lock and restart state (default $XDG_STATE_HOME/reconcile)")

	root.Flags().BoolVar(&once, "once", false, "converge once, wait until converged, and exit")
	root.Flags().StringVarP(&onceOutput, "output", "o", "text", "with --once: text, or json (one report on stdout, the schema in docs/commands.md)")
	root.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "with --once: how long to wait for convergence")
	root.Flags().DurationVar(&settle, "settle", daemon.DefaultSettle, "with --once, when the run acted: how long each running container without a passing healthcheck must have run since its own start (one that dies at once is not converged)")
	root.Flags().BoolVar(&df.DryRun, "dry-run", false, "daemon: report drift as it happens, never act")
	root.Flags().StringVar(&df.Listen, "listen", "", "daemon: serve /metrics, /healthz, /readyz, /status and /events on this address (e.g. 127.0.0.1:9090)")
	root.Flags().BoolVar(&df.ListenInsecure, "listen-insecure", false, "daemon: serve --listen beyond loopback without --listen-token-file (anyone who reaches it reads the status, records and metrics)")
	root.Flags().StringArrayVar(&df.AllowedHosts, "allowed-hosts", nil, "daemon: Host names the HTTP endpoints answer besides loopback ones and the --listen address (repeatable: a name Prometheus or a proxy reaches the daemon by)")
	root.Flags().DurationVar(&df.Resync, "resync", time.Minute, "daemon: relist everything this often, in case the event stream lost something (0: never)")
	root.Flags().IntVar(&df.Workers, "workers", 4, "daemon: services of a project reconciled at once")
	root.Flags().IntVar(&df.EngineConcurrency, "engine-concurrency", daemon.DefaultEngineConcurrency, "daemon: engine operations in flight at once, across every project (0: unbounded)")
	root.Flags().StringArrayVar(&df.Notify, "notify", nil, "daemon: send records to this notification URL (repeatable; shoutrrr's schemes: generic+https://..., ntfy://..., slack://..., discord://..., teams://..., smtp://...)")
	root.Flags().StringArrayVar(&df.NotifyFilter, "notify-filter", nil, "daemon: which records --notify sends: type=, reason= or project= with comma-separated values (repeatable; default type=Warning)")
	root.Flags().DurationVar(&df.NotifyWindow, "notify-window", notify.DefaultWindow, "daemon: one reason on one container is sent once per window, then summed up with a count")
	root.Flags().DurationVar(&df.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "daemon: on SIGTERM, how long an action in progress may go on")
	root.Flags().StringVar(&df.LockDir, "lock-dir", statedir.RuntimeDir(), "daemon: directory of the per-engine project locks that keep a second reconciler of a project off it, whatever its --state-dir")

	root.AddCommand(newDiffCommand(g), newStatusCommand(g), newEventsCommand(g), newVerifyCommand(g), newHealthcheckCommand(g), newVersionCommand(g))
	return root
}

// runDaemon runs the daemon (internal/daemon) with the shared flags
// resolved: bad ones are exit 2 before anything starts.
func runDaemon(ctx context.Context, g *globals, df daemon.Options) error {
	var err error
	if df.Load, err = g.options(); err != nil {
		return err
	}
	if df.StateDir, err = g.stateDirectory(); err != nil {
		return withCode(exitInput, err)
	}
	df.ProjectsDir, df.Discover, df.DiscoverMatch = g.projectsDir, g.discover, g.discoverMatch
	df.RemoveOrphans, df.DockerContext = g.removeOrphans, g.dockerContext
	df.Log, df.Version = g.log, version()
	df.ListenTokenFile = g.listenTokenFile
	if df.Git, err = g.gitDaemon(); err != nil {
		return err
	}
	return daemon.Run(ctx, df)
}

// stateDirectory is --state-dir or the default.
func (g *globals) stateDirectory() (string, error) {
	if g.stateDir != "" {
		return g.stateDir, nil
	}
	return statedir.Default()
}

// loadsAProject are the commands that load the project's files, and so
// open its git source first (--git).
var loadsAProject = map[string]bool{"reconcile": true, "diff": true, "status": true, "verify": true}

// options turns the flags into desired's load options.
func (g *globals) options() (desired.Options, error) {
	if g.git.follower != nil {
		return g.optionsIn(g.git.follower.Source.ProjectDir())
	}
	return g.optionsIn(g.projectDir)
}

// optionsIn are the load options of the project in dir; with --git, the
// -f files are the repository's, relative to dir (the live checkout's, or
// a commit's staged before it is applied).
func (g *globals) optionsIn(dir string) (desired.Options, error) {
	files := g.files
	if g.git.url != "" {
		files = make([]string, len(g.files))
		for i, f := range g.files {
			if filepath.IsAbs(f) {
				return desired.Options{}, &desired.InputError{Key: "--file", Err: fmt.Errorf("%s: with --git, a compose file is named by its path in the repository", f)}
			}
			files[i] = filepath.Join(dir, f)
		}
	}
	opts := desired.Options{
		Files:       files,
		ProjectName: g.projectName,
		ProjectDir:  dir,
		EnvFiles:    g.envFiles,
		Profiles:    g.profiles,
	}
	for _, s := range g.scale {
		name, num, ok := strings.Cut(s, "=")
		n, err := strconv.Atoi(num)
		if !ok || name == "" || err != nil {
			return opts, &desired.InputError{Key: "--scale", Err: fmt.Errorf("%q: want SERVICE=NUMBER", s)}
		}
		if opts.Scale == nil {
			opts.Scale = map[string]int{}
		}
		opts.Scale[name] = n
	}
	return opts, nil
}

// open loads the desired state and connects to the engine, overlapping the
// two; bad input (exit 2) is reported even when the engine is down.
func (g *globals) open(ctx context.Context) (*session.Session, error) {
	opts, err := g.options()
	if err != nil {
		return nil, err
	}
	loader, err := engine.Loader()
	if err != nil {
		return nil, err
	}
	sess, err := session.Open(ctx, session.Options{Load: opts, Loader: loader, Connect: g.connect})
	if sess != nil && sess.Desired != nil {
		g.secrets.Include(sess.Desired.Secrets)
	}
	return sess, err
}

// authorize adds the daemon's bearer token (--listen-token-file) to req,
// for the commands that read a daemon's endpoints.
func (g *globals) authorize(req *http.Request) error {
	if g.listenTokenFile == "" {
		return nil
	}
	tok, err := httpapi.ReadToken(g.listenTokenFile)
	if err != nil {
		return withCode(exitInput, fmt.Errorf("--listen-token-file: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// openObserved opens a session and returns it with a snapshot of the project:
// the one taken while loading, or a fresh one.
func (g *globals) openObserved(ctx context.Context) (*session.Session, *observed.Snapshot, error) {
	sess, err := g.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	if sess.First != nil {
		return sess, sess.First, nil
	}
	snap, err := observer(sess.Engine, sess.Desired.Project.Name)(ctx)
	if err != nil {
		return nil, nil, withCode(exitInternal, err)
	}
	return sess, snap, nil
}

// connect opens the engine (through --context when given) and checks it
// answers.
func (g *globals) connect(ctx context.Context) (*engine.Engine, error) {
	eng, err := engine.ConnectContext(ctx, g.dockerContext)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnreachable, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := eng.Ping(pingCtx); err != nil {
		return nil, err
	}
	return eng, nil
}

// observer returns a snapshot function over the engine.
func observer(eng *engine.Engine, project string) execute.SnapshotFunc {
	return func(ctx context.Context) (*observed.Snapshot, error) {
		return observed.Observe(ctx, eng.Client, project, time.Now())
	}
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.stdout, "reconcile", version())
			return nil
		},
	}
}
