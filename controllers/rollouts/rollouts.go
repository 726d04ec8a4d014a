// Package rollouts replaces the replicas of a service whose definition
// changed in batches, as deploy.update_config says (compose ignores it):
// a batch is drained from the load balancers, replaced, and must be healthy
// within monitor before the next; a failed update pauses, goes on, or is
// rolled back to the previous definition (deploy.rollback_config), which
// then stays in force until the compose file changes again.
//
// It is a guard: its Review decides from the plan, the snapshot and what
// it remembers (the update under way, the definitions it has seen), and
// changes nothing; it learns that an update or a rollback began from the
// executor (Begin), and keeps that in the state directory, so that a
// daemon killed half-way resumes or rolls back. Everything else is read
// from the engine afresh on each look: which replicas run which
// definition, which are healthy.
package rollouts

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Store keeps the rollouts across runs of the reconciler.
type Store interface {
	Load() ([]byte, error)
	Save(data []byte) error
}

// The phases of a service's rollout, and the steps an operation can be.
const (
	phaseUpdate   = "update"
	phaseRollback = "rollback"
)

// step is the payload of a rollout's operations (plan.Operation.Payload):
// which step of a rolling update it is, and the config hashes replaced and
// replacing, so that the policy learns what was done from the executor.
type step struct {
	Phase    string
	From, To string
}

// stepOf is op's rollout step, if it is one.
func stepOf(op plan.Operation) (step, bool) {
	st, ok := op.Payload.(step)
	return st, ok
}

// Poll is how soon a service is looked at again while a new replica has
// not said healthy yet (health changes are events, but a monitor running
// out is not).
const Poll = time.Second

// Rollout is where one service's update stands.
type Rollout struct {
	// From is the config hash being replaced; To the one replacing it.
	From  string `json:"from"`
	To    string `json:"to"`
	Phase string `json:"phase"`
	// Why says what made a rollback.
	Why string `json:"why,omitempty"`
}

// state is what the store holds.
type state struct {
	Rollouts map[string]Rollout `json:"rollouts"`
	// Definitions are the service definitions seen, by service and config
	// hash: a rollback recreates the previous one from here. They hold the
	// environment as compose files give it; the file is the user's only.
	Definitions map[string]map[string]json.RawMessage `json:"definitions"`
}

// Rollouts is the rolling-update policy of one project.
type Rollouts struct {
	Clock clock.Clock
	Log   *slog.Logger

	store Store
	mu    sync.Mutex
	st    state
}

// New reads what store holds (nothing when it holds nothing).
func New(clk clock.Clock, store Store, log *slog.Logger) (*Rollouts, error) {
	r := &Rollouts{Clock: clk, Log: log, store: store, st: state{Rollouts: map[string]Rollout{}, Definitions: map[string]map[string]json.RawMessage{}}}
	if store == nil {
		return r, nil
	}
	data, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("loading the rollouts: %w", err)
	}
	if len(data) == 0 {
		return r, nil
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		// an unreadable file must not stop reconciling: an update under
		// way is then taken up again as a new one
		logging.Or(log).Warn("the rollout state cannot be read; starting anew", "error", err)
		return r, nil
	}
	if st.Rollouts != nil {
		r.st.Rollouts = st.Rollouts
	}
	if st.Definitions != nil {
		r.st.Definitions = st.Definitions
	}
	return r, nil
}

// Remember keeps the definition of every service of d, by config hash, so
// that a later update of it can be rolled back; only the definitions a
// rollout may need are kept (the desired one and those being replaced).
func (r *Rollouts) Remember(d *desired.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, name := range d.Order {
		cfg := d.Services[name].Config
		hash := plan.ExpectedHash(cfg, nil)
		defs := r.st.Definitions[name]
		if defs == nil {
			defs = map[string]json.RawMessage{}
			r.st.Definitions[name] = defs
		}
		if _, ok := defs[hash]; ok {
			continue
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			logging.Or(r.Log).Warn("keeping a service definition for rollbacks", "service", name, "error", err)
			continue
		}
		defs[hash] = b
		changed = true
		// the previous definition stays (a rollback's target), older ones go
		keep := map[string]bool{hash: true}
		if ro, ok := r.st.Rollouts[name]; ok {
			keep[ro.From], keep[ro.To] = true, true
		}
		for h := range defs {
			if !keep[h] && len(defs) > 2 {
				delete(defs, h)
			}
		}
	}
	if changed {
		r.save()
	}
}

