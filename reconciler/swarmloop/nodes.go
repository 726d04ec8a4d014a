package swarmloop

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
)

// nodeState is what is reported of a node: whether it takes tasks.
type nodeState struct {
	ready, active bool
}

func stateOf(n swarm.Node) nodeState {
	return nodeState{ready: n.Status.State == swarm.NodeStateReady, active: n.Spec.Availability == swarm.NodeAvailabilityActive}
}

// NodeChange is a node that stopped or started taking tasks, with the
// stack's tasks that ran there and where they run now.
type NodeChange struct {
	Node    string
	Down    bool
	Why     string // down, drained, paused
	Lost    int    // the stack's tasks that ran on it and were shut down
	MovedTo map[string]int
}

// NodeChanges compares snap's nodes with last (by node ID) and returns
// the changes and the states to remember. Pure.
func NodeChanges(last map[string]nodeState, snap *swarmstate.Snapshot) ([]NodeChange, map[string]nodeState) {
	now := map[string]nodeState{}
	var out []NodeChange
	for _, id := range slices.Sorted(maps.Keys(snap.Nodes)) {
		n := snap.Nodes[id]
		st := stateOf(n)
		now[id] = st
		prev, seen := last[id]
		if seen && prev == st || !seen && st.ready && st.active {
			continue
		}
		ch := NodeChange{Node: snap.NodeName(id), Down: !st.ready || !st.active}
		switch {
		case !st.ready:
			ch.Why = "down (" + string(n.Status.State) + ")"
		case n.Spec.Availability == swarm.NodeAvailabilityDrain:
			ch.Why = "drained"
		case !st.active:
			ch.Why = string(n.Spec.Availability)
		default:
			ch.Why = "ready and active"
		}
		if ch.Down {
			ch.Lost, ch.MovedTo = moved(snap, id)
		}
		out = append(out, ch)
	}
	return out, now
}

// moved counts the stack's tasks on node that are no longer meant to run,
// and where the stack's running tasks are now.
func moved(snap *swarmstate.Snapshot, node string) (int, map[string]int) {
	lost := 0
	to := map[string]int{}
	for _, tasks := range snap.Tasks {
		for _, t := range tasks {
			switch {
			case t.NodeID == node && t.DesiredState != swarm.TaskStateRunning && t.Status.State != swarm.TaskStateComplete:
				lost++
			case t.NodeID != node && t.DesiredState == swarm.TaskStateRunning:
				to[snap.NodeName(t.NodeID)]++
			}
		}
	}
	return lost, to
}

func (ch NodeChange) String() string {
	if !ch.Down {
		return fmt.Sprintf("node %s is %s again", ch.Node, ch.Why)
	}
	var where []string
	for _, n := range slices.Sorted(maps.Keys(ch.MovedTo)) {
		where = append(where, fmt.Sprintf("%s:%d", n, ch.MovedTo[n]))
	}
	return fmt.Sprintf("node %s is %s: %d of the stack's tasks there were shut down; the stack's tasks now run on %s",
		ch.Node, ch.Why, ch.Lost, strings.Join(where, ", "))
}

// reportNodes records the nodes that went down or came back since the
// last look.
func (c *Controller) reportNodes(snap *swarmstate.Snapshot) {
	c.mu.Lock()
	changes, now := NodeChanges(c.nodes, snap)
	first := c.nodes == nil
	c.nodes = now
	c.mu.Unlock()
	for _, ch := range changes {
		if first && !ch.Down {
			continue
		}
		if ch.Down {
			c.record(record.NodeDown, "", ch.String())
		} else {
			c.record(record.NodeUp, "", ch.String())
		}
	}
}
