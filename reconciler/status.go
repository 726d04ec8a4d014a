package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Served is the status the daemon's HTTP endpoints serve: made from the
// snapshot the loop last took (no list), with each stopped container's
// details inspected once per stop and kept until its next event, so that a
// request, however many arrive, does not make the engine work. Before the
// loop's first look it takes one.
func (c *Controller) Served(ctx context.Context, inspect observed.Inspector) (plan.ProjectStatus, error) {
	d := c.desired.Load()
	if d == nil {
		return plan.ProjectStatus{}, errors.New("no desired state loaded")
	}
	snap := c.snapshots.last()
	if snap == nil {
		var err error
		if snap, err = c.Snapshot(ctx); err != nil {
			return plan.ProjectStatus{}, err
		}
	}
	cp := *snap
	cp.Containers = slices.Clone(snap.Containers)
	for i := range cp.Containers {
		ctr := &cp.Containers[i]
		if ctr.State == observed.StateRunning || inspect == nil {
			continue
		}
		det, err := c.details.get(ctx, inspect, ctr.ID)
		if err != nil {
			return plan.ProjectStatus{}, fmt.Errorf("inspecting container %s: %w", ctr.Name, err)
		}
		ctr.Details = det
	}
	st, _ := c.look(d, &cp)
	return st, nil
}

// details keeps what inspects said of stopped containers until each one's
// next event: why a container is down does not change while it stays down.
type details struct {
	mu sync.Mutex
	m  map[string]*observed.Details
}

func (k *details) get(ctx context.Context, inspect observed.Inspector, id string) (*observed.Details, error) {
	k.mu.Lock()
	d, ok := k.m[id]
	k.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := observed.InspectDetails(ctx, inspect, id)
	if err != nil || d == nil {
		return d, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]*observed.Details{}
	}
	k.m[id] = d
	return d, nil
}

// forget drops what was kept of container id: an event says it changed.
func (k *details) forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, id)
}

// Look is the project's status as `reconcile status -o json` gives it,
// with the diff it was made from and the snapshot both come from: what a
// one-shot run checks convergence and settling on, each poll, from one
// snapshot and without diffing twice.
func (c *Controller) Look(ctx context.Context) (plan.ProjectStatus, *plan.Result, *observed.Snapshot, error) {
	d := c.desired.Load()
	if d == nil {
		return plan.ProjectStatus{}, nil, nil, errors.New("no desired state loaded")
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return plan.ProjectStatus{}, nil, nil, err
	}
	st, res := c.look(d, snap)
	return st, res, snap, nil
}

// look diffs snap against d and annotates the status with what the
// policies know.
func (c *Controller) look(d *desired.State, snap *observed.Snapshot) (plan.ProjectStatus, *plan.Result) {
	res := plan.Diff(d, snap, c.Options)
	st := plan.Status(d, snap, res)
	for _, p := range c.Policies {
		if p.Status != nil {
			p.Status.Annotate(&st, d, c.clock().Now())
		}
	}
	return st, res
}
