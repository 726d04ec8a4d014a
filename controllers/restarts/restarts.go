// Package restarts makes restart policies mean what they say. It learns
// from the engine's events what happened to each replica (learn.go),
// decides whether a stopped or unhealthy replica is started again now
// (decide.go: a Guard's Review, which changes nothing), counts restarts
// against the budget from what the executor reports done (account.go),
// and adds what it knows to the status (status.go). Budgets and backoff
// live in a state file written off the event reader (state.go).
package restarts

import (
	"log/slog"
	"sync"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/statedir"
)

// DefaultStopGrace is how long a die that followed a polite kill signal
// waits for the engine's `stop` event before it is taken for a kill: the
// engine sends `stop` right after `die` when `docker stop` ends, but a
// loaded engine was seen to take over a second (and the replica the user
// stopped was started again).
const DefaultStopGrace = 2 * time.Second

// EventWait bounds how long an exit seen in a list waits for its `die`
// event before its cause is taken as unknown.
const EventWait = 3 * time.Second

// eventPoll is how soon an exit seen in a list before its event is looked
// at again.
const eventPoll = 100 * time.Millisecond

// cascadeRetry is how soon a cascade waiting for its dependency looks again.
const cascadeRetry = time.Second

// Restarts brings back containers that die without the user stopping them,
// within a budget and with backoff, restarts unhealthy containers, leaves
// gracefully stopped ones down (and absent, once also removed), holds down
// a replica whose budget is spent whoever was restarting it, and restarts
// `restart: true` dependents after a dependency restarts. It is a reconciler Guard, Accountant and
// SnapshotLearner, fed the engine's events by the daemon.
type Restarts struct {
	Clock     clock.Clock
	Log       *slog.Logger
	StopGrace time.Duration
	// Discarded is where an unreadable state file was moved at start (empty
	// when it was read), and DiscardedBecause why.
	Discarded        string
	DiscardedBecause error
	// UpAtStart takes the first relist for a person's `up` (reconcile
	// --once): every replica it shows stopped, held down or removed is
	// brought up with a fresh budget, as compose's up would. What happens
	// after it is decided as the daemon decides.
	UpAtStart bool

	mu    sync.Mutex
	slots map[string]*Slot // "service#number"
	// kills holds the last kill signal per container and when it came.
	kills map[string]kill
	ooms  map[string]time.Time
	// cascades holds, per dependent service, the `restart: true`
	// dependency that started again and when.
	cascades map[string]cascade
	// cascaded holds, per container, the cascade its restart was done for.
	cascaded map[string]time.Time
	// started is when each container last started, seen in events.
	started map[string]time.Time
	// baseline holds the containers found exited at a relist; awaiting,
	// when a list first showed an exit whose `die` had not been read.
	baseline map[string]bool
	awaiting map[string]time.Time
	// upAtStart holds the containers the first relist showed stopped under
	// UpAtStart: they are started; upDone, that the first relist was seen.
	upAtStart map[string]bool
	upDone    bool

	saver *statedir.Saver
}

type kill struct {
	signal int
	at     time.Time
	// first is the signal a SIGKILL followed (0: none): `docker stop`
	// whose grace ran out sends its stop signal, then SIGKILL, then its
	// stop event, so a SIGKILL after a signal may still be a stop.
	first int
}

// stopGraceBound is how long after a signal a SIGKILL may still be a
// stop's, its grace run out (stop_grace_period is rarely minutes).
const stopGraceBound = 10 * time.Minute

type cascade struct {
	dependency string
	at         time.Time
}

// Close writes the restart state still owed and stops its writer.
func (r *Restarts) Close() error {
	if r.saver == nil {
		return nil
	}
	return r.saver.Close()
}

// changed notes that the state must be written; called with mu held, it
// only signals the writer.
func (r *Restarts) changed() {
	if r.saver != nil {
		r.saver.Mark()
	}
}
