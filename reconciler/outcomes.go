package reconciler

import (
	"errors"
	"maps"
	"strings"
	"sync"
)

// Failure is how a service's last reconcile ended when it did not end
// clean: an error, retried with backoff, or one that no wait can fix
// (Terminal): a terminal error, or a decision that the service cannot
// reach its desired state without a change (a Stuck report).
type Failure struct {
	Err      error
	Terminal bool
}

// ErrStuck marks a service a policy says cannot converge without a change.
var ErrStuck = errors.New("cannot converge without a change")

// outcomes keeps each service's Failure since its last clean reconcile,
// for what runs the loop once: the daemon waits for a change, a one-shot
// run ends on a terminal one.
type outcomes struct {
	mu       sync.Mutex
	failures map[string]Failure
	// terminal keeps each service's last terminal failure until the
	// desired state changes: the events of the failed action queue the
	// service again, and that look may be clean (a post_start hook failed
	// in a container that runs), which must not hide the failure from a
	// run that ends on one.
	terminal map[string]Failure
	// held are the services a terminal failure holds: looked at, not
	// acted on, until a change (see release), so that the events of the
	// failed action itself do not try it again.
	held map[string]error
	// stuckNow holds the stuck reports of the reconciles under way.
	stuckNow map[string][]string
}

func (o *outcomes) begin(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.stuckNow, key)
}

// stuck notes a reconcile's stuck reports (decide may run twice in one).
func (o *outcomes) stuck(key string, why []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stuckNow == nil {
		o.stuckNow = map[string][]string{}
	}
	o.stuckNow[key] = why
}

func (o *outcomes) end(key string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures == nil {
		o.failures = map[string]Failure{}
	}
	stuck := o.stuckNow[key]
	delete(o.stuckNow, key)
	switch {
	case err != nil:
		o.failures[key] = Failure{Err: err, Terminal: IsTerminal(err)}
	case len(stuck) > 0:
		o.failures[key] = Failure{Err: errors.Join(ErrStuck, errors.New(strings.Join(stuck, "; "))), Terminal: true}
	default:
		delete(o.failures, key)
	}
	if f, ok := o.failures[key]; ok && f.Terminal {
		if o.terminal == nil {
			o.terminal, o.held = map[string]Failure{}, map[string]error{}
		}
		o.terminal[key] = f
		if IsTerminal(err) {
			o.held[key] = err
		}
	}
}

// holding is the terminal error holding key, or nil.
func (o *outcomes) holding(key string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held[key]
}

// release lets a held service be acted on again: something changed that
// the failure may not survive.
func (o *outcomes) release(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.held, key)
}

// releaseAll lets every held service be acted on again (a relist).
func (o *outcomes) releaseAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.held)
}

// reset forgets the terminal failures and holds: the desired state
// changed.
func (o *outcomes) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.terminal, o.held = nil, nil
}

// Failures returns each service's failure since its last clean reconcile.
func (c *Controller) Failures() map[string]Failure {
	o := &c.outcomes
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.failures)
}

// Terminal returns each service's last terminal failure since the desired
// state was last set, even where a later look was clean.
func (c *Controller) Terminal() map[string]Failure {
	o := &c.outcomes
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.terminal)
}

// Acted is how many operations the controller has carried out.
func (c *Controller) Acted() uint64 { return c.acted.Load() }

// Idle reports whether no service is queued or being reconciled.
func (c *Controller) Idle() bool { return c.queue().Idle() }
