package rollouts

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func load(t *testing.T, yaml string) *desired.State {
	t.Helper()
	return desiredtest.Load(t, yaml)
}

type memStore struct {
	mu   sync.Mutex
	data []byte
}

func (m *memStore) Load() ([]byte, error) { m.mu.Lock(); defer m.mu.Unlock(); return m.data, nil }
func (m *memStore) Save(b []byte) error   { m.mu.Lock(); defer m.mu.Unlock(); m.data = b; return nil }

// api is a compose file of three api replicas with a healthcheck; version
// changes its definition, update its update_config.
func api(version, update string) string {
	return fmt.Sprintf(`services:
  api:
    image: app
    environment: {VERSION: "%s"}
    healthcheck: {test: [CMD, /api, health], interval: 1s, retries: 2}
    deploy:
      replicas: 3
%s`, version, update)
}

// world plays the engine: operations change its containers, a step of
// time makes the new ones healthy (or not).
type world struct {
	t       *testing.T
	now     time.Time
	cs      []observed.Container
	healthy func(hash string) bool
	seq     int
}

func (w *world) snapshot() *observed.Snapshot {
	return &observed.Snapshot{Project: "p", Containers: slices.Clone(w.cs), Images: map[string]string{}, TakenAt: w.now,
		Networks: []observed.Network{{ID: "net", Name: "p_default", Key: "default"}}}
}

func (w *world) add(hash string) {
	w.seq++
	n := 0
	for _, c := range w.cs {
		n = max(n, c.Number)
	}
	w.cs = append(w.cs, observed.Container{ID: fmt.Sprintf("id%d", w.seq), Name: fmt.Sprintf("p-api-%d", n+1), Service: "api", Number: n + 1,
		State: observed.StateRunning, Health: observed.HealthStarting, ConfigHash: hash, Created: w.now, Networks: map[string]string{"p_default": "net"}})
}

// apply carries out ops as the executor and compose would.
func (w *world) apply(d *desired.State, r *Rollouts, ops []plan.Operation) {
	for _, op := range ops {
		r.Begin(op, w.now)
		switch op.Type {
		case plan.OpRemoveContainer:
			w.cs = slices.DeleteFunc(w.cs, func(c observed.Container) bool { return c.ID == op.ContainerID })
		case plan.OpAddReplica:
			cfg := d.Services["api"].Config
			if op.Config != nil {
				cfg = *op.Config
				if cfg.Name != op.Service {
					w.t.Fatalf("a rollback's definition is named %q, not %q: compose would not find the service", cfg.Name, op.Service)
				}
			}
			for len(w.cs) < op.Replicas {
				w.add(plan.ExpectedHash(cfg, nil))
			}
		default:
			w.t.Fatalf("unexpected operation %s", op.Type)
		}
	}
}

// tick lets time pass: replicas starting turn healthy or unhealthy.
func (w *world) tick(d time.Duration) {
	w.now = w.now.Add(d)
	for i := range w.cs {
		if w.cs[i].Health == observed.HealthStarting {
			if w.healthy(w.cs[i].ConfigHash) {
				w.cs[i].Health = observed.HealthHealthy
			} else {
				w.cs[i].Health = observed.HealthUnhealthy
			}
		}
	}
}

// run reviews and applies until nothing is left to do, checking after each
// step that the replica count stays within [low, high] and that at most
// parallel new replicas start at once; it returns the records reported.
func (w *world) run(d *desired.State, r *Rollouts, low, high, parallel int) []reconciler.Report {
	var reports []reconciler.Report
	seen := map[string]bool{}
	for range 100 {
		snap := w.snapshot()
		p := plan.Diff(d, snap, plan.Options{}).Plan
		dec := r.Review(reconciler.Review{Desired: d, Snapshot: snap, Service: "api", Plan: p, Now: w.now})
		for _, rep := range dec.Reports {
			if k := string(rep.Reason) + rep.Occurrence + rep.Container; !seen[k] {
				seen[k] = true
				reports = append(reports, rep)
			}
		}
		for _, n := range dec.Apply(p).Nodes {
			if n.Op.Service == "api" && !isStep(n.Op) && (n.Op.Type == plan.OpRecreateContainer || n.Op.Type == plan.OpCreateContainer) {
				w.t.Fatalf("compose's own recreate of api was let through: %+v", n.Op)
			}
		}
		if len(dec.Add) == 0 && dec.RequeueAfter == 0 {
			return reports
		}
		before := len(w.cs)
		w.apply(d, r, dec.Add)
		if added := len(w.cs) - before; added > parallel {
			w.t.Fatalf("%d replicas added at once, parallelism %d", added, parallel)
		}
		if n := len(w.cs); n < low || n > high {
			w.t.Fatalf("%d replicas during the update, want %d..%d", n, low, high)
		}
		w.tick(time.Second)
	}
	w.t.Fatal("the rollout did not end in 100 steps")
	return nil
}

