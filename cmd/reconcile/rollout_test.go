package main

import (
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// rolloutStack is three replicas rolled start-first, rolled back on
// failure; version and extra change the definition.
func rolloutStack(version, extra string) string {
	return `
services:
  api:
    image: {{.Image}}
    restart: always
    environment: {VERSION: "` + version + `"` + extra + `}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 2}
    deploy:
      replicas: 3
      update_config: {order: start-first, failure_action: rollback, monitor: 8s}
`
}

// allOn reports whether the service runs exactly n healthy replicas, all
// with one config hash, and returns it.
func allOn(p *enginetest.Project, n int) (string, bool) {
	hash := ""
	cs := p.Snapshot().Containers
	if len(cs) != n {
		return "", false
	}
	for _, c := range cs {
		if c.State != observed.StateRunning || c.Health != observed.HealthHealthy || (hash != "" && c.ConfigHash != hash) {
			return "", false
		}
		hash = c.ConfigHash
	}
	return hash, true
}

// TestARollingUpdateKeepsTheCountRollsBackAndSurvivesAKill: a start-first
// update never runs fewer than the desired replicas; an update whose
// replicas never turn healthy is rolled back to the previous definition;
// a daemon SIGKILLed in the middle of an update leaves it to the next one,
// which finishes it.
func TestARollingUpdateKeepsTheCountRollsBackAndSurvivesAKill(t *testing.T) {
	p := enginetest.NewProject(t, rolloutStack("1", ""))
	d, base := startDaemon(t, p, nil)
	var v1 string
	eventually(t, 60*time.Second, "three healthy replicas", func() (ok bool) { v1, ok = allOn(p, 3); return ok })

	// the replica count, watched throughout
	var mu sync.Mutex
	fewest, stop := 3, make(chan struct{})
	var watching sync.WaitGroup
	watching.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			n := running(p)["api"]
			mu.Lock()
			fewest = min(fewest, n)
			mu.Unlock()
		}
	})

	p.Rewrite(rolloutStack("2", ""))
	var v2 string
	eventually(t, 90*time.Second, "every replica on the new definition", func() (ok bool) {
		v2, ok = allOn(p, 3)
		return ok && v2 != v1
	})
	close(stop)
	watching.Wait()
	if fewest < 3 {
		t.Errorf("start-first: %d replicas running at one point, want at least 3 throughout", fewest)
	}
	for _, want := range []record.Reason{record.RolloutStarted, record.ReplicaAdded, record.RolloutComplete} {
		waitRecord(t, base, want, p.Name)
	}

	// a definition whose replicas never turn healthy is rolled back
	p.Rewrite(rolloutStack("3", `, START_DELAY: "1h"`))
	waitRecord(t, base, record.RolledBack, p.Name)
	eventually(t, 60*time.Second, "every replica back on the previous definition", func() bool {
		h, ok := allOn(p, 3)
		return ok && h == v2
	})
	st := statusJSON(t, base)
	if s := st.Services[0]; s.Sync != plan.OutOfSync || !strings.Contains(s.Reason, "rolled back") {
		t.Errorf("status after the rollback: %s %q, want OutOfSync and why", s.Sync, s.Reason)
	}

	// killed in the middle of an update, the next daemon finishes it
	p.Rewrite(rolloutStack("4", ""))
	eventually(t, 30*time.Second, "the update under way", func() bool {
		hashes := map[string]bool{}
		for _, c := range p.Snapshot().Containers {
			hashes[c.ConfigHash] = true
		}
		return len(hashes) > 1
	})
	state := stateDirOf(d)
	d.Signal(syscall.SIGKILL)
	d.Wait(10 * time.Second)
	_, base2 := startDaemon(t, p, nil, "--state-dir", state)
	eventually(t, 90*time.Second, "the next daemon finishes the update", func() bool {
		h, ok := allOn(p, 3)
		return ok && h != v2 && h != v1
	})
	waitRecord(t, base2, record.RolloutComplete, p.Name)
}

// TestOnceRollsAndExitsNonZeroAfterARollback: `--once` rolls a change the
// daemon's way; a change whose replicas never turn healthy is rolled back
// to the definition the last run left (kept in the state directory), and
// the run exits 1 saying why; the next run does not try it again.
func TestOnceRollsAndExitsNonZeroAfterARollback(t *testing.T) {
	p := enginetest.NewProject(t, rolloutStack("1", ""))
	state := "--state-dir=" + t.TempDir()
	once(t, p, state)
	v1, ok := allOn(p, 3)
	if !ok {
		t.Fatal("not three healthy replicas after --once")
	}
	p.Rewrite(rolloutStack("2", ""))
	r := once(t, p, state)
	v2, ok := allOn(p, 3)
	if !ok || v2 == v1 || !strings.Contains(r.Stderr, "RolloutComplete") {
		t.Fatalf("after the update: on %s (was %s), ok %v; output:\n%s", v2, v1, ok, r)
	}
	p.Rewrite(rolloutStack("3", `, START_DELAY: "1h"`))
	r = reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "90s", state)
	if r.Code != 1 || !strings.Contains(r.Stderr, "RolledBack") {
		t.Fatalf("a failing change: %s; want exit 1 saying it was rolled back", r)
	}
	if h, ok := allOn(p, 3); !ok || h != v2 {
		t.Errorf("after the rollback: on %s, want every replica healthy on the previous definition", h)
	}
	// the next run does not try it again: it ends at once, touching nothing
	ids := p.IDs()
	r = reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "90s", state)
	if r.Code != 1 || !strings.Contains(r.Stderr, "RolledBack") {
		t.Errorf("the run after a rollback: %s; want exit 1 at once", r)
	}
	if now := p.IDs(); len(now) != len(ids) {
		t.Errorf("the run after a rollback changed the containers: %v, then %v", ids, now)
	}
	for name, id := range p.IDs() {
		if ids[name] != id {
			t.Errorf("%s was replaced by the run after a rollback", name)
		}
	}
}
