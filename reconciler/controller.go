package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/observed"
)

// Record types, as Kubernetes events have them.
const (
	Normal  = "Normal"
	Warning = "Warning"
)

// Recorder receives the daemon's event records.
type Recorder interface {
	Event(typ, reason, service, container, message string)
}

// Metrics receives what the controller counts.
type Metrics interface {
	Reconciled(result string, took time.Duration, failed bool)
	QueueDepth(n int)
	Action(action string)
	Drift(counts map[[2]string]int)
}

// Guard is a policy's say over the plan for one service before it runs: it
// returns the part of the plan it allows now and, when it held something
// back, how soon to look again. Guards decide; they do not act.
type Guard interface {
	Review(in Review) (allowed *Plan, requeueAfter time.Duration)
}

// Syncer is a controller that keeps something other than containers in
// line for a service: an upstream file and the reload it needs.
type Syncer interface {
	Sync(ctx context.Context, in Review) (requeueAfter time.Duration, err error)
}

// StatusAnnotator is a guard that adds what it knows to a status.
type StatusAnnotator interface {
	Annotate(st *ProjectStatus, d *desired.State, now time.Time)
}

// Review is what a Guard sees.
type Review struct {
	Desired  *desired.State
	Snapshot *observed.Snapshot
	Service  string
	Plan     *Plan
	Now      time.Time
}

// DefaultDependencyRetry is how soon a service whose dependency is not ready
// is looked at again, in case no event about the dependency arrives.
const DefaultDependencyRetry = 2 * time.Second

// Controller keeps a project converged, service by service: events and file
// changes only enqueue service names; a worker takes a name, looks at the
// current state (not at what caused it to be queued) and applies that
// service's part of the plan. It is the daemon's loop without its inputs.
type Controller struct {
	Observe SnapshotFunc
	Compose Composer
	Engine  ContainerEngine
	// Images, when set, makes missing images present before containers are
	// created.
	Images  ImageProvider
	Options Options
	// DryRun reports drift and never acts.
	DryRun bool
	Guards []Guard
	// Syncers act on what is not a container (generated files, reloads)
	// in a service's reconcile, before its plan runs.
	Syncers []Syncer
	Log     *slog.Logger
	Clock   clock.Clock
	Records Recorder
	Metrics Metrics
	// Workers bounds how many services are reconciled at once.
	Workers int
	// Queue, when nil, is made with the default rate limiter.
	Queue           *Queue
	DependencyRetry time.Duration
	// Offline, when set and true, says the engine is known to be away (the
	// daemon recorded it once): failed reconciles are then logged at debug
	// level and retried as usual, instead of an error line each.
	Offline func() bool

	desired atomic.Pointer[desired.State]
	// gen counts what may have changed the engine's state (events, our own
	// actions); a cached snapshot is used only while gen has not moved, so
	// an idle daemon makes no list calls between resyncs.
	gen       atomic.Uint64
	snapMu    sync.Mutex
	snap      *observed.Snapshot
	snapGen   uint64
	hasSnap   bool
	infra     sync.Mutex
	queueOnce sync.Once
	// passes numbers reconciles, so that the log lines of one can be told
	// from those of another running beside it.
	passes atomic.Uint64

	reportMu sync.Mutex
	reported map[string]map[string]bool

	// expect holds what recent events say about containers. The engine
	// emits an event before its list view catches up (a `die` is sent
	// before the stopped state is saved where the list reads it), so a
	// snapshot listed after an event is patched with what the event says.
	expectMu sync.Mutex
	expect   map[string]expectation
}

// Fact kinds: what an event says a container is now.
const (
	FactRunning   = "running"
	FactStopped   = "stopped"
	FactGone      = "gone"
	FactHealthy   = "healthy"
	FactUnhealthy = "unhealthy"
)

// Fact is what one engine event says of a container.
type Fact struct {
	Kind     string
	ExitCode int
}

type expectation struct {
	Fact
	gen uint64
	at  time.Time
}

// factTTL bounds how long an event's fact may patch snapshots: the list
// view lags the events by milliseconds, and a fact kept longer could
// outlive a change whose event was lost.
const factTTL = 2 * time.Second

// Observed notes an engine event about a container: it invalidates the
// cached snapshot and, for a fact with a kind, records what the container
// now is, for snapshots listed before the engine's list view caught up.
func (c *Controller) Observed(containerID string, f Fact) {
	g := c.gen.Add(1)
	if f.Kind == "" || containerID == "" {
		return
	}
	c.expectMu.Lock()
	defer c.expectMu.Unlock()
	if c.expect == nil {
		c.expect = map[string]expectation{}
	}
	c.expect[containerID] = expectation{Fact: f, gen: g, at: c.clock().Now()}
}

