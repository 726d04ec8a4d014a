package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
)

// The tests here are the daemon's own actions told from a person's: a
// removal of reconcile's own (a pruned extra replica, an orphan) is never
// taken for a person's `down`, so the replica count and the file stay in
// force after it, and each is followed by a kill that must be undone.

// noRecord fails when the daemon recorded reason about container.
func noRecord(t *testing.T, base string, reason record.Reason, container string) {
	t.Helper()
	for _, r := range records(t, base) {
		if r.Reason == reason && (container == "" || r.Container == container) {
			t.Errorf("recorded %s for %s: %s", r.Reason, r.Container, r.Message)
		}
	}
}

func TestAPrunedExtraReplicaLeavesTheCountInForce(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
    restart: always
`)
	_, base := startDaemon(t, p, nil)
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"api": 2}))
	scaleByHand(t, p, "api", 3)
	eventually(t, 15*time.Second, "the extra replica pruned", func() bool {
		_, ok := p.IDs()[p.Name+"-api-3"]
		return !ok && running(p)["api"] == 2
	})
	noRecord(t, base, record.RemovedByUser, "")

	// a person removes a replica: the count still holds
	p.RemoveForce(p.IDs()[p.Name+"-api-1"])
	took := eventually(t, 10*time.Second, "the removed replica replaced", func() bool {
		_, ok := p.IDs()[p.Name+"-api-1"]
		return !ok && running(p)["api"] == 2
	})
	t.Logf("replaced %s after docker rm -f", took)
	// a start that raced the removal is moot, not a failure to report
	noRecord(t, base, record.FailedStartContainer, "")

	// and a kill is undone
	victim := p.Name + "-api-2"
	dockerKill(t, p, p.IDs()[victim])
	eventually(t, 10*time.Second, "the killed replica back", func() bool {
		for _, c := range p.Snapshot().Containers {
			if c.Name == victim {
				return c.State == observed.StateRunning
			}
		}
		return false
	})
	noRecord(t, base, record.RemovedByUser, "")
}

func TestAServiceRemovedAsAnOrphanAndAddedBackIsCreated(t *testing.T) {
	const stack = `
services:
  api:
    image: {{.Image}}
    restart: always
  worker:
    image: {{.Image}}
    restart: always
`
	p := enginetest.NewProject(t, stack)
	_, base := startDaemon(t, p, nil, "--remove-orphans")
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"api": 1, "worker": 1}))

	p.Rewrite(strings.Replace(stack, "  worker:\n    image: {{.Image}}\n    restart: always\n", "", 1))
	eventually(t, 15*time.Second, "the orphan removed", func() bool {
		_, ok := p.IDs()[p.Name+"-worker-1"]
		return !ok
	})
	p.Rewrite(stack)
	took := eventually(t, 15*time.Second, "the service added back created", func() bool { return running(p)["worker"] == 1 })
	t.Logf("worker created again %s after the file gave it back", took)
	noRecord(t, base, record.RemovedByUser, "")

	var worker string
	for name, id := range p.IDs() {
		if strings.Contains(name, "-worker-") {
			worker = id
		}
	}
	dockerKill(t, p, worker)
	eventually(t, 10*time.Second, "the killed worker back", func() bool { return running(p)["worker"] == 1 })
}

// leftDownStack is the quickstart's api and web.
const leftDownStack = `
services:
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
    restart: on-failure:3
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    x-reconcile: {restart: {delay: 200ms}}
  web:
    image: {{.Image}}
    restart: always
    depends_on:
      api: {condition: service_healthy}
`

// TestAReplicaLeftDownDoesNotHoldItsDependents walks the quickstart's own
// steps: api-2 killed until its budget is spent, then web (restart: always,
// depends on api healthy) killed. api-1 runs healthy, so web comes back.
// Recreating web then leaves api-2 down.
func TestAReplicaLeftDownDoesNotHoldItsDependents(t *testing.T) {
	p := enginetest.NewProject(t, leftDownStack)
	ev := p.Record()
	_, base := startDaemon(t, p, nil)
	eventually(t, 90*time.Second, "convergence", converged(p, map[string]int{"api": 2, "web": 1}))
	tired := p.Name + "-api-2"
	stateOf := func(name string) observed.Container {
		for _, c := range p.Snapshot().Containers {
			if c.Name == name {
				return c
			}
		}
		return observed.Container{}
	}
	for i := range 4 {
		eventually(t, 20*time.Second, "api-2 running", func() bool { return stateOf(tired).State == observed.StateRunning })
		dockerKill(t, p, stateOf(tired).ID)
		t.Logf("kill %d of api-2", i+1)
	}
	waitRecord(t, base, record.RestartBudgetExhausted, p.Name)
	if c := stateOf(tired); c.State != observed.StateExited {
		t.Fatalf("api-2 is %s, want left down", c.State)
	}

	web := p.Name + "-web-1"
	dockerKill(t, p, stateOf(web).ID)
	took := eventually(t, 15*time.Second, "web back while api-1 serves", func() bool { return stateOf(web).State == observed.StateRunning })
	t.Logf("web back after %s", took)
	webID := stateOf(web).ID

	st := statusJSON(t, base)
	found := false
	for _, s := range st.Services {
		for _, c := range s.Containers {
			if c.Name == tired {
				found = c.LeftDown == string(record.RestartBudgetExhausted)
			}
		}
	}
	if !found {
		t.Errorf("status does not say api-2 is left down: %+v", st.Services)
	}
	// the dashboard says it too, on the replica's mark
	br := openBrowser(t)
	ctx, cancel := context.WithTimeout(br.Ctx, 30*time.Second)
	defer cancel()
	mark := fmt.Sprintf(`#graph g.replica[data-container=%q][data-left-down=%q]`, tired, record.RestartBudgetExhausted)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(mark))); err != nil {
		t.Fatalf("the dashboard does not mark %s left down: %v", tired, err)
	}
	if title := eval[string](t, br, `document.querySelector('`+mark+` title').textContent`); !strings.Contains(title, "dependents run on the other replicas") {
		t.Errorf("the mark's title: %q", title)
	}
	// recreating a dependent leaves the tired replica down: compose's up of
	// web starts web alone, not its dependencies' stopped containers
	edited := time.Now()
	p.Rewrite(strings.Replace(leftDownStack, "    restart: always\n", "    restart: always\n    environment: {MODE: edited}\n", 1))
	eventually(t, 20*time.Second, "web recreated", func() bool { c := stateOf(web); return c.State == observed.StateRunning && c.ID != webID })
	if n := ev.Count(tired, "start", edited); n != 0 {
		t.Errorf("api-2, left down, was started %d times by the recreate of a dependent", n)
	}
	if c := stateOf(tired); c.State != observed.StateExited {
		t.Errorf("api-2 is %s after web's recreate, want left down", c.State)
	}

	// the healthy replica is still the daemon's to bring back
	dockerKill(t, p, stateOf(p.Name+"-api-1").ID)
	eventually(t, 15*time.Second, "api-1 back", func() bool { return stateOf(p.Name+"-api-1").State == observed.StateRunning })
}