// definition is the remembered definition of service with config hash.
func (r *Rollouts) definition(service, hash string) (*types.ServiceConfig, bool) {
	r.mu.Lock()
	raw, ok := r.st.Definitions[service][hash]
	r.mu.Unlock()
	if !ok {
		return nil, false
	}
	var cfg types.ServiceConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, false
	}
	cfg.Name = service // not in its JSON form
	return &cfg, true
}

func (r *Rollouts) rollout(service string) (Rollout, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ro, ok := r.st.Rollouts[service]
	return ro, ok
}

// Begin learns from the executor that an update's or a rollback's step
// began: the rollout is under way from then on, and kept.
func (r *Rollouts) Begin(op plan.Operation, _ time.Time) {
	st, ok := stepOf(op)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ro := Rollout{From: st.From, To: st.To, Phase: st.Phase}
	if ro.Phase == phaseRollback {
		ro.Why = op.Cause
	}
	if old, ok := r.st.Rollouts[op.Service]; ok && old == ro {
		return
	}
	r.st.Rollouts[op.Service] = ro
	r.save()
}

// Done is part of the accountant's interface: what a step did is read from
// the engine on the next look.
func (r *Rollouts) Done(plan.Operation, error, time.Time) {}

// save writes the state; the caller holds r.mu. A failed write is logged:
// the update goes on, and a daemon started afresh takes it up from what
// the engine shows.
func (r *Rollouts) save() {
	if r.store == nil {
		return
	}
	b, err := json.Marshal(r.st)
	if err == nil {
		err = r.store.Save(b)
	}
	if err != nil {
		logging.Or(r.Log).Warn("saving the rollout state", "error", err)
	}
}

// view is a service's replicas as a rollout sees them.
type view struct {
	service  *desired.Service
	policy   desired.UpdatePolicy
	phase    string
	from, to string
	// target is the definition replicas are being moved to; nil for the
	// desired one.
	target *types.ServiceConfig
	// cur run the target definition; old are still to replace.
	cur, old []observed.Container
}

// Review decides the next step of a service's rollout.
func (r *Rollouts) Review(in reconciler.Review) reconciler.Decision {
	var dec reconciler.Decision
	s := in.Desired.Services[in.Service]
	if s == nil || !s.Update.Rolling {
		return dec
	}
	byService := in.Snapshot.ByService()
	want := plan.ExpectedHash(s.Config, byService)
	// obsolete: another definition, or the image behind the tag changed
	// (which the plan alone can tell)
	obsolete := map[string]bool{}
	for _, c := range byService[in.Service] {
		if c.ConfigHash != want {
			obsolete[c.ID] = true
		}
	}
	for _, n := range in.Plan.Nodes {
		if n.Op.Service == in.Service && n.Op.Type == plan.OpRecreateContainer && n.Op.Kind == plan.DriftImageChanged {
			obsolete[n.Op.ContainerID] = true
		}
	}
	ro, known := r.rollout(in.Service)
	if known && ro.To != want {
		known = false // the file changed since: a new update
	}
	v := view{service: s, policy: s.Update, phase: phaseUpdate, to: want}
	var containers []observed.Container
	for _, c := range byService[in.Service] {
		if c.State != observed.StateDead {
			containers = append(containers, c)
		}
	}
	switch {
	case known && ro.Phase == phaseRollback:
		v.phase, v.policy, v.from = phaseRollback, s.Rollback, ro.From
		cfg, ok := r.definition(in.Service, ro.From)
		if !ok {
			dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolloutPaused, Stuck: true, Occurrence: want,
				Message: "rolling back: the previous definition is not known any more; the service is left as it is until the file changes"})
			holdRecreates(&dec, in)
			return dec
		}
		v.target = cfg
		for _, c := range containers {
			if c.ConfigHash == ro.From {
				v.cur = append(v.cur, c)
			} else {
				v.old = append(v.old, c)
			}
		}
	case len(obsolete) == 0:
		if !known || ro.Phase != phaseUpdate {
			return dec
		}
		if len(containers) == s.Replicas && allHealthy(s, containers) {
			dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolloutComplete, Occurrence: want, Lasting: true,
				Message: fmt.Sprintf("every replica (%d) runs the new definition, healthy", s.Replicas)})
			return dec
		}
		// the last batch is still coming up (or was all at once); a replica
		// that fails later, past the monitor of the newest, is the restart
		// policy's, not the update's
		var newest time.Time
		for _, c := range containers {
			if c.Created.After(newest) {
				newest = c.Created
			}
		}
		if len(containers) >= s.Replicas && in.Now.Sub(newest) > s.Update.Monitor {
			return dec
		}
		v.from, v.cur = ro.From, containers
	default:
		for _, c := range containers {
			if obsolete[c.ID] {
				v.old = append(v.old, c)
				if v.from == "" {
					v.from = c.ConfigHash
				}
			} else {
				v.cur = append(v.cur, c)
			}
		}
		if !known {
			dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolloutStarted, Occurrence: want,
				Message: fmt.Sprintf("the definition changed: replacing %d replica(s), %s", len(v.old), describe(v.policy))})
		}
	}
	// compose's own up of the service would recreate every replica at
	// once: the rollout adds and removes replicas itself
	holdRecreates(&dec, in)
	r.step(&dec, in, v)
	return dec
}

