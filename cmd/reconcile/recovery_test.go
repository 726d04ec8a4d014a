package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/observed"
)

// cause is something that happens to a running container, done as a user
// or the kernel would.
type cause struct {
	name string
	do   func(t *testing.T, p *enginetest.Project, id string)
}

func ctl(t *testing.T, p *enginetest.Project, id string, args ...string) {
	t.Helper()
	// the server may die before it answers: an exec error is expected
	_, _ = engine.Exec(context.Background(), p.Engine.Client, id, append([]string{"/testapp", "ctl"}, args...))
}

var causes = []cause{
	{"exit1", func(t *testing.T, p *enginetest.Project, id string) { ctl(t, p, id, "exit", "1") }},
	{"exit0", func(t *testing.T, p *enginetest.Project, id string) { ctl(t, p, id, "exit", "0") }},
	{"kill", func(t *testing.T, p *enginetest.Project, id string) {
		if _, err := p.Engine.Client.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			t.Errorf("docker kill: %v", err)
		}
	}},
	{"stop", func(t *testing.T, p *enginetest.Project, id string) {
		timeout := 2
		if _, err := p.Engine.Client.ContainerStop(context.Background(), id, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			t.Errorf("docker stop: %v", err)
		}
	}},
	{"pidkill", func(t *testing.T, p *enginetest.Project, id string) {
		if err := syscall.Kill(p.Inspect(id).State.Pid, syscall.SIGKILL); err != nil {
			t.Errorf("kill -9 of the host PID: %v", err)
		}
	}},
	{"oom", func(t *testing.T, p *enginetest.Project, id string) { ctl(t, p, id, "hog", "96") }},
	{"unhealthy", func(t *testing.T, p *enginetest.Project, id string) { ctl(t, p, id, "unhealthy") }},
}

var policies = map[string]string{"no": `"no"`, "always": "always", "unless": "unless-stopped", "onfail": "on-failure:3"}

// Outcomes: restarted (running again, started anew), down (stays exited),
// left (still running the same process, unhealthy).
var matrix = map[string]map[string]string{
	"no":     {"exit1": "down", "exit0": "down", "kill": "down", "stop": "down", "pidkill": "down", "oom": "down", "unhealthy": "left"},
	"always": {"exit1": "restarted", "exit0": "restarted", "kill": "restarted", "stop": "down", "pidkill": "restarted", "oom": "restarted", "unhealthy": "restarted"},
	"unless": {"exit1": "restarted", "exit0": "restarted", "kill": "restarted", "stop": "down", "pidkill": "restarted", "oom": "restarted", "unhealthy": "restarted"},
	"onfail": {"exit1": "restarted", "exit0": "down", "kill": "restarted", "stop": "down", "pidkill": "restarted", "oom": "restarted", "unhealthy": "restarted"},
}

