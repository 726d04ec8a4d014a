package restarts

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/reconciler"
)

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
	StoppedAt     time.Time `json:"stoppedAt,omitzero"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	HealthyAt     time.Time `json:"healthyAt,omitzero"`
	UnhealthyAt   time.Time `json:"unhealthyAt,omitzero"`
	// NextAttempt is when the reconciler may restart the replica next.
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// EngineRestarts says the engine's own restart policy restarts the
	// last exit (a crash; not a docker kill or stop, which the engine takes
	// for the user's).
	EngineRestarts bool `json:"engineRestarts,omitempty"`
	// OverBudget is set when the engine restarted the replica after its
	// budget was spent.
	OverBudget bool `json:"overBudget,omitempty"`
	// HeldDown is set once the reconciler stopped the replica because its
	// budget was spent: the engine restarts it no more. A start by anyone
	// else ends it, with a fresh budget.
	HeldDown bool `json:"heldDown,omitempty"`
	// EngineRestartsOff is set while the container's own restart policy is
	// "no": it runs the last restart its budget allows, and its next crash
	// must leave it down, not race the engine's restart against our stop.
	EngineRestartsOff bool `json:"engineRestartsOff,omitempty"`
	// EngineRestartsOffAt is when the policy was turned off: an exit from
	// before it was still the engine's to restart.
	EngineRestartsOffAt time.Time `json:"engineRestartsOffAt,omitzero"`
	// RemovedByUser is set when a container the user had stopped is then
	// removed (`docker compose down`, or stop then rm): the replica stays
	// absent until it is created again or its definition (RemovedHash, the
	// config hash it had) changes.
	RemovedByUser bool   `json:"removedByUser,omitempty"`
	RemovedHash   string `json:"removedHash,omitempty"`
	// pendingDie is a die after a polite kill signal: it may be a
	// `docker stop` whose `stop` event has not arrived yet.
	pendingDie time.Time
	// acting is when a start, restart or stop of ours on the replica began,
	// until its events came back or it failed: no hold-down stop is added
	// on top of it. Whose events are whose is the controller's to tell.
	acting time.Time
}

func (s *Slot) isActing(now time.Time) bool {
	return !s.acting.IsZero() && now.Sub(s.acting) < reconciler.ExpectationTTL
}

// dieSeen reports whether the replica's last exit was read from a `die`
// event (and not only seen in a list).
func (s *Slot) dieSeen() bool {
	return !s.LastExitAt.IsZero() && !s.LastExitAt.Before(s.StartedAt)
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

// exhausted reports whether the budget is spent at now.
func (s *Slot) exhausted(now time.Time, p desired.RestartPolicy) bool {
	return p.MaxAttempts > 0 && s.used(now, p) >= p.MaxAttempts
}

// spentAt tells one exhaustion from the next: the time of the last restart
// counted, which no restart follows while the budget stays spent.
func (s *Slot) spentAt() string {
	if len(s.Restarts) == 0 {
		return ""
	}
	return s.Restarts[len(s.Restarts)-1].String()
}

// engineRestarts reports whether the engine's restart policy restarts an
// exit with this code that no API kill caused.
func engineRestarts(p desired.RestartPolicy, code int) bool {
	switch p.Mode {
	case desired.RestartAlways, desired.RestartUnlessStopped:
		return true
	case desired.RestartOnFailure:
		return code != 0
	}
	return false
}

func slotKey(service string, number int) string { return service + "#" + strconv.Itoa(number) }

// New loads the persisted state, if any, and starts its writer; onSaveError,
// when set, is told of each failed write (which is retried).
func New(clk clock.Clock, store Store, log *slog.Logger, onSaveError func(error)) (*Restarts, error) {
	log = logging.Or(log)
	r := &Restarts{
		Clock: clk, Log: log, StopGrace: DefaultStopGrace,
		slots: map[string]*Slot{}, kills: map[string]kill{}, ooms: map[string]time.Time{},
		cascades: map[string]cascade{}, cascaded: map[string]time.Time{}, started: map[string]time.Time{},
		baseline: map[string]bool{}, awaiting: map[string]time.Time{}, upAtStart: map[string]bool{},
	}
	if store == nil {
		return r, nil
	}
	data, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("loading restart state: %w", err)
	}
	slots, err := decode(data)
	if err != nil {
		aside, ok := store.(interface {
			MoveAside(now time.Time) (string, error)
		})
		if !ok {
			return nil, fmt.Errorf("reading restart state: %w", err)
		}
		// A state file that cannot be read must not keep the daemon from
		// reconciling: it is kept for inspection and the counts start anew.
		path, mvErr := aside.MoveAside(clk.Now())
		if mvErr != nil {
			return nil, fmt.Errorf("reading restart state: %w (and %w)", err, mvErr)
		}
		r.Discarded, r.DiscardedBecause = path, err
		slots = nil
	}
	for _, s := range slots {
		r.slots[slotKey(s.Service, s.Number)] = s
	}
	r.saver = statedir.NewSaver(clk, store.Save, r.marshal, func(err error) {
		log.Error("saving restart state", "error", err)
		if onSaveError != nil {
			onSaveError(err)
		}
	})
	return r, nil
}

type stateFile struct {
	Slots []*Slot `json:"slots"`
}

// decode reads a state file: empty is no state; anything that is not the
// state's shape (garbage, a truncated write, slots without a replica) is an
// error.
func decode(data []byte) ([]*Slot, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("not a restart state: %w", err)
	}
	for i, s := range st.Slots {
		if s == nil || s.Service == "" || s.Number <= 0 {
			return nil, fmt.Errorf("not a restart state: slot %d names no replica", i)
		}
	}
	return st.Slots, nil
}

// marshal is the state as the writer saves it: copied under the lock,
// encoded outside it, so that the event reader never waits for an encoding.
func (r *Restarts) marshal() ([]byte, error) {
	r.mu.Lock()
	st := stateFile{Slots: make([]*Slot, 0, len(r.slots))}
	for _, k := range slices.Sorted(maps.Keys(r.slots)) {
		s := *r.slots[k]
		s.Restarts = slices.Clone(s.Restarts)
		st.Slots = append(st.Slots, &s)
	}
	r.mu.Unlock()
	return json.MarshalIndent(st, "", " ")
}

// slot returns the replica's slot, made if missing; a new container in it
// (a recreate) means the definition may have changed, so the user's stop
// no longer holds. Called with mu held, by learning and accounting only.
func (r *Restarts) slot(service string, number int, id string) *Slot {
	k := slotKey(service, number)
	s := r.slots[k]
	if s == nil {
		s = &Slot{Service: service, Number: number}
		r.slots[k] = s
	}
	if id != "" && s.ContainerID != id {
		if s.ContainerID != "" {
			s.StoppedByUser, s.HeldDown, s.OverBudget, s.RemovedByUser = false, false, false, false
			s.pendingDie = time.Time{}
			// a new container has the compose file's restart policy
			s.EngineRestartsOff, s.EngineRestartsOffAt = false, time.Time{}
		}
		s.ContainerID = id
	}
	return s
}

// view is what the slot says of container id, without changing it: the
// zero slot when there is none, and a recreated container's slot without
// the old container's stop. Called with mu held, by decisions.
func (r *Restarts) view(service string, number int, id string) Slot {
	s := r.slots[slotKey(service, number)]
	if s == nil {
		return Slot{Service: service, Number: number, ContainerID: id}
	}
	v := *s
	if v.ContainerID != "" && v.ContainerID != id {
		v.StoppedByUser, v.HeldDown, v.OverBudget, v.pendingDie = false, false, false, time.Time{}
		v.EngineRestartsOff, v.EngineRestartsOffAt = false, time.Time{}
	}
	return v
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
