package main

import (
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/observed"
)

// onceWithin runs --once with a long timeout and fails the test unless it
// exits with code within half of it: an error waiting cannot fix must end
// the run, not use it up.
func onceWithin(t *testing.T, p *enginetest.Project, code int) result {
	t.Helper()
	const timeout = 2 * time.Minute
	start := time.Now()
	r := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", timeout.String())
	if took := time.Since(start); took > timeout/2 {
		t.Fatalf("--once took %s of its %s timeout: it retried what waiting cannot fix\n%s", took.Round(time.Second), timeout, r)
	}
	if r.Code != code {
		t.Fatalf("%s\nwant exit %d", r, code)
	}
	return r
}

func stateOf(t *testing.T, p *enginetest.Project, name string) string {
	t.Helper()
	for _, c := range p.Snapshot().Containers {
		if c.Name == name {
			return c.State
		}
	}
	return "missing"
}

// TestAFailedPreStartHookLeavesTheReplicaCreated: compose runs pre_start
// before the service's first start and, when it fails, leaves the container
// created and fails `up`. reconcile did the same and then started the
// container through the engine, without the hook, and called it converged.
func TestAFailedPreStartHookLeavesTheReplicaCreated(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    pre_start:   # a container of the image: command runs under its entrypoint
      - command: ["exit", "3"]
`)
	events := p.Record()
	app := p.Name + "-app-1"
	for pass := 1; pass <= 2; pass++ {
		r := onceWithin(t, p, exitNotConverged)
		if !strings.Contains(r.Stderr, "pre_start[0] exited with code 3") || !strings.Contains(r.Stderr, "waiting cannot fix it") {
			t.Errorf("pass %d: the output does not say the hook failed:\n%s", pass, r.Stderr)
		}
		if st := stateOf(t, p, app); st != observed.StateCreated {
			t.Fatalf("pass %d: %s is %s, want created (never started without its hook)", pass, app, st)
		}
	}
	if n := events.Count(app, "start", time.Time{}); n != 0 {
		t.Errorf("%s was started %d times although its pre_start hook failed", app, n)
	}
	// the second pass ran the hook again, in a fresh runner, as a second
	// `docker compose up` does
	if n := events.Count(p.Name+"-app-pre_start-0", "start", time.Time{}); n != 2 {
		t.Errorf("the pre_start runner started %d times over two passes, want 2", n)
	}
}

// TestAFailedPostStartHookFailsTheRun: compose starts the container, runs
// post_start in it and fails `up` when the hook fails; the container runs.
// reconcile's own start of a killed replica runs the hook too.
func TestAFailedPostStartHookFailsTheRun(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    post_start:
      - command: ["/testapp", "exit", "4"]
`)
	app := p.Name + "-app-1"
	r := onceWithin(t, p, exitNotConverged)
	if !strings.Contains(r.Stderr, "hook exited with status 4") {
		t.Errorf("compose's hook failure is not reported:\n%s", r.Stderr)
	}
	if st := stateOf(t, p, app); st != observed.StateRunning {
		t.Fatalf("%s is %s, want running, as compose leaves it", app, st)
	}
	kill(t, p, p.IDs()[app])
	r = onceWithin(t, p, exitNotConverged)
	if !strings.Contains(r.Stderr, `"app" post_start[0] in `+app+" exited with status 4") {
		t.Errorf("the hook of reconcile's own start is not reported:\n%s", r.Stderr)
	}
	if st := stateOf(t, p, app); st != observed.StateRunning {
		t.Errorf("%s is %s after the restart, want running", app, st)
	}
}

// TestHooksRunOnReconcilesOwnStarts: a killed replica of a service with
// hooks comes back the way `docker compose up` would bring it back: with
// no replica running, through compose (pre_start runs in its runner), and
// its post_start hook runs in it.
func TestHooksRunOnReconcilesOwnStarts(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    pre_start:
      - command: ["exit", "0"]
    post_start:
      - command: ["/testapp", "exit", "0"]
`)
	events := p.Record()
	app := p.Name + "-app-1"
	once(t, p)
	killed := time.Now()
	kill(t, p, p.IDs()[app])
	once(t, p)
	if n := events.Count(p.Name+"-app-pre_start-0", "start", killed); n != 1 {
		t.Errorf("pre_start ran %d times on the restart, want 1", n)
	}
	if n := events.Count(app, "exec_start", killed); n != 1 {
		t.Errorf("post_start ran %d times on the restart, want 1", n)
	}
}

// TestOnceEndsAtOnceOnWhatTheEngineRefuses: a definition the engine refuses
// for a reason no wait can change ends --once at once with the engine's
// words, where it retried until its timeout.
func TestOnceEndsAtOnceOnWhatTheEngineRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, key, want string }{
		{"missing ipc container", "ipc: container:reconcile-test-no-such-container", "No such container: reconcile-test-no-such-container"},
		{"missing network_mode container", "network_mode: container:reconcile-test-no-such-container", "No such container: reconcile-test-no-such-container"},
		{"unsupported option", "gpus: all", "could not select device driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := enginetest.NewProject(t, "services:\n  app:\n    image: {{.Image}}\n    "+tt.key+"\n")
			r := onceWithin(t, p, exitNotConverged)
			if !strings.Contains(r.Stderr, tt.want) || !strings.Contains(r.Stderr, "waiting cannot fix it") {
				t.Errorf("the output lacks %q:\n%s", tt.want, r.Stderr)
			}
		})
	}
}

// TestTheDaemonReportsAFailedHookAndWaits: the daemon records HookFailed
// and leaves the replica created; it does not start it without its hook.
func TestTheDaemonReportsAFailedHookAndWaits(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    pre_start:
      - command: ["exit", "3"]
`)
	events := p.Record()
	_, base := startDaemon(t, p, nil)
	eventually(t, 30*time.Second, "a HookFailed record", func() bool { return hasRecord(records(t, base), "HookFailed", "") })
	app := p.Name + "-app-1"
	if st := stateOf(t, p, app); st != observed.StateCreated {
		t.Errorf("%s is %s, want created", app, st)
	}
	if n := events.Count(app, "start", time.Time{}); n != 0 {
		t.Errorf("%s was started %d times although its pre_start hook failed", app, n)
	}
}