func TestRecoveryMatrix(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n")
	for pol, restart := range policies {
		for _, c := range causes {
			fmt.Fprintf(&b, `  %s-%s:
    image: {{.Image}}
    restart: %s
    mem_limit: 48m
    memswap_limit: 48m
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 2}
`, pol, c.name, restart)
		}
	}
	p := enginetest.NewProject(t, b.String())
	_, base := startDaemon(t, p, nil)
	total := len(policies) * len(causes)
	eventually(t, 120*time.Second, "all healthy", func() bool {
		n := 0
		for _, c := range p.Snapshot().Containers {
			if c.Health == observed.HealthHealthy {
				n++
			}
		}
		return n == total
	})
	events := p.Record()
	before := map[string]string{} // service -> StartedAt
	ids := map[string]string{}
	for _, c := range p.Snapshot().Containers {
		ids[c.Service] = c.ID
		before[c.Service] = p.Inspect(c.ID).State.StartedAt
	}
	caused := time.Now()
	var wg sync.WaitGroup
	for pol := range policies {
		for _, c := range causes {
			wg.Go(func() { c.do(t, p, ids[pol+"-"+c.name]) })
		}
	}
	wg.Wait()
	// long enough for unhealthy (two failed 1 s probes: with one, a probe
	// that meets a server exiting on its own, under load, marks it unhealthy
	// before its exit shows, and it is restarted), the stop grace and a start
	time.Sleep(8 * time.Second)

	for pol := range policies {
		for _, c := range causes {
			svc := pol + "-" + c.name
			in := p.Inspect(ids[svc])
			got := "down"
			switch {
			case in.State.Running && in.State.StartedAt != before[svc]:
				got = "restarted"
			case in.State.Running:
				got = "left"
			}
			if want := matrix[pol][c.name]; got != want {
				t.Errorf("restart %s, %s: %s, want %s (state %s, exit %d, oom %v)", policies[pol], c.name, got, want, in.State.Status, in.State.ExitCode, in.State.OOMKilled)
			}
			// never a double start: one start per restart
			if starts := events.Count(in.Name[1:], "start", caused); got == "restarted" && starts != 1 {
				t.Errorf("restart %s, %s: %d starts, want 1", policies[pol], c.name, starts)
			}
		}
	}
	recs := records(t, base)
	for _, reason := range []string{"StoppedByUser", "NotRestarted", "Started", "Restarted"} {
		if !hasRecord(recs, reason, "") {
			t.Errorf("no %s record", reason)
		}
	}
}

const budgetStack = `
services:
  api:
    image: {{.Image}}
    restart: on-failure:3
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 1s, retries: 1}
`

// running waits until the api container runs again and returns its ID.
func apiRunning(t *testing.T, p *enginetest.Project, timeout time.Duration) string {
	t.Helper()
	var id string
	eventually(t, timeout, "api running", func() bool {
		for _, c := range p.Snapshot().Containers {
			if c.Service == "api" && c.State == observed.StateRunning {
				id = c.ID
				return true
			}
		}
		return false
	})
	return id
}

func kill(t *testing.T, p *enginetest.Project, id string) {
	t.Helper()
	if _, err := p.Engine.Client.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("docker kill: %v", err)
	}
}

func TestOnFailure3KilledFourTimesRestartsExactlyThree(t *testing.T) {
	p := enginetest.NewProject(t, budgetStack)
	d, base := startDaemon(t, p, nil)
	events := p.Record()
	id := apiRunning(t, p, 60*time.Second)
	since := time.Now()
	for i := range 3 {
		kill(t, p, id)
		time.Sleep(200 * time.Millisecond)
		id = apiRunning(t, p, 10*time.Second)
		t.Logf("kill %d: running again", i+1)
	}
	kill(t, p, id)
	time.Sleep(6 * time.Second) // more than the backoff a fourth restart would owe
	name := p.Name + "-api-1"
	if starts := events.Count(name, "start", since); starts != 3 {
		t.Fatalf("%d starts after 4 kills, want exactly 3", starts)
	}
	if in := p.Inspect(id); in.State.Running {
		t.Fatal("restarted a fourth time")
	}
	if !hasRecord(records(t, base), "RestartBudgetExhausted", name) {
		t.Error("no RestartBudgetExhausted record")
	}
	if m := httpGet(t, base+"/metrics"); !strings.Contains(m, `reconcile_events_total{project="`+p.Name+`",reason="RestartBudgetExhausted",type="Warning"} 1`) {
		t.Error("/metrics does not count the RestartBudgetExhausted record")
	}
	st := statusJSON(t, base)
	if s := st.Services[0]; s.Health != "Degraded" || s.Reason != "RestartBudgetExhausted" || s.RestartsUsed != 3 || s.RestartsAllowed != 3 || !strings.Contains(s.LastExit, "signal 9") {
		t.Errorf("status: %+v", s)
	}
	// the CLI reads the same figures from the state file
	out := reconcile(t, p.Dir, nil, "status", "-f", p.File, "-p", p.Name, "--state-dir", stateDirOf(d))
	if !strings.Contains(out.Stdout, "3/3") || !strings.Contains(out.Stdout, "RestartBudgetExhausted") {
		t.Errorf("reconcile status:\n%s", out.Stdout)
	}
}

