package swarmloop

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
)

func u64(n uint64) *uint64 { return &n }

// spec is a service as docker/cli's conversion gives it.
func spec(name string, env ...string) swarm.ServiceSpec {
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "p_" + name, Labels: map[string]string{convert.LabelNamespace: "p", convert.LabelImage: "img:1"}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: "img:1", Env: env, Labels: map[string]string{convert.LabelNamespace: "p"}},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "p_default", Aliases: []string{name}}},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{}},
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 1, Order: "start-first"},
		EndpointSpec: &swarm.EndpointSpec{},
	}
}

// stored is spec as the engine keeps it: network IDs, its defaults filled in.
func stored(s swarm.ServiceSpec) swarm.ServiceSpec {
	cs := *s.TaskTemplate.ContainerSpec
	grace := 10 * time.Second
	cs.StopGracePeriod, cs.Isolation = &grace, "default"
	s.TaskTemplate.ContainerSpec = &cs
	s.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "net-id", Aliases: s.TaskTemplate.Networks[0].Aliases}}
	s.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: "any", MaxAttempts: u64(0)}
	s.TaskTemplate.Runtime = "container"
	if s.Mode.Replicated != nil && s.Mode.Replicated.Replicas == nil {
		s.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(1)}
	}
	uc := *s.UpdateConfig
	uc.FailureAction, uc.Monitor = "pause", 5*time.Second
	s.UpdateConfig = &uc
	s.RollbackConfig = &swarm.UpdateConfig{Parallelism: 1, FailureAction: "pause"}
	s.EndpointSpec = &swarm.EndpointSpec{Mode: "vip"}
	return s
}

func snapWith(services ...swarm.Service) *swarmstate.Snapshot {
	snap := &swarmstate.Snapshot{
		Services: map[string]swarm.Service{},
		Tasks:    map[string][]swarm.Task{},
		Networks: map[string]network.Summary{"p_default": {Network: network.Network{Name: "p_default", ID: "net-id"}}},
		Configs:  map[string]swarm.Config{},
		Secrets:  map[string]swarm.Secret{},
	}
	for _, s := range services {
		snap.Services[strings.TrimPrefix(s.Spec.Name, "p_")] = s
	}
	return snap
}

func running(spec swarm.ServiceSpec, run, want uint64) swarm.Service {
	return swarm.Service{ID: "id-" + spec.Name, Spec: spec, ServiceStatus: &swarm.ServiceStatus{RunningTasks: run, DesiredTasks: want}}
}

func TestDifferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		have func(swarm.ServiceSpec) swarm.ServiceSpec
		want []string
	}{
		{"as the engine stores it", func(s swarm.ServiceSpec) swarm.ServiceSpec { return s }, nil},
		{"docker service scale", func(s swarm.ServiceSpec) swarm.ServiceSpec {
			s.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(4)}
			return s
		}, []string{"Mode.Replicated.Replicas"}},
		{"an environment variable added", func(s swarm.ServiceSpec) swarm.ServiceSpec {
			s.TaskTemplate.ContainerSpec.Env = append(s.TaskTemplate.ContainerSpec.Env, "HAND=1")
			return s
		}, []string{"TaskTemplate.ContainerSpec.Env"}},
		{"a label added", func(s swarm.ServiceSpec) swarm.ServiceSpec {
			s.Labels = map[string]string{convert.LabelNamespace: "p", convert.LabelImage: "img:1", "hand": "1"}
			return s
		}, []string{"Labels"}},
		{"a mount added where the file has none", func(s swarm.ServiceSpec) swarm.ServiceSpec {
			s.TaskTemplate.ContainerSpec.Mounts = []mount.Mount{{Type: "volume", Target: "/x"}}
			return s
		}, []string{"TaskTemplate.ContainerSpec.Mounts"}},
		{"another image", func(s swarm.ServiceSpec) swarm.ServiceSpec {
			s.TaskTemplate.ContainerSpec.Image = "img:2"
			return s
		}, []string{"TaskTemplate.ContainerSpec.Image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := spec("api", "A=1")
			have := tc.have(stored(spec("api", "A=1")))
			// fresh copies: have's edits must not reach want
			got := Differences(asTheEngineStores(want, snapWith()), have)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	db, api := spec("db"), spec("api")
	healthy := []desired.Dependency{{Service: "db", Condition: "service_healthy", Required: true}}
	hash := SpecHash(api)
	scaled := stored(api)
	scaled.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(3)}
	rolledBack := running(stored(spec("api", "OLD=1")), 1, 1)
	rolledBack.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, Message: "update rolled back due to failure"}
	for _, tc := range []struct {
		name   string
		snap   *swarmstate.Snapshot
		deps   []desired.Dependency
		mem    Memory
		action Action
		why    string
		byHand bool
	}{
		{"not created, dependency not created", snapWith(), healthy, Memory{}, Wait, "waiting for db (service_healthy): not created", false},
		{"not created, dependency starting", snapWith(running(stored(db), 0, 1)), healthy, Memory{}, Wait, "0/1 tasks running and healthy", false},
		{"not created, dependency healthy", snapWith(running(stored(db), 1, 1)), healthy, Memory{}, Create, "not created", false},
		{"an optional dependency is not waited for", snapWith(), []desired.Dependency{{Service: "db", Condition: "service_healthy"}}, Memory{}, Create, "not created", false},
		{"in sync", snapWith(running(stored(api), 1, 1)), nil, Memory{}, Nothing, "", false},
		{"scaled, file never applied by this reconcile", snapWith(running(scaled, 3, 3)), nil, Memory{}, Update, "differs from the compose file: Mode.Replicated.Replicas", false},
		{"scaled after reconcile applied it", snapWith(running(scaled, 3, 3)), nil, Memory{Applied: hash}, Update, "changed by hand", true},
		{"the engine's own form of what reconcile applied", snapWith(running(scaled, 3, 3)), nil, Memory{Applied: hash, Settled: SpecJSON(scaled)}, Nothing, "", false},
		// the file changed since reconcile's update, the service did not:
		// that is a change to make, not the engine's form
		{"the file changed after reconcile's own update", snapWith(running(scaled, 3, 3)), nil, Memory{Applied: "an older definition", Settled: SpecJSON(scaled)}, Update, "differs from the compose file: Mode.Replicated.Replicas", false},
		{"rolled back by Swarm from what reconcile applied", snapWith(rolledBack), nil, Memory{Applied: hash}, Held, "Swarm rolled back this definition (update rolled back due to failure)", false},
		{"rolled back from an older definition: the new one is tried", snapWith(rolledBack), nil, Memory{Applied: "older"}, Update, "differs from the compose file", false},
		{"its configs refused by the service's check: held", snapWith(running(scaled, 3, 3)), nil, Memory{Rejected: hash}, Held, HeldByCheck, false},
		{"a definition refused before, then changed: tried", snapWith(running(scaled, 3, 3)), nil, Memory{Rejected: "an older definition"}, Update, "differs from the compose file", false},
		{"restart: true, the replaced dependency not healthy yet", snapWith(running(stored(api), 1, 1), running(stored(db), 0, 1)), nil, Memory{Cascade: "db"}, Wait, "restart: true: waiting for db, whose tasks were replaced: 0/1", false},
		{"restart: true, the replaced dependency healthy again", snapWith(running(stored(api), 1, 1), running(stored(db), 1, 1)), nil, Memory{Cascade: "db"}, Update, "restart: true: db's tasks were replaced", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := Decide("api", api, tc.deps, tc.snap, tc.mem)
			if step.Action != tc.action || !strings.Contains(step.Why, tc.why) || step.ByHand != tc.byHand {
				t.Errorf("got %s %q (by hand %v), want %s %q (by hand %v)", step.Action, step.Why, step.ByHand, tc.action, tc.why, tc.byHand)
			}
			// a cascade's update changes nothing but the force counter:
			// Swarm replaces the tasks
			if tc.mem.Cascade != "" && step.Action == Update {
				have := tc.snap.Services["api"].Spec
				if step.Spec.TaskTemplate.ForceUpdate != have.TaskTemplate.ForceUpdate+1 {
					t.Errorf("force counter %d, service's %d", step.Spec.TaskTemplate.ForceUpdate, have.TaskTemplate.ForceUpdate)
				}
				if d := Differences(asTheEngineStores(step.Spec, tc.snap), have); !slices.Equal(d, []string{"TaskTemplate.ForceUpdate"}) {
					t.Errorf("a cascade changes %v", d)
				}
			}
		})
	}
}