func reasons(reports []reconciler.Report) []string {
	var out []string
	for _, r := range reports {
		out = append(out, string(r.Reason))
	}
	return out
}

func hashes(w *world) map[string]int {
	out := map[string]int{}
	for _, c := range w.cs {
		out[c.ConfigHash]++
	}
	return out
}

func TestARollingUpdateReplacesReplicasInBatches(t *testing.T) {
	tests := []struct {
		name      string
		update    string
		low, high int
		parallel  int
	}{
		{"default: one at a time, stop-first", "", 2, 3, 1},
		{"start-first: never below the desired count", "      update_config: {order: start-first}\n", 3, 4, 1},
		{"two at a time, stop-first", "      update_config: {parallelism: 2}\n", 1, 3, 2},
		{"all at once (parallelism 0)", "      update_config: {parallelism: 0}\n", 0, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d1, d2 := load(t, api("1", tt.update)), load(t, api("2", tt.update))
			h1, h2 := plan.ExpectedHash(d1.Services["api"].Config, nil), plan.ExpectedHash(d2.Services["api"].Config, nil)
			w := &world{t: t, now: time.Unix(1000, 0), healthy: func(string) bool { return true }}
			for range 3 {
				w.add(h1)
			}
			w.tick(time.Second)
			r, err := New(nil, &memStore{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Remember(d1)
			r.Remember(d2)
			got := reasons(w.run(d2, r, tt.low, tt.high, tt.parallel))
			if h := hashes(w); h[h2] != 3 || len(h) != 1 {
				t.Errorf("after the update: %v, want 3 replicas of the new definition", h)
			}
			if got[0] != string(record.RolloutStarted) || got[len(got)-1] != string(record.RolloutComplete) || !slices.Contains(got, string(record.RolloutStep)) {
				t.Errorf("reports %v: want RolloutStarted, steps, RolloutComplete", got)
			}
		})
	}
}

func TestAFailedUpdateIsRolledBackAndNotRetried(t *testing.T) {
	const update = "      update_config: {failure_action: rollback}\n"
	d1, d2 := load(t, api("1", update)), load(t, api("2", update))
	h1, h2 := plan.ExpectedHash(d1.Services["api"].Config, nil), plan.ExpectedHash(d2.Services["api"].Config, nil)
	w := &world{t: t, now: time.Unix(1000, 0), healthy: func(h string) bool { return h != h2 }}
	for range 3 {
		w.add(h1)
	}
	w.tick(time.Second)
	store := &memStore{}
	r, _ := New(nil, store, nil)
	r.Remember(d1)
	r.Remember(d2)
	got := reasons(w.run(d2, r, 2, 3, 1))
	if h := hashes(w); h[h1] != 3 || len(h) != 1 {
		t.Errorf("after the rollback: %v, want 3 replicas of the previous definition", h)
	}
	for _, want := range []record.Reason{record.RolloutStarted, record.ReplicaFailed, record.RollbackStarted, record.RolledBack} {
		if !slices.Contains(got, string(want)) {
			t.Errorf("reports %v lack %s", got, want)
		}
	}
	// a daemon started afresh from the same state file does not try the
	// rejected definition again, and says the service is rolled back
	r2, err := New(nil, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := w.snapshot()
	p := plan.Diff(d2, snap, plan.Options{}).Plan
	dec := r2.Review(reconciler.Review{Desired: d2, Snapshot: snap, Service: "api", Plan: p, Now: w.now})
	if len(dec.Add) > 0 || len(dec.Apply(p).Nodes) > 0 {
		t.Errorf("the rejected definition is tried again: adds %v, plan %v", dec.Add, dec.Apply(p).Nodes)
	}
	st := plan.Status(d2, snap, plan.Diff(d2, snap, plan.Options{}))
	r2.Annotate(&st, d2, w.now)
	if s := st.Services[0]; s.Sync != plan.OutOfSync || !strings.Contains(s.Reason, "rolled back") {
		t.Errorf("status %s %q: want OutOfSync, rolled back", s.Sync, s.Reason)
	}
	// the next edit is a new update
	d3 := load(t, api("3", update))
	p = plan.Diff(d3, snap, plan.Options{}).Plan
	if dec := r2.Review(reconciler.Review{Desired: d3, Snapshot: snap, Service: "api", Plan: p, Now: w.now}); len(dec.Add) == 0 {
		t.Error("an edit after a rollback is not rolled out")
	}
}

func TestAFailedUpdatePausesByDefault(t *testing.T) {
	d1, d2 := load(t, api("1", "")), load(t, api("2", ""))
	h1, h2 := plan.ExpectedHash(d1.Services["api"].Config, nil), plan.ExpectedHash(d2.Services["api"].Config, nil)
	w := &world{t: t, now: time.Unix(1000, 0), healthy: func(h string) bool { return h != h2 }}
	for range 3 {
		w.add(h1)
	}
	w.tick(time.Second)
	r, _ := New(nil, nil, nil)
	r.Remember(d1)
	got := reasons(w.run(d2, r, 2, 3, 1))
	if !slices.Contains(got, string(record.RolloutPaused)) || slices.Contains(got, string(record.RollbackStarted)) {
		t.Errorf("reports %v: want RolloutPaused, no rollback", got)
	}
	if h := hashes(w); h[h1] != 2 || h[h2] != 1 {
		t.Errorf("paused with %v, want two old replicas serving and the failed new one", h)
	}
}

func TestServicesWithoutARollingPolicyAreLeftToCompose(t *testing.T) {
	d := load(t, "services:\n  api:\n    image: app\n    environment: {V: \"2\"}\n")
	w := &world{t: t, now: time.Unix(1000, 0)}
	w.add("old-hash")
	r, _ := New(nil, nil, nil)
	snap := w.snapshot()
	p := plan.Diff(d, snap, plan.Options{}).Plan
	dec := r.Review(reconciler.Review{Desired: d, Snapshot: snap, Service: "api", Plan: p, Now: w.now})
	if len(dec.Hold)+len(dec.Add)+len(dec.Reports) > 0 {
		t.Errorf("a single replica without update_config: %+v, want compose's own recreate", dec)
	}
}

func TestAStepCutShortIsTakenUp(t *testing.T) {
	const update = "      update_config: {order: start-first}\n"
	d1, d2 := load(t, api("1", update)), load(t, api("2", update))
	h1, h2 := plan.ExpectedHash(d1.Services["api"].Config, nil), plan.ExpectedHash(d2.Services["api"].Config, nil)
	w := &world{t: t, now: time.Unix(1000, 0), healthy: func(string) bool { return true }}
	for range 3 {
		w.add(h1)
	}
	w.tick(time.Second)
	// the daemon was killed in compose's up: the new replica was created,
	// not started, and an hour went by
	w.add(h2)
	w.cs[3].State, w.cs[3].Health = observed.StateCreated, ""
	w.now = w.now.Add(time.Hour)
	r, _ := New(nil, nil, nil)
	r.Remember(d1)
	snap := w.snapshot()
	p := plan.Diff(d2, snap, plan.Options{}).Plan
	dec := r.Review(reconciler.Review{Desired: d2, Snapshot: snap, Service: "api", Plan: p, Now: w.now})
	if len(dec.Add) != 1 || dec.Add[0].Type != plan.OpStartContainer || dec.Add[0].ContainerID != w.cs[3].ID {
		t.Fatalf("adds %+v: want the created replica started", dec.Add)
	}
	for _, n := range dec.Apply(p).Nodes {
		if n.Op.Type == plan.OpStartContainer && !isStep(n.Op) {
			t.Errorf("the plan's own start was let through beside the rollout's: %+v", n.Op)
		}
	}
	// started, it has the monitor from its start, not from its creation
	w.cs[3].State, w.cs[3].Health, w.cs[3].Up = observed.StateRunning, observed.HealthStarting, time.Second
	snap = w.snapshot()
	dec = r.Review(reconciler.Review{Desired: d2, Snapshot: snap, Service: "api", Plan: plan.Diff(d2, snap, plan.Options{}).Plan, Now: w.now})
	if len(dec.Add) != 0 || dec.RequeueAfter != Poll || slices.ContainsFunc(dec.Reports, func(r reconciler.Report) bool { return r.Reason == record.ReplicaFailed }) {
		t.Errorf("a replica started a second ago: %+v; want a wait", dec)
	}
}

func isStep(op plan.Operation) bool { _, ok := stepOf(op); return ok }
