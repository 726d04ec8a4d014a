package reconciler

import (
	"context"
	"errors"
	"slices"

	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Status is the project's status as `reconcile status -o json` gives it,
// from the current snapshot, with what the policies know added.
func (c *Controller) Status(ctx context.Context, inspect observed.Inspector) (plan.ProjectStatus, error) {
	st, _, err := c.Look(ctx, inspect)
	return st, err
}

// Look is Status with the diff it was made from: what a one-shot run
// checks convergence on, each poll, without diffing twice.
func (c *Controller) Look(ctx context.Context, inspect observed.Inspector) (plan.ProjectStatus, *plan.Result, error) {
	d := c.desired.Load()
	if d == nil {
		return plan.ProjectStatus{}, nil, errors.New("no desired state loaded")
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return plan.ProjectStatus{}, nil, err
	}
	cp := *snap
	cp.Containers = slices.Clone(snap.Containers)
	if inspect != nil {
		if err := observed.Enrich(ctx, inspect, &cp); err != nil {
			return plan.ProjectStatus{}, nil, err
		}
	}
	res := plan.Diff(d, &cp, c.Options)
	st := plan.Status(d, &cp, res)
	for _, p := range c.Policies {
		if p.Status != nil {
			p.Status.Annotate(&st, d, c.clock().Now())
		}
	}
	return st, res, nil
}
