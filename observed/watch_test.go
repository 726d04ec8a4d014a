package observed

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

// fakeSource plays an engine that is down for the first pings, then serves
// one stream per connection that the test can break.
type fakeSource struct {
	mu       sync.Mutex
	failPing int
	pings    int
	streams  []chan events.Message
	errs     []chan error
	filters  client.Filters
}

func (f *fakeSource) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pings++
	if f.pings <= f.failPing {
		return client.PingResult{}, errors.New("connection refused")
	}
	return client.PingResult{}, nil
}

func (f *fakeSource) Events(_ context.Context, o client.EventsListOptions) client.EventsResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	msgs, errs := make(chan events.Message), make(chan error, 1)
	f.streams = append(f.streams, msgs)
	f.errs = append(f.errs, errs)
	f.filters = o.Filters
	return client.EventsResult{Messages: msgs, Err: errs}
}

func (f *fakeSource) stream(i int) (chan events.Message, chan error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams[i], f.errs[i]
}

func (f *fakeSource) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams)
}

func TestWatcherRelistsOnEveryConnectAndBacksOff(t *testing.T) {
	clk := &afterLog{Fake: clock.NewFake(time.Unix(0, 0))}
	src := &fakeSource{failPing: 3}
	var mu sync.Mutex
	var relists int
	var got []string
	w := &Watcher{
		Source: src, Project: "p", Clock: clk,
		OnConnect: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			relists++
			return nil
		},
		OnEvent: func(ev Event) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(ev.Action))
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()

	// three failed pings: waits of 0.5, 1 and 2 s between them
	for range 3 {
		waitUntil(t, func() bool { return clk.Waiters() == 1 })
		clk.Advance(2 * time.Second)
	}
	waitUntil(t, func() bool { return src.connections() == 1 })
	msgs, errs := src.stream(0)
	msgs <- events.Message{Action: "die"}
	msgs <- events.Message{Action: "start"}
	errs <- errors.New("unexpected EOF") // the proxy cut the stream
	waitUntil(t, func() bool { return clk.Waiters() == 1 })
	clk.Advance(DefaultMinBackoff) // connected before: back to the shortest wait
	waitUntil(t, func() bool { return src.connections() == 2 })
	msgs, _ = src.stream(1)
	msgs <- events.Message{Action: "destroy"}
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	if relists != 2 {
		t.Errorf("relisted %d times, want once per connection (2)", relists)
	}
	if !slices.Equal(got, []string{"die", "start", "destroy"}) {
		t.Errorf("events %v", got)
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	if want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 500 * time.Millisecond}; !slices.Equal(clk.waits, want) {
		t.Errorf("waits %v, want %v: doubling while down, reset after a good connection", clk.waits, want)
	}
	if f := src.filters; !f["label"][api.ProjectLabel+"=p"] || !f["type"]["container"] || !f["event"]["health_status"] || f["event"]["exec_start"] {
		t.Errorf("filters %v: want this project's container events, health_status but no exec_*", f)
	}
}

// afterLog is a fake clock that remembers every wait asked of it.
type afterLog struct {
	*clock.Fake
	mu    sync.Mutex
	waits []time.Duration
}

func (a *afterLog) After(d time.Duration) <-chan time.Time {
	a.mu.Lock()
	a.waits = append(a.waits, d)
	a.mu.Unlock()
	return a.Fake.After(d)
}

func TestWatcherBackoffIsCapped(t *testing.T) {
	clk := &afterLog{Fake: clock.NewFake(time.Unix(0, 0))}
	src := &fakeSource{failPing: 100}
	w := &Watcher{Source: src, Project: "p", Clock: clk, MaxBackoff: 4 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	for range 6 {
		waitUntil(t, func() bool { return clk.Waiters() == 1 })
		clk.Advance(time.Minute)
	}
	cancel()
	<-done
	clk.mu.Lock()
	defer clk.mu.Unlock()
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	if len(clk.waits) < len(want) || !slices.Equal(clk.waits[:len(want)], want) {
		t.Errorf("waits %v, want %v", clk.waits, want)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAFailedRelistIsRetriedWithoutDroppingTheStream(t *testing.T) {
	clk := &afterLog{Fake: clock.NewFake(time.Unix(0, 0))}
	src := &fakeSource{}
	var mu sync.Mutex
	var relists, failures int
	var got []string
	w := &Watcher{
		Source: src, Project: "p", Clock: clk,
		OnConnect: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			relists++
			if relists <= 3 {
				failures++
				return errors.New("listing containers: 500 Internal Server Error")
			}
			return nil
		},
		OnEvent: func(ev Event) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(ev.Action))
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()

	waitUntil(t, func() bool { return src.connections() == 1 })
	msgs, _ := src.stream(0)
	for range 3 { // each failed relist waits for its retry; events flow meanwhile
		waitUntil(t, func() bool { return clk.Waiters() == 1 })
		msgs <- events.Message{Action: "die"}
		clk.Advance(MaxRelistRetry)
	}
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return relists == 4 })
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	if src.connections() != 1 {
		t.Errorf("%d connections: a failed relist must not drop the stream", src.connections())
	}
	if len(got) != 3 {
		t.Errorf("events %v: the stream kept delivering while the relist was retried", got)
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	if want := []time.Duration{RelistRetry, 2 * RelistRetry, 4 * RelistRetry}; !slices.Equal(clk.waits, want) {
		t.Errorf("relist retries after %v, want %v (short: the engine answers)", clk.waits, want)
	}
}
