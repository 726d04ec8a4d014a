package main

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

const daemonStack = `
services:
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
    environment: {SECRET_TOKEN: "s3cr3t-canary"}
  worker:
    image: {{.Image}}
`

// startDaemon runs the daemon on p with its own state directory and HTTP
// address, and waits until it has converged the project.
func startDaemon(t *testing.T, p *enginetest.Project, env []string, extra ...string) (*enginetest.Proc, string) {
	t.Helper()
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	state := t.TempDir()
	args := append([]string{"-f", p.File, "-p", p.Name, "--state-dir", state, "--listen", addr, "--log-format", "json"}, extra...)
	d := enginetest.Start(t, p.Dir, env, args...)
	stateDirs.Store(d, state)
	d.WaitFor(`"daemon started"`, 30*time.Second)
	return d, "http://" + addr
}

var stateDirs sync.Map

// stateDirOf is the state directory startDaemon gave d.
func stateDirOf(d *enginetest.Proc) string {
	v, _ := stateDirs.Load(d)
	return v.(string)
}

func statusJSON(t *testing.T, base string) plan.ProjectStatus {
	t.Helper()
	var st plan.ProjectStatus
	if err := json.Unmarshal([]byte(httpGet(t, base+"/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// eventually polls cond until it holds, and returns how long that took.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// running counts the running containers of each service.
func running(p *enginetest.Project) map[string]int {
	out := map[string]int{}
	for _, c := range p.Snapshot().Containers {
		if c.State == observed.StateRunning {
			out[c.Service]++
		}
	}
	return out
}

func converged(p *enginetest.Project, want map[string]int) func() bool {
	return func() bool {
		got := running(p)
		for s, n := range want {
			if got[s] != n {
				return false
			}
		}
		return len(p.Snapshot().Containers) == sum(want)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func records(t *testing.T, base string) []record.Record {
	t.Helper()
	return enginetest.Records(t, base+"/events")
}

func hasRecord(recs []record.Record, reason, container string) bool {
	for _, r := range recs {
		if string(r.Reason) == reason && (container == "" || r.Container == container) {
			return true
		}
	}
	return false
}

func TestDaemonRecreatesARemovedReplicaAndReportsIt(t *testing.T) {
	p := enginetest.NewProject(t, daemonStack)
	d, base := startDaemon(t, p, nil)
	want := map[string]int{"api": 2, "worker": 1}
	eventually(t, 60*time.Second, "initial convergence", converged(p, want))
	eventually(t, 5*time.Second, "/readyz", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	victim := p.Name + "-api-1"
	old := p.IDs()[victim]
	p.RemoveForce(old)
	took := eventually(t, 3*time.Second, "removed replica back", func() bool {
		_, ok := p.IDs()[victim]
		return !ok && running(p)["api"] == 2
	})
	t.Logf("replica back after %s", took)
	// compose numbers a new replica max+1, as `docker compose up` would
	recreated := p.Name + "-api-3"
	recs := records(t, base)
	if !hasRecord(recs, "ContainerMissing", "") || !hasRecord(recs, "Created", recreated) {
		t.Errorf("records lack ContainerMissing and Created %s: %+v", recreated, recs)
	}
	metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{`reconcile_actions_total{action="CreateContainer",project="` + p.Name + `"}`, `reconcile_total{project="` + p.Name + `",result="success"}`, "reconcile_queue_depth", "reconcile_build_info{", "reconcile_duration_seconds_bucket", "reconcile_errors_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var st plan.ProjectStatus
	if err := json.Unmarshal([]byte(httpGet(t, base+"/status")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Project != p.Name || len(st.Services) != 2 || st.Services[0].Running+st.Services[1].Running != 3 {
		t.Errorf("/status: %+v", st)
	}
	if strings.Contains(d.Output(), "s3cr3t-canary") || strings.Contains(httpGet(t, base+"/events"), "s3cr3t-canary") {
		t.Error("a secret value was printed")
	}
}

func TestDaemonAppliesEditsAndKeepsTheLastGoodStateOnAnInvalidOne(t *testing.T) {
	p := enginetest.NewProject(t, daemonStack)
	d, base := startDaemon(t, p, nil)
	want := map[string]int{"api": 2, "worker": 1}
	eventually(t, 60*time.Second, "initial convergence", converged(p, want))
	before := p.IDs()

	// invalid: an unknown dependency. Nothing may change.
	p.Rewrite(daemonStack + "    depends_on: [nowhere]\n")
	eventually(t, 5*time.Second, "InvalidConfig record", func() bool { return hasRecord(records(t, base), "InvalidConfig", "") })
	time.Sleep(time.Second)
	if after := p.IDs(); !maps.Equal(before, after) {
		t.Fatalf("an invalid edit changed containers: %v -> %v", before, after)
	}
	if !strings.Contains(d.Output(), "compose.yaml") {
		t.Errorf("the invalid edit's report does not name the file")
	}

	// valid: the worker's environment changes; api must be left alone
	edited := strings.Replace(daemonStack, "  worker:\n    image: {{.Image}}\n", "  worker:\n    image: {{.Image}}\n    environment: {MODE: fast}\n", 1)
	start := time.Now()
	p.Rewrite(edited)
	took := eventually(t, 3*time.Second, "edited worker recreated", func() bool {
		ids := p.IDs()
		w, ok := ids[p.Name+"-worker-1"]
		return ok && w != before[p.Name+"-worker-1"] && running(p)["worker"] == 1
	})
	t.Logf("edit applied %s after the write", took)
	_ = start
	after := p.IDs()
	for _, n := range []string{p.Name + "-api-1", p.Name + "-api-2"} {
		if after[n] != before[n] {
			t.Errorf("%s was recreated by an edit of another service", n)
		}
	}
	if !hasRecord(records(t, base), "ConfigReloaded", "") {
		t.Error("no ConfigReloaded record")
	}

	// SIGHUP re-reads everything at once, without a file event
	d.Signal(syscall.SIGHUP)
	eventually(t, 3*time.Second, "a reload on SIGHUP", func() bool {
		for _, r := range records(t, base) {
			if r.Reason == "ConfigReloaded" && strings.Contains(r.Message, "SIGHUP") && strings.Contains(r.Message, "no service definition changed") {
				return true
			}
		}
		return false
	})
	if got := p.IDs(); got[p.Name+"-api-1"] != before[p.Name+"-api-1"] {
		t.Error("SIGHUP without a change recreated a container")
	}
}

func TestDaemonRelistsAfterLosingTheEventStream(t *testing.T) {
	p := enginetest.NewProject(t, daemonStack)
	proxy := enginetest.NewSocketProxy(t)
	_, base := startDaemon(t, p, []string{proxy.Env()})
	want := map[string]int{"api": 2, "worker": 1}
	eventually(t, 60*time.Second, "initial convergence", converged(p, want))

	proxy.Cut()
	victim := p.Name + "-worker-1"
	old := p.IDs()[victim]
	p.RemoveForce(old) // through the test's own connection: the daemon sees no event
	time.Sleep(2 * time.Second)
	if _, ok := p.IDs()[victim]; ok {
		t.Fatal("recreated while the daemon had no engine: the test is not testing the cut")
	}
	restored := time.Now()
	proxy.Restore()
	took := eventually(t, 15*time.Second, "worker recreated after reconnect", func() bool {
		id, ok := p.IDs()[victim]
		return ok && id != old && running(p)["worker"] == 1
	})
	converged := time.Now()
	t.Logf("recreated %s after the engine came back", took)
	recs := records(t, base)
	if !hasRecord(recs, "EngineDisconnected", "") {
		t.Errorf("no EngineDisconnected record: %+v", recs)
	}
	// converged within 5 s of the first answered ping: the watcher's
	// reconnect (a worker retrying a failed reconcile may get there first)
	var reconnected time.Time
	eventually(t, 15*time.Second, "EngineConnected after the restore", func() bool {
		for _, r := range records(t, base) {
			if r.Reason == "EngineConnected" && r.Time.After(restored) {
				reconnected = r.Time
				return true
			}
		}
		return false
	})
	if d := converged.Sub(reconnected); d > 5*time.Second {
		t.Errorf("converged %s after reconnecting, want within 5s", d)
	}
}

func TestDaemonIsAloneOnAProjectAndStopsCleanly(t *testing.T) {
	p := enginetest.NewProject(t, daemonStack)
	state := t.TempDir()
	first := enginetest.Start(t, p.Dir, nil, "-f", p.File, "-p", p.Name, "--state-dir", state)
	first.WaitFor("daemon started", 30*time.Second)

	second := enginetest.Run(t, p.Dir, nil, "-f", p.File, "-p", p.Name, "--state-dir", state)
	if second.Code != 2 || !strings.Contains(second.Stderr, "PID "+itoa(first.PID())) {
		t.Fatalf("second daemon: %s; want exit 2 naming PID %d", second, first.PID())
	}
	eventually(t, 60*time.Second, "convergence", converged(p, map[string]int{"api": 2, "worker": 1}))
	first.Signal(syscall.SIGTERM)
	if code := first.Wait(30 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0; output:\n%s", code, first.Output())
	}
	// the lock is free again, and the containers were left running
	third := enginetest.Start(t, p.Dir, nil, "-f", p.File, "-p", p.Name, "--state-dir", state, "--dry-run")
	third.WaitFor("daemon started", 30*time.Second)
	if running(p)["api"] != 2 {
		t.Error("stopping the daemon stopped containers")
	}
	// dry run: drift is reported, nothing is done
	victim := p.Name + "-worker-1"
	p.RemoveForce(p.IDs()[victim])
	third.WaitFor("dry run: not acting", 5*time.Second)
	time.Sleep(time.Second)
	if _, ok := p.IDs()[victim]; ok {
		t.Error("--dry-run recreated a container")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestOneReconcilerPerProjectWhateverTheStateDirectory: the lock that keeps
// a second daemon off a project lives per engine, not in --state-dir; a
// holder that died leaves it free.
func TestOneReconcilerPerProjectWhateverTheStateDirectory(t *testing.T) {
	p := enginetest.NewProject(t, daemonStack)
	first := enginetest.Start(t, p.Dir, nil, "-f", p.File, "-p", p.Name, "--state-dir", t.TempDir())
	first.WaitFor("daemon started", 30*time.Second)
	second := enginetest.Run(t, p.Dir, nil, "-f", p.File, "-p", p.Name, "--state-dir", t.TempDir())
	if second.Code != 2 || !strings.Contains(second.Stderr, "PID "+itoa(first.PID())) {
		t.Fatalf("second daemon with another state directory: %s; want exit 2 naming PID %d", second, first.PID())
	}
	first.Signal(syscall.SIGKILL) // dies holding the lock
	first.Wait(10 * time.Second)
	third := enginetest.Start(t, p.Dir, nil, "-f", p.File, "-p", p.Name, "--state-dir", t.TempDir())
	third.WaitFor("daemon started", 30*time.Second)
	third.Signal(syscall.SIGTERM)
	if code := third.Wait(30 * time.Second); code != 0 {
		t.Fatalf("third daemon: exit %d\n%s", code, third.Output())
	}
}

// TestADaemonStartedWithoutTheEngineWaitsAndAnswersHealth: while the
// engine does not answer at start, /healthz answers, /readyz says why not,
// and nothing acts; once it answers, the daemon takes its lock and works.
func TestADaemonStartedWithoutTheEngineWaitsAndAnswersHealth(t *testing.T) {
	p := enginetest.NewProject(t, daemonStack)
	proxy := enginetest.NewSocketProxy(t)
	proxy.Cut()
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	d := enginetest.Start(t, p.Dir, []string{proxy.Env()}, "-f", p.File, "-p", p.Name, "--state-dir", t.TempDir(), "--listen", addr, "--log-format", "json")
	base := "http://" + addr
	eventually(t, 10*time.Second, "/healthz while the engine is away", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d while the engine is away, want 503", resp.StatusCode)
	}
	proxy.Restore()
	d.WaitFor("daemon started", 30*time.Second)
	eventually(t, 60*time.Second, "convergence once the engine answers", converged(p, map[string]int{"api": 2, "worker": 1}))
}

// TestOneEngineCallInFiveFailing: with 20 % of the engine's calls failing
// (the event stream excepted), a failed relist is retried on its own, so
// the daemon keeps the one event stream it opened, and a killed replica is
// started again within seconds: a failing service retries within 2 s while
// the engine answers.
func TestOneEngineCallInFiveFailing(t *testing.T) {
	p := enginetest.NewProject(t, "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	once(t, p)
	proxy := enginetest.NewFaultProxy(t, 0.2, 7)
	_, base := startDaemon(t, p, []string{proxy.Env()})
	connected := eventually(t, 30*time.Second, "relisted through failing calls", func() bool {
		return strings.TrimSpace(httpGet(t, base+"/events")) != "" && hasRecord(records(t, base), "EngineConnected", "")
	})
	id := p.IDs()[p.Name+"-web-1"]
	kill(t, p, id)
	back := eventually(t, 30*time.Second, "a killed replica started again", func() bool { return p.Inspect(id).State.Running })
	t.Logf("relisted %s after start, replica back %s after its kill; %d calls failed", connected, back, proxy.Failed.Load())
	if n := proxy.Subscriptions.Load(); n != 1 {
		t.Errorf("%d event streams opened: a failed relist must not drop the stream", n)
	}
	if proxy.Failed.Load() == 0 {
		t.Error("no call failed: the test tested nothing")
	}
}
