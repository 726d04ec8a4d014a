// Package reloads runs a service's reload action when a configuration file
// it mounts changes: a checked exec, a signal to its main process (through
// the engine), or a rolling restart that drains each replica first; in the
// service's own reconcile, every action through the executor.
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
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// ErrReloadRejected marks a reload whose check failed: nothing was reloaded
// and the old configuration keeps serving.
var ErrReloadRejected = errors.New("reload rejected by its check")

// DefaultRollTimeout bounds how long a rolling restart waits for one
// replica to be running (and healthy) again before it gives up on the rest.
const DefaultRollTimeout = 2 * time.Minute

// Step is the payload of a reload's operations (plan.Operation.Payload):
// why the reload runs. A restart carrying it is a reload's, not a crash's,
// and no restart budget counts it.
type Step struct{ Why string }

// Reloads runs a service's reload action on its running replicas when a
// configuration file it mounts changes: an exec (after an optional check),
// a signal to the main process, or a rolling restart. A change is only
// noted (Changed) where it is seen; the reload runs in the service's own
// reconcile (Sync), and every action of it is an operation the executor
// carries out (Actor): one owner per service.
type Reloads struct {
	// Observe takes a fresh snapshot (the controller's): a rolling restart
	// waits on it for each replica to be back.
	Observe execute.SnapshotFunc
	Records reconciler.Recorder
	Log     *slog.Logger
	Clock   clock.Clock
	// BeforeRestart, when set, runs before a replica is restarted: the
	// upstream controller takes it out of the load balancer's files.
	// It returns a function that undoes it once the replica is back.
	BeforeRestart func(ctx context.Context, d *desired.State, service string, c observed.Container) (release func(), err error)
	Poll          time.Duration
	RollTimeout   time.Duration

	mu sync.Mutex
	// owed holds, per service, why a reload is owed (the changes seen
	// since its last reload).
	owed map[string][]string
}

// Changed notes that a configuration service mounts changed (why says
// which): its next reconcile reloads it. It only notes; the caller queues
// the service.
func (r *Reloads) Changed(service, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owed == nil {
		r.owed = map[string][]string{}
	}
	if !slices.Contains(r.owed[service], why) {
		r.owed[service] = append(r.owed[service], why)
	}
}

// take returns and forgets why a reload is owed to service.
func (r *Reloads) take(service string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	why, ok := r.owed[service]
	delete(r.owed, service)
	return strings.Join(why, "; "), ok
}

// Sync runs the reload owed to the service, if any (a Syncer). A reload
// that fails is recorded, and not tried again until the next change.
func (r *Reloads) Sync(ctx context.Context, in reconciler.Review, act reconciler.Actor) (reconciler.Result, error) {
	why, ok := r.take(in.Service)
	if !ok {
		return reconciler.Result{}, nil
	}
	if err := r.Reload(ctx, act, in.Desired, in.Service, why); err != nil && r.Log != nil {
		r.Log.Warn("reload failed", "service", in.Service, "error", err)
	}
	return reconciler.Result{}, nil
}

// Reload runs the service's reload action on every running replica,
// through act; why says what changed.
func (r *Reloads) Reload(ctx context.Context, act reconciler.Actor, d *desired.State, service, why string) error {
	svc := d.Services[service]
	if svc == nil {
		return nil
	}
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
	a := svc.Policy.Reload
	if r.Log != nil {
		r.Log.Debug("reload start", "service", service, "replicas", len(replicas), "why", why)
	}
	op := func(c observed.Container, t plan.OpType) plan.Operation {
		return plan.Operation{Type: t, ResourceID: plan.ReplicaID(service, c.Number), Cause: "reload: " + why,
			Service: service, Container: c.Name, ContainerID: c.ID, Number: c.Number,
			Timeout: a.Timeout, StopTimeout: svc.StopGracePeriod, Payload: Step{Why: why}}
	}
	if len(a.Check) > 0 {
		for _, c := range replicas {
			check := op(c, plan.OpExec)
			check.Command = a.Check
			start := r.clock().Now()
			if err := act.Act(ctx, check); err != nil {
				code, out := execFailure(err, a.Mask)
				r.record(record.ReloadRejected, service, c.Name, fmt.Sprintf("%s: check %q failed (exit %d, %s): %s; nothing reloaded, the old configuration keeps serving",
					why, a.CheckShown(), code, r.clock().Now().Sub(start).Round(time.Millisecond), out))
				return fmt.Errorf("%w: %s", ErrReloadRejected, out)
			}
		}
	}
	var errs []error
	switch {
	case len(a.Exec) > 0:
		for _, c := range replicas {
			reload := op(c, plan.OpExec)
			reload.Command = a.Exec
			start := r.clock().Now()
			err := act.Act(ctx, reload)
			if err != nil {
				code, out := execFailure(err, a.Mask)
				err = fmt.Errorf("exit code %d: %s", code, out)
			}
			errs = append(errs, r.done(service, c.Name, "exec "+a.ExecShown(), why, r.clock().Now().Sub(start), err))
		}
	case a.Signal != "":
		for _, c := range replicas {
			sig := op(c, plan.OpSignal)
			sig.Signal = a.Signal
			start := r.clock().Now()
			err := act.Act(ctx, sig)
			errs = append(errs, r.done(service, c.Name, "signal "+a.Signal, why, r.clock().Now().Sub(start), err))
		}
	default:
		for _, c := range replicas {
			start := r.clock().Now()
			err := r.restartOne(ctx, act, d, svc, c, op(c, plan.OpRestartContainer))
			errs = append(errs, r.done(service, c.Name, "rolling restart", why, r.clock().Now().Sub(start), err))
			if err != nil {
				break // keep the remaining replicas serving
			}
		}
	}
	return errors.Join(errs...)
}

// execFailure is an exec's exit code and what it said, masked and on one
// line (or the error, when the command did not run).
func execFailure(err error, mask func(string) string) (int, string) {
	var ee *execute.ExecError
	if errors.As(err, &ee) {
		return ee.ExitCode, oneLine(mask(strings.TrimSpace(ee.Stderr + "\n" + ee.Stdout)))
	}
	return -1, oneLine(mask(err.Error()))
}

// restartOne restarts a replica and waits until it runs again, healthy if
// it has a check.
func (r *Reloads) restartOne(ctx context.Context, act reconciler.Actor, d *desired.State, svc *desired.Service, c observed.Container, restart plan.Operation) error {
	if r.BeforeRestart != nil {
		release, err := r.BeforeRestart(ctx, d, svc.Name, c)
		if release != nil {
			defer release()
		}
		if err != nil {
			return fmt.Errorf("taking %s out of rotation: %w", c.Name, err)
		}
	}
	if err := act.Act(ctx, restart); err != nil {
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
