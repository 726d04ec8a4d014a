package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Reconcile brings one service to its desired state as far as it can now:
// diff, the service's part of the plan, dependencies, the guards' decisions,
// the networks and volumes what is left of the plan needs, the syncers, then
// the executor, whose reports the accountants learn from.
func (c *Controller) Reconcile(ctx context.Context, key string) (Result, error) {
	d := c.desired.Load()
	if d == nil {
		return Result{}, errors.New("no desired state loaded")
	}
	snap, p, out, err := c.planService(ctx, d, key)
	if err != nil || c.DryRun {
		return out, err
	}
	if held := c.outcomes.holding(key); held != nil && !p.Empty() {
		return Result{}, held // the same failure, until something changes
	}
	// what no wait can fix is found before anything is touched, networks
	// included: bad input leaves the engine as it was
	if err := c.checkInputs(ctx, d, snap, p); err != nil {
		return Result{}, err
	}
	if needed := infraNeeded(p); len(needed) > 0 {
		// Several services may need one missing network: create it once,
		// under a lock and on a fresh look, then plan again. Only what the
		// decided plan needs: a network whose containers the user took
		// down is not made again behind their back.
		if err := c.createInfra(ctx, d, key, needed); err != nil {
			return Result{}, err
		}
		if snap, p, out, err = c.planService(ctx, d, key); err != nil {
			return out, err
		}
	}
	for _, pol := range c.Policies {
		if pol.Sync == nil {
			continue
		}
		r, err := pol.Sync.Sync(ctx, Review{Desired: d, Snapshot: snap, Service: key, Plan: p, Now: c.clock().Now()}, c.actor(d, key))
		if err != nil {
			return Result{}, fmt.Errorf("syncing service %s (%s): %w", key, pol.Name, err)
		}
		out.RequeueAfter = sooner(out.RequeueAfter, r.RequeueAfter)
	}
	if p.Empty() {
		return out, nil
	}
	err = c.executor(ctx, d, key).Execute(ctx, p)
	c.invalidateAfter(p)
	if perm := execute.AsPermanent(err); perm != nil {
		reason := record.EngineRefused
		if perm.Kind == execute.PermanentHook {
			reason = record.HookFailed
		}
		return Result{}, TerminalError(reason, fmt.Errorf("reconciling service %s: %w", key, perm))
	}
	if err != nil {
		return Result{}, fmt.Errorf("reconciling service %s: %w", key, err)
	}
	return out, nil
}

// checkInputs finds what the plan needs and no wait can give: an external
// network or volume that does not exist, an image that cannot be had.
func (c *Controller) checkInputs(ctx context.Context, d *desired.State, snap *observed.Snapshot, p *plan.Plan) error {
	if p.Empty() {
		return nil
	}
	if err := execute.CheckExternals(d, snap, p); err != nil {
		return TerminalError(record.ExternalMissing, err)
	}
	if c.Images != nil {
		if err := execute.EnsureImages(ctx, d, snap, p, c.Images); err != nil {
			return TerminalError(record.ImageMissing, err)
		}
	}
	return nil
}

// planService looks at the service: a snapshot, the diff and its records,
// the service's part of the plan with the guards' decisions applied (a dry
// run stops before them), less the networks and volumes only held
// operations needed, less what waits for dependencies (their networks are
// still made: they need no dependency).
func (c *Controller) planService(ctx context.Context, d *desired.State, key string) (*observed.Snapshot, *plan.Plan, Result, error) {
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return nil, nil, Result{}, err
	}
	res := plan.Diff(d, snap, c.Options)
	p := res.Plan.ForService(key)
	c.driftMetrics(res)
	c.reports.drift(c, key, res)

	if c.DryRun {
		p, out := c.waitForDependencies(d, key, snap, p)
		if !p.Empty() {
			logFrom(ctx, c.logger()).Info("dry run: not acting", "plan", p.String())
		}
		return snap, p, out, nil
	}
	p, requeue := c.decide(key, Review{Desired: d, Snapshot: snap, Service: key, Plan: p}, 0)
	// networks and volumes only the held operations needed are not made
	p = p.Without(func(n *plan.Node) bool {
		return n.Op.Type.IsInfra() && !slices.ContainsFunc(p.Nodes, func(m *plan.Node) bool { return slices.Contains(m.DependsOn, n) })
	})
	p, out := c.waitForDependencies(d, key, snap, p)
	out.RequeueAfter = sooner(out.RequeueAfter, requeue)
	return snap, p, out, nil
}

