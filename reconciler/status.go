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
	d := c.desired.Load()
	if d == nil {
		return plan.ProjectStatus{}, errors.New("no desired state loaded")
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return plan.ProjectStatus{}, err
	}
	cp := *snap
	cp.Containers = slices.Clone(snap.Containers)
	if inspect != nil {
		if err := observed.Enrich(ctx, inspect, &cp); err != nil {
			return plan.ProjectStatus{}, err
		}
	}
	st := plan.Status(d, &cp, plan.Diff(d, &cp, c.Options))
	for _, p := range c.Policies {
		if p.Status != nil {
			p.Status.Annotate(&st, d, c.clock().Now())
		}
	}
	return st, nil
}
