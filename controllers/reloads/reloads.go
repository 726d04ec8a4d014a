// Package reloads runs a service's reload action when a configuration file
// it mounts changes: a checked exec, a signal to its main process, or a
// rolling restart that drains each replica first.
package reloads

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
)

// ReloadEngine is what reloads need of the engine: exec, restart, and
// inspect (for the main process's host PID).
type ReloadEngine interface {
	engine.Execer
	ContainerRestart(ctx context.Context, id string, options client.ContainerRestartOptions) (client.ContainerRestartResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// ErrReloadRejected marks a reload whose check failed: nothing was reloaded
// and the old configuration keeps serving.
var ErrReloadRejected = errors.New("reload rejected by its check")

// DefaultRollTimeout bounds how long a rolling restart waits for one
// replica to be running (and healthy) again before it gives up on the rest.
const DefaultRollTimeout = 2 * time.Minute

// Reloads runs a service's reload action on its running replicas when a
// configuration file it mounts changes: an exec (after an optional check),
// a signal to the main process, or a rolling restart.
type Reloads struct {
	Engine  ReloadEngine
	Observe execute.SnapshotFunc
	Records reconciler.Recorder
	Log     *slog.Logger
	Clock   clock.Clock
	// OnRestart is told before a replica is restarted for a reload, so the
	// restart controller does not take the restart for the user's stop.
	OnRestart func(service string, number int, containerID string)
	// BeforeRestart, when set, runs before a replica is restarted: the
	// upstream controller takes it out of the load balancer's files.
	// It returns a function that undoes it once the replica is back.
	BeforeRestart func(ctx context.Context, d *desired.State, service string, c observed.Container) (release func(), err error)
	Poll          time.Duration
	RollTimeout   time.Duration

	locks sync.Map // service -> *sync.Mutex
}

// Reload runs the service's reload action on every running replica; why
// says what changed. One reload of a service runs at a time.
func (r *Reloads) Reload(ctx context.Context, d *desired.State, service, why string) error {
	svc := d.Services[service]
	if svc == nil {
		return nil
	}
	mu, _ := r.locks.LoadOrStore(service, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	snap, err := r.Observe(ctx)
	if err != nil {
		return fmt.Errorf("observing %s for a reload: %w", service, err)
	}
	var replicas []observed.Container
	for _, c := range snap.ByService()[service] {
		if c.State == observed.StateRunning {
			replicas = append(replicas, c)
		}
	}
	sort.Slice(replicas, func(i, j int) bool { return replicas[i].Number < replicas[j].Number })
	if len(replicas) == 0 {
		return nil
	}
	act := svc.Policy.Reload
	if r.Log != nil {
		r.Log.Debug("reload start", "service", service, "replicas", len(replicas), "why", why)
	}
	if len(act.Check) > 0 {
		for _, c := range replicas {
			res, took, err := r.exec(ctx, c, act.Check, act.Timeout)
			if err != nil || res.ExitCode != 0 {
				out := strings.TrimSpace(res.Stderr + "\n" + res.Stdout)
				if err != nil {
					out = err.Error()
				}
				out = act.Mask(out)
				r.record(record.ReloadRejected, service, c.Name, fmt.Sprintf("%s: check %q failed (exit %d, %s): %s; nothing reloaded, the old configuration keeps serving",
					why, act.CheckShown(), res.ExitCode, took.Round(time.Millisecond), oneLine(out)))
				return fmt.Errorf("%w: %s", ErrReloadRejected, oneLine(out))
			}
		}
	}
	var errs []error
	switch {
	case len(act.Exec) > 0:
		for _, c := range replicas {
			res, took, err := r.exec(ctx, c, act.Exec, act.Timeout)
			action := "exec " + act.ExecShown()
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exit code %d: %s", res.ExitCode, oneLine(act.Mask(res.Stderr+res.Stdout)))
			}
			errs = append(errs, r.done(service, c.Name, action, why, took, err))
		}
	case act.Signal != "":
		for _, c := range replicas {
			start := r.clock().Now()
			err := r.signal(ctx, c, act.Signal)
			errs = append(errs, r.done(service, c.Name, "signal "+act.Signal, why, r.clock().Now().Sub(start), err))
		}
	default:
		for _, c := range replicas {
			start := r.clock().Now()
			err := r.restartOne(ctx, d, svc, c)
			errs = append(errs, r.done(service, c.Name, "rolling restart", why, r.clock().Now().Sub(start), err))
			if err != nil {
				break // keep the remaining replicas serving
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Reloads) exec(ctx context.Context, c observed.Container, cmd []string, timeout time.Duration) (engine.ExecResult, time.Duration, error) {
	if timeout <= 0 {
		timeout = desired.DefaultReloadTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := r.clock().Now()
	res, err := engine.Exec(ctx, r.Engine, c.ID, cmd)
	return res, r.clock().Now().Sub(start), err
}

// signal delivers sig to the container's main process from the host, by
// its host PID, and not through the engine's kill API, which marks the
// container manually stopped on some engine versions. Where the host PID is
// out of reach (a remote engine), `kill` runs inside the container.
func (r *Reloads) signal(ctx context.Context, c observed.Container, name string) error {
	sig, ok := desired.SignalNumber(name)
	if !ok {
		return fmt.Errorf("unknown signal %s", name)
	}
	in, err := r.Engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspecting %s: %w", c.Name, err)
	}
	if st := in.Container.State; st != nil && st.Pid > 0 {
		if err := syscall.Kill(st.Pid, sig); err == nil {
			return nil
		}
	}
	res, err := engine.Exec(ctx, r.Engine, c.ID, []string{"kill", "-s", strings.TrimPrefix(name, "SIG"), "1"})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("kill inside the container: exit code %d: %s", res.ExitCode, oneLine(res.Stderr))
	}
	return err
}

// restartOne restarts a replica and waits until it runs again, healthy if
// it has a check.
func (r *Reloads) restartOne(ctx context.Context, d *desired.State, svc *desired.Service, c observed.Container) error {
	if r.BeforeRestart != nil {
		release, err := r.BeforeRestart(ctx, d, svc.Name, c)
		if release != nil {
			defer release()
		}
		if err != nil {
			return fmt.Errorf("taking %s out of rotation: %w", c.Name, err)
		}
	}
	if r.OnRestart != nil {
		r.OnRestart(svc.Name, c.Number, c.ID)
	}
	t := int((svc.StopGracePeriod + time.Second - 1) / time.Second)
	if _, err := r.Engine.ContainerRestart(ctx, c.ID, client.ContainerRestartOptions{Timeout: &t}); err != nil {
		return fmt.Errorf("restarting %s: %w", c.Name, err)
	}
	timeout := r.RollTimeout
	if timeout <= 0 {
		timeout = DefaultRollTimeout
	}
	poll := r.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	deadline := r.clock().Now().Add(timeout)
	for {
		snap, err := r.Observe(ctx)
		if err != nil {
			return err
		}
		for _, o := range snap.Containers {
			if o.ID == c.ID && o.State == observed.StateRunning && (!svc.HasHealthcheck || o.Health == observed.HealthHealthy) {
				return nil
			}
		}
		if r.clock().Now().After(deadline) {
			return fmt.Errorf("%s not running and healthy %s after its restart: the rest of the rolling restart is called off", c.Name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.clock().After(poll):
		}
	}
}

// done records one replica's reload.
func (r *Reloads) done(service, container, action, why string, took time.Duration, err error) error {
	if err != nil {
		r.record(record.ReloadFailed, service, container, fmt.Sprintf("%s: %s failed after %s: %v", why, action, took.Round(time.Millisecond), err))
		return fmt.Errorf("reloading %s: %w", container, err)
	}
	r.record(record.Reloaded, service, container, fmt.Sprintf("%s: %s: ok (%s)", why, action, took.Round(time.Millisecond)))
	return nil
}

func (r *Reloads) record(reason record.Reason, service, container, msg string) {
	if r.Records != nil {
		r.Records.Event(reason, service, container, msg)
	}
}

func (r *Reloads) clock() clock.Clock { return clock.Or(r.Clock) }

// ConfigSources maps each host path a service takes configuration from to
// the services that mount it: read-only bind mounts and single-file bind
// mounts, and file-backed `configs:`. Writable directory mounts are data, not
// configuration, and are left alone.
func ConfigSources(d *desired.State) map[string][]string {
	out := map[string][]string{}
	add := func(path, service string) {
		path = filepath.Clean(path)
		if !slices.Contains(out[path], service) {
			out[path] = append(out[path], service)
		}
	}
	for _, name := range d.Order {
		svc := d.Services[name].Config
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind || v.Source == "" {
				continue
			}
			st, err := os.Stat(v.Source)
			if err != nil {
				continue
			}
			if v.ReadOnly || !st.IsDir() {
				add(v.Source, name)
			}
		}
		for _, ref := range svc.Configs {
			if cfg, ok := d.Project.Configs[ref.Source]; ok && cfg.File != "" {
				add(cfg.File, name)
			}
		}
	}
	return out
}

// oneLine is a command's output on one line, clipped: it goes into a record.
func oneLine(s string) string {
	s = desired.OneLine(s)
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
