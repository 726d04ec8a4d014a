package swarmloop

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"
)

func TestNodeChanges(t *testing.T) {
	node := func(id, host string, state swarm.NodeState, avail swarm.NodeAvailability) swarm.Node {
		return swarm.Node{ID: id, Description: swarm.NodeDescription{Hostname: host},
			Status: swarm.NodeStatus{State: state}, Spec: swarm.NodeSpec{Availability: avail}}
	}
	snap := snapWith()
	snap.Nodes = map[string]swarm.Node{
		"m": node("m", "manager", swarm.NodeStateReady, swarm.NodeAvailabilityActive),
		"w": node("w", "worker1", swarm.NodeStateReady, swarm.NodeAvailabilityActive),
	}
	changes, last := NodeChanges(nil, snap)
	if len(changes) != 0 {
		t.Fatalf("healthy nodes seen first: %v", changes)
	}
	snap.Nodes["w"] = node("w", "worker1", swarm.NodeStateDown, swarm.NodeAvailabilityActive)
	snap.Tasks["api"] = []swarm.Task{
		{NodeID: "w", DesiredState: swarm.TaskStateShutdown, Status: swarm.TaskStatus{State: swarm.TaskStateRunning}},
		{NodeID: "m", DesiredState: swarm.TaskStateRunning},
		{NodeID: "m", DesiredState: swarm.TaskStateRunning},
	}
	changes, last = NodeChanges(last, snap)
	if len(changes) != 1 || !changes[0].Down || !strings.Contains(changes[0].String(), "node worker1 is down (down): 1 of the stack's tasks there were shut down; the stack's tasks now run on manager:2") {
		t.Fatalf("a node down: %v", changes)
	}
	if again, _ := NodeChanges(last, snap); len(again) != 0 {
		t.Errorf("a node still down is said again: %v", again)
	}
	snap.Nodes["w"] = node("w", "worker1", swarm.NodeStateReady, swarm.NodeAvailabilityDrain)
	changes, last = NodeChanges(last, snap)
	if len(changes) != 1 || !strings.Contains(changes[0].String(), "is drained") {
		t.Fatalf("a drained node: %v", changes)
	}
	snap.Nodes["w"] = node("w", "worker1", swarm.NodeStateReady, swarm.NodeAvailabilityActive)
	if changes, _ = NodeChanges(last, snap); len(changes) != 1 || changes[0].Down || !strings.Contains(changes[0].String(), "ready and active again") {
		t.Fatalf("a node back: %v", changes)
	}
}
