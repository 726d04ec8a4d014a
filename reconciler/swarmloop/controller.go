package swarmloop

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/compose/convert"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/swarmspec"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
	"github.com/reconcile-dev/reconcile/reconciler/workqueue"
)

// Recorder receives the loop's records.
type Recorder interface {
	Event(reason record.Reason, service, container, message string)
}

// Follow is how soon a service is looked at again while it, or a
// dependency it waits for, is on its way: Swarm's task counts change with
// no event of their own.
const Follow = time.Second

// Controller keeps one stack converged, service by service.
type Controller struct {
	// Engine is a manager's API. docker/cli's conversion takes the whole
	// client (it reads the IDs of secrets and configs by name).
	Engine   client.APIClient
	Recorder Recorder
	Log      *slog.Logger
	Clock    clock.Clock
	// DryRun reports what would be done and does nothing.
	DryRun bool
	// RemoveOrphans removes the stack's services no longer in the file,
	// as docker stack deploy --prune does.
	RemoveOrphans bool
	// Seen, when set, is told the status and each service's last step
	// after each look at a service (the daemon's endpoints and metrics).
	Seen func(plan.ProjectStatus, []Step)
	// Reconciled, when set, is told of each reconcile of a service: how
	// long it took, whether it is to be looked at again, and its error
	// (the daemon's metrics).
	Reconciled func(took time.Duration, retry bool, err error)

	stack    atomic.Pointer[swarmspec.Stack]
	once     sync.Once
	q        *workqueue.Queue
	objectMu sync.Mutex

	mu sync.Mutex
	// mem is what reconcile did to each service; said the last line
	// recorded for it, so a wait or a hold is recorded once.
	mem  map[string]Memory
	said map[string]string
	// updates are the update states last seen, to record Swarm's own
	// rollouts and rollbacks as they end.
	updates map[string]swarm.UpdateState
	// nodes are the nodes' states last reported.
	nodes map[string]nodeState
	// adopted is, per service, the hand change last recorded as kept.
	adopted map[string]string
	// spent is, per service, the last tasks of the slots whose restart
	// budget Swarm spent, as last recorded.
	spent map[string]string
	// tasks are each service's current tasks at the last look, by ID: a
	// new one may have replaced one Swarm restarted.
	tasks map[string]map[string]bool
	// last is the newest snapshot, steps the step last decided for each
	// service: what Served reads, with no engine call.
	last  *swarmstate.Snapshot
	steps map[string]Step
}

func (c *Controller) queue() *workqueue.Queue {
	c.once.Do(func() {
		c.q = workqueue.New(c.clock(), workqueue.DefaultRateLimiter(c.clock()))
		c.mem, c.said, c.updates = map[string]Memory{}, map[string]string{}, map[string]swarm.UpdateState{}
		c.steps, c.adopted, c.tasks = map[string]Step{}, map[string]string{}, map[string]map[string]bool{}
		c.spent = map[string]string{}
	})
	return c.q
}

func (c *Controller) clock() clock.Clock   { return clock.Or(c.Clock) }
func (c *Controller) logger() *slog.Logger { return logging.Or(c.Log) }

// SetStack makes s the desired state and queues every service of it, and
// every service the stack ran before (an orphan now, perhaps).
func (c *Controller) SetStack(s *swarmspec.Stack) {
	q := c.queue()
	old := c.stack.Swap(s)
	for _, name := range s.Order {
		q.Add(name)
	}
	if old != nil {
		for _, name := range old.Order {
			q.Add(name)
		}
	}
}

// Stack is the desired state.
func (c *Controller) Stack() *swarmspec.Stack { return c.stack.Load() }

// Enqueue queues service: inputs call it, nothing else.
func (c *Controller) Enqueue(service string) { c.queue().Add(service) }

// EnqueueAll queues every service of the stack (a resync, a node event).
func (c *Controller) EnqueueAll() {
	if s := c.stack.Load(); s != nil {
		for _, name := range s.Order {
			c.queue().Add(name)
		}
	}
}