// patch brings snap, listed at generation g, in line with the facts of
// events seen before the list was taken; facts the list already shows, or
// too old to trust, are dropped.
func (c *Controller) patch(snap *observed.Snapshot, g uint64) {
	c.expectMu.Lock()
	defer c.expectMu.Unlock()
	now := c.clock().Now()
	for id, e := range c.expect {
		if e.gen > g {
			continue // newer than the list: the next snapshot will tell
		}
		if now.Sub(e.at) > factTTL {
			delete(c.expect, id)
			continue
		}
		i := slices.IndexFunc(snap.Containers, func(ctr observed.Container) bool { return ctr.ID == id })
		if i < 0 {
			if e.Kind == FactGone || e.Kind == FactStopped {
				delete(c.expect, id)
			}
			continue
		}
		ctr := &snap.Containers[i]
		switch e.Kind {
		case FactGone:
			snap.Containers = slices.Delete(snap.Containers, i, i+1)
		case FactStopped:
			if ctr.State == observed.StateRunning {
				ctr.State, ctr.ExitCode, ctr.Health = observed.StateExited, e.ExitCode, observed.HealthNone
			} else {
				delete(c.expect, id)
			}
		case FactRunning:
			if ctr.State == observed.StateExited || ctr.State == observed.StateCreated {
				ctr.State = observed.StateRunning
			} else {
				delete(c.expect, id)
			}
		case FactHealthy, FactUnhealthy:
			if ctr.State == observed.StateRunning && ctr.Health != e.Kind {
				ctr.Health = e.Kind
			} else {
				delete(c.expect, id)
			}
		}
	}
}

// SetDesired puts a desired state in force and queues every service of it
// and of the one it replaces.
func (c *Controller) SetDesired(d *desired.State) {
	old := c.desired.Swap(d)
	keys := slices.Clone(d.Order)
	if old != nil {
		keys = append(keys, old.Order...)
	}
	for _, k := range keys {
		c.queue().Add(k)
	}
	c.depth()
}

// Desired is the desired state in force.
func (c *Controller) Desired() *desired.State { return c.desired.Load() }

// Invalidate marks the cached snapshot stale: something may have changed.
func (c *Controller) Invalidate() { c.gen.Add(1) }

// Enqueue queues a service and the services that depend on it, which may be
// waiting for it.
func (c *Controller) Enqueue(service string) {
	q := c.queue()
	q.Add(service)
	if d := c.desired.Load(); d != nil {
		for _, name := range d.Order {
			for _, dep := range d.Services[name].DependsOn {
				if dep.Service == service {
					q.Add(name)
				}
			}
			// a load balancer whose upstreams list this service's replicas
			for _, u := range d.Services[name].Policy.Upstreams {
				if u.Service == service {
					q.Add(name)
				}
			}
		}
	}
	c.depth()
}

// Resync lists everything afresh and queues every service, desired or
// observed: what the daemon does on connect, on reconnect and periodically,
// because the event stream alone can lose events. seen, when set, is shown
// the fresh snapshot before anything is queued.
func (c *Controller) Resync(ctx context.Context, seen func(*observed.Snapshot)) error {
	c.Invalidate()
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return err
	}
	if seen != nil {
		seen(snap)
	}
	keys := map[string]bool{}
	if d := c.desired.Load(); d != nil {
		for _, k := range d.Order {
			keys[k] = true
		}
		c.driftMetrics(Diff(d, snap, c.Options))
	}
	for _, ctr := range snap.Containers {
		keys[ctr.Service] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		c.queue().Add(k)
	}
	c.depth()
	return nil
}

// Run processes the queue with Workers workers until ctx ends, then waits
// for the reconciles in progress, which run under work: the caller bounds
// how long they may go on after ctx ends by cancelling work.
func (c *Controller) Run(ctx, work context.Context) {
	q := c.queue()
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	var wg sync.WaitGroup
	for range max(c.Workers, 1) {
		wg.Go(func() {
			for c.processNext(work) {
			}
		})
	}
	wg.Wait()
}

