package observed

import (
	"errors"
	"testing"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/events"
)

func TestFactOfAnEvent(t *testing.T) {
	tests := []struct {
		action string
		attrs  map[string]string
		want   Fact
	}{
		{"start", nil, Fact{Kind: FactRunning}},
		{"unpause", nil, Fact{Kind: FactRunning}},
		{"die", map[string]string{"exitCode": "137"}, Fact{Kind: FactStopped, ExitCode: 137}},
		{"destroy", nil, Fact{Kind: FactGone}},
		{"health_status: healthy", nil, Fact{Kind: FactHealthy}},
		{"health_status: unhealthy", nil, Fact{Kind: FactUnhealthy}},
		{"pause", nil, Fact{Kind: FactPaused}},
		{"kill", map[string]string{"signal": "9"}, Fact{}}, // says nothing of the state yet
		{"create", nil, Fact{}},
	}
	for _, tt := range tests {
		got := Decode(events.Message{Action: events.Action(tt.action), Actor: events.Actor{Attributes: tt.attrs}}, time.Time{}).Fact()
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.action, got, tt.want)
		}
	}
}

func TestDecodeReadsEveryAttributeOnce(t *testing.T) {
	at := time.Unix(1_700_000_000, 5)
	received := time.Unix(1, 0)
	replica := map[string]string{"name": "p-api-2", api.ProjectLabel: "p", api.ServiceLabel: "api", api.ContainerNumberLabel: "2", api.OneoffLabel: "False"}
	with := func(extra ...string) map[string]string {
		m := map[string]string{}
		for k, v := range replica {
			m[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		msg  events.Message
		want Event
	}{
		{"die", events.Message{Action: "die", TimeNano: at.UnixNano(), Actor: events.Actor{ID: "c1", Attributes: with("exitCode", "137")}},
			Event{ContainerID: "c1", Container: "p-api-2", Project: "p", Service: "api", Number: 2, Action: ActionDie, ExitCode: 137, Time: at}},
		{"kill", events.Message{Action: "kill", TimeNano: at.UnixNano(), Actor: events.Actor{ID: "c1", Attributes: with("signal", "15")}},
			Event{ContainerID: "c1", Container: "p-api-2", Project: "p", Service: "api", Number: 2, Action: ActionKill, Signal: 15, Time: at}},
		{"health", events.Message{Action: "health_status: unhealthy", Actor: events.Actor{ID: "c1", Attributes: with()}},
			Event{ContainerID: "c1", Container: "p-api-2", Project: "p", Service: "api", Number: 2, Action: ActionHealthStatus, Health: HealthUnhealthy, Time: received}},
		{"one-off", events.Message{Action: "start", TimeNano: at.UnixNano(), Actor: events.Actor{ID: "c2", Attributes: map[string]string{api.ServiceLabel: "api", api.OneoffLabel: "True"}}},
			Event{ContainerID: "c2", Service: "api", OneOff: true, Action: ActionStart, Time: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decode(tt.msg, received); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if (Event{Service: "api", Number: 1}).Replica() != true || (Event{Service: "api", Number: 1, OneOff: true}).Replica() || (Event{Service: "api"}).Replica() {
		t.Error("Replica: want only numbered, non-one-off containers of a service")
	}
}

func TestAPanicOnTheReaderIsRecoveredAndTimed(t *testing.T) {
	var panicked []Action
	var handled int
	w := &Watcher{
		OnEvent: func(ev Event) {
			if ev.Action == ActionDie {
				panic(errors.New("boom"))
			}
		},
		OnPanic: func(ev Event, _ any) { panicked = append(panicked, ev.Action) },
		Handled: func(time.Duration) { handled++ },
	}
	w.handle(events.Message{Action: "die"})
	w.handle(events.Message{Action: "start"})
	if len(panicked) != 1 || panicked[0] != ActionDie || handled != 2 {
		t.Errorf("panics %v, handled %d: want the die's panic recovered and both events timed", panicked, handled)
	}
}
