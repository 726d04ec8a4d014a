package plan

import "testing"

func TestPlanForService(t *testing.T) {
	tests := []struct {
		service string
		want    string
		bringUp bool
	}{
		{"db", `
			[] -> #1 network:p_back, CreateNetwork, network missing
			[] -> #2 volume:p_data, CreateVolume, volume missing
			[1,2] -> #3 service:db:1, CreateContainer, replica missing (0 of 1 exist) [up:db]`, true},
		{"api", `
			[] -> #1 network:p_back, CreateNetwork, network missing
			[] -> #2 network:p_front, CreateNetwork, network missing
			[1,2] -> #3 service:api:1, CreateContainer, replica missing (0 of 2 exist) [up:api]
			[1,2] -> #4 service:api:2, CreateContainer, replica missing (0 of 2 exist) [up:api]`, true},
		{"nothing", ``, false},
	}
	w := newWorld(load(t, stack))
	w.snap.Networks, w.snap.Volumes = nil, nil
	full := w.diff(Options{})
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			sub := full.Plan.ForService(tt.service)
			if got, want := trimLines(sub.String()), trimLines(tt.want); got != want {
				t.Errorf("plan for %s:\n%s\nwant:\n%s", tt.service, got, want)
			}
			if sub.BringsUp() != tt.bringUp {
				t.Errorf("BringsUp = %v, want %v", sub.BringsUp(), tt.bringUp)
			}
		})
	}
}
