package httpapi

import "sync"

// Changes tells live readers that something they show may have changed (an
// engine event was handled, a record made). A notification carries nothing:
// the reader looks again. Notify never blocks, and costs nothing while
// nobody listens, so the daemon can call it on every event.
type Changes struct {
	mu   sync.Mutex
	subs map[chan struct{}]bool
}

// Notify wakes every subscriber; one already woken stays woken once.
func (c *Changes) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribe returns a channel woken after changes, and its cancel.
func (c *Changes) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[chan struct{}]bool{}
	}
	c.subs[ch] = true
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}
