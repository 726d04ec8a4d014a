// Package observed owns "what exists": one snapshot of a compose project as
// the engine reports it, built from a fixed number of list calls whatever the
// number of containers, so that planning needs no further engine calls.
package observed

import (
	"sort"
	"time"
)

// Container states as the engine names them.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateRemoving   = "removing"
	StateExited     = "exited"
	StateDead       = "dead"
)

// Health states; empty means the container has no healthcheck.
const (
	HealthNone      = ""
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Container is one service container of the project.
type Container struct {
	ID      string
	Name    string
	Service string
	Number  int
	Image   string
	State   string
	Health  string
	// ExitCode is the last exit code of an exited or restarting container.
	ExitCode int
	// ConfigHash and ImageDigest are the labels compose stamps at creation,
	// compared with the desired state to detect drift.
	ConfigHash  string
	ImageDigest string
	// Networks maps the names of the networks the container is attached to
	// to their IDs.
	Networks map[string]string
	Created  time.Time
	// Up is how long a running container has run since its last start, to
	// the second below a minute (from the engine's status line).
	Up time.Duration
	// Details is filled only by Enrich, for containers that are not running.
	Details *Details
}

// Details are what only an inspect tells: used to explain why a container is
// down, so they are fetched for stopped containers only.
type Details struct {
	RestartCount int
	OOMKilled    bool
	StartedAt    time.Time
	FinishedAt   time.Time
	Error        string
}

// Network is a network of the engine.
type Network struct {
	ID   string
	Name string
	// Key is the network's name in the compose file, for the project's own.
	Key string
}

// Volume is a volume of the engine.
type Volume struct {
	Name string
	// Key is the volume's name in the compose file, for the project's own.
	Key string
}

// Snapshot is the project as observed at one moment.
type Snapshot struct {
	Project string
	// Containers are the service containers, one-off containers left out,
	// sorted by service, then number, then name.
	Containers []Container
	Networks   []Network
	Volumes    []Volume
	// Images maps local image references (repo:tag, repo@digest and IDs) to
	// image IDs.
	Images  map[string]string
	TakenAt time.Time
}

// ByService groups containers by service.
func (s *Snapshot) ByService() map[string][]Container {
	out := map[string][]Container{}
	for _, c := range s.Containers {
		out[c.Service] = append(out[c.Service], c)
	}
	return out
}

// NetworkByName returns the project network with the given engine name.
func (s *Snapshot) NetworkByName(name string) (Network, bool) {
	for _, n := range s.Networks {
		if n.Name == name {
			return n, true
		}
	}
	return Network{}, false
}

// HasVolume reports whether a project volume with the given engine name exists.
func (s *Snapshot) HasVolume(name string) bool {
	for _, v := range s.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

func (s *Snapshot) sort() {
	sort.Slice(s.Containers, func(i, j int) bool {
		a, b := s.Containers[i], s.Containers[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Number != b.Number {
			return a.Number < b.Number
		}
		return a.Name < b.Name
	})
	sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].Name < s.Networks[j].Name })
	sort.Slice(s.Volumes, func(i, j int) bool { return s.Volumes[i].Name < s.Volumes[j].Name })
}