func (c *Controller) processNext(ctx context.Context) bool {
	q := c.queue()
	key, ok := q.Get()
	if !ok {
		return false
	}
	defer q.Done(key)
	c.depth()
	start := c.clock().Now()
	pass := c.passes.Add(1)
	requeue, err := c.safeReconcile(WithLogger(ctx, c.logger().With("service", key, "reconcile", pass)), key)
	took := c.clock().Now().Sub(start)
	c.logger().Debug("reconciled", "service", key, "reconcile", pass, "took", took.Round(time.Microsecond).String(), "requeue", requeue.String(), "error", err)
	switch {
	case err != nil:
		c.metric(func(m Metrics) { m.Reconciled("error", took, true) })
		level := slog.LevelError
		if c.Offline != nil && c.Offline() {
			level = slog.LevelDebug
		}
		c.logger().Log(ctx, level, "reconcile failed", "service", key, "reconcile", pass, "error", err, "retries", q.Failures(key))
		q.AddRateLimited(key)
	case requeue > 0:
		c.metric(func(m Metrics) { m.Reconciled("requeue", took, false) })
		q.Forget(key)
		q.AddAfter(key, requeue)
	default:
		c.metric(func(m Metrics) { m.Reconciled("success", took, false) })
		q.Forget(key)
	}
	return true
}

// safeReconcile turns a panic in one reconcile into an error for that key,
// so that one bad service does not take the daemon down.
func (c *Controller) safeReconcile(ctx context.Context, key string) (requeue time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.record(Warning, "ReconcilePanic", key, "", fmt.Sprintf("reconcile panicked: %v", r))
			c.logger().Error("reconcile panicked", "service", key, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("reconcile of %s panicked: %v", key, r)
		}
	}()
	return c.Reconcile(ctx, key)
}

// Reconcile brings one service to its desired state as far as it can now.
// It returns how soon to look again when it waits for something no event
// will announce.
func (c *Controller) Reconcile(ctx context.Context, key string) (time.Duration, error) {
	d := c.desired.Load()
	if d == nil {
		return 0, errors.New("no desired state loaded")
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	res := Diff(d, snap, c.Options)
	plan := res.Plan.ForService(key)
	if !c.DryRun && slices.ContainsFunc(plan.Nodes, infraOp) {
		// Several services may need one missing network: create it once,
		// under a lock and on a fresh look, then plan again.
		if err := c.createInfra(ctx, d, key); err != nil {
			return 0, err
		}
		if snap, err = c.Snapshot(ctx); err != nil {
			return 0, err
		}
		res = Diff(d, snap, c.Options)
		plan = res.Plan.ForService(key)
	}
	c.driftMetrics(res)
	c.reportDrift(key, res)

	var requeue time.Duration
	if s := d.Services[key]; s != nil && plan.BringsUp() {
		if ok, why := dependenciesReady(d, s, snap); !ok {
			c.reportOnce(key, "DependencyNotReady|"+why, Normal, "DependencyNotReady", "", "waiting for "+why)
			plan = plan.Without(bringUpOps)
			requeue = c.dependencyRetry()
		}
	}
	// Guards count what they allow (a restart against its budget): a dry
	// run, which does nothing, must not ask them.
	for _, g := range c.Guards {
		if c.DryRun {
			break
		}
		var after time.Duration
		plan, after = g.Review(Review{Desired: d, Snapshot: snap, Service: key, Plan: plan, Now: c.clock().Now()})
		if after > 0 && (requeue == 0 || after < requeue) {
			requeue = after
		}
	}
	if !c.DryRun {
		for _, sy := range c.Syncers {
			after, err := sy.Sync(ctx, Review{Desired: d, Snapshot: snap, Service: key, Plan: plan, Now: c.clock().Now()})
			if err != nil {
				return 0, fmt.Errorf("syncing service %s: %w", key, err)
			}
			if after > 0 && (requeue == 0 || after < requeue) {
				requeue = after
			}
		}
	}
	if plan.Empty() {
		return requeue, nil
	}
	if c.DryRun {
		logFrom(ctx, c.logger()).Info("dry run: not acting", "plan", plan.String())
		return requeue, nil
	}
	if c.Images != nil {
		if err := EnsureImages(ctx, d, snap, plan, c.Images); err != nil {
			c.reportOnce(key, "ImageMissing|"+err.Error(), Warning, "ImageMissing", "", err.Error())
			return 0, err
		}
	}
	err = c.executor(ctx, d, key).Execute(ctx, plan)
	c.Invalidate()
	if err != nil {
		return 0, fmt.Errorf("reconciling service %s: %w", key, err)
	}
	return requeue, nil
}

func infraOp(n *Node) bool {
	return n.Op.Type == OpCreateNetwork || n.Op.Type == OpCreateVolume
}

// createInfra creates the networks and volumes a service needs that are
// still missing when looked at under the lock.
func (c *Controller) createInfra(ctx context.Context, d *desired.State, key string) error {
	c.infra.Lock()
	defer c.infra.Unlock()
	c.Invalidate()
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return err
	}
	plan := Diff(d, snap, c.Options).Plan.ForService(key).Without(func(n *Node) bool { return !infraOp(n) })
	if plan.Empty() {
		return nil
	}
	err = c.executor(ctx, d, key).Execute(ctx, plan)
	c.Invalidate()
	if err != nil {
		return fmt.Errorf("creating networks and volumes of service %s: %w", key, err)
	}
	return nil
}

