package workqueue

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

// Queue defaults, in the spirit of client-go's DefaultControllerRateLimiter:
// a failing key is retried after 5 ms, doubling up to a minute (client-go
// goes to 1000 s, too slow for a container that should come back), and all
// retries together are held to 10 per second with a burst of 100.
const (
	DefaultBaseDelay = 5 * time.Millisecond
	DefaultMaxDelay  = 60 * time.Second
	DefaultQPS       = 10
	DefaultBurst     = 100
)

// RateLimiter says how long a key that failed waits before it is retried.
type RateLimiter interface {
	When(key string) time.Duration
	Forget(key string)
	Failures(key string) int
}

// ItemBackoff is a per-key exponential backoff: base × 2^failures, capped.
type ItemBackoff struct {
	Base, Max time.Duration
	mu        sync.Mutex
	failures  map[string]int
}

func (b *ItemBackoff) When(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures == nil {
		b.failures = map[string]int{}
	}
	n := b.failures[key]
	b.failures[key]++
	d := b.Base
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

func (b *ItemBackoff) Forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.failures, key)
}

func (b *ItemBackoff) Failures(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures[key]
}

// Bucket is a global token bucket over all keys, so that many failing keys
// do not hammer the engine together.
type Bucket struct {
	Limiter *rate.Limiter
	Clock   clock.Clock
}

func (b *Bucket) When(string) time.Duration {
	now := b.Clock.Now()
	return b.Limiter.ReserveN(now, 1).DelayFrom(now)
}
func (b *Bucket) Forget(string)       {}
func (b *Bucket) Failures(string) int { return 0 }

// MaxOf waits as long as the slowest of its limiters says.
type MaxOf []RateLimiter

func (m MaxOf) When(key string) time.Duration {
	var d time.Duration
	for _, l := range m {
		d = max(d, l.When(key))
	}
	return d
}

func (m MaxOf) Forget(key string) {
	for _, l := range m {
		l.Forget(key)
	}
}

func (m MaxOf) Failures(key string) int {
	n := 0
	for _, l := range m {
		n = max(n, l.Failures(key))
	}
	return n
}

// DefaultRateLimiter is the queue's limiter with the documented defaults.
func DefaultRateLimiter(clk clock.Clock) RateLimiter {
	return EngineAwareRateLimiter(clk, nil)
}

// OnlineRetryCap bounds a failing key's backoff while the engine answers:
// its failures are then passing (a call that failed, a race with another
// client), and a replica should not wait a minute for its next try. While
// the engine is away, the reconnect's relist queues every key anyway.
const OnlineRetryCap = 2 * time.Second

// EngineAwareRateLimiter is the default limiter whose per-key backoff is
// capped at OnlineRetryCap while online reports true (nil: never).
func EngineAwareRateLimiter(clk clock.Clock, online func() bool) RateLimiter {
	return MaxOf{
		&Capped{Limiter: &ItemBackoff{Base: DefaultBaseDelay, Max: DefaultMaxDelay}, Cap: OnlineRetryCap, While: online},
		&Bucket{Limiter: rate.NewLimiter(rate.Limit(DefaultQPS), DefaultBurst), Clock: clk},
	}
}

// Capped bounds another limiter's delay by Cap while While says so; the
// global bucket beside it still holds all keys together to its rate.
type Capped struct {
	Limiter RateLimiter
	Cap     time.Duration
	While   func() bool
}

func (c *Capped) When(key string) time.Duration {
	d := c.Limiter.When(key)
	if c.While != nil && c.While() {
		return min(d, c.Cap)
	}
	return d
}
func (c *Capped) Forget(key string)       { c.Limiter.Forget(key) }
func (c *Capped) Failures(key string) int { return c.Limiter.Failures(key) }

// Queue is a work queue of keys (service names) in the manner of client-go's:
// a key waiting to be processed is held once however often it is added, and
// a key being processed is never handed out again until Done, so one
// service is never reconciled twice at once. A key added while it is being
// processed is processed again afterwards.
type Queue struct {
	clock   clock.Clock
	limiter RateLimiter

	mu         sync.Mutex
	cond       *sync.Cond
	order      []string
	dirty      map[string]bool
	processing map[string]bool
	// waiting holds, per key, the earliest time a delayed add is due.
	waiting  map[string]time.Time
	shutdown bool
}

// New returns an empty queue.
func New(clk clock.Clock, limiter RateLimiter) *Queue {
	q := &Queue{
		clock:      clk,
		limiter:    limiter,
		dirty:      map[string]bool{},
		processing: map[string]bool{},
		waiting:    map[string]time.Time{},
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues key now.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *Queue) addLocked(key string) {
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // queued again by Done
	}
	q.order = append(q.order, key)
	q.cond.Signal()
}

// AddAfter queues key once d has passed; of several pending delays for a
// key the earliest wins.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	due := q.clock.Now().Add(d)
	if at, ok := q.waiting[key]; ok && !at.After(due) {
		return
	}
	q.waiting[key] = due
	wake := q.clock.After(d)
	go func() {
		<-wake
		q.mu.Lock()
		defer q.mu.Unlock()
		if at, ok := q.waiting[key]; ok && at.Equal(due) {
			delete(q.waiting, key)
			q.addLocked(key)
		}
	}()
}

// AddRateLimited queues key after the limiter's delay: used when
// reconciling it failed.
func (q *Queue) AddRateLimited(key string) {
	q.AddAfter(key, q.limiter.When(key))
}

// Forget clears key's failure history once it reconciled cleanly.
func (q *Queue) Forget(key string) { q.limiter.Forget(key) }

// Failures is how many times in a row key has failed.
func (q *Queue) Failures(key string) int { return q.limiter.Failures(key) }

// Get blocks until a key is ready and hands it out; ok is false once the
// queue is shut down and drained.
func (q *Queue) Get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if len(q.order) == 0 {
		return "", false
	}
	key, q.order = q.order[0], q.order[1:]
	q.processing[key] = true
	delete(q.dirty, key)
	return key, true
}

// Done marks key processed; if it was added meanwhile it is queued again.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// Len is the number of keys waiting to be handed out (not those delayed).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// Idle reports whether no key is queued or being processed (delayed keys
// are not counted: they wait for a time, not for work).
func (q *Queue) Idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order) == 0 && len(q.processing) == 0
}

// ShutDown stops the queue: adds are ignored, queued keys dropped, and Get
// returns ok false; keys being processed finish.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	q.order = nil
	q.cond.Broadcast()
}
