package daemon

import (
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/observed"
)

func TestSettled(t *testing.T) {
	taken := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	running := func(up time.Duration, health string) observed.Container {
		return observed.Container{State: observed.StateRunning, Up: up, Health: health}
	}
	tests := []struct {
		name  string
		ctrs  []observed.Container
		after time.Duration // since the list was taken
		want  bool
	}{
		{"long running", []observed.Container{running(time.Hour, "")}, 0, true},
		{"just started", []observed.Container{running(0, "")}, 0, false},
		{"just started, the settle passed since the list", []observed.Container{running(0, "")}, 2 * time.Second, true},
		{"up one second, one more passed", []observed.Container{running(time.Second, "")}, time.Second, true},
		{"just started but healthy by its own check", []observed.Container{running(0, observed.HealthHealthy)}, 0, true},
		{"just started, its check still starting", []observed.Container{running(0, observed.HealthStarting)}, time.Second, false},
		{"one of two just started", []observed.Container{running(time.Hour, ""), running(0, "")}, 0, false},
		{"a one-shot that exited", []observed.Container{{State: observed.StateExited}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := &observed.Snapshot{TakenAt: taken, Containers: tt.ctrs}
			if got := Settled(snap, 2*time.Second, taken.Add(tt.after)); got != tt.want {
				t.Errorf("Settled = %v, want %v", got, tt.want)
			}
		})
	}
}
