package restarts

import (
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// cascadeRestart is the payload of a restart a `restart: true` cascade
// adds (plan.Operation.Payload): the dependency whose restart it follows.
type cascadeRestart struct{ dependency string }

func isCascade(op plan.Operation) bool { _, ok := op.Payload.(cascadeRestart); return ok }

// counted reports whether an operation is one the restart state is about:
// a start of an exited replica, a restart of a running one, or the stop
// that holds a replica with a spent budget down.
func counted(op plan.Operation) bool {
	if op.Payload != nil && !isCascade(op) {
		return false // another policy's operation, for its own reason (a reload's restart)
	}
	switch op.Type {
	case plan.OpStartContainer, plan.OpRestartContainer, plan.OpStopContainer, plan.OpSetRestartPolicy:
		return op.Number > 0
	}
	return false
}

// Begin notes a start, restart or stop the executor is about to make: while
// it is under way the replica is not held down. Which events it causes is
// the controller's to tell (reconciler.Seen). Nothing is counted yet.
func (r *Restarts) Begin(op plan.Operation, at time.Time) {
	if !counted(op) || op.Type == plan.OpSetRestartPolicy {
		return // an update causes no stop, die or start to tell apart
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slot(op.Service, op.Number, op.ContainerID).acting = at
}

// Done accounts a start, restart or hold-down stop the executor finished: a
// failed one is not counted and its mark is dropped; a done start or
// restart counts against the budget, except a cascade restart, which the
// replica did not cause; a done stop holds the replica down.
func (r *Restarts) Done(op plan.Operation, err error, at time.Time) {
	if !counted(op) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slot(op.Service, op.Number, op.ContainerID)
	if err != nil {
		if op.Type != plan.OpSetRestartPolicy {
			s.acting = time.Time{}
		}
		return
	}
	switch {
	case op.Type == plan.OpSetRestartPolicy:
		s.EngineRestartsOff = op.RestartPolicy == string(desired.RestartNo)
		s.EngineRestartsOffAt = time.Time{}
		if s.EngineRestartsOff {
			s.EngineRestartsOffAt = at
		}
	case op.Type == plan.OpStopContainer:
		s.HeldDown, s.OverBudget = true, false
	case isCascade(op):
		s.LastExit, s.LastExitAt = "restarted with "+op.Payload.(cascadeRestart).dependency, at
		if cs, ok := r.cascades[op.Service]; ok {
			r.cascaded[op.ContainerID] = cs.at
		}
	case op.Type == plan.OpRestartContainer:
		s.LastExit, s.LastExitAt = "unhealthy", at
		s.Restarts = append(s.Restarts, at)
	default:
		s.Restarts = append(s.Restarts, at)
	}
	r.changed()
}
