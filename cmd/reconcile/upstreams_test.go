package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/observed"
)

// upstreamFile reads the generated file and returns the servers it lists.
func upstreamServers(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "server "); ok {
			out = append(out, strings.TrimSuffix(s, ";"))
		}
	}
	return out
}

const upstreamStack = `
services:
  lb:
    image: {{.Image}}
    volumes: ["./up:/up:ro"]
    x-reconcile:
      reload:
        check: ["/testapp", "check", "/up/api.conf"]
        exec: ["/testapp", "reload"]
      upstreams:
        - {name: api_backend, service: api, port: 8080, file: ./up/api.conf}
  api:
    image: {{.Image}}
    deploy: {replicas: %d}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 1s, retries: 1}
    x-reconcile: {restart: {on_unhealthy: false}}
`

func TestUpstreamFileFollowsHealthyReplicas(t *testing.T) {
	p := enginetest.NewProject(t, fmt.Sprintf(upstreamStack, 3))
	if err := os.MkdirAll(filepath.Join(p.Dir, "up"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, base := startDaemon(t, p, nil)
	file := filepath.Join(p.Dir, "up", "api.conf")
	name := func(n int) string { return fmt.Sprintf("%s-api-%d:8080", p.Name, n) }
	want := func(ns ...int) string {
		var s []string
		for _, n := range ns {
			s = append(s, name(n))
		}
		return strings.Join(s, ",")
	}
	listed := func() string { return strings.Join(upstreamServers(t, file), ",") }
	eventually(t, 60*time.Second, "3 healthy replicas listed", func() bool { return listed() == want(1, 2, 3) })
	lb := p.Name + "-lb-1"
	eventually(t, 10*time.Second, "lb reloaded", func() bool { return reloadsOf(t, p, lb) >= 1 })
	before := reloadsOf(t, p, lb)

	ctl(t, p, p.IDs()[p.Name+"-api-2"], "unhealthy")
	took := eventually(t, 2*time.Second, "unhealthy replica leaves the file (interval 1s + 1s)", func() bool { return listed() == want(1, 3) })
	t.Logf("left the file %s after being made unhealthy", took)
	eventually(t, 5*time.Second, "lb reloaded again", func() bool { return reloadsOf(t, p, lb) > before })

	ctl(t, p, p.IDs()[p.Name+"-api-2"], "healthy")
	eventually(t, 3*time.Second, "healthy again: back in the file", func() bool { return listed() == want(1, 2, 3) })

	p.Rewrite(fmt.Sprintf(upstreamStack, 5))
	eventually(t, 30*time.Second, "scaled to 5: 5 listed", func() bool { return listed() == want(1, 2, 3, 4, 5) })

	// none healthy: the last list is kept, the lb reported Degraded
	if hasRecord(records(t, base), "NoHealthyUpstream", "") {
		t.Fatal("NoHealthyUpstream while replicas were healthy")
	}
	for _, n := range []int{1, 2, 3, 4, 5} {
		ctl(t, p, p.IDs()[fmt.Sprintf("%s-api-%d", p.Name, n)], "unhealthy")
	}
	eventually(t, 5*time.Second, "NoHealthyUpstream", func() bool { return hasRecord(records(t, base), "NoHealthyUpstream", "") })
	if got := len(upstreamServers(t, file)); got == 0 {
		t.Error("the file was emptied")
	}
	st := statusJSON(t, base)
	for _, s := range st.Services {
		if s.Service == "lb" && (s.Health != "Degraded" || !strings.Contains(s.Reason, "NoHealthyUpstream")) {
			t.Errorf("lb status %+v", s)
		}
	}
}

func TestUpstreamDrainsAReplicaBeforeRemovingIt(t *testing.T) {
	p := enginetest.NewProject(t, fmt.Sprintf(upstreamStack, 3))
	if err := os.MkdirAll(filepath.Join(p.Dir, "up"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, base := startDaemon(t, p, nil)
	file := filepath.Join(p.Dir, "up", "api.conf")
	eventually(t, 60*time.Second, "3 listed", func() bool { return len(upstreamServers(t, file)) == 3 })
	events := p.Record()
	since := time.Now()
	p.Rewrite(fmt.Sprintf(upstreamStack, 2))
	api3 := p.Name + "-api-3"
	eventually(t, 15*time.Second, "api-3 removed", func() bool { _, ok := p.IDs()[api3]; return !ok })
	if got := upstreamServers(t, file); len(got) != 2 {
		t.Errorf("file lists %v", got)
	}
	// the file changed, and the lb reloaded, before api-3 was stopped
	stopped, ok := firstAfter(events, api3, "kill", since)
	if !ok {
		t.Fatal("no kill event for api-3")
	}
	var reloaded time.Time
	for _, r := range records(t, base) {
		if r.Reason == "Reloaded" && r.Service == "lb" && r.Time.After(since) && strings.Contains(r.Message, "upstream") {
			reloaded = r.Time
			break
		}
	}
	if reloaded.IsZero() || !reloaded.Before(stopped) {
		t.Errorf("lb reloaded at %s, api-3 stopped at %s: the replica must leave first", reloaded, stopped)
	}
}

const nginxStack = `
services:
  lb:
    image: reconcile-nginx:1.22
    ports: ["127.0.0.1:{{.Port}}:80"]
    volumes: ["./conf.d:/etc/nginx/conf.d:ro", "./upstreams:/etc/nginx/upstreams:ro"]
    depends_on: {api: {condition: service_healthy}}
    x-reconcile:
      reload:
        check: ["nginx", "-t"]
        exec: ["nginx", "-s", "reload"]
      upstreams:
        - {name: api_backend, service: api, port: 8080, file: ./upstreams/api.conf}
  api:
    image: {{.Image}}
    deploy: {replicas: 3}
    restart: always
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 1s, retries: 1}
`

const nginxConf = `include /etc/nginx/upstreams/*.conf;
server {
    listen 80;
    location / {
        proxy_pass http://api_backend;
        proxy_connect_timeout 1s;
        proxy_next_upstream error timeout http_502 http_503;
    }
}
`

func TestNginxKeepsServingWhileAReplicaIsKilled(t *testing.T) {
	enginetest.BuildScript(t, "../../examples/production/images/build.sh")
	port := enginetest.FreePort(t)
	p := enginetest.NewProject(t, strings.Replace(nginxStack, "{{.Port}}", port, 1))
	for _, d := range []string{"conf.d", "upstreams"} {
		if err := os.MkdirAll(filepath.Join(p.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(p.Dir, "conf.d", "default.conf"), []byte(nginxConf), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base := startDaemon(t, p, nil)
	url := "http://127.0.0.1:" + port + "/"
	get := func() (string, error) {
		c := http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.Header.Get("Server"))
		buf := make([]byte, 256)
		n, _ := resp.Body.Read(buf)
		return string(buf[:n]), nil
	}
	eventually(t, 90*time.Second, "nginx serving through the upstream", func() bool {
		_, err := get()
		return err == nil
	})

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := get(); err != nil {
				failed.Add(1)
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
			} else {
				ok.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	time.Sleep(500 * time.Millisecond)
	victim := p.IDs()[p.Name+"-api-2"]
	if _, err := p.Engine.Client.ContainerKill(context.Background(), victim, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	stop()
	wg.Wait()
	if failed.Load() > 0 || ok.Load() < 50 {
		t.Errorf("%d requests ok, %d failed while a replica was killed: %v", ok.Load(), failed.Load(), failures)
	}
	eventually(t, 15*time.Second, "killed replica back in the file", func() bool {
		return len(upstreamServers(t, filepath.Join(p.Dir, "upstreams", "api.conf"))) == 3
	})
	healthy := 0
	for _, c := range p.Snapshot().Containers {
		if c.Service == "api" && c.Health == observed.HealthHealthy {
			healthy++
		}
	}
	if healthy != 3 {
		t.Errorf("%d healthy api replicas after the kill, want 3", healthy)
	}
	_ = base
}

func TestRollingRestartForAReloadDrainsEachReplicaFirst(t *testing.T) {
	stack := fmt.Sprintf(upstreamStack, 3) + `    volumes: ["./conf:/conf:ro"]
`
	p := enginetest.NewProject(t, stack)
	for _, d := range []string{"up", "conf"} {
		if err := os.MkdirAll(filepath.Join(p.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(p.Dir, "conf", "api.conf")
	if err := os.WriteFile(conf, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base := startDaemon(t, p, nil)
	file := filepath.Join(p.Dir, "up", "api.conf")
	eventually(t, 60*time.Second, "3 listed", func() bool { return len(upstreamServers(t, file)) == 3 })
	events := p.Record()
	since := time.Now()
	if err := os.WriteFile(conf, []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names := []string{p.Name + "-api-1", p.Name + "-api-2", p.Name + "-api-3"}
	eventually(t, 60*time.Second, "every replica restarted, all listed again", func() bool {
		for _, n := range names {
			if events.Count(n, "start", since) != 1 {
				return false
			}
		}
		return len(upstreamServers(t, file)) == 3
	})
	// before each replica was stopped, the lb had reloaded a list without it
	recs := records(t, base)
	for _, n := range names {
		killed, ok := firstAfter(events, n, "kill", since)
		if !ok {
			t.Fatalf("no kill event for %s", n)
		}
		drained := false
		for _, r := range recs {
			if r.Reason == "Reloaded" && r.Service == "lb" && r.Time.After(since) && r.Time.Before(killed) &&
				strings.Contains(r.Message, "upstream api_backend") && !strings.Contains(r.Message, n+",") && !strings.Contains(r.Message, n+")") {
				drained = true
			}
		}
		if !drained {
			t.Errorf("%s was stopped at %s before the lb reloaded a list without it", n, killed)
		}
	}
}
