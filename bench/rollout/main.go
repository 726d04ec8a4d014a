// Command rollout measures a change of the production example's api (three
// replicas behind nginx) under a steady request loop through nginx, in one
// run: rolled by reconcile's daemon (update_config: one at a time,
// stop-first, each drained from nginx first and healthy before the next),
// then the same kind of change applied by compose's own all-at-once
// recreate (`docker compose up -d`, the real CLI, with the daemon stopped).
// For each it prints the requests sent and failed, and how long the change
// took, from the edit to every api replica healthy on the new definition.
//
//	go run ./bench/rollout -bin bin/reconcile -compose bin/docker-compose [-interval 20ms]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/observed"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	composeBin := flag.String("compose", "bin/docker-compose", "the compose CLI (make compose-cli)")
	interval := flag.Duration("interval", 20*time.Millisecond, "pause between two requests of the loop")
	flag.Parse()
	benchkit.Exit(run(*bin, *composeBin, *interval))
}

// stack is a copy of the production example, up under its own name.
type stack struct {
	eng           *engine.Engine
	name, dir, lb string
	args          []string // -p, -f and --env-file flags, as compose and reconcile take them
	override      string
}

func run(bin, composeBin string, interval time.Duration) error {
	ctx := context.Background()
	for _, b := range []string{bin, composeBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s: %w (make build compose-cli)", b, err)
		}
	}
	eng, err := engine.Connect(ctx)
	if err != nil {
		return err
	}
	s, err := newStack(eng)
	if err != nil {
		return err
	}
	defer s.close()
	state := filepath.Join(s.dir, ".state")
	if out, err := exec.Command(bin, append([]string{"--once", "--timeout", "5m", "--state-dir", state}, s.args...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("bringing the example up: %w\n%s", err, out)
	}

	port, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + port
	daemon := exec.Command(bin, append([]string{"--state-dir", state, "--listen", "127.0.0.1:" + port, "--log-level", "warn"}, s.args...)...)
	daemon.Stderr = os.Stderr
	if err := daemon.Start(); err != nil {
		return err
	}
	stopDaemon := func() { _ = daemon.Process.Signal(syscall.SIGTERM); _ = daemon.Wait() }
	defer stopDaemon()
	if err := wait(2*time.Minute, "three api replicas in nginx's upstream file", func() bool { return len(s.upstreams()) == 3 }); err != nil {
		return err
	}
	before, _ := s.apiOn()

	// reconcile's rolling update
	loop := startLoop(s.lb+"/api/", interval)
	t0 := time.Now()
	if err := s.edit("LOG_LEVEL: warn", "LOG_LEVEL: error"); err != nil {
		return err
	}
	var rolled string
	if err := wait(5*time.Minute, "the update complete", func() bool {
		h, ok := s.apiOn()
		rolled = h
		return ok && h != before && hasRecord(base, "RolloutComplete") && len(s.upstreams()) == 3
	}); err != nil {
		return err
	}
	rollTook := time.Since(t0)
	rollSent, rollFailed := loop.stop()
	stopDaemon()

	// compose's own recreate of the same kind of change
	loop = startLoop(s.lb+"/api/", interval)
	t0 = time.Now()
	if err := s.edit("LOG_LEVEL: error", "LOG_LEVEL: debug"); err != nil {
		return err
	}
	if out, err := exec.Command(composeBin, append(s.args, "up", "-d")...).CombinedOutput(); err != nil {
		return fmt.Errorf("docker compose up -d: %w\n%s", err, out)
	}
	if err := wait(5*time.Minute, "every api replica healthy on the new definition", func() bool {
		h, ok := s.apiOn()
		return ok && h != rolled
	}); err != nil {
		return err
	}
	composeTook := time.Since(t0)
	// nginx still holds the addresses it resolved: a few more seconds of
	// traffic show whether the recreate left it pointing at nothing
	time.Sleep(5 * time.Second)
	composeSent, composeFailed := loop.stop()

	fmt.Printf("a change of api (3 replicas behind nginx), a request every %s through nginx:\n", interval)
	fmt.Printf("  reconcile rolling update   %6.1f s   %5d requests, %4d failed   (target 0 failed)\n", rollTook.Seconds(), rollSent, rollFailed)
	fmt.Printf("  compose up -d (all at once) %5.1f s   %5d requests, %4d failed   (then 5 s more traffic)\n", composeTook.Seconds(), composeSent, composeFailed)
	return nil
}