// TestAdopt: a hand change to an adopted field is kept, and a hand change
// beside it is still put back, with the adopted value carried in the
// update; the hash stays the file's.
func TestAdopt(t *testing.T) {
	api := spec("api", "A=1")
	scaled := stored(api)
	scaled.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(3)}
	scaledAndEnv := stored(api)
	scaledAndEnv.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(3)}
	scaledAndEnv.TaskTemplate.ContainerSpec.Env = []string{"A=1", "HAND=1"}
	for _, tc := range []struct {
		name    string
		have    swarm.ServiceSpec
		adopt   []string
		action  Action
		adopted []string
		changed []string
	}{
		{"a hand scale, replicas adopted", scaled, []string{"Mode.Replicated.Replicas"}, Nothing, []string{"Mode.Replicated.Replicas"}, nil},
		{"a hand scale, a parent path adopted", scaled, []string{"Mode"}, Nothing, []string{"Mode.Replicated.Replicas"}, nil},
		{"a hand scale, only env adopted", scaled, []string{"TaskTemplate.ContainerSpec.Env"}, Update, nil, []string{"Mode.Replicated.Replicas"}},
		{"a hand scale and env, replicas adopted", scaledAndEnv, []string{"Mode.Replicated.Replicas"}, Update, []string{"Mode.Replicated.Replicas"}, []string{"TaskTemplate.ContainerSpec.Env"}},
		{"in sync, adopted fields as the file says", stored(api), []string{"Mode.Replicated.Replicas"}, Nothing, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapWith(running(tc.have, 3, 3))
			step := Decide("api", api, nil, snap, Memory{}, tc.adopt...)
			if step.Action != tc.action || !slices.Equal(step.Adopted, tc.adopted) || !slices.Equal(step.Changed, tc.changed) {
				t.Errorf("got %s, adopted %v, changed %v; want %s, %v, %v", step.Action, step.Adopted, step.Changed, tc.action, tc.adopted, tc.changed)
			}
			if step.Hash != SpecHash(api) {
				t.Error("the hash is not the file's definition")
			}
			if step.Action == Update && len(tc.adopted) > 0 {
				if r := step.Spec.Mode.Replicated; r == nil || r.Replicas == nil || *r.Replicas != 3 {
					t.Errorf("the update does not keep the hand's replicas: %+v", step.Spec.Mode)
				}
				if env := step.Spec.TaskTemplate.ContainerSpec.Env; !slices.Equal(env, []string{"A=1"}) {
					t.Errorf("the update keeps the hand's env %v", env)
				}
			}
		})
	}
}

