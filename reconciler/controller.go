package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
	"github.com/reconcile-dev/reconcile/reconciler/workqueue"
)

// Recorder receives the daemon's event records; the type comes with the
// reason, from the catalogue.
type Recorder interface {
	Event(reason record.Reason, service, container, message string)
}

// Metrics receives what the controller counts.
type Metrics interface {
	Reconciled(result string, took time.Duration, failed bool)
	QueueDepth(n int)
	Action(action string)
	Drift(counts map[[2]string]int)
}

// ActionsPerService bounds the operations one service's reconcile runs at
// once: a storm of kills is one reconcile with a start per replica, and the
// engine takes several start calls at a time.
const ActionsPerService = 8

// DefaultDependencyRetry is how soon a service whose dependency is not ready
// is looked at again, in case no event about the dependency arrives.
const DefaultDependencyRetry = 2 * time.Second

// Controller keeps a project converged, service by service: events and file
// changes only enqueue service names; a worker takes a name, looks at the
// current state (not at what caused it to be queued) and applies that
// service's part of the plan. It is the daemon's loop without its inputs.
type Controller struct {
	Observe execute.SnapshotFunc
	// ObserveContainers, when set, refreshes base's containers alone (one
	// list call): what a look takes after container events only.
	ObserveContainers func(ctx context.Context, base *observed.Snapshot) (*observed.Snapshot, error)
	Compose           execute.Composer
	Engine            execute.ContainerEngine
	// Exec runs post_start hooks after the controller's own starts.
	Exec engine.Execer
	// Images, when set, makes missing images present before containers are
	// created.
	Images  execute.ImageProvider
	Options plan.Options
	// DryRun reports drift and never acts.
	DryRun bool
	// Policies decide, account, learn and report, each through the
	// capabilities it registers (see Policy), in this order.
	Policies []Policy
	Log      *slog.Logger
	Clock    clock.Clock
	Records  Recorder
	Metrics  Metrics
	// Workers bounds how many services are reconciled at once.
	Workers int
	// EngineSlots, when set, bounds the engine operations in flight across
	// every controller sharing them (a host's projects).
	EngineSlots execute.Slots
	// Queue, when nil, is made with the default rate limiter.
	Queue           *workqueue.Queue
	DependencyRetry time.Duration
	// Offline, when set and true, says the engine is known to be away (the
	// daemon recorded it once): failed reconciles are then logged at debug
	// level and retried as usual, instead of an error line each.
	Offline func() bool

	desired atomic.Pointer[desired.State]
	// expect remembers the executor's own operations until their events
	// have come back: the controller knows its own actions and never
	// infers them.
	expect    Expectations
	queueOnce sync.Once
	snapshots snapshots
	// details explains stopped containers to Served.
	details details
	reports reports
	pending pending
	// infra serialises the creation of networks and volumes that several
	// services may need at once.
	infra sync.Mutex
	// passes numbers reconciles, so that the log lines of one can be told
	// from those of another running beside it.
	passes atomic.Uint64
	// acted counts the operations carried out, as the executor reported
	// them done.
	acted    atomic.Uint64
	outcomes outcomes
}

// SetDesired puts a desired state in force and queues every service of it
// and of the one it replaces.
func (c *Controller) SetDesired(d *desired.State) {
	old := c.desired.Swap(d)
	c.outcomes.reset()
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

// Enqueue queues a service and the services that may be waiting on it: its
// dependents and the load balancers whose upstreams list its replicas.
func (c *Controller) Enqueue(service string) {
	q := c.queue()
	q.Add(service)
	if d := c.desired.Load(); d != nil {
		for _, name := range d.Order {
			s := d.Services[name]
			if slices.ContainsFunc(s.DependsOn, func(dep desired.Dependency) bool { return dep.Service == service }) ||
				slices.ContainsFunc(s.Policy.Upstreams, func(u desired.Upstream) bool { return u.Service == service }) {
				q.Add(name)
			}
		}
	}
	c.depth()
}

// Event takes one decoded engine event of the project, on the events
// reader: it tells whether the event is the reconciler's own (Seen), lets
// the policies learn from it, patches the snapshots and queues the service
// and those waiting on it. Nothing slow runs here.
func (c *Controller) Event(ev observed.Event) {
	seen := c.expect.Observe(ev, c.clock().Now())
	d := c.desired.Load()
	for _, p := range c.Policies {
		if p.Learn != nil {
			p.Learn.Learn(seen, d)
		}
	}
	c.Observed(ev)
	if ev.Replica() && !seen.Ours && ev.Action != observed.ActionCreate {
		// someone else acted on a replica: a service held by a terminal
		// failure is tried again (a creation may be compose's own, on our
		// behalf, and is not a change of anyone's)
		c.outcomes.release(ev.Service)
	}
	if ev.Service != "" {
		c.Enqueue(ev.Service)
	}
}

// Resync lists everything afresh and queues every service, desired or
// observed: what the daemon does on connect, on reconnect and periodically,
// because the event stream alone can lose events. The policies that learn
// from a relist are shown it before anything is queued.
func (c *Controller) Resync(ctx context.Context) error {
	c.Invalidate()
	c.outcomes.releaseAll()
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return err
	}
	c.resync(snap)
	return nil
}

