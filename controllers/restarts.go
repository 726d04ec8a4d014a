// Package controllers holds the policies the daemon enforces on top of the
// plain diff: each decides, for its concern, what a service's plan may do
// now, and learns what happened from the engine's events.
package controllers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
)

// DefaultStopGrace is how long a die that followed a polite kill signal
// waits for the engine's `stop` event before it is taken for a kill: the
// engine sends `stop` right after `die` when `docker stop` ends.
const DefaultStopGrace = time.Second

// Store keeps the restart state across runs of the reconciler.
type Store interface {
	Load() ([]byte, error)
	Save(data []byte) error
}

// Slot is the restart history of one replica (service and number): it
// outlives a recreate of the container, so a replica that is recreated
// does not start with a fresh budget.
type Slot struct {
	Service     string `json:"service"`
	Number      int    `json:"number"`
	ContainerID string `json:"containerId"`
	// Restarts are the restarts counted against the budget, the engine's
	// and the reconciler's.
	Restarts   []time.Time `json:"restarts,omitempty"`
	LastExit   string      `json:"lastExit,omitempty"`
	LastExitAt time.Time   `json:"lastExitAt,omitzero"`
	ExitCode   int         `json:"exitCode"`
	// StoppedByUser is set by a graceful stop (the engine's `stop` event
	// not caused by the reconciler): the user's intent, kept until the
	// container is started again or its definition changes.
	StoppedByUser bool      `json:"stoppedByUser,omitempty"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	HealthyAt     time.Time `json:"healthyAt,omitzero"`
	// NextAttempt is when the reconciler may restart the replica next.
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	Exhausted   bool      `json:"exhausted,omitempty"`
	// pendingDie is a die after a polite kill signal: it may be a
	// `docker stop` whose `stop` event has not arrived yet.
	pendingDie time.Time
	// ours marks a restart or start the reconciler itself made, so that
	// the events it causes are not taken for the user's.
	ours time.Time
}

// oursFor is how long a mark of the reconciler's own action holds: long
// enough for a stop grace period, not so long that a failed action hides a
// later stop by the user.
const oursFor = 2 * time.Minute

func (s *Slot) isOurs(now time.Time) bool { return !s.ours.IsZero() && now.Sub(s.ours) < oursFor }

// Restarts makes restart policies mean what they say: it brings back
// containers that die without the user stopping them, within a budget and
// with backoff, restarts unhealthy containers, leaves gracefully stopped
// ones down, and restarts `restart: true` dependents after a dependency
// restarts. It is a reconciler.Guard fed by the engine's events.
type Restarts struct {
	Clock     clock.Clock
	Store     Store
	Records   reconciler.Recorder
	Log       *slog.Logger
	StopGrace time.Duration

	mu    sync.Mutex
	slots map[string]*Slot // "service#number"
	// kills holds the last kill signal per container and when it came.
	kills map[string]kill
	ooms  map[string]time.Time
	// cascades holds, per dependent service, the time a `restart: true`
	// dependency started again.
	cascades map[string]cascade
	reported map[string]bool
	// started is when each container last started, seen in events.
	started map[string]time.Time
	// baseline holds the containers found exited at a relist; awaiting,
	// when an exit seen in a list started waiting for its `die` event.
	baseline map[string]bool
	awaiting map[string]time.Time
}

// EventWait bounds how long an exit seen in a list waits for its `die`
// event before its cause is taken as unknown.
const EventWait = 3 * time.Second

type kill struct {
	signal int
	at     time.Time
}

type cascade struct {
	dependency string
	at         time.Time
}

// NewRestarts loads the persisted state, if any.
func NewRestarts(clk clock.Clock, store Store, rec reconciler.Recorder, log *slog.Logger) (*Restarts, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Restarts{
		Clock: clk, Store: store, Records: rec, Log: log, StopGrace: DefaultStopGrace,
		slots: map[string]*Slot{}, kills: map[string]kill{}, ooms: map[string]time.Time{},
		cascades: map[string]cascade{}, reported: map[string]bool{}, started: map[string]time.Time{},
		baseline: map[string]bool{}, awaiting: map[string]time.Time{},
	}
	if store == nil {
		return r, nil
	}
	data, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("loading restart state: %w", err)
	}
	if len(data) > 0 {
		var st struct {
			Slots []*Slot `json:"slots"`
		}
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("reading restart state: %w", err)
		}
		for _, s := range st.Slots {
			r.slots[slotKey(s.Service, s.Number)] = s
		}
	}
	return r, nil
}

func slotKey(service string, number int) string { return service + "#" + strconv.Itoa(number) }

// save persists the slots; called with mu held, it writes a copy.
func (r *Restarts) save() {
	if r.Store == nil {
		return
	}
	var st struct {
		Slots []*Slot `json:"slots"`
	}
	for _, k := range sortedKeys(r.slots) {
		st.Slots = append(st.Slots, r.slots[k])
	}
	data, err := json.MarshalIndent(st, "", " ")
	if err == nil {
		err = r.Store.Save(data)
	}
	if err != nil {
		r.Log.Error("saving restart state", "error", err)
	}
}

func (r *Restarts) slot(service string, number int, id string) *Slot {
	k := slotKey(service, number)
	s := r.slots[k]
	if s == nil {
		s = &Slot{Service: service, Number: number}
		r.slots[k] = s
	}
	if id != "" && s.ContainerID != id {
		if s.ContainerID != "" {
			// a new container in the slot: a recreate, so the definition may
			// have changed and the user's stop no longer holds
			s.StoppedByUser = false
			s.pendingDie = time.Time{}
		}
		s.ContainerID = id
	}
	return s
}

// Event learns from one engine event. It must be quick: it runs on the
// event stream's reader.
func (r *Restarts) Event(m events.Message, d *desired.State) {
	service := m.Actor.Attributes[observed.LabelService]
	number, _ := strconv.Atoi(m.Actor.Attributes[observed.LabelNumber])
	if service == "" || number == 0 || m.Actor.Attributes[observed.LabelOneOff] == "True" {
		return
	}
	id := m.Actor.ID
	at := time.Unix(0, m.TimeNano)
	if m.TimeNano == 0 {
		at = r.Clock.Now()
	}
	var policy desired.RestartPolicy
	var svc *desired.Service
	if d != nil {
		if svc = d.Services[service]; svc != nil {
			policy = svc.Policy.Restart
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch a := string(m.Action); a {
	case "kill":
		sig, _ := strconv.Atoi(m.Actor.Attributes["signal"])
		r.kills[id] = kill{signal: sig, at: at}
	case "oom":
		r.ooms[id] = at
	case "die":
		s := r.slot(service, number, id)
		code, _ := strconv.Atoi(m.Actor.Attributes["exitCode"])
		r.die(s, id, code, at, policy, svc != nil && svc.HasHealthcheck)
		r.save()
	case "stop":
		s := r.slot(service, number, id)
		if s.isOurs(at) {
			return // the reconciler's own restart
		}
		s.pendingDie = time.Time{}
		if !s.StoppedByUser {
			s.StoppedByUser = true
			r.reported["stopped|"+id] = false
			r.save()
		}
	case "start":
		s := r.slot(service, number, id)
		r.start(s, at, d, service)
		r.started[id] = at
		delete(r.baseline, id)
		r.save()
	case "health_status: healthy":
		s := r.slot(service, number, id)
		s.HealthyAt = at
	case "destroy":
		if s := r.slots[slotKey(service, number)]; s != nil && s.ContainerID == id {
			delete(r.slots, slotKey(service, number))
			r.save()
		}
		delete(r.kills, id)
		delete(r.ooms, id)
		delete(r.started, id)
		delete(r.baseline, id)
		delete(r.awaiting, id)
		for k := range r.reported {
			if strings.Contains(k, id) {
				delete(r.reported, k)
			}
		}
	}
}

func (r *Restarts) die(s *Slot, id string, code int, at time.Time, policy desired.RestartPolicy, hasCheck bool) {
	// the run that just ended resets the budget when it was long (and
	// healthy) enough
	if policy.Window == 0 && !s.StartedAt.IsZero() && at.Sub(s.StartedAt) >= policy.ResetAfter &&
		(!hasCheck || !s.HealthyAt.Before(s.StartedAt)) {
		s.Restarts, s.Exhausted = nil, false
	}
	s.ExitCode, s.LastExitAt = code, at
	k, killed := r.kills[id]
	killed = killed && at.Sub(k.at) < time.Minute
	oom, oomed := r.ooms[id]
	switch {
	case oomed && at.Sub(oom) < time.Minute:
		s.LastExit = fmt.Sprintf("OOMKilled (exit code %d)", code)
	case s.isOurs(at):
		// the die of the reconciler's own restart: LastExit says why
	case killed:
		s.LastExit = fmt.Sprintf("killed by signal %d (exit code %d)", k.signal, code)
	default:
		s.LastExit = fmt.Sprintf("exit code %d", code)
	}
	delete(r.kills, id)
	delete(r.ooms, id)
	if !s.isOurs(at) && killed && k.signal != 9 {
		s.pendingDie = at // maybe `docker stop`: wait for its stop event
	}
	used := s.used(at, policy)
	s.NextAttempt = at.Add(backoff(used, policy))
}

func (r *Restarts) start(s *Slot, at time.Time, d *desired.State, service string) {
	switch {
	case s.isOurs(at):
		s.ours = time.Time{} // counted when it was allowed
	case s.StoppedByUser:
		s.StoppedByUser = false // the user started it again
	case !s.LastExitAt.IsZero() && !s.LastExitAt.Before(s.StartedAt):
		s.Restarts = append(s.Restarts, at) // the engine's own restart
	}
	s.pendingDie = time.Time{}
	s.StartedAt = at
	// dependents with `restart: true` follow once this is ready again
	if d == nil || s.LastExitAt.IsZero() {
		return
	}
	for _, name := range d.Order {
		for _, dep := range d.Services[name].DependsOn {
			if dep.Service == service && dep.Restart {
				r.cascades[name] = cascade{dependency: service, at: at}
			}
		}
	}
}

// MarkOurs tells the controller that the reconciler itself is about to
// restart a replica (a rolling restart for a reload), so that the stop it
// causes is not taken for the user's and the restart is not counted.
func (r *Restarts) MarkOurs(service string, number int, containerID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slot(service, number, containerID).ours = r.Clock.Now()
}

// dieSeen reports whether the replica's last exit was read from a `die`
// event (and not only seen in a list).
func (s *Slot) dieSeen() bool {
	return !s.LastExitAt.IsZero() && !s.LastExitAt.Before(s.StartedAt)
}

// Relisted learns from a relist (on every connect to the engine): the
// containers exited at that moment exited while nobody watched, or their
// events may be lost, so their cause is unknown.
func (r *Restarts) Relisted(snap *observed.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range snap.Containers {
		if c.State == observed.StateExited || c.State == observed.StateDead {
			r.baseline[c.ID] = true
		}
	}
}

// used counts the restarts in the budget at now.
func (s *Slot) used(now time.Time, p desired.RestartPolicy) int {
	if p.Window <= 0 {
		return len(s.Restarts)
	}
	n := 0
	for _, t := range s.Restarts {
		if now.Sub(t) < p.Window {
			n++
		}
	}
	return n
}

// backoff is the wait before the reconciler's next restart after used
// restarts: none before the first, then delay doubling up to the cap.
func backoff(used int, p desired.RestartPolicy) time.Duration {
	if used == 0 {
		return 0
	}
	d := p.Delay
	for i := 1; i < used && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// Review decides which restarts and starts of a service may happen now.
func (r *Restarts) Review(in reconciler.Review) (*reconciler.Plan, time.Duration) {
	svc := in.Desired.Services[in.Service]
	if svc == nil {
		return in.Plan, 0
	}
	policy := svc.Policy.Restart
	byID := map[string]observed.Container{}
	for _, c := range in.Snapshot.ByService()[in.Service] {
		byID[c.ID] = c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var requeue time.Duration
	later := func(d time.Duration) {
		if d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
	}
	changed := false
	allowed := in.Plan.Without(func(n *reconciler.Node) bool {
		op := n.Op
		c, ok := byID[op.ContainerID]
		if !ok {
			return false
		}
		switch op.Type {
		case reconciler.OpStartContainer:
			if c.State == observed.StateCreated {
				return false // never started: compose up would start it
			}
			hold, after := r.mayStart(in, policy, c)
			later(after)
			if !hold {
				changed = true
			}
			return hold
		case reconciler.OpRestartContainer:
			hold, after := r.mayRestartUnhealthy(in, policy, c)
			later(after)
			if !hold {
				changed = true
			}
			return hold
		case reconciler.OpRecreateContainer:
			s := r.slot(in.Service, c.Number, c.ID)
			s.StoppedByUser = false // a new definition: the stop no longer holds
		}
		return false
	})
	if after, added := r.cascade(in, svc, allowed); added || after > 0 {
		later(after)
		changed = changed || added
	}
	if changed {
		r.save()
	}
	return allowed, requeue
}

// mayStart decides for an exited container; hold keeps it down.
func (r *Restarts) mayStart(in reconciler.Review, p desired.RestartPolicy, c observed.Container) (hold bool, after time.Duration) {
	s := r.slot(in.Service, c.Number, c.ID)
	now := in.Now
	if s.dieSeen() {
		delete(r.awaiting, c.ID)
	}
	switch {
	case s.StoppedByUser:
		r.once("stopped|"+c.ID, reconciler.Normal, "StoppedByUser", in.Service, c.Name,
			"stopped gracefully (docker stop): left down until it is started or its definition changes")
		return true, 0
	case !s.dieSeen():
		// The list shows an exit whose `die` has not been read: either the
		// event is still on its way (the list can be ahead of the stream),
		// so wait for it, or the container exited while nobody watched
		// (it was down at the last relist, or the wait ran out).
		if !r.baseline[c.ID] {
			first, ok := r.awaiting[c.ID]
			if !ok {
				first = now
				r.awaiting[c.ID] = now
			}
			if now.Sub(first) < EventWait {
				return true, 100 * time.Millisecond
			}
		}
		// The cause is unknown. Mirror the engine at its own start-up,
		// which restarts only `always`.
		if p.Mode == desired.RestartAlways {
			return r.allow(s, now), 0
		}
		r.once("unknown|"+c.ID, reconciler.Normal, "NotRestarted", in.Service, c.Name,
			fmt.Sprintf("exited (code %d) before reconcile watched it; restart: %s restarts such containers only when the policy is always", c.ExitCode, p.Mode))
		return true, 0
	case !s.pendingDie.IsZero() && now.Sub(s.pendingDie) < r.StopGrace:
		return true, r.StopGrace - now.Sub(s.pendingDie)
	case p.Mode == desired.RestartNo:
		r.once("no|"+c.ID+s.LastExitAt.String(), reconciler.Normal, "NotRestarted", in.Service, c.Name,
			fmt.Sprintf("%s; restart policy is \"no\"", s.LastExit))
		return true, 0
	case p.Mode == desired.RestartOnFailure && c.ExitCode == 0:
		return true, 0
	}
	return r.budgeted(s, now, p, c, in.Service, "restarting after "+s.LastExit)
}

// mayRestartUnhealthy decides for a running container gone unhealthy.
func (r *Restarts) mayRestartUnhealthy(in reconciler.Review, p desired.RestartPolicy, c observed.Container) (hold bool, after time.Duration) {
	if !p.OnUnhealthy {
		r.once("unhealthy|"+c.ID, reconciler.Warning, "UnhealthyNotRestarted", in.Service, c.Name,
			"unhealthy; restart on unhealthy is off for this service")
		return true, 0
	}
	s := r.slot(in.Service, c.Number, c.ID)
	if s.NextAttempt.Before(s.StartedAt) || s.NextAttempt.IsZero() {
		s.NextAttempt = in.Now.Add(backoff(s.used(in.Now, p), p))
	}
	hold, after = r.budgeted(s, in.Now, p, c, in.Service, "restarting an unhealthy container")
	if !hold {
		s.LastExit, s.LastExitAt = "unhealthy", in.Now
	}
	return hold, after
}

// budgeted holds a restart when the budget is spent or backoff is owed.
func (r *Restarts) budgeted(s *Slot, now time.Time, p desired.RestartPolicy, c observed.Container, service, why string) (bool, time.Duration) {
	if used := s.used(now, p); p.MaxAttempts > 0 && used >= p.MaxAttempts {
		if !s.Exhausted {
			s.Exhausted = true
			r.save()
		}
		r.once("exhausted|"+c.ID+s.LastExitAt.String(), reconciler.Warning, "RestartBudgetExhausted", service, c.Name,
			fmt.Sprintf("%s; %d of %d restarts used: left down", s.LastExit, used, p.MaxAttempts))
		return true, 0
	}
	if now.Before(s.NextAttempt) {
		wait := s.NextAttempt.Sub(now)
		r.once("backoff|"+c.ID+s.NextAttempt.String(), reconciler.Normal, "BackOff", service, c.Name,
			fmt.Sprintf("%s in %s (backoff)", why, wait.Round(time.Millisecond)))
		return true, wait
	}
	return r.allow(s, now), 0
}

// allow counts a restart the reconciler is about to make.
func (r *Restarts) allow(s *Slot, now time.Time) bool {
	s.Restarts = append(s.Restarts, now)
	s.ours = now
	return false
}

// cascade adds restarts of a service's running containers once a
// `restart: true` dependency that restarted meets its condition again.
func (r *Restarts) cascade(in reconciler.Review, svc *desired.Service, plan *reconciler.Plan) (time.Duration, bool) {
	cs, ok := r.cascades[in.Service]
	if !ok {
		return 0, false
	}
	byService := in.Snapshot.ByService()
	for _, dep := range svc.DependsOn {
		if dep.Service != cs.dependency {
			continue
		}
		depSvc := in.Desired.Services[dep.Service]
		if depSvc == nil {
			break
		}
		st, why := reconciler.CheckCondition(dep.Condition, depSvc, byService[dep.Service])
		if st == reconciler.ConditionMet && dep.Condition == "service_healthy" && !r.healthyAfter(dep.Service, byService[dep.Service], cs.at) {
			st, why = reconciler.ConditionWaiting, "health from before its restart counts as starting"
		}
		if st != reconciler.ConditionMet {
			r.once("cascade-wait|"+in.Service+cs.at.String(), reconciler.Normal, "DependencyNotReady", in.Service, "",
				fmt.Sprintf("waiting for %s to be %s again (%s) before restarting", dep.Service, reconciler.ConditionWords(dep.Condition), why))
			return time.Second, false
		}
	}
	delete(r.cascades, in.Service)
	added := false
	for _, c := range byService[in.Service] {
		if c.State != observed.StateRunning {
			continue
		}
		if started, ok := r.started[c.ID]; ok && started.After(cs.at) {
			continue // started after the dependency: nothing stale to restart
		}
		s := r.slot(in.Service, c.Number, c.ID)
		s.ours = in.Now
		s.LastExit, s.LastExitAt = "restarted with "+cs.dependency, in.Now
		plan.Nodes = append(plan.Nodes, &reconciler.Node{ID: len(plan.Nodes) + 1, Op: reconciler.Operation{
			Type: reconciler.OpRestartContainer, ResourceID: fmt.Sprintf("service:%s:%d", in.Service, c.Number),
			Cause: "dependency " + cs.dependency + " restarted (depends_on restart: true)", Service: in.Service,
			Container: c.Name, ContainerID: c.ID, Number: c.Number, StopTimeout: svc.StopGracePeriod,
		}})
		added = true
	}
	return 0, added
}

func (r *Restarts) healthyAfter(service string, containers []observed.Container, at time.Time) bool {
	for _, c := range containers {
		s := r.slots[slotKey(service, c.Number)]
		if s != nil && s.ContainerID == c.ID && s.HealthyAt.After(at) {
			return true
		}
	}
	return false
}

func (r *Restarts) once(key, typ, reason, service, container, msg string) {
	if r.reported[key] {
		return
	}
	r.reported[key] = true
	if r.Records != nil {
		r.Records.Event(typ, reason, service, container, msg)
	}
}

// Annotate adds restart figures to a status: per container the restarts
// used and allowed, the next attempt and the last exit; a service with a
// spent budget or a user's stop is Degraded with that reason.
func (r *Restarts) Annotate(st *reconciler.ProjectStatus, d *desired.State, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range st.Services {
		ss := &st.Services[i]
		svc := d.Services[ss.Service]
		if svc == nil {
			continue
		}
		p := svc.Policy.Restart
		ss.RestartsAllowed = p.MaxAttempts
		for j := range ss.Containers {
			cs := &ss.Containers[j]
			s := r.slots[slotKey(ss.Service, cs.Number)]
			if s == nil {
				continue
			}
			used := s.used(now, p)
			running := cs.State == observed.StateRunning
			if running && p.Window == 0 && now.Sub(s.StartedAt) >= p.ResetAfter && (!svc.HasHealthcheck || cs.Health == observed.HealthHealthy) {
				used = 0 // ran long enough: the budget is whole again
			}
			cs.RestartsUsed = used
			ss.RestartsUsed = max(ss.RestartsUsed, used)
			if s.LastExit != "" {
				cs.LastExit = s.LastExit
				if ss.LastExit == "" || s.LastExitAt.After(ss.LastExitAt) {
					ss.LastExit, ss.LastExitAt = s.LastExit, s.LastExitAt
				}
			}
			if !running && s.NextAttempt.After(now) && !s.Exhausted && !s.StoppedByUser {
				t := s.NextAttempt
				cs.NextAttempt = &t
				if ss.NextAttempt == nil || t.Before(*ss.NextAttempt) {
					ss.NextAttempt = &t
				}
			}
			switch {
			case !running && s.Exhausted:
				ss.Health, ss.Reason = reconciler.Degraded, "RestartBudgetExhausted"
			case !running && s.StoppedByUser && ss.Reason != "RestartBudgetExhausted":
				ss.Health, ss.Reason = reconciler.Degraded, "StoppedByUser"
			}
		}
		if ss.Health == reconciler.Degraded && st.Health != reconciler.Missing {
			st.Health = reconciler.Degraded
		}
	}
}

// Slots returns a copy of the restart state, for tests.
func (r *Restarts) Slots() map[string]Slot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]Slot{}
	for k, s := range r.slots {
		out[k] = *s
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