// Run works the queue with workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	q := c.queue()
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				key, ok := q.Get()
				if !ok {
					return
				}
				began := c.clock().Now()
				retry, err := c.safeReconcile(ctx, key)
				q.Done(key)
				if c.Reconciled != nil && ctx.Err() == nil {
					c.Reconciled(c.clock().Now().Sub(began), retry > 0, err)
				}
				switch {
				case ctx.Err() != nil:
				case err != nil:
					c.logger().Warn("reconciling a swarm service failed", "service", key, "err", err)
					q.AddRateLimited(key)
				case retry > 0:
					q.Forget(key)
					q.AddAfter(key, retry)
				default:
					q.Forget(key)
				}
			}
		})
	}
	wg.Wait()
}

func (c *Controller) safeReconcile(ctx context.Context, service string) (retry time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.record(record.ReconcilePanic, service, fmt.Sprintf("reconciling %s panicked: %v", service, r))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Reconcile(ctx, service)
}

// Reconcile looks at the stack as it is now and does what service needs.
// It returns how soon to look again (0: when something queues it).
func (c *Controller) Reconcile(ctx context.Context, service string) (time.Duration, error) {
	stack := c.stack.Load()
	if stack == nil {
		return 0, nil
	}
	snap, err := c.observe(ctx, stack)
	if err != nil {
		return 0, err
	}
	cfg, ok := serviceConfig(stack, service)
	if !ok {
		return 0, c.orphan(ctx, stack, snap, service)
	}
	c.reportUpdate(service, snap)
	c.reportSpent(service, snap)
	c.reportNodes(snap)
	c.noticeReplacements(stack, snap)
	created, err := c.ensureStackObjects(ctx, stack, snap)
	if err != nil {
		return 0, err
	}
	if created {
		if snap, err = c.observe(ctx, stack); err != nil {
			return 0, err
		}
	}
	spec, err := c.convert(ctx, stack, cfg, snap)
	if err != nil {
		return 0, err
	}
	step := Decide(service, spec, stack.DependsOn[service], snap, c.memory(service), stack.Adopt[service]...)
	c.saw(snap, step)
	c.sayAdopted(step, snap)
	switch step.Action {
	case Nothing:
		c.sayOnce(service, "", record.Synced, "")
		switch ok, failed, _ := Converged(step, snap); {
		case failed:
			return 0, nil // Swarm gave up (a spent restart budget): an event or a change says when to look again
		case !ok:
			return Follow, nil
		}
		c.PruneObjects(ctx, snap)
		return 0, nil
	case Wait:
		c.sayOnce(service, step.Why, record.DependencyNotReady, step.Why)
		return Follow, nil
	case Held:
		reason := record.RolledBack
		if step.Rejected {
			reason = record.ReloadRejected // said with the check's output when it refused
		}
		c.sayOnce(service, step.Why, reason, step.Why)
		return 0, nil
	}
	if c.DryRun {
		c.sayOnce(service, step.Why, record.ServiceDrift, "would "+string(step.Action)+": "+step.Why)
		return 0, nil
	}
	if step.Action == Update {
		// once per difference: an update retried (out of sequence) is
		// not drift seen again
		c.sayOnce(service, "drift:"+step.Why, record.ServiceDrift, step.Why)
	}
	if r := stack.Checks[service]; r != nil && step.Action == Update && step.ObjectsChanged() {
		passed, err := c.checkObjects(ctx, stack, step, r)
		if err != nil {
			return 0, err
		}
		if !passed {
			c.mu.Lock()
			m := c.mem[service]
			m.Rejected = step.Hash
			c.mem[service] = m
			c.said[service] = HeldByCheck // the refusal was said, with its output
			c.mu.Unlock()
			return 0, nil
		}
		step.Why += "; its new configs and secrets passed " + r.CheckShown()
	}
	if err := c.execute(ctx, step); err != nil {
		if outOfSequence(err) {
			// the service changed between the look and the update (Swarm
			// recording its own progress, a hand change): look again
			return Follow / 10, nil
		}
		c.record(record.EngineRefused, service, fmt.Sprintf("%s %s: %v", step.Action, service, err))
		return 0, err
	}
	c.mu.Lock()
	c.said[service] = "acted" // its return to sync is said
	c.mu.Unlock()
	c.remember(ctx, stack, step)
	if step.Action == Update {
		c.cascadeFrom(stack, service)
	}
	return Follow, nil
}

