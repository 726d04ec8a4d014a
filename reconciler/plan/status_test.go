package plan

import (
	"strconv"
	"testing"

	"github.com/reconcile-dev/reconcile/observed"
)

func TestStatus(t *testing.T) {
	const compose = `
services:
  db: {image: db, healthcheck: {test: ["CMD", "true"]}}
  job: {image: j}
  api: {image: a, deploy: {replicas: 2}, restart: always}`
	tests := []struct {
		name   string
		setup  func(w *world)
		svc    string
		want   string // desired/running/healthy sync health
		reason string
	}{
		{"missing", func(w *world) {}, "db", "1/0/0 OutOfSync Missing", "no container; db #1: replica missing (0 of 1 exist)"},
		{"healthy", func(w *world) { w.add("db", 1, "running:healthy") }, "db", "1/1/1 Synced Healthy", ""},
		{"health starting", func(w *world) { w.add("db", 1, "running:starting") }, "db", "1/1/0 Synced Progressing", "p-db-1 health starting"},
		{"unhealthy", func(w *world) { w.add("db", 1, "running:unhealthy") }, "db", "1/1/0 OutOfSync Degraded", "p-db-1 unhealthy"},
		{"one-shot completed", func(w *world) { w.add("job", 1, "exited:0") }, "job", "1/0/0 Synced Healthy", "completed"},
		{"one-shot failed", func(w *world) { w.add("job", 1, "exited:2") }, "job", "1/0/0 OutOfSync Degraded", "p-job-1 exited (code 2)"},
		{"one of two replicas", func(w *world) { w.add("api", 1, "running") }, "api", "2/1/1 OutOfSync Degraded", "1 of 2 replicas up; api #2: replica missing (1 of 2 exist)"},
		{"killed replica", func(w *world) { w.add("api", 1, "running"); w.add("api", 2, "exited:137") }, "api", "2/1/1 OutOfSync Degraded", "p-api-2 killed (exit 137)"},
		{"oom killed", func(w *world) {
			w.add("api", 1, "running")
			w.add("api", 2, "exited:137").Details = &observed.Details{OOMKilled: true, RestartCount: 2}
		}, "api", "2/1/1 OutOfSync Degraded", "p-api-2 OOMKilled (exit 137)"},
		{"created", func(w *world) { w.add("api", 1, "running"); w.add("api", 2, "created") }, "api", "2/1/1 OutOfSync Progressing", "p-api-2 created"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(load(t, compose))
			tt.setup(w)
			ps := Status(w.d, w.snap, w.diff(Options{}))
			var st ServiceStatus
			for _, s := range ps.Services {
				if s.Service == tt.svc {
					st = s
				}
			}
			got := formatStatus(st)
			if got != tt.want || st.Reason != tt.reason {
				t.Errorf("status = %s %q\nwant     %s %q", got, st.Reason, tt.want, tt.reason)
			}
		})
	}
}

func formatStatus(s ServiceStatus) string {
	return strconv.Itoa(s.Desired) + "/" + strconv.Itoa(s.Running) + "/" + strconv.Itoa(s.Healthy) + " " + s.Sync + " " + s.Health
}

func TestConverged(t *testing.T) {
	const compose = `
services:
  db: {image: db, healthcheck: {test: ["CMD", "true"]}}
  job: {image: j}
  api: {image: a, x-reconcile: {replicas: {prune: false}}}`
	tests := []struct {
		name  string
		setup func(w *world)
		want  bool
	}{
		{"all up", func(w *world) { w.running("db", "api"); w.add("job", 1, "exited:0") }, true},
		{"extra replica only reported", func(w *world) {
			w.running("db", "api")
			w.add("job", 1, "exited:0")
			w.add("api", 2, "running")
		}, true},
		{"orphan only reported", func(w *world) {
			w.running("db", "api")
			w.add("job", 1, "exited:0")
			w.add("gone", 1, "running")
		}, true},
		{"health starting", func(w *world) { w.add("db", 1, "running:starting"); w.running("api"); w.add("job", 1, "exited:0") }, false},
		{"job still running", func(w *world) { w.running("db", "api", "job") }, true},
		{"job failed", func(w *world) { w.running("db", "api"); w.add("job", 1, "exited:1") }, false},
		{"config diverged", func(w *world) {
			w.running("db", "api")
			w.add("job", 1, "exited:0")
			w.get("p-api-1").ConfigHash = "old"
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(load(t, compose))
			tt.setup(w)
			res := w.diff(Options{})
			if got := Converged(Status(w.d, w.snap, res), res); got != tt.want {
				t.Errorf("Converged = %v, want %v\n%s", got, tt.want, driftText(res))
			}
		})
	}
}
