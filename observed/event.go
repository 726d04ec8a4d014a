package observed

import (
	"strconv"
	"strings"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/events"
)

// Action is what happened to a container, as the engine names it.
type Action string

// The container actions the daemon acts on. A health change arrives as
// "health_status: healthy": it is decoded to ActionHealthStatus with the
// status in Event.Health.
const (
	ActionCreate       Action = "create"
	ActionStart        Action = "start"
	ActionRestart      Action = "restart"
	ActionDie          Action = "die"
	ActionKill         Action = "kill"
	ActionStop         Action = "stop"
	ActionDestroy      Action = "destroy"
	ActionPause        Action = "pause"
	ActionUnpause      Action = "unpause"
	ActionOOM          Action = "oom"
	ActionRename       Action = "rename"
	ActionUpdate       Action = "update"
	ActionHealthStatus Action = "health_status"
)

// WatchedActions are the container events that can change what a project
// needs done. Health probes' exec_* events are left out: they come every
// probe interval and change nothing; health_status fires on a change only.
var WatchedActions = []Action{
	ActionCreate, ActionStart, ActionRestart, ActionDie, ActionKill, ActionStop, ActionDestroy,
	ActionPause, ActionUnpause, ActionOOM, ActionRename, ActionUpdate, ActionHealthStatus,
}

// Event is one engine event about a container, decoded once: everything
// downstream of the watcher takes this type and none reads the engine's
// attributes itself.
type Event struct {
	ContainerID string
	// Container is the container's name.
	Container string
	// Project is the compose project the container belongs to: an agent's
	// one stream carries every project's events.
	Project string
	Service string
	// Number is the replica number compose gave the container (0 when the
	// container carries none).
	Number int
	// OneOff marks `docker compose run` containers, which no policy owns.
	OneOff bool
	// ConfigHash is the compose config hash the container was created with.
	ConfigHash string
	Action     Action
	// ExitCode is set on die; Signal on kill.
	ExitCode int
	Signal   int
	// Health is HealthHealthy or HealthUnhealthy on ActionHealthStatus.
	Health string
	Time   time.Time
}

// Replica reports whether the event is about a service's replica (not a
// one-off container, not a container compose did not number).
func (e Event) Replica() bool { return e.Service != "" && e.Number > 0 && !e.OneOff }

// Decode turns an engine event into an Event; received is the time used when
// the engine gave none.
func Decode(m events.Message, received time.Time) Event {
	attrs := m.Actor.Attributes
	e := Event{
		ContainerID: m.Actor.ID,
		Container:   attrs["name"],
		Project:     attrs[api.ProjectLabel],
		Service:     attrs[api.ServiceLabel],
		OneOff:      attrs[api.OneoffLabel] == oneOffTrue,
		ConfigHash:  attrs[api.ConfigHashLabel],
		Action:      Action(m.Action),
		Time:        received,
	}
	e.Number, _ = strconv.Atoi(attrs[api.ContainerNumberLabel])
	if m.TimeNano != 0 {
		e.Time = time.Unix(0, m.TimeNano)
	}
	if status, ok := strings.CutPrefix(string(m.Action), string(ActionHealthStatus)+":"); ok {
		e.Action, e.Health = ActionHealthStatus, strings.TrimSpace(status)
	}
	switch e.Action {
	case ActionDie:
		e.ExitCode, _ = strconv.Atoi(attrs["exitCode"])
	case ActionKill:
		e.Signal, _ = strconv.Atoi(attrs["signal"])
	}
	return e
}

// FactKind is what an event says a container now is.
type FactKind string

// Fact kinds.
const (
	FactRunning   FactKind = "running"
	FactStopped   FactKind = "stopped"
	FactGone      FactKind = "gone"
	FactHealthy   FactKind = "healthy"
	FactUnhealthy FactKind = "unhealthy"
	FactPaused    FactKind = "paused"
)

// Fact is what one event says of its container's state; the zero Fact says
// nothing (a kill, for one, says nothing until its die).
type Fact struct {
	Kind     FactKind
	ExitCode int
}

// Fact is the state the event implies: the engine sends an event a moment
// before its list view shows the change, so a snapshot listed right after an
// event is patched with this.
func (e Event) Fact() Fact {
	switch e.Action {
	case ActionStart, ActionUnpause:
		return Fact{Kind: FactRunning}
	case ActionDie:
		return Fact{Kind: FactStopped, ExitCode: e.ExitCode}
	case ActionDestroy:
		return Fact{Kind: FactGone}
	case ActionPause:
		return Fact{Kind: FactPaused}
	case ActionHealthStatus:
		switch e.Health {
		case HealthHealthy:
			return Fact{Kind: FactHealthy}
		case HealthUnhealthy:
			return Fact{Kind: FactUnhealthy}
		}
	}
	return Fact{}
}