// sayAdopted records a hand change kept (x-reconcile.swarm.adopt) once for
// each spec the hand leaves the service at.
func (c *Controller) sayAdopted(step Step, snap *swarmstate.Snapshot) {
	if len(step.Adopted) == 0 {
		return
	}
	have := generic(snap.Services[step.Service].Spec)
	var values []string
	for _, p := range step.Adopted {
		b, _ := json.Marshal(valueAt(have, strings.Split(p, ".")))
		values = append(values, p+"="+string(b))
	}
	key := strings.Join(values, ",")
	c.mu.Lock()
	last := c.adopted[step.Service]
	c.adopted[step.Service] = key
	c.mu.Unlock()
	if last != key {
		c.record(record.DriftAdopted, step.Service, "changed by hand and kept (x-reconcile.swarm.adopt): "+strings.Join(step.Adopted, ", "))
	}
}

// valueAt is the value at path in a spec's generic form, nil where none.
func valueAt(v any, path []string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// saw keeps the snapshot and the step just decided, and tells Seen.
func (c *Controller) saw(snap *swarmstate.Snapshot, steps ...Step) {
	c.mu.Lock()
	if c.last == nil || !snap.Taken.Before(c.last.Taken) {
		c.last = snap
	}
	for _, st := range steps {
		c.steps[st.Service] = st
	}
	c.mu.Unlock()
	if c.Seen != nil {
		if st, steps, ok := c.served(); ok {
			c.Seen(st, steps)
		}
	}
}

// Served is the stack's status from what the loop last saw, asking the
// engine nothing; false before its first look. A service not looked at
// yet is waiting.
func (c *Controller) Served() (plan.ProjectStatus, bool) {
	st, _, ok := c.served()
	return st, ok
}

func (c *Controller) served() (plan.ProjectStatus, []Step, bool) {
	stack := c.stack.Load()
	c.queue()
	c.mu.Lock()
	defer c.mu.Unlock()
	if stack == nil || c.last == nil {
		return plan.ProjectStatus{}, nil, false
	}
	steps := make([]Step, 0, len(stack.Order))
	for _, name := range stack.Order {
		st, ok := c.steps[name]
		if !ok {
			st = Step{Service: name, Action: Wait, Why: "not looked at yet"}
		}
		steps = append(steps, st)
	}
	return Status(stack, c.last, steps), steps, true
}

// noticeReplacements finds the services whose tasks Swarm replaced since
// the last look, and cascades from them as from reconcile's own updates:
// restart: true means the dependents restart whoever restarted the
// dependency. A task was replaced when it is new since the last look and
// an earlier task of its slot, of the same spec, ended by itself (failed,
// completed, rejected, orphaned) or ran on a node now down or drained.
// A task stopped by Swarm for a scale down, or replaced by a new spec (an
// update, cascaded where reconcile made it), is not one.
func (c *Controller) noticeReplacements(stack *swarmspec.Stack, snap *swarmstate.Snapshot) {
	var replaced []string
	c.mu.Lock()
	for _, name := range stack.Order {
		cur := map[string]bool{}
		for _, t := range snap.Tasks[name] {
			if t.DesiredState == swarm.TaskStateRunning {
				cur[t.ID] = true
			}
		}
		prev, known := c.tasks[name]
		c.tasks[name] = cur
		if !known {
			continue
		}
		for _, t := range snap.Tasks[name] {
			if cur[t.ID] && !prev[t.ID] && replacesAnEnded(snap, name, t) {
				replaced = append(replaced, name)
				break
			}
		}
	}
	c.mu.Unlock()
	for _, name := range replaced {
		if c.hasRestartDependents(stack, name) {
			c.logger().Info("Swarm replaced a task of a service with restart: true dependents: they follow once it is healthy", "service", name)
			c.cascadeFrom(stack, name)
		}
	}
}

// replacesAnEnded: an earlier task of t's slot (its node, for a global
// service), of the same spec, ended by itself or was lost with its node.
func replacesAnEnded(snap *swarmstate.Snapshot, service string, t swarm.Task) bool {
	key, _ := json.Marshal(t.Spec)
	for _, p := range snap.Tasks[service] {
		if p.ID == t.ID || p.DesiredState == swarm.TaskStateRunning || !p.CreatedAt.Before(t.CreatedAt) {
			continue
		}
		if p.Slot != t.Slot || (t.Slot == 0 && p.NodeID != t.NodeID) {
			continue
		}
		if pk, _ := json.Marshal(p.Spec); string(pk) != string(key) {
			continue
		}
		switch p.Status.State {
		case swarm.TaskStateFailed, swarm.TaskStateComplete, swarm.TaskStateRejected, swarm.TaskStateOrphaned:
			return true
		}
		if n, ok := snap.Nodes[p.NodeID]; ok && (n.Status.State != swarm.NodeStateReady || n.Spec.Availability == swarm.NodeAvailabilityDrain) {
			return true
		}
	}
	return false
}

// hasRestartDependents: some service depends on service with restart: true.
func (c *Controller) hasRestartDependents(stack *swarmspec.Stack, service string) bool {
	for _, name := range stack.Order {
		for _, d := range stack.DependsOn[name] {
			if d.Service == service && d.Restart {
				return true
			}
		}
	}
	return false
}

// cascadeFrom marks the dependents of service that depend on it with
// restart: true: their tasks are replaced once service is healthy again.
func (c *Controller) cascadeFrom(stack *swarmspec.Stack, service string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range stack.Order {
		for _, d := range stack.DependsOn[name] {
			if d.Service == service && d.Restart {
				m := c.mem[name]
				m.Cascade = service
				c.mem[name] = m
				c.q.Add(name)
			}
		}
	}
}

// outOfSequence: an update made against a version that is no longer the
// service's (Swarm's optimistic concurrency).
func outOfSequence(err error) bool {
	return strings.Contains(err.Error(), "update out of sequence")
}

func (c *Controller) observe(ctx context.Context, stack *swarmspec.Stack) (*swarmstate.Snapshot, error) {
	return swarmstate.Observe(ctx, c.Engine, stack.Namespace.Name(), c.clock().Now())
}

// Look is one snapshot of the stack and what each service needs, for
// --once, diff and status; it changes nothing.
func (c *Controller) Look(ctx context.Context) (*swarmstate.Snapshot, []Step, error) {
	stack := c.stack.Load()
	snap, err := c.observe(ctx, stack)
	if err != nil {
		return nil, nil, err
	}
	var steps []Step
	for _, name := range stack.Order {
		cfg, _ := serviceConfig(stack, name)
		spec, err := c.convertLooking(ctx, stack, cfg, snap)
		if err != nil {
			return nil, nil, err
		}
		steps = append(steps, Decide(name, spec, stack.DependsOn[name], snap, c.memory(name), stack.Adopt[name]...))
	}
	c.saw(snap, steps...)
	return snap, steps, nil
}

func serviceConfig(stack *swarmspec.Stack, name string) (composetypes.ServiceConfig, bool) {
	i := slices.IndexFunc(stack.Config.Services, func(s composetypes.ServiceConfig) bool { return s.Name == name })
	if i < 0 {
		return composetypes.ServiceConfig{}, false
	}
	return stack.Config.Services[i], true
}

// convert is docker/cli's conversion of one service, pointed at where its
// configs and secrets live now.
func (c *Controller) convert(ctx context.Context, stack *swarmspec.Stack, cfg composetypes.ServiceConfig, snap *swarmstate.Snapshot) (swarm.ServiceSpec, error) {
	sub := *stack.Config
	sub.Services = []composetypes.ServiceConfig{cfg}
	placed := c.placements(stack, snap)
	specs, err := convert.Services(ctx, stack.Namespace, &sub, placedObjects{c.Engine, placed, snap})
	if err != nil {
		return swarm.ServiceSpec{}, fmt.Errorf("converting %s for Swarm: %w", cfg.Name, err)
	}
	spec := specs[cfg.Name]
	Repoint(&spec, placed, snap)
	return spec, nil
}

// convertLooking converts as convert does when the objects the service
// names exist; before they do (a first deploy), it leaves their references
// out rather than fail, since it only looks.
func (c *Controller) convertLooking(ctx context.Context, stack *swarmspec.Stack, cfg composetypes.ServiceConfig, snap *swarmstate.Snapshot) (swarm.ServiceSpec, error) {
	spec, err := c.convert(ctx, stack, cfg, snap)
	if err == nil {
		return spec, nil
	}
	cfg.Configs, cfg.Secrets = nil, nil
	return c.convert(ctx, stack, cfg, snap)
}

func (c *Controller) placements(stack *swarmspec.Stack, snap *swarmstate.Snapshot) map[string]Placement {
	out := map[string]Placement{}
	for _, o := range Objects(stack.Configs, stack.Secrets) {
		out[o.Kind+"/"+o.Name] = Place(o, snap)
	}
	return out
}

// ensureStackObjects creates the stack's networks, configs and secrets
// that do not exist yet (a changed config or secret as a new object).
// Workers of several services may get here at once: one creates.
// It reports whether it created anything (snap is then out of date).
func (c *Controller) ensureStackObjects(ctx context.Context, stack *swarmspec.Stack, snap *swarmstate.Snapshot) (created bool, err error) {
	if c.DryRun {
		return false, nil
	}
	if !c.missingObjects(stack, snap) {
		return false, nil
	}
	c.objectMu.Lock()
	defer c.objectMu.Unlock()
	// looked at again under the lock: another worker may have created
	// them since snap was taken, and an engine of API 1.41 creates a
	// second network of the same name
	snap, err = c.observe(ctx, stack)
	if err != nil {
		return false, err
	}
	for _, name := range slices.Sorted(maps.Keys(stack.Networks)) {
		if _, ok := snap.Networks[name]; ok {
			continue
		}
		created = true
		if err := c.createNetwork(ctx, name, stack.Networks[name]); errdefs.IsConflict(err) {
			continue
		} else if err != nil {
			c.record(record.FailedCreateNetwork, "", fmt.Sprintf("creating network %s: %v", name, err))
			return created, err
		}
		c.record(record.NetworkCreated, "", "network "+name+" created")
	}
	for _, o := range Objects(stack.Configs, stack.Secrets) {
		p := Place(o, snap)
		if !p.Create {
			continue
		}
		created = true
		if err := c.createObject(ctx, o, p.Name); errdefs.IsConflict(err) {
			continue
		} else if err != nil {
			return created, fmt.Errorf("creating %s %s: %w", o.Kind, p.Name, err)
		}
		what := "created"
		if p.Name != o.Name {
			what = "created for its changed data (Swarm's " + o.Kind + "s cannot change): the services using it are updated to it"
		}
		c.record(record.ObjectCreated, "", fmt.Sprintf("%s %s %s", o.Kind, p.Name, what))
	}
	return created, nil
}

// missingObjects: a network, config or secret of the stack is not in snap.
func (c *Controller) missingObjects(stack *swarmspec.Stack, snap *swarmstate.Snapshot) bool {
	for name := range stack.Networks {
		if _, ok := snap.Networks[name]; !ok {
			return true
		}
	}
	for _, o := range Objects(stack.Configs, stack.Secrets) {
		if Place(o, snap).Create {
			return true
		}
	}
	return false
}

// PruneObjects removes the stack's configs and secrets a newer version
// replaced, once no service of snap refers to them.
func (c *Controller) PruneObjects(ctx context.Context, snap *swarmstate.Snapshot) {
	stack := c.stack.Load()
	if c.DryRun || stack == nil {
		return
	}
	c.objectMu.Lock()
	defer c.objectMu.Unlock()
	used := map[string]bool{}
	for _, s := range snap.Services {
		if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
			for _, r := range cs.Configs {
				used["config/"+r.ConfigName] = true
			}
			for _, r := range cs.Secrets {
				used["secret/"+r.SecretName] = true
			}
		}
	}
	placed := c.placements(stack, snap)
	for _, o := range Objects(stack.Configs, stack.Secrets) {
		current := placed[o.Kind+"/"+o.Name].Name
		for _, name := range versionsOf(o, snap) {
			if name == current || used[o.Kind+"/"+name] {
				continue
			}
			if err := c.removeObject(ctx, o.Kind, name, snap); err != nil {
				c.logger().Debug("an old config or secret is not removed yet", "name", name, "err", err)
				continue
			}
			c.record(record.ObjectRemoved, "", fmt.Sprintf("%s %s removed: replaced by %s and no longer used", o.Kind, name, current))
		}
	}
}

