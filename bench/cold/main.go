// Command cold times a cold `reconcile --once` (nothing of the project
// exists) against the real compose CLI's `up -d --wait` of the same file,
// alternating, on two stacks: one where every service has a healthcheck,
// one where none has. --once's settle is met by a passing healthcheck, or
// by each container's own uptime: the targets are a median ratio of at most
// 1.3 with healthchecks, and no more than the settle beyond compose's time
// without.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
)

// The two stacks: a database, a one-shot migration, an api of two
// replicas and a web front, in dependency order, with and without checks.
const (
	healthchecked = `
services:
  db:
    image: %[1]s
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 10, start_period: 10s, start_interval: 200ms}
  api:
    image: %[1]s
    deploy: {replicas: 2}
    depends_on: {db: {condition: service_healthy}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 10, start_period: 10s, start_interval: 200ms}
  web:
    image: %[1]s
    depends_on: {api: {condition: service_healthy}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 10, start_period: 10s, start_interval: 200ms}
`
	unchecked = `
services:
  db:
    image: %[1]s
  api:
    image: %[1]s
    deploy: {replicas: 2}
    depends_on: [db]
  web:
    image: %[1]s
    depends_on: [api]
`
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	composeBin := flag.String("compose", "bin/docker-compose", "the compose CLI (make compose-cli)")
	rounds := flag.Int("rounds", 7, "runs of each tool per stack")
	flag.Parse()
	// both run in the project's directory
	absBin, err := filepath.Abs(*bin)
	if err == nil {
		*composeBin, err = filepath.Abs(*composeBin)
	}
	if err != nil {
		benchkit.Exit(err)
	}
	benchkit.Exit(run(absBin, *composeBin, *rounds))
}

func run(bin, composeBin string, rounds int) error {
	ctx := context.Background()
	for _, st := range []struct{ name, compose string }{{"every service healthchecked", healthchecked}, {"no healthcheck", unchecked}} {
		p, err := benchkit.NewProject(ctx, "bench-cold", "", st.compose)
		if err != nil {
			return err
		}
		down := func() error {
			zero := time.Duration(0)
			return p.Engine.Compose.Down(ctx, p.Name, api.DownOptions{RemoveOrphans: true, Timeout: &zero})
		}
		timed := func(name string, args ...string) (time.Duration, error) {
			if err := down(); err != nil {
				return 0, err
			}
			cmd := exec.Command(name, args...)
			cmd.Dir, cmd.Env = p.Dir, append(os.Environ(), "COMPOSE_PROGRESS=quiet")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				return 0, fmt.Errorf("%s %v: %w\n%s", name, args, err, out)
			}
			return time.Since(start), nil
		}
		var rec, comp []time.Duration
		for range rounds {
			c, err := timed(composeBin, "-f", p.File, "-p", p.Name, "up", "-d", "--wait")
			if err != nil {
				p.Close()
				return err
			}
			r, err := timed(bin, "--once", "-f", p.File, "-p", p.Name, "--state-dir", p.Dir, "--log-level", "error", "--timeout", "2m")
			if err != nil {
				p.Close()
				return err
			}
			comp, rec = append(comp, c), append(rec, r)
		}
		p.Close()
		fmt.Printf("%s (3 services, 4 containers, cold), %d runs each:\n", st.name, rounds)
		benchkit.Report("docker compose up -d --wait", comp)
		benchkit.Report("reconcile --once", rec)
		mr, mc := benchkit.Pct(rec, 0.5), benchkit.Pct(comp, 0.5)
		fmt.Printf("  medians: ratio %.2f, difference %.2f s\n", float64(mr)/float64(mc), (mr - mc).Seconds())
	}
	return nil
}
