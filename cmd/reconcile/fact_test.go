package main

import (
	"testing"

	"github.com/moby/moby/api/types/events"

	"github.com/reconcile-dev/reconcile/reconciler"
)

func TestFactOfAnEvent(t *testing.T) {
	tests := []struct {
		action string
		attrs  map[string]string
		want   reconciler.Fact
	}{
		{"start", nil, reconciler.Fact{Kind: reconciler.FactRunning}},
		{"unpause", nil, reconciler.Fact{Kind: reconciler.FactRunning}},
		{"die", map[string]string{"exitCode": "137"}, reconciler.Fact{Kind: reconciler.FactStopped, ExitCode: 137}},
		{"destroy", nil, reconciler.Fact{Kind: reconciler.FactGone}},
		{"health_status: healthy", nil, reconciler.Fact{Kind: reconciler.FactHealthy}},
		{"health_status: unhealthy", nil, reconciler.Fact{Kind: reconciler.FactUnhealthy}},
		{"kill", map[string]string{"signal": "9"}, reconciler.Fact{}}, // says nothing of the state yet
		{"create", nil, reconciler.Fact{}},
	}
	for _, tt := range tests {
		got := fact(events.Message{Action: events.Action(tt.action), Actor: events.Actor{Attributes: tt.attrs}})
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.action, got, tt.want)
		}
	}
}