// step adds the next batch's operations to dec, or says why it waits.
func (r *Rollouts) step(dec *reconciler.Decision, in reconciler.Review, v view) {
	s, p := v.service, v.policy
	now := in.Now
	var pending, failed []observed.Container
	for _, c := range v.cur {
		if c.State == observed.StateCreated {
			// a step cut short (the daemon killed during compose's up):
			// the replica is the update's, started as compose would
			dec.Add = append(dec.Add, plan.Operation{Type: plan.OpStartContainer, ResourceID: plan.ReplicaID(s.Name, c.Number),
				Cause: v.phase + ": starting a replica created by an interrupted step", Service: s.Name, Container: c.Name, ContainerID: c.ID,
				Number: c.Number, StopTimeout: s.StopGracePeriod, Payload: step{Phase: v.phase, From: v.from, To: v.to}})
			for _, n := range in.Plan.Nodes {
				if n.Op.ContainerID == c.ID && n.Op.Type == plan.OpStartContainer {
					dec.Hold = append(dec.Hold, n)
				}
			}
		}
		switch verdict(s, p, c, now, in.Snapshot.TakenAt) {
		case waiting:
			pending = append(pending, c)
		case bad:
			failed = append(failed, c)
		}
	}
	for _, c := range failed {
		dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.ReplicaFailed, Container: c.Name, Occurrence: c.ID,
			Message: fmt.Sprintf("%s (%s) did not become healthy within %s: %s", c.Name, v.phase, p.Monitor, describeState(c))})
	}
	if len(failed) > 0 && v.phase == phaseUpdate && float64(len(failed))/float64(max(s.Replicas, 1)) > p.MaxFailureRatio {
		switch p.FailureAction {
		case desired.FailureContinue:
			// the failed replicas are left to the restart policy
		case desired.FailureRollback:
			if v.from == v.to {
				dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolloutPaused, Stuck: true, Occurrence: v.to,
					Message: "the update failed, and only the image behind the tag changed: there is no previous definition to go back to; paused until the file changes"})
				return
			}
			if _, ok := r.definition(s.Name, v.from); !ok {
				dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolloutPaused, Stuck: true, Occurrence: v.to,
					Message: "the update failed, and the previous definition is not known (this reconciler never ran it): paused until the file changes"})
				return
			}
			why := fmt.Sprintf("%d of %d new replica(s) failed (max_failure_ratio %g)", len(failed), s.Replicas, p.MaxFailureRatio)
			dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RollbackStarted, Occurrence: v.to,
				Message: why + ": rolling back to the previous definition, " + describe(s.Rollback)})
			// the rollback's first step: the failed replicas go
			for _, c := range failed {
				dec.Add = append(dec.Add, removal(s, c, phaseRollback, v.from, v.to, "rolling back: "+why))
			}
			return
		default:
			dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolloutPaused, Stuck: true, Occurrence: v.to,
				Message: fmt.Sprintf("%d of %d new replica(s) failed: paused (failure_action pause) until they turn healthy or the file changes", len(failed), s.Replicas)})
			return
		}
	}
	if len(failed) > 0 && v.phase == phaseRollback {
		// replicas of the previous definition that fail are the restart
		// policy's: the rollback goes on (failure_action continue)
		failed = nil
	}
	if len(pending) > 0 {
		dec.Later(Poll)
		return
	}
	if len(dec.Add) > 0 {
		return // the interrupted step's replicas start first
	}
	// the delay between batches counts from the last batch's creation
	if p.Delay > 0 {
		var newest time.Time
		for _, c := range v.cur {
			if c.Created.After(newest) {
				newest = c.Created
			}
		}
		if wait := newest.Add(p.Delay).Sub(now); wait > 0 && len(v.old) > 0 {
			dec.Later(wait)
			return
		}
	}
	total, n := len(v.cur)+len(v.old), s.Replicas
	batch := p.Parallelism
	if batch <= 0 {
		batch = max(len(v.old), 1) // Swarm's 0: all at once
	}
	sortOld(v.old)
	switch {
	case v.phase == phaseRollback && len(v.old) == 0 && total >= n:
		dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolledBack, Stuck: true, Occurrence: v.to,
			Message: fmt.Sprintf("the service runs the previous definition again (%d replica(s)); the new one is not tried again until the file changes", len(v.cur))})
	case p.Order == desired.StartFirst && len(v.old) > 0 && total <= n:
		k := min(batch, len(v.old))
		dec.Add = append(dec.Add, addition(s, v, total+k, fmt.Sprintf("%s: starting %d new replica(s) before stopping old ones (%d/%d done)", v.phase, k, len(v.cur), n)))
	case total > n && len(v.old) > 0:
		for _, c := range v.old[:min(total-n, len(v.old))] {
			dec.Add = append(dec.Add, removal(s, c, v.phase, v.from, v.to, fmt.Sprintf("%s: replaced (%d/%d done)", v.phase, len(v.cur), n)))
		}
	case total < n:
		dec.Add = append(dec.Add, addition(s, v, n, fmt.Sprintf("%s: replacing (%d/%d done)", v.phase, len(v.cur), n)))
	case len(v.old) > 0: // stop-first
		k := min(batch, len(v.old))
		for _, c := range v.old[:k] {
			dec.Add = append(dec.Add, removal(s, c, v.phase, v.from, v.to, fmt.Sprintf("%s: stopping %s for its replacement (%d/%d done)", v.phase, c.Name, len(v.cur), n)))
		}
	}
	if len(dec.Add) > 0 {
		dec.Reports = append(dec.Reports, reconciler.Report{Reason: record.RolloutStep, Occurrence: fmt.Sprintf("%s/%d/%d", v.phase, len(v.cur), total),
			Message: dec.Add[0].Cause})
	}
}