func (c *Controller) executor(ctx context.Context, d *desired.State, key string) *Executor {
	return &Executor{
		Desired:     d,
		Compose:     c.Compose,
		Engine:      c.Engine,
		Observe:     c.Observe,
		Log:         logFrom(ctx, c.logger().With("service", key)),
		Clock:       c.clock(),
		Concurrency: 2,
		OnDone:      c.actionDone(d),
	}
}

// Snapshot returns the current snapshot, from the cache when nothing has
// happened since it was taken.
func (c *Controller) Snapshot(ctx context.Context) (*observed.Snapshot, error) {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	g := c.gen.Load()
	if c.hasSnap && c.snapGen == g {
		return c.snap, nil
	}
	snap, err := c.Observe(ctx)
	if err != nil {
		return nil, fmt.Errorf("observing the project: %w", err)
	}
	c.patch(snap, g)
	c.snap, c.snapGen, c.hasSnap = snap, g, true
	return snap, nil
}

// dependenciesReady checks every required dependency's condition on the
// snapshot; optional ones (required: false) never hold a service back.
func dependenciesReady(d *desired.State, s *desired.Service, snap *observed.Snapshot) (bool, string) {
	byService := snap.ByService()
	for _, dep := range s.DependsOn {
		depSvc, ok := d.Services[dep.Service]
		if !ok || !dep.Required {
			continue
		}
		if st, why := CheckCondition(dep.Condition, depSvc, byService[dep.Service]); st != ConditionMet {
			return false, fmt.Sprintf("%s to be %s (%s)", dep.Service, ConditionWords(dep.Condition), why)
		}
	}
	return true, ""
}

// ConditionWords says a depends_on condition in words: "completed
// successfully" for service_completed_successfully.
func ConditionWords(condition string) string {
	return strings.ReplaceAll(strings.TrimPrefix(condition, "service_"), "_", " ")
}

func bringUpOps(n *Node) bool {
	switch n.Op.Type {
	case OpCreateContainer, OpRecreateContainer, OpStartContainer, OpRestartContainer, OpUnpauseContainer:
		return true
	}
	return false
}

// Without returns the plan less the nodes drop selects, and less the nodes
// that depended on them.
func (p *Plan) Without(drop func(*Node) bool) *Plan {
	out := &Plan{}
	gone := map[*Node]bool{}
	clones := map[*Node]*Node{}
	for _, n := range p.Nodes {
		if drop(n) || slices.ContainsFunc(n.DependsOn, func(d *Node) bool { return gone[d] }) {
			gone[n] = true
			continue
		}
		c := &Node{ID: len(out.Nodes) + 1, Op: n.Op, Group: n.Group}
		for _, d := range n.DependsOn {
			c.DependsOn = append(c.DependsOn, clones[d])
		}
		clones[n] = c
		out.Nodes = append(out.Nodes, c)
	}
	return out
}

// reportDrift records each drift item of the service once, when it is first
// seen, and a Synced record when the last of it is gone. Other one-off
// reports (waits, failures) are forgotten once the service is in sync, so
// that they are told again the next time.
func (c *Controller) reportDrift(key string, res *Result) {
	var fresh []Drift
	c.reportMu.Lock()
	if c.reported == nil {
		c.reported = map[string]map[string]bool{}
	}
	before := c.reported[key]
	now := map[string]bool{}
	for _, dr := range res.Drift {
		if dr.Service != key {
			continue
		}
		sig := "drift|" + dr.Kind.String() + "|" + dr.Subject() + "|" + dr.Cause
		now[sig] = true
		if !before[sig] {
			fresh = append(fresh, dr)
		}
	}
	hadDrift := false
	for sig := range before {
		if strings.HasPrefix(sig, "drift|") {
			hadDrift = true
		} else if len(now) > 0 {
			now[sig] = true
		}
	}
	synced := hadDrift && len(now) == 0
	c.reported[key] = now
	c.reportMu.Unlock()

	for _, dr := range fresh {
		container := dr.Container
		if container == "" {
			container = dr.Resource
		}
		msg := dr.Cause
		if !dr.Actionable {
			msg += " (reported only)"
		}
		if c.DryRun {
			msg += " (dry run: not acting)"
		}
		c.record(Warning, dr.Kind.Reason(), key, container, msg)
	}
	if synced {
		c.record(Normal, "Synced", key, "", "service matches its desired state")
	}
}

