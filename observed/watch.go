package observed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/logging"
)

// EventSource is the part of the moby client the watcher uses.
type EventSource interface {
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
}

// Reconnect backoff defaults: a lost engine is retried after half a second,
// doubling to two. A probe of a socket that does not answer costs nothing,
// and a returning engine must be seen within the 5 s a project is promised
// to converge in once it answers (it was 10 s: after a 20 s outage the
// project converged 6.9 s after the engine came back).
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
)

// Relist retry: a relist that fails while the event stream works is tried
// again on its own, soon (the engine answers: the failure is passing), and
// the stream is kept.
const (
	RelistRetry    = 100 * time.Millisecond
	MaxRelistRetry = 2 * time.Second
)

// Watcher follows the engine's events for one project, or for every compose
// project when Project is empty (an agent's one stream for all). The engine keeps
// only 256 events and drops a subscriber that lags 100 ms, so the stream is
// a hint, not the truth: on every connect and reconnect OnConnect relists,
// and the caller resyncs periodically as well.
type Watcher struct {
	Source  EventSource
	Project string
	Clock   clock.Clock
	Log     *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnects.
	MinBackoff, MaxBackoff time.Duration
	// OnConnect runs once the subscription is open, alongside the events
	// it delivers (which must be read within 100 ms): the relist.
	OnConnect func(ctx context.Context) error
	// OnEvent gets each event, decoded; it runs on the stream's reader and
	// must return quickly (note and enqueue, never act or write a file). A
	// panic in it is recovered: the event is dropped and OnPanic told.
	OnEvent func(Event)
	// OnPanic, when set, is told of a panic in OnEvent.
	OnPanic func(ev Event, recovered any)
	// Handled, when set, is told how long each event held the reader.
	Handled func(took time.Duration)
	// OnDisconnect is told why the stream ended, before the backoff.
	OnDisconnect func(err error)
}

// Run watches until ctx ends, reconnecting with exponential backoff.
func (w *Watcher) Run(ctx context.Context) error {
	minB, maxB := w.MinBackoff, w.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	backoff := minB
	for {
		connected, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = minB
		}
		if w.OnDisconnect != nil {
			w.OnDisconnect(err)
		}
		w.logger().Debug("engine event stream down, reconnecting", "error", err, "in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-w.clock().After(backoff):
		}
		if !connected {
			backoff = min(backoff*2, maxB)
		}
	}
}

// session is one connection: ping, subscribe, relist, consume. A failed
// relist is retried within the session, the stream kept. connected reports
// whether a relist succeeded, which resets the reconnect backoff.
func (w *Watcher) session(ctx context.Context) (connected bool, err error) {
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = w.Source.Ping(pingCtx, client.PingOptions{})
	cancel()
	if err != nil {
		return false, fmt.Errorf("pinging the engine: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	actions := make([]string, len(WatchedActions))
	for i, a := range WatchedActions {
		actions[i] = string(a)
	}
	label := api.ProjectLabel // any compose project
	if w.Project != "" {
		label += "=" + w.Project
	}
	filters := client.Filters{}.
		Add("type", string(events.ContainerEventType)).
		Add("label", label).
		Add("event", actions...)
	stream := w.Source.Events(sctx, client.EventsListOptions{Filters: filters})

	relisted := make(chan error, 1)
	relist := func() {
		go func() {
			if w.OnConnect == nil {
				relisted <- nil
				return
			}
			relisted <- w.OnConnect(sctx)
		}()
	}
	relist()
	var retry <-chan time.Time
	wait := RelistRetry
	for {
		select {
		case <-ctx.Done():
			return connected, ctx.Err()
		case err := <-relisted:
			if err != nil {
				// keep the stream: its events are noted meanwhile, and only
				// the relist is owed
				w.logger().Warn("relisting after connecting failed, retrying", "error", err, "in", wait.String())
				retry = w.clock().After(wait)
				wait = min(wait*2, MaxRelistRetry)
				continue
			}
			connected = true
		case <-retry:
			retry = nil
			relist()
		case msg, ok := <-stream.Messages:
			if !ok {
				return connected, errors.New("event stream closed")
			}
			w.handle(msg)
		case err := <-stream.Err:
			if err == nil {
				err = errors.New("event stream ended")
			}
			return connected, fmt.Errorf("reading engine events: %w", err)
		}
	}
}

// handle decodes one event and hands it on, timing how long the reader is
// held and recovering a panic, as a reconcile does.
func (w *Watcher) handle(msg events.Message) {
	start := w.clock().Now()
	ev := Event{Action: Action(msg.Action), ContainerID: msg.Actor.ID}
	defer func() {
		if r := recover(); r != nil {
			w.logger().Error("handling an engine event panicked", "action", string(ev.Action), "container", ev.Container, "panic", r, "stack", string(debug.Stack()))
			if w.OnPanic != nil {
				w.OnPanic(ev, r)
			}
		}
		if w.Handled != nil {
			w.Handled(w.clock().Now().Sub(start))
		}
	}()
	ev = Decode(msg, start)
	if w.OnEvent != nil {
		w.OnEvent(ev)
	}
}

func (w *Watcher) logger() *slog.Logger { return logging.Or(w.Log) }

func (w *Watcher) clock() clock.Clock { return clock.Or(w.Clock) }
