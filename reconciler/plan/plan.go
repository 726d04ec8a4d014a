// Package reconciler owns "what to do": a pure Diff of desired against
// observed state that yields typed drift and a plan of typed operations in
// dependency order, and an executor that applies a plan without deciding
// anything itself.
package plan

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// OpType is the kind of one operation of a plan. Values are explicit so that
// adding a kind never renumbers the others.
type OpType int

const (
	OpCreateNetwork     OpType = 1
	OpCreateVolume      OpType = 2
	OpCreateContainer   OpType = 10
	OpRecreateContainer OpType = 11
	OpStartContainer    OpType = 12
	OpRestartContainer  OpType = 13
	OpUnpauseContainer  OpType = 14
	OpRemoveContainer   OpType = 15
	OpDisconnectNetwork OpType = 16
	// OpStopContainer stops a container and keeps it down: the engine
	// takes a stop for the user's and restarts it no more. No diff plans
	// it; the restart policy adds it to end the engine's own restart loop
	// once a replica's budget is spent.
	OpStopContainer OpType = 17
	// OpSetRestartPolicy sets the engine's own restart policy of one
	// container (RestartPolicy): "no" while a replica runs the last restart
	// its budget allows, so that the engine cannot restart its next crash
	// before a stop reaches it; the compose file's again once the budget
	// frees. No diff plans it; the restart policy adds it.
	OpSetRestartPolicy OpType = 18
	// OpAddReplica has compose add replicas to a service (`up` with the
	// service scaled to Replicas, never recreating the ones there): a
	// rolling update's new replicas, or, with Config set, a rollback's
	// replicas of the previous definition. No diff plans it; the rollout
	// policy adds it.
	OpAddReplica    OpType = 19
	OpWaitCondition OpType = 20
	// OpExec runs Command in a running container and fails on a non-zero
	// exit (*execute.ExecError): a reload's check and its reload. No diff
	// plans it; the reload policy runs it.
	OpExec OpType = 21
	// OpSignal sends Signal to a container's main process through the
	// engine: a reload by signal.
	OpSignal OpType = 22
	// OpWriteFile writes Content to File (atomically, or in place where the
	// file is itself a bind mount's source: InPlace): an upstream file.
	OpWriteFile OpType = 23
)

func (t OpType) String() string {
	switch t {
	case OpCreateNetwork:
		return "CreateNetwork"
	case OpCreateVolume:
		return "CreateVolume"
	case OpCreateContainer:
		return "CreateContainer"
	case OpRecreateContainer:
		return "RecreateContainer"
	case OpStartContainer:
		return "StartContainer"
	case OpRestartContainer:
		return "RestartContainer"
	case OpUnpauseContainer:
		return "UnpauseContainer"
	case OpRemoveContainer:
		return "RemoveContainer"
	case OpDisconnectNetwork:
		return "DisconnectNetwork"
	case OpStopContainer:
		return "StopContainer"
	case OpSetRestartPolicy:
		return "SetRestartPolicy"
	case OpAddReplica:
		return "AddReplica"
	case OpWaitCondition:
		return "WaitCondition"
	case OpExec:
		return "Exec"
	case OpSignal:
		return "Signal"
	case OpWriteFile:
		return "WriteFile"
	}
	return "Unknown(" + strconv.Itoa(int(t)) + ")"
}

