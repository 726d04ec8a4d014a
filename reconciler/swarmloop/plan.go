package swarmloop

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/api/types/swarm"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
)

// Action is what a step does to a service.
type Action string

// The actions of a step.
const (
	Nothing Action = ""
	// Wait: a dependency is not ready; nothing is done yet.
	Wait Action = "wait"
	// Held: Swarm rolled the service back (or paused its update) from the
	// spec it would be given: it is not tried again until the file changes.
	Held   Action = "held"
	Create Action = "create"
	Update Action = "update"
)

// Step is what one service needs, decided from a snapshot: pure, it
// changes nothing.
type Step struct {
	Service string
	Action  Action
	// Why says it in a line: the changed fields, the dependency waited for.
	Why string
	// Changed are the spec's fields that differ (Update).
	Changed []string
	// Spec is the spec to create or update to, Version the version an
	// update is made against.
	Spec    swarm.ServiceSpec
	ID      string
	Version swarm.Version
	// Hash names the definition (SpecHash of the converted spec), for the
	// controller to remember what it applied.
	Hash string
	// Rejected: held because the service's reload check refused the
	// definition's configs or secrets (Memory.Rejected).
	Rejected bool
	// Adopted are the fields (x-reconcile.swarm.adopt) whose hand values
	// differ from the file's and are kept.
	Adopted []string
	// ByHand is true when the service differs from a definition reconcile
	// applied and the file has not changed since: someone ran docker
	// service update or scale.
	ByHand bool
}

// Memory is what the controller knows of its own actions on a service.
type Memory struct {
	// Applied is the hash of the definition reconcile last created or
	// updated the service to, "" before it has.
	Applied string
	// Settled is the spec the engine stored for it then (SpecJSON): while
	// the service's spec is still that, nobody changed it.
	Settled string
	// Rejected is the hash of a definition whose configs or secrets the
	// service's reload check refused: held until the file changes.
	Rejected string
	// Cascade names a dependency (depends_on … restart: true) reconcile
	// replaced the tasks of: once it is healthy again, this service's
	// tasks are replaced too (a forced update), as compose restarts the
	// dependents of a service it restarts.
	Cascade string
}

// SpecJSON is a stored spec as compared with Memory.Settled.
func SpecJSON(spec swarm.ServiceSpec) string {
	b, _ := json.Marshal(spec)
	return string(b)
}

// asTheEngineStores gives want the forms the engine stores it in, for
// comparing: networks by ID where the stack's network exists (the spec
// names them), and the one replica a replicated service without
// deploy.replicas gets (so a hand scale of it is seen).
func asTheEngineStores(want swarm.ServiceSpec, snap *swarmstate.Snapshot) swarm.ServiceSpec {
	if len(want.TaskTemplate.Networks) > 0 {
		nets := slices.Clone(want.TaskTemplate.Networks)
		for i, n := range nets {
			if nw, ok := snap.Networks[n.Target]; ok {
				nets[i].Target = nw.ID
			}
		}
		want.TaskTemplate.Networks = nets
	}
	if r := want.Mode.Replicated; r != nil && r.Replicas == nil {
		one := uint64(1)
		want.Mode.Replicated = &swarm.ReplicatedService{Replicas: &one}
	}
	return want
}

