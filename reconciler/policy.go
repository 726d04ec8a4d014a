package reconciler

import (
	"context"
	"slices"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Review is what a policy sees of one service's reconcile: the desired and
// observed state and the plan as it stands.
type Review struct {
	Desired  *desired.State
	Snapshot *observed.Snapshot
	Service  string
	Plan     *plan.Plan
	Now      time.Time
}

// Policy is one policy's place in a controller, each capability it offers
// named: what is wired to what is read here, in one place, and not found by
// type assertion. Any capability may be nil. Policies are asked in the
// order they are registered: a rollout shapes a plan before the load
// balancers drain what it stops, and both before a restart is budgeted.
type Policy struct {
	Name string
	// Decide reviews a service's plan before it runs.
	Decide Guard
	// Account learns what became of the operations the executor ran.
	Account Accountant
	// Learn learns from each engine event, tagged ours or not.
	Learn EventLearner
	// Listed learns from each fresh list; Relisted from a full relist (on
	// every connect to the engine, and the periodic resync).
	Listed   SnapshotLearner
	Relisted RelistLearner
	// LeftDown tells which replicas the policy leaves down on purpose.
	LeftDown LeftDownTeller
	// Status adds what the policy knows to a status.
	Status StatusAnnotator
	// Sync keeps something other than containers in line for a service.
	Sync Syncer
}

// Guard is a policy's say over a service's plan before it runs. Its Review
// only decides: it returns a Decision and changes no state, so that asking
// twice gives the same answer and a held operation is never counted.
type Guard interface {
	Review(in Review) Decision
}

// Accountant is a policy that learns what became of the operations of a
// plan: the executor reports each one as it begins and when it is done or
// failed. Budgets and backoff are counted here, from what happened.
type Accountant interface {
	Begin(op plan.Operation, at time.Time)
	Done(op plan.Operation, err error, at time.Time)
}

// EventLearner is a policy that learns from the engine's events. It runs on
// the events reader: a few maps under a lock, nothing slower.
type EventLearner interface {
	Learn(ev Seen, d *desired.State)
}

// SnapshotLearner is a policy that notes what each fresh list shows (an exit
// the list shows before its event arrives).
type SnapshotLearner interface {
	Listed(snap *observed.Snapshot)
}

// RelistLearner is a policy that learns from a full relist: what it shows
// stopped happened while nobody watched, or its events may be lost.
type RelistLearner interface {
	Relisted(snap *observed.Snapshot)
}

// LeftDownTeller is a policy that leaves replicas down on purpose (a spent
// restart budget, a person's stop or removal): those replicas do not hold a
// dependent back while the dependency's other replicas meet its condition.
type LeftDownTeller interface {
	LeftDown(d *desired.State, service string, snap *observed.Snapshot, now time.Time) plan.LeftDown
}

// Syncer is a policy that brings a service in line where a plan of
// container operations cannot say it: an upstream file and the reload it
// needs, a configuration reload. It runs in the service's reconcile, under
// its key, so nothing else acts on the service meanwhile; and it acts only
// through act, whose operations the executor carries out, the controller
// knows as its own, and the accountants hear of.
type Syncer interface {
	Sync(ctx context.Context, in Review, act Actor) (Result, error)
}

// Actor carries out operations on a Syncer's behalf, through the executor;
// the operations given in one call run side by side, and its error joins
// their failures.
type Actor interface {
	Act(ctx context.Context, ops ...plan.Operation) error
}

// StatusAnnotator is a policy that adds what it knows to a status.
type StatusAnnotator interface {
	Annotate(st *plan.ProjectStatus, d *desired.State, now time.Time)
}

// Decision is a guard's answer for one service: which of the plan's
// operations wait, which it adds, and when to look again.
type Decision struct {
	// Hold are the plan's nodes that may not run now; what depends on them
	// waits too.
	Hold []*plan.Node
	// Add are operations to run besides the plan's (a cascade restart).
	Add []plan.Operation
	// RequeueAfter asks for another look at the service this soon.
	RequeueAfter time.Duration
	// Wake names other services to reconcile now (a load balancer that
	// must rewrite its file before a replica may stop).
	Wake []string
	// Reports explain the decision; each is recorded once per occurrence.
	Reports []Report
}

// Report is a record a decision asks for. Reason and Container say what it
// is about; Occurrence tells one occurrence from the next (a backoff's due
// time, an exit's time): the record is made again only when it changes.
type Report struct {
	Reason     record.Reason
	Container  string
	Message    string
	Occurrence string
	// Lasting keeps the occurrence past the service's return to sync: a
	// report made while in sync (an update complete) is then made once,
	// not again at each look.
	Lasting bool
	// Stuck says the service cannot reach its desired state without a
	// change (a rollback done, a replica left down that nothing will start
	// again): the daemon waits for one, and a one-shot run ends.
	Stuck bool
}

// Later asks for another look after d, keeping the sooner of two asks.
func (d *Decision) Later(after time.Duration) {
	d.RequeueAfter = sooner(d.RequeueAfter, after)
}

// Apply returns p less the held operations (and what depends on them) and
// with the added ones.
func (d Decision) Apply(p *plan.Plan) *plan.Plan {
	out := p.Without(func(n *plan.Node) bool { return slices.Contains(d.Hold, n) })
	for _, op := range d.Add {
		out.Add(op)
	}
	return out
}

// sooner is the sooner of two waits, where zero means no wait was asked.
func sooner(a, b time.Duration) time.Duration {
	switch {
	case b <= 0:
		return a
	case a <= 0:
		return b
	}
	return min(a, b)
}
