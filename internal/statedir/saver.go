package statedir

import (
	"sync"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

// SaveRetry is how soon a state write that failed is tried again.
const SaveRetry = time.Second

// Saver writes a state file off its callers' path: Mark only notes that the
// state changed and returns at once (it runs on the engine's event reader,
// which the engine drops if it lags 100 ms); one goroutine takes the state
// as it is then and writes it (atomically, fsynced), so a burst of changes
// is one write. A failed write is reported and retried; Close flushes.
type Saver struct {
	save    func([]byte) error
	state   func() ([]byte, error)
	onError func(error)
	clock   clock.Clock

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	err  error
}

// NewSaver starts the writer. state marshals the current state; save
// writes it; onError, when set, is told of each failed write.
func NewSaver(clk clock.Clock, save func([]byte) error, state func() ([]byte, error), onError func(error)) *Saver {
	s := &Saver{save: save, state: state, onError: onError, clock: clk,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// Mark notes that the state changed.
func (s *Saver) Mark() {
	select {
	case s.kick <- struct{}{}:
	default: // a write is owed already; it will take this change too
	}
}

func (s *Saver) run() {
	defer close(s.done)
	var retry <-chan time.Time
	for {
		select {
		case <-s.stop:
			select {
			case <-s.kick:
				s.err = s.write()
			default:
				if retry != nil {
					s.err = s.write()
				}
			}
			return
		case <-s.kick:
		case <-retry:
		}
		retry = nil
		if err := s.write(); err != nil {
			retry = s.clock.After(SaveRetry)
		}
	}
}

func (s *Saver) write() error {
	data, err := s.state()
	if err == nil {
		err = s.save(data)
	}
	if err != nil && s.onError != nil {
		s.onError(err)
	}
	return err
}

// Close writes what is owed and stops the writer; it returns the last
// write's error.
func (s *Saver) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return s.err
}
