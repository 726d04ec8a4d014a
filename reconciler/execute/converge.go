package execute

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Converger brings a project to its desired state once, as `reconcile
// --once` does: observe, diff, act, and again, until the project converges or
// the context ends.
type Converger struct {
	Desired *desired.State
	Observe SnapshotFunc
	// First, when set, is used as the first pass's snapshot instead of
	// observing: one taken while the desired state was loading.
	First    *observed.Snapshot
	Executor *Executor
	// Images, when set, makes the images of planned containers present
	// before a plan runs; its error stops the run.
	Images  ImageProvider
	Options plan.Options
	Log     *slog.Logger
	Clock   clock.Clock
	// Poll paces observation while waiting for containers to settle.
	Poll time.Duration
	// MaxActions bounds how many plans are applied, so that a container
	// that dies as soon as it starts is not restarted in a tight loop.
	MaxActions int
	// Settle is how long a project must stay converged, after this run
	// acted on it, before it counts as converged (DefaultSettle when zero):
	// a container that dies a moment after it starts is not converged.
	Settle time.Duration
	// Shaper, when set, reshapes each pass's plan before it runs: the
	// rolling-update policy turns a changed service's recreate into its
	// next batch.
	Shaper Shaper
}

// Shaper reshapes a pass's plan; it decides, and changes nothing.
type Shaper interface {
	Shape(d *desired.State, snap *observed.Snapshot, p *plan.Plan, now time.Time) Shaped
}

// Shaped is a reshaped plan and what it means for the run.
type Shaped struct {
	Plan *plan.Plan
	// Steps says the plan holds steps of a rolling update: they are not
	// counted against MaxActions (an update of n replicas takes n steps).
	Steps bool
	// Wait says steps are under way (a new replica not healthy yet): the
	// run polls, it is not converged.
	Wait bool
	// Stop ends the run: an update rolled back or paused, which waiting
	// cannot fix.
	Stop error
	// Said are what the shaper reports, a line each ("api: RolloutStarted:
	// ..."), logged once each.
	Said []string
}

// DefaultSettle is how long convergence must hold after --once acted.
const DefaultSettle = 2 * time.Second

// Outcome is where a converge run ended.
type Outcome struct {
	Converged bool
	Status    plan.ProjectStatus
	Result    *plan.Result
	// Applied counts the plans applied.
	Applied int
	// Errors are the failures of operations along the way.
	Errors []error
}

// Run converges until ctx ends. Its error is for what retrying cannot fix:
// bad input (a *desired.InputError), an operation that failed for good (a
// *PermanentError: a hook, a definition the engine refuses) or an
// observation that failed; a project
// that did not converge in time is an Outcome with Converged false.
func (c *Converger) Run(ctx context.Context) (Outcome, error) {
	var out Outcome
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clk := c.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	poll := c.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	maxActions := c.MaxActions
	if maxActions <= 0 {
		maxActions = 3
	}
	settle := c.Settle
	if settle <= 0 {
		settle = DefaultSettle
	}
	var since time.Time // when the project last became converged
	said := map[string]bool{}
	rolled := 0 // rolling-update steps applied
	next := c.First
	for {
		snap, err := next, error(nil)
		next = nil
		if snap == nil {
			snap, err = c.Observe(ctx)
		}
		if err != nil {
			if ctx.Err() != nil && out.Result != nil {
				return out, nil // out of time while observing: report the last state
			}
			return out, err
		}
		out.Result = plan.Diff(c.Desired, snap, c.Options)
		out.Status = plan.Status(c.Desired, snap, out.Result)
		shaped := Shaped{Plan: out.Result.Plan}
		if c.Shaper != nil {
			shaped = c.Shaper.Shape(c.Desired, snap, out.Result.Plan, clk.Now())
			for _, line := range shaped.Said {
				if !said[line] {
					said[line] = true
					log.Info(line)
				}
			}
			if shaped.Stop != nil {
				return out, &PermanentError{Kind: PermanentRolledBack, Err: shaped.Stop}
			}
		}
		switch {
		case !plan.Converged(out.Status, out.Result) || shaped.Wait || shaped.Steps:
			since = time.Time{}
		case out.Applied == 0 && rolled == 0:
			out.Converged = true // found converged: nothing was started by this run
			return out, nil
		case since.IsZero():
			since = clk.Now()
		case clk.Now().Sub(since) >= settle:
			out.Converged = true
			return out, nil
		}
		if !since.IsZero() {
			select {
			case <-ctx.Done():
				return out, nil // converged, but not for long enough
			case <-clk.After(poll):
			}
			continue
		}
		if p := shaped.Plan; !p.Empty() && (shaped.Steps || out.Applied < maxActions) {
			if err := CheckExternals(c.Desired, snap, p); err != nil {
				return out, err
			}
			if c.Images != nil {
				if err := EnsureImages(ctx, c.Desired, snap, p, c.Images); err != nil {
					return out, err
				}
			}
			for _, d := range out.Result.Drift {
				log.Info("drift", "kind", d.Kind.String(), "service", d.Service, "subject", d.Subject(), "cause", d.Cause)
			}
			log.Debug("applying plan", "plan", p.String())
			if shaped.Steps {
				rolled++
			} else {
				out.Applied++
			}
			if err := c.Executor.Execute(ctx, p); err != nil {
				if p := AsPermanent(err); p != nil {
					return out, p // waiting cannot fix it
				}
				out.Errors = append(out.Errors, err)
				if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(ctx.Err(), context.Canceled) {
					return out, nil
				}
			}
			continue
		}
		select {
		case <-ctx.Done():
			return out, nil
		case <-clk.After(poll):
		}
	}
}