// holdRecreates holds the plan's own bring-up of the service by compose's
// up, which would recreate every obsolete replica at once, and its removal
// of replicas beyond the count, which would stop an old replica before its
// successor is healthy: while a rollout runs, it alone adds and removes.
func holdRecreates(dec *reconciler.Decision, in reconciler.Review) {
	for _, n := range in.Plan.Nodes {
		if _, ours := stepOf(n.Op); n.Op.Service != in.Service || ours {
			continue
		}
		switch n.Op.Type {
		case plan.OpRecreateContainer, plan.OpCreateContainer, plan.OpRemoveContainer:
			dec.Hold = append(dec.Hold, n)
		}
	}
}

func removal(s *desired.Service, c observed.Container, phase, from, to, cause string) plan.Operation {
	return plan.Operation{Type: plan.OpRemoveContainer, ResourceID: plan.ReplicaID(s.Name, c.Number), Cause: cause,
		Service: s.Name, Container: c.Name, ContainerID: c.ID, Number: c.Number, StopTimeout: s.StopGracePeriod,
		Payload: step{Phase: phase, From: from, To: to}}
}

func addition(s *desired.Service, v view, replicas int, cause string) plan.Operation {
	return plan.Operation{Type: plan.OpAddReplica, ResourceID: "service:" + s.Name, Cause: cause, Service: s.Name,
		Replicas: replicas, Config: v.target, StopTimeout: s.StopGracePeriod,
		Payload: step{Phase: v.phase, From: v.from, To: v.to}}
}