// Decide says what service needs: want is its spec as converted now, deps
// its depends_on, mem what reconcile did to it before.
func Decide(service string, want swarm.ServiceSpec, deps []desired.Dependency, snap *swarmstate.Snapshot, mem Memory, adopt ...string) Step {
	// the hash is the file's definition: a hand change kept (adopt) is
	// not a new definition
	step := Step{Service: service, Hash: SpecHash(want)}
	have, exists := snap.Services[service]
	if exists {
		want = asStackDeployUpdates(want, have.Spec)
		if len(adopt) > 0 {
			want, step.Adopted = Adopt(want, have.Spec, adopt, snap)
		}
		step.ID, step.Version = have.ID, have.Version
		step.Changed = Differences(asTheEngineStores(want, snap), have.Spec)
		if len(step.Changed) > 0 && mem.Settled != "" && mem.Settled == SpecJSON(have.Spec) && mem.Applied == step.Hash {
			// untouched since reconcile's own update of this very
			// definition: what still differs is how the engine stores what
			// it was given (a definition changed since is a real change)
			step.Changed = nil
		}
		if len(step.Changed) == 0 && mem.Cascade == "" {
			return step
		}
		if len(step.Changed) > 0 && mem.Rejected == step.Hash {
			step.Action, step.Why, step.Rejected = Held, HeldByCheck, true
			return step
		}
		if len(step.Changed) > 0 && mem.Applied == step.Hash && stoppedUpdate(have) {
			step.Action = Held
			step.Why = fmt.Sprintf("Swarm %s this definition (%s); it is not tried again until the compose file changes",
				stoppedHow(have), have.UpdateStatus.Message)
			return step
		}
		step.ByHand = mem.Applied == step.Hash
	}
	if exists && len(step.Changed) == 0 && mem.Cascade != "" {
		if ok, why := Ready(snap, mem.Cascade, "service_healthy"); !ok {
			step.Action, step.Why = Wait, fmt.Sprintf("restart: true: waiting for %s, whose tasks were replaced: %s", mem.Cascade, why)
			return step
		}
		want.TaskTemplate.ForceUpdate = have.Spec.TaskTemplate.ForceUpdate + 1
		step.Spec, step.Action = want, Update
		step.Why = "restart: true: " + mem.Cascade + "'s tasks were replaced, so this service's are"
		return step
	}
	for _, d := range deps {
		if ok, why := Ready(snap, d.Service, d.Condition); !ok {
			if !d.Required {
				continue
			}
			step.Action, step.Why = Wait, fmt.Sprintf("waiting for %s (%s): %s", d.Service, d.Condition, why)
			return step
		}
	}
	step.Spec = want
	if !exists {
		step.Action, step.Why = Create, "not created"
		return step
	}
	step.Action = Update
	step.Why = "differs from the compose file: " + strings.Join(step.Changed, ", ")
	if step.ByHand {
		step.Why = "changed by hand since reconcile applied the compose file: " + strings.Join(step.Changed, ", ")
	}
	return step
}

// Adopt gives want the values have holds where they differ at or below a
// path adopt names, and says which paths those are: those hand changes are
// kept rather than reverted. A value have does not set is taken out of
// want.
func Adopt(want, have swarm.ServiceSpec, adopt []string, snap *swarmstate.Snapshot) (swarm.ServiceSpec, []string) {
	var kept []string
	for _, changed := range Differences(asTheEngineStores(want, snap), have) {
		for _, p := range adopt {
			if changed == p || strings.HasPrefix(changed, p+".") {
				kept = append(kept, changed)
				break
			}
		}
	}
	if len(kept) == 0 {
		return want, nil
	}
	// only the paths that differ are taken: a path adopt names is not
	// copied whole where the hand changed something else below or beside it
	w, h := generic(want).(map[string]any), generic(have).(map[string]any)
	for _, p := range kept {
		copyPath(w, h, strings.Split(p, "."))
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("a service spec that does not marshal: %v", err))
	}
	var out swarm.ServiceSpec
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("a service spec that does not unmarshal: %v", err))
	}
	return out, kept
}

// copyPath sets dst's value at path to src's, or removes it where src has
// none.
func copyPath(dst, src map[string]any, path []string) {
	key := path[0]
	if len(path) == 1 {
		if v, ok := src[key]; ok {
			dst[key] = v
		} else {
			delete(dst, key)
		}
		return
	}
	sub, ok := src[key].(map[string]any)
	if !ok {
		delete(dst, key)
		return
	}
	d, ok := dst[key].(map[string]any)
	if !ok {
		d = map[string]any{}
		dst[key] = d
	}
	copyPath(d, sub, path[1:])
}

// HeldByCheck is why a definition whose configs its check refused waits.
const HeldByCheck = "its reload check refused the new configs or secrets; held until the files change"

// ObjectsChanged: the update gives the service other configs or secrets.
func (s Step) ObjectsChanged() bool {
	return slices.ContainsFunc(s.Changed, func(p string) bool {
		return strings.HasPrefix(p, "TaskTemplate.ContainerSpec.Configs") || strings.HasPrefix(p, "TaskTemplate.ContainerSpec.Secrets")
	})
}

