// Package engine connects to the Docker Engine the way the docker CLI does
// (DOCKER_HOST, contexts, TLS), and hands out the Compose SDK service and the
// moby client that share that connection.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/flags"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// ErrUnreachable marks a failure to talk to the engine at all; the CLI maps
// it to exit code 3.
var ErrUnreachable = errors.New("docker engine unreachable")

// Engine is one connection to the engine.
type Engine struct {
	Client  client.APIClient
	Compose api.Compose
	// Host is the engine's address (unix:///var/run/docker.sock,
	// tcp://host:2376, ssh://user@host).
	Host  string
	calls atomic.Int64
}

// Remote reports whether the engine runs on another machine: its files and
// bind mounts are not this machine's.
func (e *Engine) Remote() bool {
	scheme, _, _ := strings.Cut(e.Host, "://")
	return scheme != "unix" && scheme != "npipe" && scheme != ""
}

// Calls returns how many HTTP requests were sent to the engine so far, by
// the moby client and the Compose SDK alike.
func (e *Engine) Calls() int64 { return e.calls.Load() }

// Connect builds the docker CLI's client from the environment, with a hook
// that counts requests, and the Compose SDK service on top of it. Compose's
// own progress output is discarded: reconcile reports through its logger.
func Connect(ctx context.Context) (*Engine, error) { return ConnectContext(ctx, "") }

// ConnectContext is Connect through the docker CLI context named
// dockerContext ("": DOCKER_HOST, DOCKER_CONTEXT or the current context, as
// the docker CLI chooses).
func ConnectContext(ctx context.Context, dockerContext string) (*Engine, error) {
	e := &Engine{}
	cli, err := command.NewDockerCli(
		command.WithBaseContext(ctx),
		command.WithOutputStream(io.Discard),
		command.WithErrorStream(io.Discard),
	)
	if err != nil {
		return nil, fmt.Errorf("creating docker client: %w", err)
	}
	count := func(*http.Request) error { e.calls.Add(1); return nil }
	opts := flags.NewClientOptions()
	opts.Context = dockerContext
	if err := cli.Initialize(opts, command.WithAPIClientOptions(client.WithHTTPRequestHook(count))); err != nil {
		return nil, fmt.Errorf("initializing docker client: %w", err)
	}
	e.Client = cli.Client()
	e.Host = cli.DockerEndpoint().Host
	e.Compose, err = compose.NewComposeService(cli,
		compose.WithStreams(io.Discard, io.Discard, nil),
		compose.WithPrompt(refuseDataLoss),
	)
	if err != nil {
		return nil, fmt.Errorf("creating compose service: %w", err)
	}
	return e, nil
}

// refuseDataLoss answers compose's questions, such as whether to recreate a
// volume whose configuration changed, with no: a reconciler must never
// destroy data on its own.
func refuseDataLoss(message string, _ bool) (bool, error) {
	logrus.Warnf("declined: %s", message)
	return false, nil
}

// Ping checks that the engine answers; its error wraps ErrUnreachable.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.Client.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, e.Client.DaemonHost(), err)
	}
	return nil
}

// Loader returns a Compose SDK service fit for loading projects only. It
// needs no engine, so bad input is reported even when the engine is down.
func Loader() (api.Compose, error) {
	cli, err := command.NewDockerCli(command.WithOutputStream(io.Discard), command.WithErrorStream(io.Discard))
	if err != nil {
		return nil, fmt.Errorf("creating docker client: %w", err)
	}
	return compose.NewComposeService(cli)
}

// RouteSDKLogs sends the Compose SDK's logrus output to slog: warnings stay
// warnings, the rest becomes debug.
func RouteSDKLogs(log *slog.Logger) {
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.DebugLevel)
	logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{})
	logrus.AddHook(slogHook{log: log.With("component", "compose")})
}

type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	if e.Level <= logrus.WarnLevel {
		level = slog.LevelWarn
	}
	h.log.Log(context.Background(), level, e.Message)
	return nil
}