// waitForDependencies leaves out what brings the service up while a
// required dependency misses its condition, and says so once.
func (c *Controller) waitForDependencies(d *desired.State, key string, snap *observed.Snapshot, p *plan.Plan) (*plan.Plan, Result) {
	s := d.Services[key]
	if s == nil || !p.BringsUp() {
		return p, Result{}
	}
	ok, why := c.dependenciesReady(d, s, snap)
	if ok {
		return p, Result{}
	}
	c.reports.once(c, key, Report{Reason: record.DependencyNotReady, Message: "waiting for " + why, Occurrence: why})
	return p.Without(func(n *plan.Node) bool { return n.Op.Type.BringsUp() }), Result{RequeueAfter: c.dependencyRetry()}
}

// infraNeeded are the networks and volumes the plan creates, by resource.
func infraNeeded(p *plan.Plan) map[string]bool {
	out := map[string]bool{}
	for _, n := range p.Nodes {
		if n.Op.Type.IsInfra() {
			out[n.Op.ResourceID] = true
		}
	}
	return out
}

// decide asks each guard in turn about the plan as the ones before it left
// it, applies their decisions, records what they report and remembers what
// they held (a load balancer keeps a replica whose stop waits out of its
// file). It changes nothing in the guards.
func (c *Controller) decide(key string, in Review, requeue time.Duration) (*plan.Plan, time.Duration) {
	var held []plan.Operation
	var wake []string
	var stuck []string
	for _, pol := range c.Policies {
		if pol.Decide == nil {
			continue
		}
		in.Now = c.clock().Now()
		dec := pol.Decide.Review(in)
		for _, n := range dec.Hold {
			held = append(held, n.Op)
		}
		for _, r := range dec.Reports {
			c.reports.once(c, key, r)
			if r.Stuck {
				stuck = append(stuck, string(r.Reason)+": "+r.Message)
			}
		}
		wake = append(wake, dec.Wake...)
		requeue = sooner(requeue, dec.RequeueAfter)
		in.Plan = dec.Apply(in.Plan)
	}
	// what was held is in place before the woken services look at it
	c.pending.hold(key, held)
	c.outcomes.stuck(key, stuck)
	for _, w := range wake {
		c.queue().Add(w)
	}
	return in.Plan, requeue
}

// createInfra creates the needed networks and volumes of a service that are
// still missing when looked at under the lock.
func (c *Controller) createInfra(ctx context.Context, d *desired.State, key string, needed map[string]bool) error {
	c.infra.Lock()
	defer c.infra.Unlock()
	c.Invalidate()
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return err
	}
	p := plan.Diff(d, snap, c.Options).Plan.ForService(key).Without(func(n *plan.Node) bool { return !n.Op.Type.IsInfra() || !needed[n.Op.ResourceID] })
	if p.Empty() {
		return nil
	}
	err = c.executor(ctx, d, key).Execute(ctx, p)
	c.Invalidate()
	if err != nil {
		return fmt.Errorf("creating networks and volumes of service %s: %w", key, err)
	}
	return nil
}

// actor carries out a syncer's operations on service key through the
// executor, as the plan's: remembered as the reconciler's own, accounted
// and recorded when the executor reports them.
func (c *Controller) actor(d *desired.State, key string) Actor {
	return actorFunc(func(ctx context.Context, ops ...plan.Operation) error {
		p := &plan.Plan{}
		for _, op := range ops {
			p.Add(op)
		}
		err := c.executor(ctx, d, key).Execute(ctx, p)
		c.invalidateAfter(p)
		return err
	})
}

