// Command images measures x-reconcile.image_updates against a registry run
// in this process (go-containerregistry's pkg/registry) on loopback: a
// daemon follows a tag of a service of 2 replicas (start-first, monitor
// 5 s, rollback); each round pushes a good image to the tag, then one whose
// replicas never turn healthy. It prints, over the rounds, the time from a
// push to ImageUpdateStarted, to ImageUpdated (every replica healthy on the
// new digest), and from the bad push to ImageUpdateFailed (rolled back).
//
//	go run ./bench/images -bin bin/reconcile [-rounds 5] [-interval 2s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

const compose = `services:
  api:
    image: %[1]s
    restart: always
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 2}
    deploy:
      replicas: 2
      update_config: {order: start-first, failure_action: rollback, monitor: 5s}
    x-reconcile:
      image_updates: {interval: %[2]s}
`

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	rounds := flag.Int("rounds", 5, "good and bad pushes")
	interval := flag.Duration("interval", 2*time.Second, "the service's image_updates interval")
	flag.Parse()
	benchkit.Exit(run(*bin, *rounds, *interval))
}

func run(bin string, rounds int, interval time.Duration) error {
	ctx := context.Background()
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (go build -o bin/reconcile ./cmd/reconcile)", bin, err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	appBin, err := testimage.Binary(ctx)
	if err != nil {
		return err
	}
	ref := strings.TrimPrefix(srv.URL, "http://") + "/bench:stable"
	n := 0
	push := func(env ...string) (time.Time, error) {
		n++
		at := time.Now()
		_, err := testimage.Push(ref, appBin, time.Now().Add(-2*time.Hour), append(env, fmt.Sprintf("VERSION=%d", n))...)
		return at, err
	}
	if _, err := push(); err != nil {
		return err
	}
	p, err := benchkit.NewProject(ctx, "bimg", "", "# %[1]s\nservices: {}\n")
	if err != nil {
		return err
	}
	// the compose file names the registry's tag, not the test image
	if err := os.WriteFile(p.File, []byte(fmt.Sprintf(compose, ref, interval)), 0o644); err != nil {
		return err
	}
	defer func() {
		p.Close()
		testimage.RemoveImages(ctx, p.Engine.Client, strings.TrimSuffix(ref, ":stable"))
	}()
	state, err := os.MkdirTemp("", "bimg-state")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	cmd := exec.Command(bin, "-f", p.File, "-p", p.Name, "--state-dir", state, "--log-format", "json")
	logs, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	var tl benchkit.Timeline
	go benchkit.ReadLog(logs, map[string][]string{
		"started": {`"reason":"ImageUpdateStarted"`},
		"updated": {`"reason":"ImageUpdated"`},
		"failed":  {`"reason":"ImageUpdateFailed"`},
	}, tl.Add)
	if _, err := benchkit.WaitRunning(ctx, p, 2, 2*time.Minute); err != nil {
		return err
	}
	var started, updated, failed []time.Duration
	for range rounds {
		at, err := push()
		if err != nil {
			return err
		}
		s, err := tl.Next("started", at, 2*time.Minute)
		if err != nil {
			return err
		}
		u, err := tl.Next("updated", s, 2*time.Minute)
		if err != nil {
			return err
		}
		started, updated = append(started, s.Sub(at)), append(updated, u.Sub(at))
		at, err = push("START_DELAY=1h")
		if err != nil {
			return err
		}
		f, err := tl.Next("failed", at, 2*time.Minute)
		if err != nil {
			return err
		}
		failed = append(failed, f.Sub(at))
	}
	fmt.Printf("image_updates, interval %s, 2 replicas (start-first, monitor 5s), %d rounds:\n", interval, rounds)
	benchkit.Report("  good push to ImageUpdateStarted", started)
	benchkit.Report("  good push to ImageUpdated", updated)
	benchkit.Report("  bad push to ImageUpdateFailed", failed)
	return nil
}
