// Command upstream measures how fast the upstream controller follows health:
// a replica of a 3-replica service is made unhealthy and healthy again -n
// times; each time it takes the engine's health_status event and the
// daemon's own log of the upstream file written and the load balancer's
// reload started.
//
//	go run ./bench/upstream -bin bin/reconcile [-n 30]
package main

import (
	"bufio"
	"context"
	"encoding/json"

	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/testimage"
	"github.com/reconcile-dev/reconcile/observed"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	n := flag.Int("n", 30, "health changes")
	flag.Parse()
	if err := run(*bin, *n); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// timeline collects timestamps by kind.
type timeline struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (t *timeline) add(kind string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.at[kind] = append(t.at[kind], at)
}

// next waits for the first time of kind after after.
func (t *timeline) next(kind string, after time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		for _, at := range t.at[kind] {
			if at.After(after) {
				t.mu.Unlock()
				return at, nil
			}
		}
		t.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("no %s within %s", kind, timeout)
}

func run(bin string, n int) error {
	ctx := context.Background()
	eng, err := engine.Connect(ctx)
	if err != nil {
		return err
	}
	if err := eng.Ping(ctx); err != nil {
		return err
	}
	if err := testimage.Ensure(ctx, eng.Client, testimage.Tag); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-upstream")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "up"), 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("bench-upstream-%d", time.Now().UnixNano()%1e6)
	compose := fmt.Sprintf(`services:
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
`, testimage.Tag)
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		return err
	}
	defer func() {
		zero := time.Duration(0)
		_ = eng.Compose.Down(context.Background(), name, api.DownOptions{RemoveOrphans: true, Timeout: &zero})
	}()

	tl := &timeline{at: map[string][]time.Time{}}
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	victim := name + "-api-2"
	res := eng.Client.Events(evCtx, client.EventsListOptions{Filters: make(client.Filters).Add("label", observed.LabelProject+"="+name)})
	go func() {
		for m := range res.Messages {
			if m.Actor.Attributes["name"] == victim && strings.HasPrefix(string(m.Action), "health_status") {
				tl.add(string(m.Action), time.Unix(0, m.TimeNano))
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
	go readLog(out, tl)

	if _, err := tl.next("health_status: healthy", time.Time{}, 60*time.Second); err != nil {
		return err
	}
	if _, err := tl.next("written", time.Time{}, 60*time.Second); err != nil {
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
		changed, err := tl.next(want, mark, 10*time.Second)
		if err != nil {
			return err
		}
		written, err := tl.next("written", changed, 5*time.Second)
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		reload, err := tl.next("reload", changed, 5*time.Second)
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		toWrite = append(toWrite, written.Sub(changed))
		toReload = append(toReload, reload.Sub(changed))
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Printf("%d health changes of one of 3 replicas (healthcheck every 1 s)\n", n)
	report("health_status -> upstream file written", toWrite)
	report("health_status -> load balancer reload started", toReload)
	fmt.Println("target: p50 < 50ms")
	return nil
}

func readLog(r io.Reader, tl *timeline) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		var kind string
		switch {
		case strings.Contains(line, `"upstream file written"`):
			kind = "written"
		case strings.Contains(line, `"reload start"`):
			kind = "reload"
		default:
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil {
			tl.add(kind, rec.Time)
		}
	}
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func report(what string, ds []time.Duration) {
	fmt.Printf("  %-48s p50 %7.1fms  p99 %7.1fms  max %7.1fms\n", what, ms(pct(ds, 0.5)), ms(pct(ds, 0.99)), ms(pct(ds, 1)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
