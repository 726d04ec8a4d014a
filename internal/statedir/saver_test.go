package statedir

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

func TestSaverCoalescesAndFlushesOnClose(t *testing.T) {
	var mu sync.Mutex
	var writes [][]byte
	var version atomic.Int32
	block := make(chan struct{})
	s := NewSaver(clock.Real{}, func(b []byte) error {
		<-block // the first write is slow: the marks meanwhile coalesce
		mu.Lock()
		defer mu.Unlock()
		writes = append(writes, b)
		return nil
	}, func() ([]byte, error) { return []byte{byte(version.Load())}, nil }, nil)
	version.Store(1)
	s.Mark()
	for v := int32(2); v <= 50; v++ {
		version.Store(v)
		s.Mark()
	}
	close(block)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) > 3 || len(writes) == 0 || writes[len(writes)-1][0] != 50 {
		t.Errorf("%d writes, last %v: want at most 3 and the last state written", len(writes), writes[len(writes)-1])
	}
}

func TestSaverRetriesAFailedWrite(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	var calls atomic.Int32
	var failures atomic.Int32
	s := NewSaver(clk, func([]byte) error {
		if calls.Add(1) == 1 {
			return errors.New("disk full")
		}
		return nil
	}, func() ([]byte, error) { return []byte("x"), nil }, func(error) { failures.Add(1) })
	s.Mark()
	deadline := time.Now().Add(2 * time.Second)
	for clk.Waiters() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	clk.Advance(SaveRetry)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil || calls.Load() != 2 || failures.Load() != 1 {
		t.Errorf("close %v after %d writes, %d failures: want the failed write reported once and retried", err, calls.Load(), failures.Load())
	}
}
