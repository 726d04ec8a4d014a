package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// TestOnceAndTheDaemonDecideAlike runs each scenario twice, on a project of
// its own: once with `reconcile --once`, once with the daemon. Both run the
// same project loop (internal/daemon), so each makes the same decisions: a
// crash loop is budgeted alike, an unhealthy replica restarted alike, a
// stale upstream file rewritten alike. Where --once ends (a budget spent is
// a replica nothing will start again) it ends at once, exit 1, naming why.
func TestOnceAndTheDaemonDecideAlike(t *testing.T) {
	t.Parallel()
	type scenario struct {
		name  string
		stack string
		setup func(t *testing.T, p *enginetest.Project)
		// done says the daemon has decided all it will; once, the exit
		// code --once must end with
		done func(t *testing.T, p *enginetest.Project, base string) bool
		once int
		// check compares the outcome, the same in both modes
		check func(t *testing.T, p *enginetest.Project, ev *enginetest.EventLog)
	}
	starts := func(want int, name string) func(t *testing.T, p *enginetest.Project, ev *enginetest.EventLog) {
		return func(t *testing.T, p *enginetest.Project, ev *enginetest.EventLog) {
			if n := ev.Count(p.Name+"-"+name, "start", time.Time{}); n != want {
				t.Errorf("%s started %d times, want %d", name, n, want)
			}
		}
	}
	scenarios := []scenario{
		{
			name: "a crash loop is budgeted",
			stack: `
services:
  app:
    image: {{.Image}}
    command: ["exit", "1", "300ms"]
    restart: on-failure:2
    x-reconcile: {restart: {delay: 100ms}}
`,
			done: func(t *testing.T, p *enginetest.Project, base string) bool {
				return hasRecord(records(t, base), string(record.RestartBudgetExhausted), "")
			},
			once:  exitNotConverged,
			check: starts(3, "app-1"), // the first start and the two restarts of the budget
		},
		{
			name: "an unhealthy replica is restarted within its budget",
			stack: `
services:
  app:
    image: {{.Image}}
    environment: {UNHEALTHY_AFTER: 1s}
    restart: always
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 1s, retries: 1}
    x-reconcile: {restart: {max_attempts: 1, delay: 100ms}}
`,
			done: func(t *testing.T, p *enginetest.Project, base string) bool {
				return hasRecord(records(t, base), string(record.RestartBudgetExhausted), "")
			},
			once:  exitNotConverged,
			check: starts(2, "app-1"), // the first start and the one restart of the budget
		},
		{
			name:  "a stale upstream file is rewritten",
			stack: fmt.Sprintf(upstreamStack, 2),
			setup: func(t *testing.T, p *enginetest.Project) {
				p.Write("up/api.conf", "upstream api_backend {\n    server stale-replica:8080;\n}\n")
			},
			done: func(t *testing.T, p *enginetest.Project, base string) bool {
				return strings.Join(upstreamServers(t, filepath.Join(p.Dir, "up", "api.conf")), ",") == p.Name+"-api-1:8080,"+p.Name+"-api-2:8080"
			},
			once: 0,
			check: func(t *testing.T, p *enginetest.Project, ev *enginetest.EventLog) {
				got := strings.Join(upstreamServers(t, filepath.Join(p.Dir, "up", "api.conf")), ",")
				if want := p.Name + "-api-1:8080," + p.Name + "-api-2:8080"; got != want {
					t.Errorf("upstream file lists %q, want %q", got, want)
				}
				if n := reloadsOf(t, p, p.Name+"-lb-1"); n < 1 {
					t.Errorf("lb reloaded %d times after its file changed", n)
				}
			},
		},
		{
			name:  "a changed service rolls, one replica at a time",
			stack: rollStack("1"),
			setup: func(t *testing.T, p *enginetest.Project) {
				once(t, p, "--state-dir", t.TempDir()) // version 1 up
				p.Rewrite(rollStack("2"))
			},
			done: func(t *testing.T, p *enginetest.Project, base string) bool {
				return hasRecord(records(t, base), string(record.RolloutComplete), "")
			},
			once: 0,
			check: func(t *testing.T, p *enginetest.Project, ev *enginetest.EventLog) {
				// start-first: each new replica numbered after the highest,
				// healthy before its old one goes; compose's own up would
				// have recreated 1 and 2 at once
				if got := strings.Join(names(p), ","); got != p.Name+"-api-3,"+p.Name+"-api-4" {
					t.Errorf("replicas after the update: %s, want api-3 and api-4", got)
				}
				if _, ok := allOn(p, 2); !ok {
					t.Error("not every replica runs healthy on one definition")
				}
			},
		},
	}
	for _, sc := range scenarios {
		for _, mode := range []string{"once", "daemon"} {
			t.Run(sc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				p := enginetest.NewProject(t, sc.stack)
				if err := os.MkdirAll(filepath.Join(p.Dir, "up"), 0o755); err != nil {
					t.Fatal(err)
				}
				if sc.setup != nil {
					sc.setup(t, p)
				}
				ev := p.Record()
				if mode == "once" {
					r := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "90s", "--state-dir", t.TempDir())
					if r.Code != sc.once {
						t.Fatalf("--once: %s\nwant exit %d", r, sc.once)
					}
					if sc.once == exitNotConverged && !strings.Contains(r.Stderr, string(record.RestartBudgetExhausted)) ||
						strings.HasPrefix(sc.name, "a changed service") && !strings.Contains(r.Stderr, string(record.RolloutComplete)) {
						t.Errorf("--once does not say why it ended:\n%s", r.Stderr)
					}
				} else {
					_, base := startDaemon(t, p, nil)
					eventually(t, 90*time.Second, "the daemon's decisions", func() bool { return sc.done(t, p, base) })
				}
				sc.check(t, p, ev)
			})
		}
	}
}

// rollStack is two replicas rolled start-first; version changes the
// definition.
func rollStack(version string) string {
	return `
services:
  api:
    image: {{.Image}}
    restart: always
    environment: {VERSION: "` + version + `"}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 2}
    deploy:
      replicas: 2
      update_config: {order: start-first, monitor: 5s}
`
}

// names are the project's container names, sorted.
func names(p *enginetest.Project) []string {
	var out []string
	for name := range p.IDs() {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
