package workqueue

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

func TestItemBackoffDoublesToCap(t *testing.T) {
	b := &ItemBackoff{Base: 5 * time.Millisecond, Max: 40 * time.Millisecond}
	want := []time.Duration{5, 10, 20, 40, 40}
	for i, w := range want {
		if got := b.When("api"); got != w*time.Millisecond {
			t.Fatalf("failure %d: got %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
	if got := b.When("db"); got != 5*time.Millisecond {
		t.Fatalf("another key starts at the base, got %s", got)
	}
	b.Forget("api")
	if got := b.When("api"); got != 5*time.Millisecond {
		t.Fatalf("after Forget: got %s, want base", got)
	}
}

func TestMaxOfTakesTheBucketWhenItIsSlower(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	lim := MaxOf{
		&ItemBackoff{Base: time.Millisecond, Max: time.Second},
		&Bucket{Limiter: rate.NewLimiter(10, 2), Clock: clk},
	}
	tests := []struct {
		key  string
		want time.Duration
	}{
		{"a", time.Millisecond},       // burst token, backoff wins
		{"b", time.Millisecond},       // second burst token
		{"c", 100 * time.Millisecond}, // bucket empty: 1/10 s
		{"d", 200 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := lim.When(tt.key); got != tt.want {
			t.Errorf("When(%s) = %s, want %s", tt.key, got, tt.want)
		}
	}
	if lim.Failures("a") != 1 {
		t.Errorf("Failures(a) = %d, want 1", lim.Failures("a"))
	}
}

func TestQueueDedupesAndNeverHandsOutAKeyTwice(t *testing.T) {
	q := New(clock.Real{}, DefaultRateLimiter(clock.Real{}))
	q.Add("api")
	q.Add("api")
	q.Add("db")
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2", q.Len())
	}
	k, _ := q.Get()
	if k != "api" {
		t.Fatalf("first key %q, want api", k)
	}
	q.Add("api") // while processing: held back until Done
	k2, _ := q.Get()
	if k2 != "db" {
		t.Fatalf("second key %q, want db (api is being processed)", k2)
	}
	if q.Len() != 0 {
		t.Fatalf("api queued while processing: Len = %d", q.Len())
	}
	q.Done("api")
	k3, _ := q.Get()
	if k3 != "api" {
		t.Fatalf("api added while processing must come back after Done, got %q", k3)
	}
	q.Done("api")
	q.Done("db")
	if q.Len() != 0 {
		t.Fatalf("Len = %d after all done", q.Len())
	}
}

func TestQueueAddAfterUsesTheClockAndEarliestWins(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	q := New(clk, DefaultRateLimiter(clk))
	q.AddAfter("api", 10*time.Second)
	q.AddAfter("api", 2*time.Second)
	q.AddAfter("api", 5*time.Second) // later than the pending one: ignored
	clk.Advance(time.Second)
	if q.Len() != 0 {
		t.Fatal("queued before its time")
	}
	clk.Advance(time.Second)
	waitFor(t, func() bool { return q.Len() == 1 })
	k, _ := q.Get()
	q.Done(k)
	clk.Advance(10 * time.Second)
	time.Sleep(20 * time.Millisecond) // let a wrongly kept timer fire
	if q.Len() != 0 {
		t.Fatalf("a superseded delay fired: Len = %d", q.Len())
	}
}

func TestQueueShutDownReleasesGetters(t *testing.T) {
	q := New(clock.Real{}, DefaultRateLimiter(clock.Real{}))
	var wg sync.WaitGroup
	results := make(chan bool, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok := q.Get()
			results <- ok
		}()
	}
	time.Sleep(10 * time.Millisecond)
	q.ShutDown()
	wg.Wait()
	close(results)
	for ok := range results {
		if ok {
			t.Fatal("Get returned a key after shutdown")
		}
	}
	q.Add("api")
	if q.Len() != 0 {
		t.Fatal("Add after shutdown queued a key")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAFailingKeyWaitsNoLongerThanTheCapWhileTheEngineAnswers(t *testing.T) {
	online := true
	l := EngineAwareRateLimiter(clock.NewFake(time.Unix(0, 0)), func() bool { return online })
	var last time.Duration
	for range 20 { // 5 ms doubling: past a minute without the cap
		last = l.When("api")
	}
	if last != OnlineRetryCap {
		t.Errorf("after 20 failures with the engine answering: %s, want the cap %s", last, OnlineRetryCap)
	}
	online = false
	if d := l.When("api"); d != DefaultMaxDelay {
		t.Errorf("with the engine away: %s, want the full backoff %s", d, DefaultMaxDelay)
	}
	l.Forget("api")
	if d := l.When("api"); d != DefaultBaseDelay {
		t.Errorf("after Forget: %s, want %s", d, DefaultBaseDelay)
	}
}