// Operation is one step of a plan, with everything its executor needs.
type Operation struct {
	Type OpType
	// ResourceID names what the operation acts on: service:api:2,
	// network:proj_default, volume:data, service:db (for waits).
	ResourceID string
	// Cause says why, in a few words.
	Cause   string
	Service string
	// Container and ContainerID name an existing container.
	Container   string
	ContainerID string
	// Number is the replica number a container is created with.
	Number int
	// Network is the engine name of a network; NetworkKey its compose key.
	Network    string
	NetworkKey string
	// Volume is the compose key of a volume.
	Volume string
	// Condition and Required describe a wait on a dependency.
	Condition string
	Required  bool
	// StopTimeout bounds graceful stops (the service's stop_grace_period).
	StopTimeout time.Duration
	// RestartPolicy and RestartRetries are what OpSetRestartPolicy sets.
	RestartPolicy  string
	RestartRetries int
	// Kind is the drift a container operation repairs.
	Kind DriftKind
	// Replicas is the count OpAddReplica scales the service to.
	Replicas int
	// Config, when set, is the definition OpAddReplica creates replicas
	// from (a rollback's previous one) instead of the desired one.
	Config *types.ServiceConfig
	// Command and Timeout are what OpExec runs, and for how long at most.
	Command []string
	Timeout time.Duration
	// Signal is what OpSignal sends (SIGHUP).
	Signal string
	// File, Content and InPlace are what OpWriteFile writes.
	File    string
	Content []byte
	InPlace bool
	// Payload is what the policy that added the operation keeps with it, of
	// a type that policy owns (a rollout's step, a cascade's dependency):
	// the executor never reads it, and the policy reads its own back when
	// the executor reports the operation begun or done.
	Payload any
}

// Node is an operation in the plan's graph.
type Node struct {
	ID        int
	Op        Operation
	DependsOn []*Node
	// Group joins operations that one Compose SDK call carries out together:
	// creating and recreating a service's replicas is one `up` of that
	// service, so that compose names, labels and hashes them itself.
	Group string
}

// Plan is a graph of operations; Nodes are in a topological order.
type Plan struct {
	Nodes []*Node
}

// Add appends an operation that runs after deps and returns its node: the
// one way to put an operation into a plan (a guard adding a restart uses
// it), so that node IDs stay the plan's business.
func (p *Plan) Add(op Operation, deps ...*Node) *Node { return p.add(op, "", deps...) }

// ReplicaID is the ResourceID of a service's replica.
func ReplicaID(service string, number int) string {
	return "service:" + service + ":" + strconv.Itoa(number)
}

func (p *Plan) add(op Operation, group string, deps ...*Node) *Node {
	n := &Node{ID: len(p.Nodes) + 1, Op: op, Group: group, DependsOn: uniqueNodes(deps)}
	p.Nodes = append(p.Nodes, n)
	return n
}

// Empty reports whether the plan has nothing to do.
func (p *Plan) Empty() bool { return p == nil || len(p.Nodes) == 0 }

