package swarmloop

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/observed/swarmstate"
)

// SpentSlot is a slot of a replicated service whose restart budget Swarm
// spent (deploy.restart_policy.max_attempts): its last task ended, and
// Swarm starts no other.
type SpentSlot struct {
	Slot int
	Task string // the last task's ID
	// Ended says how the last task ended: its state and error.
	Ended string
}

// Spent lists the slots of service whose restart budget is spent: Swarm
// honours max_attempts itself; reconcile only says so, as it says a spent
// budget on one host (RestartBudgetExhausted). A slot with a task Swarm
// means to run (or holds ready through a restart delay) is not spent.
func Spent(snap *swarmstate.Snapshot, service string) []SpentSlot {
	svc, ok := snap.Services[service]
	if !ok || svc.Spec.Mode.Replicated == nil || svc.Spec.Mode.Replicated.Replicas == nil {
		return nil
	}
	rp := svc.Spec.TaskTemplate.RestartPolicy
	if rp == nil || rp.MaxAttempts == nil || *rp.MaxAttempts == 0 {
		return nil
	}
	newest := map[int]swarm.Task{}
	live := map[int]bool{}
	for _, t := range snap.Tasks[service] {
		if t.DesiredState == swarm.TaskStateRunning || t.DesiredState == swarm.TaskStateReady {
			live[t.Slot] = true
		}
		if n, ok := newest[t.Slot]; !ok || t.CreatedAt.After(n.CreatedAt) {
			newest[t.Slot] = t
		}
	}
	var out []SpentSlot
	for slot, t := range newest {
		if live[slot] || slot < 1 || uint64(slot) > *svc.Spec.Mode.Replicated.Replicas {
			continue
		}
		switch t.Status.State {
		case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateComplete:
		default:
			continue // shut down by Swarm (an update, a scale), not ended by itself
		}
		ended := string(t.Status.State)
		if t.Status.Err != "" {
			ended += ": " + t.Status.Err
		}
		out = append(out, SpentSlot{Slot: slot, Task: t.ID, Ended: ended})
	}
	slices.SortFunc(out, func(a, b SpentSlot) int { return a.Slot - b.Slot })
	return out
}

// spentWhy says it in a line.
func spentWhy(snap *swarmstate.Snapshot, service string, spent []SpentSlot) string {
	rp := snap.Services[service].Spec.TaskTemplate.RestartPolicy
	var slots []string
	for _, s := range spent {
		slots = append(slots, fmt.Sprintf("slot %d (%s)", s.Slot, s.Ended))
	}
	return fmt.Sprintf("RestartBudgetExhausted: Swarm spent restart_policy.max_attempts (%d) on %s and starts it no more until the service is updated",
		*rp.MaxAttempts, strings.Join(slots, ", "))
}