// sortOld orders the replicas to replace: the highest number first, as
// compose scales down.
func sortOld(cs []observed.Container) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Number > cs[j].Number })
}

// health verdicts on a replica of the target definition.
const (
	ok = iota
	waiting
	bad
)

// verdict says whether a new replica is done (healthy, or running when it
// has no healthcheck), still has time, or failed: exited, unhealthy, or not
// healthy monitor after its start. A replica created and not started (a
// daemon killed in the middle of compose's up) waits: the rollout starts it.
func verdict(s *desired.Service, p desired.UpdatePolicy, c observed.Container, now, listed time.Time) int {
	switch c.State {
	case observed.StateRunning:
		switch {
		case c.Health == observed.HealthUnhealthy:
			return bad
		case !s.HasHealthcheck || c.Health == observed.HealthHealthy:
			return ok
		case c.Up+now.Sub(listed) > p.Monitor:
			return bad
		}
		return waiting
	case observed.StateExited, observed.StatePaused, observed.StateDead:
		return bad
	case observed.StateCreated:
		return waiting
	}
	if now.Sub(c.Created) > p.Monitor { // restarting, removing
		return bad
	}
	return waiting
}

func allHealthy(s *desired.Service, cs []observed.Container) bool {
	return !slices.ContainsFunc(cs, func(c observed.Container) bool {
		return c.State != observed.StateRunning || (s.HasHealthcheck && c.Health != observed.HealthHealthy)
	})
}

func describeState(c observed.Container) string {
	if c.State == observed.StateExited {
		return fmt.Sprintf("exited (code %d)", c.ExitCode)
	}
	if c.Health != "" {
		return c.State + ", " + c.Health
	}
	return c.State
}

// describe says a policy in a few words, for records.
func describe(p desired.UpdatePolicy) string {
	par := fmt.Sprint(p.Parallelism)
	if p.Parallelism <= 0 {
		par = "all"
	}
	return fmt.Sprintf("%s at a time, %s, healthy within %s", par, p.Order, p.Monitor)
}

// Annotate shows an update under way in the status: Progressing, "updating
// 2/3", or what stopped it.
func (r *Rollouts) Annotate(st *plan.ProjectStatus, d *desired.State, _ time.Time) {
	r.mu.Lock()
	rollouts := maps.Clone(r.st.Rollouts)
	r.mu.Unlock()
	for i := range st.Services {
		ss := &st.Services[i]
		s := d.Services[ss.Service]
		if s == nil || !s.Update.Rolling {
			continue
		}
		ro, ok := rollouts[ss.Service]
		want := plan.ExpectedHash(s.Config, nil)
		switch {
		case ok && ro.Phase == phaseRollback && ro.To == want:
			if ss.Updated == 0 && ss.Healthy >= ss.Desired {
				ss.Reason = "update rolled back (" + ro.Why + "); the new definition waits for the next edit"
			} else {
				ss.Health = plan.Progressing
				ss.Reason = fmt.Sprintf("rolling back %d/%d", ss.Desired-min(ss.Updated, ss.Desired), ss.Desired)
			}
		case ss.Updated < ss.Desired && ss.Sync == plan.OutOfSync:
			if ss.Health == plan.Healthy {
				ss.Health = plan.Progressing
			}
			ss.Reason = fmt.Sprintf("updating %d/%d", ss.Updated, ss.Desired)
		}
	}
	if !slices.ContainsFunc(st.Services, func(ss plan.ServiceStatus) bool { return ss.Health == plan.Progressing }) {
		return
	}
	if st.Health == plan.Healthy {
		st.Health = plan.Progressing
	}
}
