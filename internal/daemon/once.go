package daemon

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// DefaultSettle is how long each running container without a passing
// healthcheck must have run since its own start before a one-shot run that
// acted counts the project converged: a container that dies a moment after
// it starts is not converged.
const DefaultSettle = 2 * time.Second

// oncePoll paces the look at the project while a one-shot run waits; the
// look reads the controller's cached snapshot, which lists afresh only
// after an event.
const oncePoll = 100 * time.Millisecond

// Outcome is where a one-shot run ended.
type Outcome struct {
	Converged bool
	Status    plan.ProjectStatus
	Result    *plan.Result
	// Acted counts the operations the run carried out.
	Acted int
	// Errors are the failures along the way that were retried.
	Errors []error
}

// StuckError is a one-shot run's end on a service that cannot converge
// without a change: a terminal error (a hook that failed, a definition the
// engine refuses, an image that cannot be got), or a policy's decision (a
// rollback, a replica left down that nothing will start again).
type StuckError struct {
	Service string
	Err     error
}

func (e *StuckError) Error() string { return e.Service + ": " + e.Err.Error() }
func (e *StuckError) Unwrap() error { return e.Err }

// Converge runs the project's loop, as the daemon runs it, until the
// project has converged and Settled (at once when the run found it
// converged and did nothing), until a service cannot converge without a
// change or a dependency failed for good (a *StuckError), or until ctx ends
// (an Outcome not Converged). The
// engine's events are watched meanwhile, so that the policies learn what
// happens as they do in the daemon. The project is closed on return.
func (p *Project) Converge(ctx context.Context, settle time.Duration) (Outcome, error) {
	if settle <= 0 {
		settle = DefaultSettle
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// reconciles in progress when the run ends finish, for a moment
	work, cancelWork := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelWork()

	connected := make(chan error, 1)
	var wg sync.WaitGroup
	w := &observed.Watcher{
		Source:  p.cfg.Engine.Client,
		Project: p.name,
		Clock:   clock.Real{},
		Log:     p.log,
		OnConnect: func(ctx context.Context) error {
			err := p.ctrl.Resync(ctx)
			select {
			case connected <- err:
			default:
			}
			return err
		},
		OnEvent: p.Event,
	}
	wg.Go(func() { _ = w.Run(runCtx) })
	p.Start(runCtx, work, &wg)
	defer wg.Wait()
	defer stop()

	var out Outcome
	select {
	case err := <-connected:
		if err != nil {
			return out, err
		}
	case <-ctx.Done():
		return out, nil
	}
	ticker := time.NewTicker(oncePoll)
	defer ticker.Stop()
	for {
		st, res, snap, err := p.ctrl.Look(ctx)
		if err != nil {
			if ctx.Err() != nil && out.Result != nil {
				return out, nil // out of time while looking: the last look stands
			}
			return out, err
		}
		out.Status, out.Result, out.Acted = st, res, int(p.ctrl.Acted())
		out.Errors = retried(p.ctrl.Failures())
		if svc, f, ok := firstTerminal(p.ctrl.Terminal()); ok {
			return out, &StuckError{Service: svc, Err: f.Err}
		}
		idle := p.ctrl.Idle()
		if idle {
			// compose's up reports a dependency that failed for good at
			// once; waiting out the timeout would tell nothing more
			if failed := plan.FailedDependencies(p.ctrl.Desired(), snap); len(failed) > 0 {
				return out, &StuckError{Service: failed[0].Service, Err: failed[0]}
			}
		}
		switch {
		case !idle || !plan.Converged(st, res):
		case out.Acted == 0:
			out.Converged = true // found converged: nothing was done by this run
			return out, nil
		case Settled(snap, settle, time.Now()):
			out.Converged = true
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, nil
		case <-ticker.C:
		}
	}
}

// Settled reports whether every running container of snap has run for
// settle since its own last start (the engine's "Up", counted on from when
// the list was taken, to the second below), or passes its own healthcheck:
// a container that dies within the settle is still caught, and one that has
// long run, or is healthy, costs no wait.
func Settled(snap *observed.Snapshot, settle time.Duration, now time.Time) bool {
	for _, c := range snap.Containers {
		if c.State != observed.StateRunning || c.Health == observed.HealthHealthy {
			continue
		}
		if c.Up+now.Sub(snap.TakenAt) < settle {
			return false
		}
	}
	return true
}

// firstTerminal is the first service, by name, that cannot converge without
// a change.
func firstTerminal(failures map[string]reconciler.Failure) (string, reconciler.Failure, bool) {
	for _, svc := range slices.Sorted(maps.Keys(failures)) {
		if f := failures[svc]; f.Terminal {
			return svc, f, true
		}
	}
	return "", reconciler.Failure{}, false
}

// retried are the failures being retried, by service.
func retried(failures map[string]reconciler.Failure) []error {
	var out []error
	for _, svc := range slices.Sorted(maps.Keys(failures)) {
		if f := failures[svc]; !f.Terminal {
			out = append(out, f.Err)
		}
	}
	return out
}

// IsStuck reports whether err ended a one-shot run on a service that
// cannot converge without a change.
func IsStuck(err error) bool {
	var s *StuckError
	return errors.As(err, &s)
}