func newStack(eng *engine.Engine) (*stack, error) {
	src, err := filepath.Abs("examples/production")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-rollout")
	if err != nil {
		return nil, err
	}
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		return nil, fmt.Errorf("copying the example: %w", err)
	}
	lbPort, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	s := &stack{eng: eng, name: fmt.Sprintf("bench-rollout-%d", time.Now().UnixNano()%1e6), dir: dir, lb: "http://127.0.0.1:" + lbPort}
	env := fmt.Sprintf("DB_VOLUME_NAME=%s-db-data\nLB_PORT=%s\n", s.name, lbPort)
	if err := os.WriteFile(filepath.Join(dir, "bench.env"), []byte(env), 0o644); err != nil {
		return nil, err
	}
	s.override = filepath.Join(dir, "docker-compose.prod.yml")
	s.args = []string{"-p", s.name, "-f", filepath.Join(dir, "docker-compose.yml"), "-f", s.override,
		"--env-file", filepath.Join(dir, "local-images.env"), "--env-file", filepath.Join(dir, "bench.env")}
	return s, nil
}

func (s *stack) close() {
	zero := time.Duration(0)
	_ = s.eng.Compose.Down(context.Background(), s.name, api.DownOptions{RemoveOrphans: true, Volumes: true, Timeout: &zero})
	os.RemoveAll(s.dir)
}

// edit replaces old with new in the production override: a change of the
// api's definition.
func (s *stack) edit(old, new string) error {
	b, err := os.ReadFile(s.override)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), old) {
		return fmt.Errorf("%s holds no %q", s.override, old)
	}
	return os.WriteFile(s.override, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

// apiOn returns the config hash of the api replicas when all three run
// healthy on one definition.
func (s *stack) apiOn() (string, bool) {
	snap, err := observed.Observe(context.Background(), s.eng.Client, s.name, time.Now())
	if err != nil {
		return "", false
	}
	hash, n := "", 0
	for _, c := range snap.Containers {
		if c.Service != "api" {
			continue
		}
		if c.State != observed.StateRunning || c.Health != observed.HealthHealthy || (hash != "" && c.ConfigHash != hash) {
			return "", false
		}
		hash = c.ConfigHash
		n++
	}
	return hash, n == 3
}

// upstreams lists the servers of the upstream file the daemon writes.
func (s *stack) upstreams() []string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "lb", "upstreams", "api_backend.conf"))
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if srv, ok := strings.CutPrefix(strings.TrimSpace(line), "server "); ok {
			out = append(out, srv)
		}
	}
	return out
}

// loop sends requests until stopped, counting them and their failures.
type loop struct {
	sent, failed atomic.Int64
	done         chan struct{}
	ended        chan struct{}
}

func startLoop(url string, interval time.Duration) *loop {
	l := &loop{done: make(chan struct{}), ended: make(chan struct{})}
	c := http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(l.ended)
		for {
			select {
			case <-l.done:
				return
			case <-time.After(interval):
			}
			l.sent.Add(1)
			resp, err := c.Get(url)
			if err != nil {
				l.failed.Add(1)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				l.failed.Add(1)
			}
		}
	}()
	return l
}

func (l *loop) stop() (sent, failed int64) {
	close(l.done)
	<-l.ended
	return l.sent.Load(), l.failed.Load()
}

func hasRecord(base, reason string) bool {
	resp, err := http.Get(base + "/events")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var r struct{ Reason string }
		if dec.Decode(&r) != nil {
			return false
		}
		if r.Reason == reason {
			return true
		}
	}
	return false
}

func wait(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New(what + ": not within " + timeout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
