package reconciler

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func TestExpectationsTellOurEventsFromAPersons(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	kill := observed.ActionKill
	die, stop, destroy, start := observed.ActionDie, observed.ActionStop, observed.ActionDestroy, observed.ActionStart
	tests := []struct {
		name string
		ops  []plan.OpType // begun on container c1, in order
		fail bool          // the last operation failed
		// events on c1 after the operations, with the time since they began
		events []observed.Action
		after  time.Duration
		want   []bool
	}{
		{"our removal: every event of it is ours", []plan.OpType{plan.OpRemoveContainer}, false,
			[]observed.Action{kill, die, stop, destroy}, 0, []bool{true, true, true, true}},
		{"after our removal's destroy, nothing more is ours", []plan.OpType{plan.OpRemoveContainer}, false,
			[]observed.Action{destroy, stop}, 0, []bool{true, false}},
		{"our stop ends at its stop: a later start is a person's", []plan.OpType{plan.OpStopContainer}, false,
			[]observed.Action{kill, die, stop, start}, 0, []bool{true, true, true, false}},
		{"our start: a crash after it is not ours", []plan.OpType{plan.OpStartContainer}, false,
			[]observed.Action{start, die}, 0, []bool{true, false}},
		{"a start and a policy update in one plan: both known", []plan.OpType{plan.OpStartContainer, plan.OpSetRestartPolicy}, false,
			[]observed.Action{observed.ActionUpdate, start, start}, 0, []bool{true, true, false}},
		{"a failed operation expects nothing", []plan.OpType{plan.OpRemoveContainer}, true,
			[]observed.Action{stop, destroy}, 0, []bool{false, false}},
		{"events that never came expire", []plan.OpType{plan.OpRemoveContainer}, false,
			[]observed.Action{stop}, ExpectationTTL + time.Second, []bool{false}},
		{"a creation names no container: nothing expected", []plan.OpType{plan.OpCreateContainer}, false,
			[]observed.Action{start}, 0, []bool{false}},
		{"our recreate stops and removes the old container", []plan.OpType{plan.OpRecreateContainer}, false,
			[]observed.Action{kill, die, stop, observed.ActionRename, destroy}, 0, []bool{true, true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Expectations
			var last plan.Operation
			for _, typ := range tt.ops {
				last = plan.Operation{Type: typ, ContainerID: "c1"}
				e.Expect(last, t0)
			}
			if tt.fail {
				e.Done(last, errors.New("engine said no"))
			}
			for i, a := range tt.events {
				seen := e.Observe(observed.Event{ContainerID: "c1", Action: a}, t0.Add(tt.after))
				if seen.Ours != tt.want[i] {
					t.Errorf("event %d (%s): ours %v, want %v", i, a, seen.Ours, tt.want[i])
				}
				if other := e.Observe(observed.Event{ContainerID: "c2", Action: a}, t0); other.Ours {
					t.Errorf("event %d (%s) of another container taken for ours", i, a)
				}
			}
		})
	}
}

func TestExpectationsDoNotGrowWithoutBound(t *testing.T) {
	var e Expectations
	t0 := time.Unix(1_000_000, 0)
	for i := range 100 {
		e.Expect(plan.Operation{Type: plan.OpRemoveContainer, ContainerID: "c" + strconv.Itoa(i)}, t0)
	}
	// their events never came; a later operation sweeps them
	e.Expect(plan.Operation{Type: plan.OpStartContainer, ContainerID: "new"}, t0.Add(ExpectationTTL+time.Second))
	if n := e.Len(); n != 1 {
		t.Errorf("%d containers expected, want only the new one", n)
	}
}