// ResyncWith is Resync from a snapshot listed by the caller, at the
// generation Mark returned before the list was taken: an agent lists every
// project once and hands each its part.
func (c *Controller) ResyncWith(snap *observed.Snapshot, mark uint64) {
	c.snapshots.mu.Lock()
	c.adopt(snap, mark)
	c.snapshots.fullAt = c.snapshots.markFull.Load()
	c.snapshots.mu.Unlock()
	c.outcomes.releaseAll()
	c.resync(snap)
}

// resync shows the relist learners the fresh snapshot and queues every
// service.
func (c *Controller) resync(snap *observed.Snapshot) {
	for _, p := range c.Policies {
		if p.Relisted != nil {
			p.Relisted.Relisted(snap)
		}
	}
	keys := map[string]bool{}
	if d := c.desired.Load(); d != nil {
		for _, k := range d.Order {
			keys[k] = true
		}
		c.driftMetrics(plan.Diff(d, snap, c.Options))
	}
	for _, ctr := range snap.Containers {
		keys[ctr.Service] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		c.queue().Add(k)
	}
	c.depth()
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

// processNext is the one place a reconcile's outcome becomes queue work: a
// terminal error waits for the next change, another error is retried with
// backoff, a Result with RequeueAfter is looked at again then.
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
	log := c.logger().With("service", key, "reconcile", pass)
	c.outcomes.begin(key)
	res, err := c.safeReconcile(WithLogger(ctx, log), key)
	c.outcomes.end(key, err)
	took := c.clock().Now().Sub(start)
	log.Debug("reconciled", "took", took.Round(time.Microsecond).String(), "requeue", res.RequeueAfter.String(), "error", err)
	switch {
	case err != nil && IsTerminal(err):
		c.metric(func(m Metrics) { m.Reconciled("error", took, true) })
		c.reports.once(c, key, Report{Reason: terminalReason(err), Message: desired.OneLine(err.Error()) + "; waiting for a change", Occurrence: err.Error()})
		q.Forget(key)
	case err != nil:
		c.metric(func(m Metrics) { m.Reconciled("error", took, true) })
		level := slog.LevelError
		if c.Offline != nil && c.Offline() {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "reconcile failed", "error", err, "retries", q.Failures(key))
		q.AddRateLimited(key)
	case res.RequeueAfter > 0:
		c.metric(func(m Metrics) { m.Reconciled("requeue", took, false) })
		q.Forget(key)
		q.AddAfter(key, res.RequeueAfter)
	default:
		c.metric(func(m Metrics) { m.Reconciled("success", took, false) })
		q.Forget(key)
	}
	return true
}

// safeReconcile turns a panic in one reconcile into an error for that key,
// so that one bad service does not take the daemon down.
func (c *Controller) safeReconcile(ctx context.Context, key string) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.record(record.ReconcilePanic, key, "", fmt.Sprintf("reconcile panicked: %v", r))
			c.logger().Error("reconcile panicked", "service", key, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("reconcile of %s panicked: %v", key, r)
		}
	}()
	return c.Reconcile(ctx, key)
}

func (c *Controller) record(reason record.Reason, service, container, msg string) {
	if c.Records != nil {
		c.Records.Event(reason, service, container, msg)
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

func (c *Controller) queue() *workqueue.Queue {
	c.queueOnce.Do(func() {
		if c.Queue == nil {
			var online func() bool
			if c.Offline != nil {
				online = func() bool { return !c.Offline() }
			}
			c.Queue = workqueue.New(c.clock(), workqueue.EngineAwareRateLimiter(c.clock(), online))
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

func (c *Controller) logger() *slog.Logger { return logging.Or(c.Log) }

func (c *Controller) clock() clock.Clock { return clock.Or(c.Clock) }

func (c *Controller) dependencyRetry() time.Duration {
	if c.DependencyRetry > 0 {
		return c.DependencyRetry
	}
	return DefaultDependencyRetry
}
