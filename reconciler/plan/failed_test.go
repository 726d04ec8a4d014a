package plan

import (
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/observed"
)

func TestFailedDependencies(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		migrate observed.Container // the dependency's one container
		want    string             // "" when nothing failed for good
	}{
		{"a one-shot that failed, restart no",
			"restart: \"no\"", observed.Container{State: observed.StateExited, ExitCode: 1},
			"its dependency migrate cannot become completed successfully: p-migrate-1 exited with code 1"},
		{"a one-shot that failed, on-failure: restarted",
			"restart: on-failure", observed.Container{State: observed.StateExited, ExitCode: 1}, ""},
		{"a one-shot that completed",
			"restart: \"no\"", observed.Container{State: observed.StateExited, ExitCode: 0}, ""},
		{"a one-shot still running",
			"restart: \"no\"", observed.Container{State: observed.StateRunning}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := load(t, `
services:
  migrate:
    image: x
    `+tt.yaml+`
  api:
    image: x
    depends_on: {migrate: {condition: service_completed_successfully}}`)
			c := tt.migrate
			c.Service, c.Name, c.Number = "migrate", "p-migrate-1", 1
			got := FailedDependencies(d, &observed.Snapshot{Containers: []observed.Container{c}})
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("failed: %v; want none", got)
			case tt.want != "" && (len(got) != 1 || got[0].Service != "api" || !strings.Contains(got[0].Error(), tt.want)):
				t.Errorf("failed: %v; want api held: %s", got, tt.want)
			}
		})
	}
}

func TestFailedHealthDependencies(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		db     observed.Container
		want   string
	}{
		{"unhealthy, nothing restarts it", "", observed.Container{State: observed.StateRunning, Health: observed.HealthUnhealthy}, "p-db-1 is unhealthy"},
		{"unhealthy, restarted when unhealthy", "x-reconcile: {restart: {on_unhealthy: true}}", observed.Container{State: observed.StateRunning, Health: observed.HealthUnhealthy}, ""},
		{"starting", "", observed.Container{State: observed.StateRunning, Health: observed.HealthStarting}, ""},
		{"exited, restart always", "restart: always", observed.Container{State: observed.StateExited, ExitCode: 137}, ""},
		{"exited, restart no", "", observed.Container{State: observed.StateExited, ExitCode: 137}, "p-db-1 exited with code 137"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := load(t, `
services:
  db:
    image: x
    healthcheck: {test: ["CMD", "true"]}
    `+tt.policy+`
  api:
    image: x
    depends_on: {db: {condition: service_healthy}}`)
			c := tt.db
			c.Service, c.Name, c.Number = "db", "p-db-1", 1
			got := FailedDependencies(d, &observed.Snapshot{Containers: []observed.Container{c}})
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("failed: %v; want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0].Error(), tt.want)):
				t.Errorf("failed: %v; want %s", got, tt.want)
			}
		})
	}
}