// invalidateAfter marks the cached snapshot stale after p ran: wholly when
// p went through compose (which may create networks and volumes, pull or
// build images), its containers alone otherwise.
func (c *Controller) invalidateAfter(p *plan.Plan) {
	for _, n := range p.Nodes {
		switch n.Op.Type {
		case plan.OpCreateNetwork, plan.OpCreateVolume, plan.OpCreateContainer, plan.OpRecreateContainer, plan.OpAddReplica:
			c.Invalidate()
			return
		}
		if n.Group != "" {
			c.Invalidate() // a group is one compose up
			return
		}
	}
	c.snapshots.gen.Add(1)
}

type actorFunc func(ctx context.Context, ops ...plan.Operation) error

func (f actorFunc) Act(ctx context.Context, ops ...plan.Operation) error { return f(ctx, ops...) }

func (c *Controller) executor(ctx context.Context, d *desired.State, key string) *execute.Executor {
	return &execute.Executor{
		Desired:     d,
		Compose:     c.Compose,
		Engine:      c.Engine,
		Exec:        c.Exec,
		Observe:     c.Observe,
		Log:         logFrom(ctx, c.logger().With("service", key)),
		Clock:       c.clock(),
		Concurrency: ActionsPerService,
		Slots:       c.EngineSlots,
		OnBegin:     c.actionBegins,
		OnDone:      c.actionDone(d),
	}
}

// actionBegins tells the accountants an operation is about to run.
func (c *Controller) actionBegins(n *plan.Node) {
	c.pending.begin(n.Op)
	now := c.clock().Now()
	c.expect.Expect(n.Op, now)
	for _, p := range c.Policies {
		if p.Account != nil {
			p.Account.Begin(n.Op, now)
		}
	}
}

// actionDone turns finished operations into records and metrics, and
// tells the accountants: what is counted is what happened.
func (c *Controller) actionDone(d *desired.State) func(n *plan.Node, err error, took time.Duration) {
	return func(n *plan.Node, err error, took time.Duration) {
		op := n.Op
		skipped := errors.Is(err, execute.ErrSkipped)
		if !skipped {
			c.pending.done(op)
			c.expect.Done(op, err)
			now := c.clock().Now()
			for _, p := range c.Policies {
				if p.Account != nil {
					p.Account.Done(op, err, now)
				}
			}
		}
		container := op.Container
		if container == "" && op.Number > 0 {
			container = plan.ContainerName(d, op.Service, op.Number)
		}
		if container == "" && op.Network != "" {
			container = op.Network
		}
		switch {
		case skipped, errors.Is(err, execute.ErrGone), !op.Type.Recorded():
			if err == nil && !skipped {
				c.metric(func(m Metrics) { m.Action(op.Type.String()) })
			}
		case err != nil:
			c.record(op.Type.Reason(err), op.Service, container, fmt.Sprintf("%s: %v", op.Cause, err))
		default:
			c.acted.Add(1)
			c.metric(func(m Metrics) { m.Action(op.Type.String()) })
			c.record(op.Type.Reason(nil), op.Service, container, fmt.Sprintf("%s; done in %s", op.Cause, took.Round(time.Millisecond)))
		}
	}
}

// dependenciesReady checks every required dependency's condition on the
// snapshot; optional ones (required: false) never hold a service back.
// Replicas a policy leaves down on purpose are set aside
// (plan.CheckReadiness): a dependency with capacity is ready.
func (c *Controller) dependenciesReady(d *desired.State, s *desired.Service, snap *observed.Snapshot) (bool, string) {
	byService := snap.ByService()
	for _, dep := range s.DependsOn {
		depSvc, ok := d.Services[dep.Service]
		if !ok || !dep.Required {
			continue
		}
		left := c.LeftDown(d, dep.Service, snap)
		if st, why := plan.CheckReadiness(dep.Condition, depSvc, byService[dep.Service], left); st != plan.ConditionMet {
			return false, fmt.Sprintf("%s to be %s (%s)", dep.Service, plan.ConditionWords(dep.Condition), why)
		}
	}
	return true, ""
}

// LeftDown gathers what the policies leave down on purpose of a service.
func (c *Controller) LeftDown(d *desired.State, service string, snap *observed.Snapshot) plan.LeftDown {
	var left plan.LeftDown
	now := c.clock().Now()
	for _, p := range c.Policies {
		if p.LeftDown != nil {
			left = left.Merge(p.LeftDown.LeftDown(d, service, snap, now))
		}
	}
	return left
}