func TestBudgetSurvivesASIGKILLedReconciler(t *testing.T) {
	p := enginetest.NewProject(t, budgetStack)
	state := t.TempDir()
	args := []string{"-f", p.File, "-p", p.Name, "--state-dir", state, "--log-format", "json"}
	d := enginetest.Start(t, p.Dir, nil, args...)
	events := p.Record()
	id := apiRunning(t, p, 60*time.Second)
	since := time.Now()
	kill(t, p, id)
	id = apiRunning(t, p, 10*time.Second) // restart 1, no backoff
	time.Sleep(200 * time.Millisecond)
	kill(t, p, id) // restart 2 is owed a 1 s backoff
	d.WaitFor(`"reason":"BackOff"`, 5*time.Second)
	d.Signal(syscall.SIGKILL)
	d.Wait(10 * time.Second)
	d2 := enginetest.Start(t, p.Dir, nil, args...)
	id = apiRunning(t, p, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	kill(t, p, id) // restart 3, after 2 s
	id = apiRunning(t, p, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	kill(t, p, id) // the budget is spent: stays down
	time.Sleep(6 * time.Second)
	if starts := events.Count(p.Name+"-api-1", "start", since); starts != 3 {
		t.Fatalf("%d starts across a SIGKILLed reconciler, want 3", starts)
	}
	d2.WaitFor("RestartBudgetExhausted", time.Second)
}

func TestCascadeRestartsRestartTrueDependentsAfterTheDependency(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  db:
    image: {{.Image}}
    restart: always
    environment: {START_DELAY: 1s}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 1s, retries: 2}
  api:
    image: {{.Image}}
    depends_on: {db: {condition: service_healthy, restart: true}}
  worker:
    image: {{.Image}}
    depends_on: {api: {condition: service_started, restart: true}}
  web:
    image: {{.Image}}
    depends_on: {db: {condition: service_healthy}}
`)
	_, base := startDaemon(t, p, nil)
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"db": 1, "api": 1, "worker": 1, "web": 1}))
	time.Sleep(time.Second)
	events := p.Record()
	since := time.Now()
	db := p.Name + "-db-1"
	if err := syscall.Kill(p.Inspect(p.IDs()[db]).State.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "worker restarted", func() bool {
		return events.Count(p.Name+"-worker-1", "start", since) == 1
	})
	healthy, _ := firstAfter(events, db, "health_status: healthy", since)
	apiStart, _ := firstAfter(events, p.Name+"-api-1", "start", since)
	workerStart, _ := firstAfter(events, p.Name+"-worker-1", "start", since)
	if healthy.IsZero() || !apiStart.After(healthy) || !workerStart.After(apiStart) {
		t.Errorf("order: db healthy %s, api start %s, worker start %s; want db healthy < api < worker", healthy, apiStart, workerStart)
	}
	time.Sleep(2 * time.Second)
	if n := events.Count(p.Name+"-web-1", "start", since); n != 0 {
		t.Errorf("web (no restart: true) started %d times", n)
	}
	if n := events.Count(p.Name+"-api-1", "start", since); n != 1 {
		t.Errorf("api started %d times, want 1", n)
	}
	_ = base
}

func firstAfter(l *enginetest.EventLog, name, action string, since time.Time) (time.Time, bool) {
	for _, m := range l.Events() {
		at := time.Unix(0, m.TimeNano)
		if m.Actor.Attributes["name"] == name && strings.HasPrefix(string(m.Action), action) && !at.Before(since) {
			return at, true
		}
	}
	return time.Time{}, false
}

// TestASpentBudgetHoldsACrashLoopDown: the engine restarts `always` and
// `unless-stopped` crashes forever; once the budget of 3 is spent the
// daemon stops the replica, which ends the engine's loop: 4 starts at most
// (the first and 3 restarts), then down, one RestartBudgetExhausted each,
// until the user starts it again.
func TestASpentBudgetHoldsACrashLoopDown(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  always:
    image: {{.Image}}
    command: ["crash"]   # an unknown command: the program exits 1 at once
    restart: always
    x-reconcile: {restart: {max_attempts: 3}}
  unless:
    image: {{.Image}}
    command: ["crash"]
    restart: unless-stopped
    x-reconcile: {restart: {max_attempts: 3}}
`)
	events := p.Record()
	since := time.Now()
	_, base := startDaemon(t, p, nil)
	names := []string{p.Name + "-always-1", p.Name + "-unless-1"}
	eventually(t, 60*time.Second, "both crash loops held down", func() bool {
		if strings.TrimSpace(httpGet(t, base+"/events")) == "" {
			return false // no record yet
		}
		recs := records(t, base)
		for _, name := range names {
			if !hasRecord(recs, "RestartBudgetExhausted", name) {
				return false
			}
		}
		return true
	})
	// the engine's next restart would come within its backoff (800 ms, then
	// 1.6 s, ...): after 20 s nothing more may have started
	time.Sleep(20 * time.Second)
	recs := records(t, base)
	for _, name := range names {
		if starts := events.Count(name, "start", since); starts < 1 || starts > 4 {
			t.Errorf("%s: %d starts, want at most 4 (the first and 3 restarts)", name, starts)
		}
		in := p.Inspect(p.IDs()[name])
		if in.State.Running || in.State.Restarting || in.State.Status != "exited" {
			t.Errorf("%s: state %s, want exited and left down", name, in.State.Status)
		}
		if rp := in.HostConfig.RestartPolicy.Name; rp != "no" {
			t.Errorf("%s: restart policy %q while held down, want no", name, rp)
		}
		n := 0
		for _, r := range recs {
			if string(r.Reason) == "RestartBudgetExhausted" && r.Container == name {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d RestartBudgetExhausted records, want one for the exhaustion", name, n)
		}
	}
	st := statusJSON(t, base)
	for _, s := range st.Services {
		if s.Health != "Degraded" || s.Reason != "RestartBudgetExhausted" {
			t.Errorf("status %s: %s/%s, want Degraded/RestartBudgetExhausted", s.Service, s.Health, s.Reason)
		}
	}
	// the user starts one again: it comes back, with a fresh budget
	restarted := time.Now()
	if _, err := p.Engine.Client.ContainerStart(context.Background(), p.IDs()[names[0]], client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the user's start followed by the engine's restarts", func() bool {
		return events.Count(names[0], "start", restarted) >= 2
	})
	// the policy is set back by the daemon once it has seen the user's
	// start, which may be after those two starts (its own restart, under
	// a fresh budget, is one of them): waited for, not read at once
	eventually(t, 30*time.Second, "the compose file's restart policy (always) back after the user's start", func() bool {
		return p.Inspect(p.IDs()[names[0]]).HostConfig.RestartPolicy.Name == "always"
	})
}

