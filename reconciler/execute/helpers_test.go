package execute

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// load reads a compose file given inline through the SDK's loader, as
// project "p"; no engine is involved.
func load(t *testing.T, yaml string) *desired.State {
	t.Helper()
	return desiredtest.Load(t, yaml)
}

// world builds snapshots for a desired state: by default every network and
// volume exists and containers carry the hash compose would stamp.
type world struct {
	d    *desired.State
	snap *observed.Snapshot
}

func newWorld(d *desired.State) *world {
	w := &world{d: d, snap: &observed.Snapshot{Project: d.Project.Name, Images: map[string]string{}}}
	for key, n := range d.Project.Networks {
		w.snap.Networks = append(w.snap.Networks, observed.Network{ID: "id-" + n.Name, Name: n.Name, Key: key})
	}
	for key, v := range d.Project.Volumes {
		w.snap.Volumes = append(w.snap.Volumes, observed.Volume{Name: v.Name, Key: key})
	}
	return w
}

// add adds container number n of service in state (with health and exit
// code after a colon: "running:healthy", "exited:1").
func (w *world) add(service string, n int, state string) *observed.Container {
	s := w.d.Services[service]
	st, detail, _ := strings.Cut(state, ":")
	c := observed.Container{
		ID: fmt.Sprintf("id-%s-%d", service, n), Name: fmt.Sprintf("p-%s-%d", service, n), Service: service, Number: n,
		State: st, Networks: map[string]string{},
	}
	if s != nil {
		c.ConfigHash = plan.ExpectedHash(s.Config, w.snap.ByService())
		for key := range s.Config.Networks {
			name := w.d.Project.Networks[key].Name
			c.Networks[name] = "id-" + name
		}
	}
	switch st {
	case observed.StateRunning:
		c.Health = detail
	case observed.StateExited:
		fmt.Sscanf(detail, "%d", &c.ExitCode)
	}
	w.snap.Containers = append(w.snap.Containers, c)
	return &w.snap.Containers[len(w.snap.Containers)-1]
}

func (w *world) diff(opts plan.Options) *plan.Result { return plan.Diff(w.d, w.snap, opts) }

// stack is the plan package tests' stack: a database, a one-shot
// migration, two API replicas and a web front.
const stack = `
services:
  db:
    image: db
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    volumes: [data:/data]
    networks: [back]
  migrate:
    image: app
    depends_on: {db: {condition: service_healthy}}
    networks: [back]
  api:
    image: app
    deploy: {replicas: 2}
    restart: always
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    networks: [back, front]
  web:
    image: web
    depends_on: [api]
    networks: [front]
networks: {back: {}, front: {}}
volumes: {data: {}}
`
