package swarmstate

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/logging"
)

// Event is one engine event about a stack, decoded once: a service of it
// created, updated or removed, a task container of it that started or
// died on this node, or any node's change.
type Event struct {
	// Service is the service's name as the file spells it; empty for a
	// node event.
	Service string
	// Node is set for a node event (its ID).
	Node   string
	Action string
}

// Decode reads msg as an Event of the stack namespace; ok is false for
// what is not about the stack.
func Decode(msg events.Message, namespace string) (Event, bool) {
	ns := convert.NewNamespace(namespace)
	switch msg.Type {
	case events.NodeEventType:
		return Event{Node: msg.Actor.ID, Action: string(msg.Action)}, true
	case events.ServiceEventType:
		name := msg.Actor.Attributes["name"]
		if name == "" || ns.Descope(name) == name {
			return Event{}, false
		}
		return Event{Service: ns.Descope(name), Action: string(msg.Action)}, true
	case events.ContainerEventType:
		if msg.Actor.Attributes[convert.LabelNamespace] != namespace {
			return Event{}, false
		}
		name := msg.Actor.Attributes["com.docker.swarm.service.name"]
		if name == "" {
			return Event{}, false
		}
		return Event{Service: ns.Descope(name), Action: string(msg.Action)}, true
	}
	return Event{}, false
}

// WatchedActions are the events that can change what a service needs: a
// service or node created, updated or removed, a task's container started,
// dead, or turned healthy or unhealthy. A container's exec events (one per
// healthcheck probe, every second) are left out: each would be a look at
// the whole stack.
var WatchedActions = []string{"create", "update", "remove", "start", "die", "health_status"}

// Watch follows the engine's events about namespace and hands each
// decoded Event to on, reconnecting with a backoff; onConnect runs on each
// (re)connect, when events may have been missed. It returns when ctx ends.
// on must not block: it only enqueues.
func Watch(ctx context.Context, src interface {
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
}, namespace string, clk clock.Clock, log *slog.Logger, onConnect func(), on func(Event)) {
	clk, log = clock.Or(clk), logging.Or(log)
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		f := client.Filters{}.
			Add("type", string(events.ServiceEventType), string(events.NodeEventType), string(events.ContainerEventType)).
			Add("event", WatchedActions...)
		sctx, stop := context.WithCancel(ctx)
		stream := src.Events(sctx, client.EventsListOptions{Filters: f})
		onConnect()
		err := pump(sctx, stream, namespace, on)
		stop()
		if ctx.Err() != nil {
			return
		}
		log.Warn("the swarm's event stream ended; reconnecting", "err", err, "in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-clk.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func pump(ctx context.Context, stream client.EventsResult, namespace string, on func(Event)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-stream.Err:
			return fmt.Errorf("reading the event stream: %w", err)
		case msg := <-stream.Messages:
			if ev, ok := Decode(msg, namespace); ok {
				on(ev)
			}
		}
	}
}
