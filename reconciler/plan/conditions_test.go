package plan

import (
	"strings"
	"testing"
)

func TestReadinessSetsAsideReplicasLeftDownOnPurpose(t *testing.T) {
	const compose = `
services:
  api: {image: a, deploy: {replicas: 2}, healthcheck: {test: ["CMD", "true"]}}
  web: {image: w, deploy: {replicas: 2}}`
	budget := "RestartBudgetExhausted"
	tests := []struct {
		name      string
		svc       string
		condition string
		states    []string       // replica 1, 2, ...
		leftDown  map[int]string // replica number: why
		absent    int
		want      ConditionState
		why       string
	}{
		{"no one left down: compose's rule, an exited replica fails", "api", "service_healthy",
			[]string{"running:healthy", "exited:137"}, nil, 0, ConditionFailed, "p-api-2 exited with code 137"},
		{"a replica with a spent budget does not hold dependents", "api", "service_healthy",
			[]string{"running:healthy", "exited:137"}, map[int]string{2: budget}, 0, ConditionMet, "p-api-2 left down"},
		{"a replica a person stopped does not either", "web", "service_started",
			[]string{"running", "exited:143"}, map[int]string{2: "StoppedByUser"}, 0, ConditionMet, "started"},
		{"a replica a person removed is not waited for", "api", "service_healthy",
			[]string{"running:healthy"}, nil, 1, ConditionMet, "healthy"},
		{"every replica left down still holds them", "api", "service_healthy",
			[]string{"exited:137", "exited:137"}, map[int]string{1: budget, 2: budget}, 0, ConditionWaiting, "every replica is left down"},
		{"the others must meet it: one left down, one unhealthy", "api", "service_healthy",
			[]string{"running:unhealthy", "exited:137"}, map[int]string{2: budget}, 0, ConditionFailed, "p-api-1 is unhealthy"},
		{"the others must meet it: one left down, one starting", "api", "service_healthy",
			[]string{"running:starting", "exited:137"}, map[int]string{2: budget}, 0, ConditionWaiting, "0 of 1 healthy"},
		{"one removed and the other left down: nothing left", "api", "service_healthy",
			[]string{"exited:137"}, map[int]string{1: budget}, 1, ConditionWaiting, "every replica is left down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(load(t, compose))
			left := LeftDown{Containers: map[string]string{}, Absent: tt.absent}
			for i, st := range tt.states {
				c := w.add(tt.svc, i+1, st)
				if why, ok := tt.leftDown[i+1]; ok {
					left.Containers[c.ID] = why
				}
			}
			got, why := CheckReadiness(tt.condition, w.d.Services[tt.svc], w.snap.ByService()[tt.svc], left)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("got %v %q, want %v containing %q", got, why, tt.want, tt.why)
			}
		})
	}
}