func TestReadyAndConverged(t *testing.T) {
	job := spec("migrate")
	job.Mode = swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{}}
	task := func(slot int, state swarm.TaskState, at time.Time) swarm.Task {
		return swarm.Task{Slot: slot, Status: swarm.TaskStatus{State: state}, Meta: swarm.Meta{CreatedAt: at}}
	}
	t0 := time.Unix(1000, 0)
	updating := running(stored(spec("db")), 1, 1)
	updating.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateUpdating}
	for _, tc := range []struct {
		name    string
		snap    func() *swarmstate.Snapshot
		service string
		cond    string
		ready   bool
	}{
		{"all tasks running", func() *swarmstate.Snapshot { return snapWith(running(stored(spec("db")), 2, 2)) }, "db", "service_healthy", true},
		{"one of two", func() *swarmstate.Snapshot { return snapWith(running(stored(spec("db")), 1, 2)) }, "db", "service_healthy", false},
		{"being updated", func() *swarmstate.Snapshot { return snapWith(updating) }, "db", "service_started", false},
		{"a job whose newest task completed", func() *swarmstate.Snapshot {
			s := snapWith(running(job, 0, 1))
			s.Tasks["migrate"] = []swarm.Task{task(1, swarm.TaskStateFailed, t0), task(1, swarm.TaskStateComplete, t0.Add(time.Second))}
			return s
		}, "migrate", "service_completed_successfully", true},
		{"a job whose newest task failed", func() *swarmstate.Snapshot {
			s := snapWith(running(job, 0, 1))
			s.Tasks["migrate"] = []swarm.Task{task(1, swarm.TaskStateComplete, t0), task(1, swarm.TaskStateFailed, t0.Add(time.Second))}
			return s
		}, "migrate", "service_completed_successfully", false},
		{"a job that has not run", func() *swarmstate.Snapshot { return snapWith(running(job, 0, 1)) }, "migrate", "service_completed_successfully", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, why := Ready(tc.snap(), tc.service, tc.cond); ok != tc.ready {
				t.Errorf("ready %v (%s), want %v", ok, why, tc.ready)
			}
		})
	}
	// a held step is a failure for --once; a job is converged once completed
	held := Step{Service: "api", Action: Held, Why: "rolled back"}
	if ok, failed, _ := Converged(held, snapWith()); ok || !failed {
		t.Errorf("a held service: converged %v failed %v", ok, failed)
	}
	s := snapWith(running(job, 0, 1))
	s.Tasks["migrate"] = []swarm.Task{task(1, swarm.TaskStateComplete, t0)}
	if ok, failed, why := Converged(Step{Service: "migrate"}, s); !ok || failed {
		t.Errorf("a completed job: converged %v failed %v (%s)", ok, failed, why)
	}
}

func TestPlace(t *testing.T) {
	cfg := Object{Kind: "config", Name: "p_app", Data: []byte("v2")}
	sec := Object{Kind: "secret", Name: "p_pw", Data: []byte("s2")}
	versioned := cfg.Name + "-" + cfg.Hash()
	for _, tc := range []struct {
		name string
		o    Object
		snap func(*swarmstate.Snapshot)
		want Placement
	}{
		{"first deploy: stack deploy's name", cfg, func(*swarmstate.Snapshot) {}, Placement{Name: "p_app", Create: true}},
		{"same data", cfg, func(s *swarmstate.Snapshot) {
			s.Configs["p_app"] = swarm.Config{Spec: swarm.ConfigSpec{Data: []byte("v2")}}
		}, Placement{Name: "p_app"}},
		{"changed data: a new version", cfg, func(s *swarmstate.Snapshot) {
			s.Configs["p_app"] = swarm.Config{Spec: swarm.ConfigSpec{Data: []byte("v1")}}
		}, Placement{Name: versioned, Create: true}},
		{"changed data, version there", cfg, func(s *swarmstate.Snapshot) {
			s.Configs["p_app"] = swarm.Config{Spec: swarm.ConfigSpec{Data: []byte("v1")}}
			s.Configs[versioned] = swarm.Config{Spec: swarm.ConfigSpec{Data: []byte("v2")}}
		}, Placement{Name: versioned}},
		// the first version removed once unused: its free name must not
		// draw the services onto a copy of the data they already have
		{"the versioned one in use, the first removed", cfg, func(s *swarmstate.Snapshot) {
			s.Configs[versioned] = swarm.Config{Spec: swarm.ConfigSpec{Data: []byte("v2")}}
		}, Placement{Name: versioned}},
		{"a secret's version in use, the first removed", sec, func(s *swarmstate.Snapshot) {
			s.Secrets["p_pw-"+sec.Hash()] = swarm.Secret{}
		}, Placement{Name: "p_pw-" + sec.Hash()}},
		{"a secret stack deploy made: taken as is", sec, func(s *swarmstate.Snapshot) { s.Secrets["p_pw"] = swarm.Secret{} }, Placement{Name: "p_pw"}},
		{"a secret reconcile made with other data", sec, func(s *swarmstate.Snapshot) {
			s.Secrets["p_pw"] = swarm.Secret{Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Labels: map[string]string{LabelDataHash: "old"}}}}
		}, Placement{Name: "p_pw-" + sec.Hash(), Create: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := snapWith()
			tc.snap(s)
			if got := Place(tc.o, s); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