// TestAnUnreadableStateFileDoesNotStopTheDaemon: garbage where the restart
// state should be is moved aside, said once, and the daemon reconciles with
// fresh counts; `status` reads the state without failing.
func TestAnUnreadableStateFileDoesNotStopTheDaemon(t *testing.T) {
	p := enginetest.NewProject(t, "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	state := t.TempDir()
	bad := filepath.Join(state, p.Name+".state.json")
	if err := os.WriteFile(bad, []byte("{\"slots\": [{\"service\": \"web\", \"numb"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, base := startDaemon(t, p, nil, "--state-dir", state)
	eventually(t, 60*time.Second, "web running", func() bool { return running(p)["web"] == 1 })
	recs := records(t, base)
	if !hasRecord(recs, "StateDiscarded", "") {
		t.Fatal("no StateDiscarded record")
	}
	aside, _ := filepath.Glob(bad + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("moved aside: %v, want the unreadable file kept once", aside)
	}
	if b, _ := os.ReadFile(aside[0]); !strings.Contains(string(b), `"numb`) {
		t.Errorf("the file kept aside is not the unreadable one: %q", b)
	}
	// it keeps reconciling
	id := p.IDs()[p.Name+"-web-1"]
	kill(t, p, id)
	eventually(t, 30*time.Second, "web started again after a docker kill", func() bool { return p.Inspect(id).State.Running })
	out := reconcile(t, p.Dir, nil, "status", "-f", p.File, "-p", p.Name, "--state-dir", state)
	if out.Code != 0 {
		t.Errorf("reconcile status: exit %d\n%s", out.Code, out.Stderr)
	}
}

// TestAStateDirectoryThatCannotBeWrittenDoesNotStopReconciling: where the
// restart state cannot be written (a directory stands where the file goes;
// a full file system), the daemon goes on restarting killed containers,
// records the failure once, counts it, and writes the state as soon as it
// can again.
func TestAStateDirectoryThatCannotBeWrittenDoesNotStopReconciling(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir, file string) (repair func())
	}{
		{name: "unwritable", break_: func(t *testing.T, dir, file string) func() {
			// a directory where the file is renamed to: no permission bits
			// to set, which root would ignore
			os.Remove(file)
			if err := os.MkdirAll(filepath.Join(file, "in-the-way"), 0o700); err != nil {
				t.Fatal(err)
			}
			return func() { os.RemoveAll(file) }
		}},
		{name: "full", break_: func(t *testing.T, dir, file string) func() {
			filler := filepath.Join(dir, "filler")
			f, err := os.Create(filler)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for {
				if _, err := f.Write(make([]byte, 4096)); err != nil {
					break // ENOSPC: the file system is full
				}
			}
			return func() { os.Remove(filler) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			if tt.name == "full" {
				state = smallFileSystem(t)
			}
			p := enginetest.NewProject(t, "services:\n  web:\n    image: {{.Image}}\n    restart: always\n    x-reconcile: {restart: {max_attempts: 10}}\n")
			_, base := startDaemon(t, p, nil, "--state-dir", state)
			eventually(t, 60*time.Second, "web running", func() bool { return running(p)["web"] == 1 })
			file := filepath.Join(state, p.Name+".state.json")
			repair := tt.break_(t, state, file)

			id := p.IDs()[p.Name+"-web-1"]
			for i := 1; i <= 2; i++ {
				kill(t, p, id)
				eventually(t, 30*time.Second, fmt.Sprintf("web started again after kill %d", i), func() bool { return p.Inspect(id).State.Running })
			}
			eventually(t, 10*time.Second, "a StateNotSaved record", func() bool { return hasRecord(records(t, base), "StateNotSaved", "") })
			n := 0
			for _, r := range records(t, base) {
				if r.Reason == "StateNotSaved" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d StateNotSaved records, want 1", n)
			}
			if m := metricValue(t, base, `reconcile_state_save_errors_total{project="`+p.Name+`"}`); m < 1 {
				t.Errorf("reconcile_state_save_errors_total = %v, want at least 1", m)
			}

			repair()
			eventually(t, 10*time.Second, "the state written once it can be", func() bool {
				b, err := os.ReadFile(file)
				return err == nil && strings.Contains(string(b), `"web"`)
			})
		})
	}
}

// smallFileSystem mounts a 64 KiB tmpfs for the test: the only way to fill
// a file system without filling the machine's. It is 0700, as a state
// directory is (a tmpfs is 1777 by default, which the daemon refuses to
// keep state in). It needs root (CI runs tests as root); elsewhere the
// test is skipped, saying why.
func smallFileSystem(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mounting a small tmpfs: %v: %s", err, out)
		}
		t.Skipf("a full file system needs a tmpfs mount, which needs root: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// metricValue reads one unlabelled metric from the daemon's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(httpGet(t, base+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}
