package clock

import (
	"testing"
	"time"
)

func TestFakeWakesWaitersInOrder(t *testing.T) {
	start := time.Unix(1000, 0)
	f := NewFake(start)
	a, b := f.After(2*time.Second), f.After(time.Second)
	if f.Waiters() != 2 {
		t.Fatalf("waiters = %d", f.Waiters())
	}
	f.Advance(time.Second)
	select {
	case <-a:
		t.Fatal("woke a 2 s waiter after 1 s")
	case got := <-b:
		if !got.Equal(start.Add(time.Second)) {
			t.Errorf("woke at %v", got)
		}
	}
	f.Advance(time.Second)
	<-a
	if f.Waiters() != 0 {
		t.Errorf("waiters left: %d", f.Waiters())
	}
	select {
	case <-f.After(0):
	default:
		t.Error("After(0) must fire at once")
	}
}