// reportOnce records an event unless the same was recorded since the
// service was last in sync.
func (c *Controller) reportOnce(key, sig, typ, reason, container, msg string) {
	c.reportMu.Lock()
	if c.reported == nil {
		c.reported = map[string]map[string]bool{}
	}
	if c.reported[key] == nil {
		c.reported[key] = map[string]bool{}
	}
	seen := c.reported[key][sig]
	c.reported[key][sig] = true
	c.reportMu.Unlock()
	if !seen {
		c.record(typ, reason, key, container, msg)
	}
}

// actionDone turns finished operations into records and metrics.
func (c *Controller) actionDone(d *desired.State) func(n *Node, err error, took time.Duration) {
	return func(n *Node, err error, took time.Duration) {
		op := n.Op
		container := op.Container
		if container == "" && op.Number > 0 {
			container = containerName(d, op.Service, op.Number)
		}
		if container == "" && op.Network != "" {
			container = op.Network
		}
		if errors.Is(err, ErrSkipped) {
			return
		}
		if err != nil {
			c.record(Warning, op.Type.Reason(err), op.Service, container, fmt.Sprintf("%s: %v", op.Cause, err))
			return
		}
		c.metric(func(m Metrics) { m.Action(op.Type.String()) })
		c.record(Normal, op.Type.Reason(nil), op.Service, container, fmt.Sprintf("%s; done in %s", op.Cause, took.Round(time.Millisecond)))
	}
}

// containerName is the name compose gives a replica.
func containerName(d *desired.State, service string, number int) string {
	if s := d.Services[service]; s != nil && s.Config.ContainerName != "" {
		return s.Config.ContainerName
	}
	return fmt.Sprintf("%s-%s-%d", d.Project.Name, service, number)
}

func (c *Controller) driftMetrics(res *Result) {
	counts := map[[2]string]int{}
	for _, dr := range res.Drift {
		counts[[2]string{dr.Service, dr.Kind.String()}]++
	}
	c.metric(func(m Metrics) { m.Drift(counts) })
}

// Status is the project's status as `reconcile status -o json` gives it,
// from the current snapshot.
func (c *Controller) Status(ctx context.Context, inspect observed.Inspector) (ProjectStatus, error) {
	d := c.desired.Load()
	if d == nil {
		return ProjectStatus{}, errors.New("no desired state loaded")
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return ProjectStatus{}, err
	}
	cp := *snap
	cp.Containers = slices.Clone(snap.Containers)
	if inspect != nil {
		if err := observed.Enrich(ctx, inspect, &cp); err != nil {
			return ProjectStatus{}, err
		}
	}
	st := Status(d, &cp, Diff(d, &cp, c.Options))
	for _, g := range c.Guards {
		if a, ok := g.(StatusAnnotator); ok {
			a.Annotate(&st, d, c.clock().Now())
		}
	}
	return st, nil
}

func (c *Controller) record(typ, reason, service, container, msg string) {
	if c.Records != nil {
		c.Records.Event(typ, reason, service, container, msg)
	}
}

func (c *Controller) metric(f func(Metrics)) {
	if c.Metrics != nil {
		f(c.Metrics)
	}
}

func (c *Controller) depth() {
	c.metric(func(m Metrics) { m.QueueDepth(c.queue().Len()) })
}

func (c *Controller) queue() *Queue {
	c.queueOnce.Do(func() {
		if c.Queue == nil {
			c.Queue = NewQueue(c.clock(), DefaultRateLimiter(c.clock()))
		}
	})
	return c.Queue
}

type logKey struct{}

// WithLogger carries a logger for one reconcile (service and pass ID) to the
// code it calls.
func WithLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, log)
}

// logFrom is the context's logger, or fallback.
func logFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

func (c *Controller) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Controller) clock() clock.Clock {
	if c.Clock != nil {
		return c.Clock
	}
	return clock.Real{}
}

func (c *Controller) dependencyRetry() time.Duration {
	if c.DependencyRetry > 0 {
		return c.DependencyRetry
	}
	return DefaultDependencyRetry
}
