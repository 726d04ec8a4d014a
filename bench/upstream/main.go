// Command upstream measures how fast the upstream controller follows health:
// a replica of a 3-replica service is made unhealthy and healthy again -n
// times; each time it takes the engine's health_status event and the
// daemon's own log of the upstream file written and the load balancer's
// reload started.
//
//	go run ./bench/upstream -bin bin/reconcile [-n 30]
package main

import (
	"context"

	"github.com/docker/compose/v5/pkg/api"

	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
	"github.com/reconcile-dev/reconcile/internal/engine"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	n := flag.Int("n", 30, "health changes")
	flag.Parse()
	benchkit.Exit(run(*bin, *n))
}

func run(bin string, n int) error {
	ctx := context.Background()
	p, err := benchkit.NewProject(ctx, "bench-upstream", "", `services:
  lb:
    image: %[1]s
    volumes: ["./up:/up:ro"]
    x-reconcile:
      reload: {exec: ["/testapp", "reload"]}
      upstreams: [{name: api_backend, service: api, port: 8080, file: ./up/api.conf}]
  api:
    image: %[1]s
    deploy: {replicas: 3}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 1s, retries: 1}
    x-reconcile: {restart: {on_unhealthy: false}}
`)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := os.Mkdir(filepath.Join(p.Dir, "up"), 0o755); err != nil {
		return err
	}
	eng, name, dir, file := p.Engine, p.Name, p.Dir, p.File

	tl := &benchkit.Timeline{}
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	victim := name + "-api-2"
	res := eng.Client.Events(evCtx, client.EventsListOptions{Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+name)})
	go func() {
		for m := range res.Messages {
			if m.Actor.Attributes["name"] == victim && strings.HasPrefix(string(m.Action), "health_status") {
				tl.Add(string(m.Action), time.Unix(0, m.TimeNano))
			}
		}
	}()

	cmd := exec.Command(bin, "-f", file, "-p", name, "--state-dir", dir, "--log-level", "debug", "--log-format", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	go benchkit.ReadLog(out, map[string][]string{"written": {`"upstream file written"`}, "reload": {`"reload start"`}}, tl.Add)

	if _, err := tl.Next("health_status: healthy", time.Time{}, 60*time.Second); err != nil {
		return err
	}
	if _, err := tl.Next("written", time.Time{}, 60*time.Second); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)

	var toWrite, toReload []time.Duration
	for i := range n {
		verb, want := "unhealthy", "health_status: unhealthy"
		if i%2 == 1 {
			verb, want = "healthy", "health_status: healthy"
		}
		mark := time.Now()
		if _, err := engine.Exec(ctx, eng.Client, victim, []string{"/testapp", "ctl", verb}); err != nil {
			return err
		}
		changed, err := tl.Next(want, mark, 10*time.Second)
		if err != nil {
			return err
		}
		written, err := tl.Next("written", changed, 5*time.Second)
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		reload, err := tl.Next("reload", changed, 5*time.Second)
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		toWrite = append(toWrite, written.Sub(changed))
		toReload = append(toReload, reload.Sub(changed))
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Printf("%d health changes of one of 3 replicas (healthcheck every 1 s)\n", n)
	benchkit.Report("health_status -> upstream file written", toWrite)
	benchkit.Report("health_status -> load balancer reload started", toReload)
	fmt.Println("target: p50 < 50ms")
	return nil
}