// stoppedUpdate: Swarm rolled the service's last update back, or paused
// it (update_config.failure_action).
func stoppedUpdate(s swarm.Service) bool {
	if s.UpdateStatus == nil {
		return false
	}
	switch s.UpdateStatus.State {
	case swarm.UpdateStateRollbackCompleted, swarm.UpdateStatePaused, swarm.UpdateStateRollbackPaused:
		return true
	}
	return false
}

func stoppedHow(s swarm.Service) string {
	if s.UpdateStatus.State == swarm.UpdateStatePaused {
		return "paused the update to"
	}
	return "rolled back"
}

// IsJob: the service runs to completion (replicated-job, global-job).
func IsJob(spec swarm.ServiceSpec) bool {
	return spec.Mode.ReplicatedJob != nil || spec.Mode.GlobalJob != nil
}

// Converged says whether service runs as step wants: nothing to do, its
// tasks running (healthy where it has a healthcheck) or, for a job,
// completed; failed is true when Swarm gave up on its definition.
func Converged(step Step, snap *swarmstate.Snapshot) (ok, failed bool, why string) {
	switch step.Action {
	case Held:
		return false, true, step.Why
	case Nothing:
	default:
		return false, false, step.Why
	}
	svc := snap.Services[step.Service]
	if stoppedUpdate(svc) {
		return false, true, fmt.Sprintf("Swarm %s: %s", stoppedHow(svc), svc.UpdateStatus.Message)
	}
	if spent := Spent(snap, step.Service); len(spent) > 0 {
		return false, true, spentWhy(snap, step.Service, spent)
	}
	cond := "service_healthy"
	if IsJob(svc.Spec) {
		cond = "service_completed_successfully"
	}
	ok, why = Ready(snap, step.Service, cond)
	return ok, false, why
}

// asStackDeployUpdates gives want what `docker stack deploy` keeps of an
// existing service when it updates it: the image as the engine pinned it
// (to a digest, from a registry) while the file names the same one, and
// the force-update counter.
func asStackDeployUpdates(want, have swarm.ServiceSpec) swarm.ServiceSpec {
	if want.TaskTemplate.ContainerSpec != nil && have.TaskTemplate.ContainerSpec != nil &&
		want.TaskTemplate.ContainerSpec.Image == have.Labels[convert.LabelImage] {
		cs := *want.TaskTemplate.ContainerSpec
		cs.Image = have.TaskTemplate.ContainerSpec.Image
		want.TaskTemplate.ContainerSpec = &cs
	}
	want.TaskTemplate.ForceUpdate = have.TaskTemplate.ForceUpdate
	return want
}

// Differences lists the fields of want that have differs in, as dotted
// paths. The engine fills in defaults of its own (an endpoint mode, a
// network's ID for its name), so a field want leaves unset is not
// compared; labels, environment and every list are compared whole, so a
// label or a variable added by hand is a difference too.
func Differences(want, have swarm.ServiceSpec) []string {
	w, h := generic(want), generic(have)
	var out []string
	diff("", w, h, &out)
	sort.Strings(out)
	return out
}

func generic(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("a service spec that does not marshal: %v", err))
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("a service spec that does not unmarshal: %v", err))
	}
	return out
}

// wholeMaps are compared key for key both ways: a key in have only is a
// difference.
var wholeMaps = []string{"Labels", "Options", "Sysctls"}

func diff(path string, want, have any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		h, _ := have.(map[string]any)
		last := path[strings.LastIndex(path, ".")+1:]
		if slices.Contains(wholeMaps, last) {
			if !reflect.DeepEqual(w, h) && !(len(w) == 0 && len(h) == 0) {
				*out = append(*out, path)
			}
			return
		}
		for _, k := range sortedKeys(w) {
			diff(join(path, k), w[k], h[k], out)
		}
		// a setting the file leaves out and someone set by hand (an
		// environment variable, a mount, a constraint) is a difference,
		// but for the ones the engine fills in with its defaults
		for _, k := range sortedKeys(h) {
			if _, ok := w[k]; ok || empty(h[k]) || engineDefault(join(path, k)) {
				continue
			}
			*out = append(*out, join(path, k))
		}
	case []any:
		h, _ := have.([]any)
		if len(w) != len(h) {
			*out = append(*out, path)
			return
		}
		for i := range w {
			var sub []string
			diff(path, w[i], h[i], &sub)
			if len(sub) > 0 {
				*out = append(*out, path)
				return
			}
		}
	case nil:
	default:
		// a zero the spec spells out (an update_config's failure_action
		// left empty) is the engine's to default
		if !reflect.DeepEqual(want, have) && !isZero(want) {
			*out = append(*out, path)
		}
	}
}

