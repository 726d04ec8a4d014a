package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/observed"
)

// scaleByHand does what `docker compose up -d --scale SERVICE=N SERVICE`
// does, with the SDK. With the daemon removing the extra replicas as they
// appear, compose's up may fail on a container gone under it: that is
// logged, not fatal.
func scaleByHand(t *testing.T, p *enginetest.Project, service string, n int) {
	t.Helper()
	st := p.LoadWith(desired.Options{Files: []string{p.File}, ProjectName: p.Name, Scale: map[string]int{service: n}})
	project, err := st.Project.WithSelectedServices([]string{service})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Engine.Compose.Up(ctx, project, api.UpOptions{Create: api.CreateOptions{Recreate: api.RecreateDiverged, RecreateDependencies: api.RecreateNever}, Start: api.StartOptions{Project: project}}); err != nil {
		t.Logf("compose up --scale %s=%d: %v", service, n, err)
	}
}

func numbers(p *enginetest.Project, service string) []int {
	var out []int
	for _, c := range p.Snapshot().Containers {
		if c.Service == service {
			out = append(out, c.Number)
		}
	}
	return out
}

func TestDaemonPrunesExtraReplicasOrOnlyReportsThem(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
  keep:
    image: {{.Image}}
    x-reconcile: {replicas: {prune: false}}
`)
	_, base := startDaemon(t, p, nil)
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"api": 2, "keep": 1}))
	scaleByHand(t, p, "keep", 2)
	scaleByHand(t, p, "api", 4)
	eventually(t, 15*time.Second, "api back to 2 replicas", func() bool {
		ns := numbers(p, "api")
		return len(ns) == 2 && ns[0]+ns[1] == 3 // the highest numbers went
	})
	time.Sleep(time.Second)
	if n := len(numbers(p, "keep")); n != 2 {
		t.Errorf("keep has %d replicas; prune: false must leave the extra one", n)
	}
	recs := records(t, base)
	reported := false
	for _, r := range recs {
		if r.Reason == "ExtraReplica" && r.Service == "keep" && strings.Contains(r.Message, "reported only") {
			reported = true
		}
	}
	if !reported || !hasRecord(recs, "Removed", p.Name+"-api-4") || !hasRecord(recs, "Removed", p.Name+"-api-3") {
		t.Errorf("records: %+v", recs)
	}
}

// reloadsOf reads the test program's reload counter inside a container.
func reloadsOf(t *testing.T, p *enginetest.Project, name string) int {
	t.Helper()
	res, err := engine.Exec(context.Background(), p.Engine.Client, p.IDs()[name], []string{"/testapp", "get", "http://127.0.0.1:8080/reloads"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("reading reloads of %s: %v %s", name, err, res.Stderr)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(res.Stdout))
	return n
}

func TestDaemonReloadsOnAConfigEdit(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    deploy: {replicas: 2}
    volumes: ["./conf:/conf:ro"]
    x-reconcile:
      reload:
        check: ["/testapp", "check", "/conf/app.conf"]
        exec: ["/testapp", "reload"]
        timeout: 5s
  sig:
    image: {{.Image}}
    volumes: ["./conf:/conf:ro"]
    x-reconcile: {reload: {signal: SIGHUP}}
  roll:
    image: {{.Image}}
    deploy: {replicas: 2}
    volumes: ["./conf:/conf:ro"]
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 1s, retries: 2}
`)
	conf := filepath.Join(p.Dir, "conf", "app.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base := startDaemon(t, p, nil)
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"app": 2, "sig": 1, "roll": 2}))
	eventually(t, 30*time.Second, "roll healthy", func() bool {
		n := 0
		for _, c := range p.Snapshot().Containers {
			if c.Service == "roll" && c.Health == observed.HealthHealthy {
				n++
			}
		}
		return n == 2
	})
	events := p.Record()
	edited := time.Now()
	if err := os.WriteFile(conf, []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a1, a2, sig := p.Name+"-app-1", p.Name+"-app-2", p.Name+"-sig-1"
	eventually(t, 5*time.Second, "exec reload on both replicas and SIGHUP", func() bool {
		return reloadsOf(t, p, a1) == 1 && reloadsOf(t, p, a2) == 1 && reloadsOf(t, p, sig) == 1
	})
	r1, r2 := p.Name+"-roll-1", p.Name+"-roll-2"
	eventually(t, 30*time.Second, "rolling restart of roll", func() bool {
		return events.Count(r1, "start", edited) == 1 && events.Count(r2, "start", edited) == 1
	})
	healthy1, _ := firstAfter(events, r1, "health_status: healthy", edited)
	stop2, _ := firstAfter(events, r2, "kill", edited)
	if healthy1.IsZero() || !stop2.After(healthy1) {
		t.Errorf("rolling restart: %s stopped at %s, before %s was healthy again (%s)", r2, stop2, r1, healthy1)
	}
	if in := p.Inspect(p.IDs()[sig]); in.State.StartedAt == "" || !in.State.Running {
		t.Error("the signalled service is not running")
	}

	// a touch changes no content: nothing happens
	now := time.Now()
	if err := os.Chtimes(conf, now, now); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if reloadsOf(t, p, a1) != 1 {
		t.Fatal("a touch reloaded")
	}

	// a config its check rejects: nothing reloads, a ReloadRejected record
	if err := os.WriteFile(conf, []byte("invalid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "ReloadRejected", func() bool { return hasRecord(records(t, base), "ReloadRejected", "") })
	if reloadsOf(t, p, a1) != 1 || reloadsOf(t, p, a2) != 1 {
		t.Error("a rejected config was reloaded")
	}
	for _, r := range records(t, base) {
		if r.Reason == "ReloadRejected" && !strings.Contains(r.Message, "invalid configuration") {
			t.Errorf("ReloadRejected does not carry the check's output: %q", r.Message)
		}
	}
}

// TestReloadRecordsMaskInterpolatedValues: a value interpolated into a
// reload command from the environment (here a file name standing for a
// token) reaches neither the records, nor /events, nor the daemon's log;
// the command shows with *** in its place, and the check's output too.
func TestReloadRecordsMaskInterpolatedValues(t *testing.T) {
	const secret = "tok-5ecret-42"
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    volumes: ["./conf:/conf:ro"]
    x-reconcile:
      reload:
        check: ["/testapp", "check", "/conf/${CONF_NAME}"]
        exec: ["/testapp", "reload", "${CONF_NAME}"]
`)
	conf := filepath.Join(p.Dir, "conf", secret)
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, base := startDaemon(t, p, []string{"CONF_NAME=" + secret})
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"app": 1}))
	if err := os.WriteFile(conf, []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "Reloaded", func() bool { return hasRecord(records(t, base), "Reloaded", "") })
	if err := os.WriteFile(conf, []byte("invalid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ReloadRejected", func() bool { return hasRecord(records(t, base), "ReloadRejected", "") })
	for _, r := range records(t, base) {
		if r.Reason == "Reloaded" && !strings.Contains(r.Message, "exec /testapp reload ***") {
			t.Errorf("Reloaded does not show the command masked: %q", r.Message)
		}
		if r.Reason == "ReloadRejected" && (!strings.Contains(r.Message, "/conf/***") || !strings.Contains(r.Message, "invalid configuration")) {
			t.Errorf("ReloadRejected does not show the check and its output masked: %q", r.Message)
		}
	}
	if body := httpGet(t, base+"/events"); strings.Contains(body, secret) {
		t.Errorf("/events shows the interpolated value:\n%s", body)
	}
	if out := d.Output(); strings.Contains(out, secret) {
		t.Errorf("the daemon's log shows the interpolated value")
	}
}
