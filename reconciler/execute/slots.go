package execute

import "context"

// Slots bound the engine operations in flight across every executor that
// shares them: one host's projects converging at once share one engine,
// and on a small machine 10 projects × 4 workers × 8 operations asking at
// once only queue up inside the engine. A nil Slots bounds nothing.
type Slots chan struct{}

// NewSlots returns room for n operations at once (n < 1: unbounded).
func NewSlots(n int) Slots {
	if n < 1 {
		return nil
	}
	return make(Slots, n)
}

// acquire waits for room, or for ctx to end.
func (s Slots) acquire(ctx context.Context) error {
	if s == nil {
		return nil
	}
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s Slots) release() {
	if s != nil {
		<-s
	}
}