// engineDefaults are the fields the engine fills in when a spec leaves
// them out: not compared unless the file sets them.
var engineDefaults = []string{
	"TaskTemplate.ContainerSpec.StopGracePeriod",
	"TaskTemplate.ContainerSpec.Isolation",
	"TaskTemplate.RestartPolicy",
	"TaskTemplate.Runtime",
	"TaskTemplate.ForceUpdate",
	"UpdateConfig",
	"RollbackConfig",
	"EndpointSpec.Mode",
	"Mode.ReplicatedJob.MaxConcurrent",
	"Mode.ReplicatedJob.TotalCompletions",
}

// engineDefault: path is one of engineDefaults or under one (an update
// config's failure_action, when the file sets only its parallelism).
func engineDefault(path string) bool {
	for _, d := range engineDefaults {
		if path == d || strings.HasPrefix(path, d+".") {
			return true
		}
	}
	return false
}

// empty: nothing set (a zero, an empty mapping or list).
func empty(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			if !empty(x) {
				return false
			}
		}
		return true
	case []any:
		return len(v) == 0
	}
	return isZero(v)
}

func isZero(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		return v == ""
	}
	return v == nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SpecHash names a spec by its content, to remember one Swarm rolled back.
func SpecHash(spec swarm.ServiceSpec) string {
	spec.TaskTemplate.ForceUpdate = 0
	b, _ := json.Marshal(spec)
	return fmt.Sprintf("%x", sha(b))
}

// Ready says whether service meets condition (a depends_on condition) in
// snap, and if not why.
func Ready(snap *swarmstate.Snapshot, service, condition string) (bool, string) {
	svc, ok := snap.Services[service]
	if !ok {
		return false, "not created"
	}
	if u := svc.UpdateStatus; u != nil {
		switch u.State {
		case swarm.UpdateStateUpdating, swarm.UpdateStateRollbackStarted:
			return false, "being updated"
		case swarm.UpdateStatePaused, swarm.UpdateStateRollbackPaused:
			return false, "its update is paused"
		}
	}
	if condition == "service_completed_successfully" {
		return completed(snap, service)
	}
	st := svc.ServiceStatus
	if st == nil {
		return false, "no task counts yet"
	}
	if st.RunningTasks < st.DesiredTasks || (st.DesiredTasks == 0 && wantsTasks(svc.Spec)) {
		what := "running"
		if condition == "service_healthy" {
			what = "running and healthy"
		}
		return false, fmt.Sprintf("%d/%d tasks %s", st.RunningTasks, st.DesiredTasks, what)
	}
	return true, ""
}

// wantsTasks: a replicated service of zero replicas is ready with none.
func wantsTasks(spec swarm.ServiceSpec) bool {
	if r := spec.Mode.Replicated; r != nil && r.Replicas != nil {
		return *r.Replicas > 0
	}
	return true
}

// completed: every slot's newest task completed (exit 0), none runs.
func completed(snap *swarmstate.Snapshot, service string) (bool, string) {
	newest := map[string]swarm.Task{}
	for _, t := range snap.Tasks[service] {
		key := fmt.Sprintf("%d/%s", t.Slot, t.NodeID)
		if t.Slot != 0 {
			key = fmt.Sprint(t.Slot)
		}
		if cur, ok := newest[key]; !ok || t.Meta.CreatedAt.After(cur.Meta.CreatedAt) {
			newest[key] = t
		}
	}
	if len(newest) == 0 {
		return false, "no task has run"
	}
	done := 0
	for _, t := range newest {
		if t.Status.State == swarm.TaskStateComplete {
			done++
		}
	}
	if done < len(newest) {
		return false, fmt.Sprintf("%d/%d tasks completed", done, len(newest))
	}
	return true, ""
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:8]
}
