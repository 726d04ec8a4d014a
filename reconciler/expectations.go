package reconciler

import (
	"slices"
	"sync"
	"time"

	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// ExpectationTTL bounds how long an action of the reconciler's own waits
// for its events: an engine that lost them (a restart of the engine, a
// dropped subscriber) must not make a later action of a person's look like
// ours forever. Kubernetes' ReplicaSet controller waits five minutes; a
// stop here takes at most its grace period, so two minutes is plenty.
const ExpectationTTL = 2 * time.Minute

// Seen is an engine event as the controller hands it to its policies: the
// event, and whether an action of the reconciler's own caused it (and
// which). Policies never guess this from a pattern of events: a stop then
// a removal is a person's `down` only when no removal of ours was under way.
type Seen struct {
	observed.Event
	// Ours is set when the event is one the executor's own operation on
	// this container causes, begun before the event came.
	Ours bool
	// Op is that operation's type (zero when not Ours).
	Op plan.OpType
}

// Expectations remember, per container, the operation the executor began on
// it and the events that operation will cause, until the last of them has
// come back, the operation failed, or ExpectationTTL passed: the
// ReplicaSet controller's expectations (kube-controller-manager's
// controller_utils.go), per container rather than as counts, since every
// operation here names its container.
type Expectations struct {
	mu sync.Mutex
	// byID holds, per container, the operations under way on it (one plan
	// may start a container and update its restart policy).
	byID map[string][]expectation
}

type expectation struct {
	op plan.OpType
	at time.Time
	// causes are the actions the operation makes the engine emit; final
	// is the last of them, after which nothing more is ours.
	causes []observed.Action
	final  observed.Action
}

// ownEvents are the container actions each operation makes the engine emit
// on the container it names, and the last of them. Creations name no
// container yet (compose picks the ID), so nothing is expected of them:
// no policy reads a person's intent into a create or a start of a new
// container.
func ownEvents(t plan.OpType) (causes []observed.Action, final observed.Action) {
	stop := []observed.Action{observed.ActionKill, observed.ActionDie, observed.ActionStop}
	switch t {
	case plan.OpStartContainer:
		return []observed.Action{observed.ActionStart}, observed.ActionStart
	case plan.OpRestartContainer:
		return append(stop, observed.ActionStart, observed.ActionRestart), observed.ActionStart
	case plan.OpStopContainer:
		return stop, observed.ActionStop
	case plan.OpRemoveContainer, plan.OpRecreateContainer:
		// compose's recreate renames, stops and removes the old container
		return append(stop, observed.ActionRename, observed.ActionDestroy), observed.ActionDestroy
	case plan.OpUnpauseContainer:
		return []observed.Action{observed.ActionUnpause}, observed.ActionUnpause
	case plan.OpSetRestartPolicy:
		return []observed.Action{observed.ActionUpdate}, observed.ActionUpdate
	case plan.OpSignal:
		return []observed.Action{observed.ActionKill}, observed.ActionKill
	}
	return nil, ""
}

// Expect remembers that the executor is about to run op; called before the
// engine is asked, so that no event of it can come first.
func (e *Expectations) Expect(op plan.Operation, at time.Time) {
	causes, final := ownEvents(op.Type)
	if op.ContainerID == "" || final == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byID == nil {
		e.byID = map[string][]expectation{}
	}
	for id, xs := range e.byID {
		// those whose events never came (a container removed by someone
		// else) go
		if xs = slices.DeleteFunc(xs, func(x expectation) bool { return at.Sub(x.at) > ExpectationTTL }); len(xs) == 0 {
			delete(e.byID, id)
		} else {
			e.byID[id] = xs
		}
	}
	e.byID[op.ContainerID] = append(e.byID[op.ContainerID], expectation{op: op.Type, at: at, causes: causes, final: final})
}

// Done learns how op ended: a failed operation may never cause its events,
// so it expects nothing more, and a later stop is a person's again. A
// successful one waits for its events.
func (e *Expectations) Done(op plan.Operation, err error) {
	if err == nil || op.ContainerID == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drop(op.ContainerID, func(x expectation) bool { return x.op == op.Type })
}

// drop forgets the container's expectations gone selects; mu is held.
func (e *Expectations) drop(id string, gone func(expectation) bool) {
	if xs := slices.DeleteFunc(e.byID[id], gone); len(xs) == 0 {
		delete(e.byID, id)
	} else {
		e.byID[id] = xs
	}
}

// Observe tells whether ev is one of the reconciler's own, and forgets the
// expectation once its last event has come.
func (e *Expectations) Observe(ev observed.Event, now time.Time) Seen {
	seen := Seen{Event: ev}
	e.mu.Lock()
	defer e.mu.Unlock()
	xs, ok := e.byID[ev.ContainerID]
	if !ok {
		return seen
	}
	for _, x := range xs {
		if now.Sub(x.at) <= ExpectationTTL && slices.Contains(x.causes, ev.Action) {
			seen.Ours, seen.Op = true, x.op
			break
		}
	}
	e.drop(ev.ContainerID, func(x expectation) bool {
		return now.Sub(x.at) > ExpectationTTL || ev.Action == observed.ActionDestroy ||
			seen.Ours && x.op == seen.Op && ev.Action == x.final
	})
	return seen
}

// Len is how many containers have operations of ours outstanding.
func (e *Expectations) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.byID)
}