// versionsOf are the names of o's versions in snap: stack deploy's name
// and the hashed ones.
func versionsOf(o Object, snap *swarmstate.Snapshot) []string {
	var out []string
	add := func(name string) {
		if name == o.Name || (len(name) == len(o.Name)+13 && name[:len(o.Name)+1] == o.Name+"-") {
			out = append(out, name)
		}
	}
	if o.Kind == "config" {
		for name := range snap.Configs {
			add(name)
		}
	} else {
		for name := range snap.Secrets {
			add(name)
		}
	}
	return out
}

// orphan handles a service the stack runs that the file no longer has.
func (c *Controller) orphan(ctx context.Context, stack *swarmspec.Stack, snap *swarmstate.Snapshot, service string) error {
	svc, ok := snap.Services[service]
	if !ok {
		return nil
	}
	if !c.RemoveOrphans || c.DryRun {
		c.sayOnce(service, "orphan", record.OrphanService, "the stack runs "+service+", which the compose files no longer have (--remove-orphans removes it)")
		return nil
	}
	if err := c.removeService(ctx, svc.ID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	c.record(record.Removed, service, "service "+svc.Spec.Name+" removed: no longer in the compose files")
	return nil
}

// reportUpdate records the end of Swarm's own rolling update of service
// (completed, paused, rolled back), once.
func (c *Controller) reportUpdate(service string, snap *swarmstate.Snapshot) {
	svc, ok := snap.Services[service]
	if !ok || svc.UpdateStatus == nil {
		return
	}
	c.mu.Lock()
	prev := c.updates[service]
	c.updates[service] = svc.UpdateStatus.State
	c.mu.Unlock()
	if prev == svc.UpdateStatus.State {
		return
	}
	switch svc.UpdateStatus.State {
	case swarm.UpdateStateCompleted:
		c.record(record.RolloutComplete, service, "Swarm's rolling update completed: "+svc.UpdateStatus.Message)
	case swarm.UpdateStatePaused:
		c.record(record.RolloutPaused, service, "Swarm paused the rolling update: "+svc.UpdateStatus.Message)
	case swarm.UpdateStateRollbackStarted:
		c.record(record.RollbackStarted, service, "Swarm is rolling the update back: "+svc.UpdateStatus.Message)
	case swarm.UpdateStateRollbackCompleted:
		c.record(record.RolledBack, service, "Swarm rolled the update back: "+svc.UpdateStatus.Message)
	}
}

// reportSpent records a slot whose restart budget Swarm spent, once per
// last task: RestartBudgetExhausted, as on one host.
func (c *Controller) reportSpent(service string, snap *swarmstate.Snapshot) {
	spent := Spent(snap, service)
	if len(spent) == 0 {
		return
	}
	var key []string
	for _, s := range spent {
		key = append(key, s.Task)
	}
	now := strings.Join(key, ",")
	c.mu.Lock()
	prev := c.spent[service]
	c.spent[service] = now
	c.mu.Unlock()
	if prev != now {
		c.record(record.RestartBudgetExhausted, service, spentWhy(snap, service, spent))
	}
}

func (c *Controller) memory(service string) Memory {
	c.queue()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mem[service]
}

// checkObjects runs the service's reload check against the configs and
// secrets the update would give it, before it is made: in a one-off
// container of the service's image, with no network, each config and
// secret written where the service's tasks would read it. A refusal is
// recorded (ReloadRejected, with the check's output) and reported false;
// an error is for what kept the check from running.
func (c *Controller) checkObjects(ctx context.Context, stack *swarmspec.Stack, step Step, r *desired.ReloadAction) (bool, error) {
	data := map[string][]byte{}
	for _, o := range Objects(stack.Configs, stack.Secrets) {
		data[o.Kind+"/"+o.Name], data[o.Kind+"/"+o.Name+"-"+o.Hash()] = o.Data, o.Data
	}
	cs := step.Spec.TaskTemplate.ContainerSpec
	files := map[string][]byte{}
	for _, ref := range cs.Configs {
		if ref.File != nil {
			files[targetOf(ref.File.Name, "/")] = data["config/"+ref.ConfigName]
		}
	}
	for _, ref := range cs.Secrets {
		if ref.File != nil {
			files[targetOf(ref.File.Name, "/run/secrets/")] = data["secret/"+ref.SecretName]
		}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	res, err := engine.RunOnce(ctx, c.Engine, engine.OneOff{
		Image: cs.Image, Command: r.Check, Env: cs.Env, Files: files, Timeout: timeout,
		Labels: map[string]string{convert.LabelNamespace + ".check": stack.Namespace.Name()},
	})
	if err != nil {
		return false, fmt.Errorf("checking %s's new configs with %s: %w", step.Service, r.CheckShown(), err)
	}
	if res.ExitCode != 0 {
		out := strings.TrimSpace(res.Stderr + "\n" + res.Stdout)
		c.record(record.ReloadRejected, step.Service, r.Mask(fmt.Sprintf("%s refused the new configs and secrets (exit %d): %s; the service keeps its old ones until the files change", r.CheckShown(), res.ExitCode, out)))
		return false, nil
	}
	return true, nil
}

// targetOf is where a config or secret is mounted: its target, an absolute
// path or one relative to dir.
func targetOf(name, dir string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	return dir + name
}

// remember notes what reconcile applied to a service, and the spec the
// engine stored for it.
func (c *Controller) remember(ctx context.Context, stack *swarmspec.Stack, step Step) {
	mem := Memory{Applied: step.Hash}
	if res, err := c.Engine.ServiceInspect(ctx, step.Spec.Name, client.ServiceInspectOptions{}); err == nil {
		mem.Settled = SpecJSON(res.Service.Spec)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mem[step.Service] = mem
}

// sayOnce records msg about service unless key is what was last said of
// it: a wait looked at every second is one record, and a service back in
// sync after a wait or a change is one Synced.
func (c *Controller) sayOnce(service, key string, reason record.Reason, msg string) {
	c.queue()
	c.mu.Lock()
	last, seen := c.said[service]
	c.said[service] = key
	c.mu.Unlock()
	if seen && last == key || !seen && reason == record.Synced {
		return
	}
	if msg == "" {
		msg = service + " matches the compose file"
	}
	c.record(reason, service, msg)
}

func (c *Controller) record(reason record.Reason, service, msg string) {
	if c.Recorder != nil {
		c.Recorder.Event(reason, service, "", msg)
	}
}
