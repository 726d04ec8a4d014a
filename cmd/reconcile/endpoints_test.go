package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// documentedEndpoints reads the table of engine API endpoints.
func documentedEndpoints(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/daemon.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start, end := strings.Index(s, "<!-- endpoints:begin -->"), strings.Index(s, "<!-- endpoints:end -->")
	if start < 0 || end < start {
		t.Fatal("docs/daemon.md has no endpoints table")
	}
	var out []string
	for _, m := range regexp.MustCompile("`((?:GET|POST|PUT|DELETE|HEAD) /[^`]*)`").FindAllStringSubmatch(s[start:end], -1) {
		out = append(out, m[1])
	}
	return out
}

// TestTheEngineEndpointsUsedAreTheDocumentedOnes runs the commands and the
// daemon's common work (bring-up in dependency order, a kill, a post_start
// hook, a reload exec on a config edit, a drift check of images) through a
// recording proxy: every engine endpoint called is in the README's table,
// which a socket proxy in front of the engine can be configured from.
func TestTheEngineEndpointsUsedAreTheDocumentedOnes(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  db:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 3}
    volumes: [data:/data]
    networks: [back]
  web:
    image: {{.Image}}
    restart: always
    depends_on: {db: {condition: service_healthy}}
    networks: [back]
    volumes: ["./conf:/conf:ro"]
    post_start: [{command: ["/testapp", "exit", "0"]}]
    x-reconcile: {reload: {exec: ["/testapp", "reload"]}}
networks: {back: {}}
volumes: {data: {}}
`)
	p.Write("conf/app.conf", "v1\n")
	proxy := enginetest.NewFaultProxy(t, 0, 1)
	env := []string{proxy.Env()}
	args := []string{"-f", p.File, "-p", p.Name}
	if r := reconcile(t, p.Dir, env, append([]string{"diff"}, args...)...); r.Code != exitNotConverged {
		t.Fatalf("diff: %s", r)
	}
	if r := reconcile(t, p.Dir, env, append([]string{"--once", "--timeout", "90s"}, args...)...); r.Code != 0 {
		t.Fatalf("--once: %s", r)
	}
	_, base := startDaemon(t, p, env)
	web := p.IDs()[p.Name+"-web-1"]
	before := p.Inspect(web).State.StartedAt
	kill(t, p, web)
	eventually(t, 30*time.Second, "web back", func() bool {
		st := p.Inspect(web).State
		return st.Running && st.StartedAt != before
	})
	p.Write("conf/app.conf", "v2\n")
	eventually(t, 30*time.Second, "the reload", func() bool { return hasRecord(records(t, base), "Reloaded", "") })
	if r := reconcile(t, p.Dir, env, append([]string{"status"}, args...)...); r.Code != 0 {
		t.Fatalf("status: %s", r)
	}

	used := proxy.Endpoints()
	t.Logf("endpoints used: %q", used)
	documented := documentedEndpoints(t)
	for _, e := range used {
		if !slices.Contains(documented, e) {
			t.Errorf("%s is used but not in the endpoints table of docs/daemon.md", e)
		}
	}
}