// String renders the plan one operation per line, deterministically:
//
//	[1,2] -> #3 service:api:1, RecreateContainer, config hash diverged [up:api]
func (p *Plan) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	for _, n := range p.Nodes {
		deps := make([]int, len(n.DependsOn))
		for i, d := range n.DependsOn {
			deps[i] = d.ID
		}
		sort.Ints(deps)
		ids := make([]string, len(deps))
		for i, d := range deps {
			ids[i] = strconv.Itoa(d)
		}
		fmt.Fprintf(&b, "[%s] -> #%d %s, %s, %s", strings.Join(ids, ","), n.ID, n.Op.ResourceID, n.Op.Type, n.Op.Cause)
		if n.Group != "" {
			fmt.Fprintf(&b, " [%s]", n.Group)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func uniqueNodes(in []*Node) []*Node {
	seen := map[*Node]bool{}
	var out []*Node
	for _, n := range in {
		if n != nil && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ForService returns the part of the plan that acts on one service: its own
// operations and the creation of the networks and volumes they need, with
// waits on other services left out. The daemon reconciles service by
// service; it checks dependencies before it runs such a plan instead of
// waiting inside it, so that a worker never blocks on another service and
// that service's own key stays the only one acting on it.
func (p *Plan) ForService(service string) *Plan {
	keep := map[*Node]bool{}
	if p != nil {
		for _, n := range p.Nodes {
			if n.Op.Service == service && n.Op.Type != OpWaitCondition {
				keep[n] = true
				for _, d := range n.DependsOn {
					if d.Op.Type.IsInfra() {
						keep[d] = true
					}
				}
			}
		}
	}
	// a kept node's edges to nodes left out (its waits) are dropped with them
	return p.subset(func(n *Node) bool { return keep[n] }, false)
}

// BringsUp reports whether the plan creates, recreates or starts a
// container: the operations that must wait for dependencies.
func (p *Plan) BringsUp() bool {
	return slices.ContainsFunc(p.Nodes, func(n *Node) bool { return n.Op.Type.BringsUp() })
}

// BringsUp reports whether an operation of this type creates, recreates or
// starts a container.
func (t OpType) BringsUp() bool {
	switch t {
	case OpCreateContainer, OpRecreateContainer, OpStartContainer, OpRestartContainer, OpUnpauseContainer, OpAddReplica:
		return true
	}
	return false
}

// IsInfra reports whether an operation of this type creates a network or a
// volume: what several services may need at once.
func (t OpType) IsInfra() bool { return t == OpCreateNetwork || t == OpCreateVolume }

// Without returns the plan less the nodes drop selects, and less the nodes
// that depended on them.
func (p *Plan) Without(drop func(*Node) bool) *Plan {
	return p.subset(func(n *Node) bool { return !drop(n) }, true)
}

// subset copies the nodes keep selects, renumbered, with their edges among
// themselves. With cascade, a node that depends on one left out is left out
// too; without, only that edge goes.
func (p *Plan) subset(keep func(*Node) bool, cascade bool) *Plan {
	out := &Plan{}
	if p == nil {
		return out
	}
	clones := map[*Node]*Node{}
	for _, n := range p.Nodes {
		if !keep(n) || cascade && slices.ContainsFunc(n.DependsOn, func(d *Node) bool { return clones[d] == nil }) {
			continue
		}
		c := &Node{ID: len(out.Nodes) + 1, Op: n.Op, Group: n.Group}
		for _, d := range n.DependsOn {
			if dc, ok := clones[d]; ok {
				c.DependsOn = append(c.DependsOn, dc)
			}
		}
		clones[n] = c
		out.Nodes = append(out.Nodes, c)
	}
	return out
}

// opReasons are the record reasons of an operation done and failed; a
// failed one is "Failed" and the type (FailedRecreateContainer), as
// Kubernetes words it.
var opReasons = map[OpType][2]record.Reason{
	OpCreateNetwork:     {record.NetworkCreated, record.FailedCreateNetwork},
	OpCreateVolume:      {record.VolumeCreated, record.FailedCreateVolume},
	OpCreateContainer:   {record.Created, record.FailedCreateContainer},
	OpRecreateContainer: {record.Recreated, record.FailedRecreateContainer},
	OpStartContainer:    {record.Started, record.FailedStartContainer},
	OpRestartContainer:  {record.Restarted, record.FailedRestartContainer},
	OpUnpauseContainer:  {record.Unpaused, record.FailedUnpauseContainer},
	OpRemoveContainer:   {record.Removed, record.FailedRemoveContainer},
	OpDisconnectNetwork: {record.NetworkDisconnected, record.FailedDisconnectNetwork},
	OpStopContainer:     {record.Stopped, record.FailedStopContainer},
	OpSetRestartPolicy:  {record.RestartPolicySet, record.FailedSetRestartPolicy},
	OpAddReplica:        {record.ReplicaAdded, record.FailedAddReplica},
	OpWaitCondition:     {record.DependencyReady, record.FailedWaitCondition},
}

// Recorded reports whether the controller records an operation of this
// type when it is done: execs, signals and file writes are a reload's or an
// upstream's steps, which their policy records in its own words.
func (t OpType) Recorded() bool {
	switch t {
	case OpExec, OpSignal, OpWriteFile:
		return false
	}
	return true
}

// Reason is the event-record reason for an operation done, or failed when
// err is set.
func (t OpType) Reason(err error) record.Reason {
	r, ok := opReasons[t]
	switch {
	case !ok:
		return record.Reason(t.String())
	case err != nil:
		return r[1]
	}
	return r[0]
}

// ContainerName is the name compose gives a service's replica.
func ContainerName(d *desired.State, service string, number int) string {
	if s := d.Services[service]; s != nil && s.Config.ContainerName != "" {
		return s.Config.ContainerName
	}
	return fmt.Sprintf("%s-%s-%d", d.Project.Name, service, number)
}
