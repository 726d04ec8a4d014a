package production

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// TestCourseTasksLive makes happen, on the running production stack, what
// the other tests only read from the configuration: the published ports as
// bound (16), reservations in the kernel (10), CPU throttled (9), a replica
// killed for memory (8), logs rotated (19), and the database killed,
// stopped and restarted as task 6 asks (with the course's own commands,
// run by the real compose CLI), under the daemon.
func TestCourseTasksLive(t *testing.T) {
	t.Parallel()
	buildImages(t)
	port := enginetest.FreePort(t)
	s, events := up(t, "docker-compose.prod.yml", "LB_PORT="+port)
	ctx := context.Background()
	name := func(service string, n int) string { return s.Name + "-" + service + "-" + strconv.Itoa(n) }
	d, base := s.daemon(t)

	t.Run("task 16: in production only the balancer is bound on the host", func(t *testing.T) {
		for svc, ids := range s.ids {
			for _, id := range ids {
				bound := boundPorts(s.Inspect(id).NetworkSettings.Ports)
				if svc == "lb" {
					if !slices.Contains(bound, "0.0.0.0:"+port) {
						t.Errorf("lb bound %v, want 0.0.0.0:%s", bound, port)
					}
					continue
				}
				if len(bound) > 0 {
					t.Errorf("%s is bound on the host at %v: only the balancer may be", svc, bound)
				}
			}
		}
	})

	t.Run("task 10: reservations are in the kernel", func(t *testing.T) {
		for _, svc := range []string{"db", "cache", "api"} {
			for _, id := range s.ids[svc] {
				in := s.Inspect(id)
				soft, err := cgroupValue(in.State.Pid, "memory", "memory.soft_limit_in_bytes", "memory.low")
				if err != nil {
					t.Fatal(err)
				}
				if soft != in.HostConfig.MemoryReservation || soft == 0 {
					t.Errorf("%s: the kernel's soft limit is %d, the reservation %d", svc, soft, in.HostConfig.MemoryReservation)
				}
			}
		}
	})

	t.Run("task 9: the api is throttled at half a core", func(t *testing.T) {
		id := name("api", 1)
		pid := s.Inspect(id).State.Pid
		before := cpuStat(t, pid)
		res, err := engine.Exec(ctx, s.Engine.Client, id, []string{"/api", "cpu", "5"})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("api cpu 5: %v %+v", err, res)
		}
		after := cpuStat(t, pid)
		m := regexp.MustCompile(`\((\d+)% of one core\)`).FindStringSubmatch(res.Stdout)
		if m == nil {
			t.Fatalf("api cpu said %q", res.Stdout)
		}
		share, _ := strconv.Atoi(m[1])
		throttled := time.Duration(after["throttled"] - before["throttled"])
		periods := after["nr_throttled"] - before["nr_throttled"]
		t.Logf("busy for 5 s: %s; throttled %d times, for %s in all", strings.TrimSpace(res.Stdout), periods, throttled.Round(time.Millisecond))
		if share > 60 {
			t.Errorf("the api got %d%% of a core under a 0.5 CPU limit", share)
		}
		// on a busy machine the api gets less than its quota, and is
		// throttled less: some throttling is the proof, not an amount
		if periods == 0 || throttled == 0 {
			t.Errorf("never throttled in 5 s of work over a 0.5 CPU limit (%d periods, %s)", periods, throttled)
		}
	})

	t.Run("task 8: past its memory limit the api is killed, and comes back", func(t *testing.T) {
		id := name("api", 2)
		since := time.Now()
		started := s.Inspect(id).State.StartedAt
		// the exec ends with the process it talks to
		_, _ = engine.Exec(ctx, s.Engine.Client, id, []string{"/api", "memory", "1024"})
		eventually(t, 30*time.Second, "the engine's oom event", func() bool { return events.Count(id, "oom", since) > 0 })
		// unless-stopped: an OOM kill is a crash, which the engine itself restarts
		eventually(t, 60*time.Second, "the replica running and healthy again", func() bool {
			st := s.Inspect(id).State
			return st.Running && st.StartedAt != started && st.Health != nil && st.Health.Status == "healthy"
		})
		held := regexp.MustCompile(`"msg":"memory held","mib":(\d+)`).FindAllStringSubmatch(s.LogsSince(id, since), -1)
		if len(held) == 0 {
			t.Fatal("the api logged no memory held")
		}
		last, _ := strconv.Atoi(held[len(held)-1][1])
		if last > 256 {
			t.Errorf("held %d MiB under a 256 MiB limit", last)
		}
		var st plan.ProjectStatus
		if err := getJSON(base+"/status", &st); err != nil {
			t.Fatal(err)
		}
		api := serviceStatus(t, st, "api")
		var c *plan.ContainerStatus
		for i := range api.Containers {
			if api.Containers[i].Name == id {
				c = &api.Containers[i]
			}
		}
		if c == nil || !strings.Contains(c.LastExit, "OOMKilled") || c.RestartsUsed < 1 {
			t.Errorf("status of %s: %+v, want its last exit OOMKilled and a restart counted", id, c)
		}
		t.Logf("killed for memory with %d MiB held (limit 256 MiB), running again; status says %q, %d of %d restarts used", last, c.LastExit, c.RestartsUsed, api.RestartsAllowed)
	})

	t.Run("task 19: logs rotate at 10 MB, three files kept", func(t *testing.T) {
		id := name("api", 3)
		logPath := s.Inspect(id).LogPath
		for round := 1; round <= 2; round++ {
			if res, err := engine.Exec(ctx, s.Engine.Client, id, []string{"/api", "log", "25"}); err != nil || res.ExitCode != 0 {
				t.Fatalf("api log 25: %v %+v", err, res)
			}
			files, _ := filepath.Glob(logPath + "*")
			var sizes []string
			for _, f := range files {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, fmt.Sprintf("%s %.1f MB", filepath.Base(f)[len(filepath.Base(logPath)):], float64(fi.Size())/1e6))
				if fi.Size() > 10<<20+64<<10 {
					t.Errorf("%s: %d bytes, over max-size 10m", f, fi.Size())
				}
			}
			t.Logf("after %d MiB written: %d files: %v", 25*round, len(files), sizes)
			if len(files) != 3 {
				t.Errorf("%d log files after %d MiB, want 3 (max-file)", len(files), 25*round)
			}
		}
	})

	t.Run("task 6: the database killed, stopped, and the stack restarted", func(t *testing.T) {
		db := name("db", 1)
		since := time.Now()
		// `docker compose kill db`: the engine restarts no killed
		// container, whatever its policy; the daemon starts it
		if r := s.compose(t, "kill", "db"); r.Code != 0 {
			t.Fatalf("compose kill db: %s", r)
		}
		eventually(t, 60*time.Second, "db started by the daemon, healthy", func() bool {
			st := s.Inspect(db).State
			return hasRecordSince(t, base, "Started", "db", since) && st.Running && st.Health != nil && st.Health.Status == "healthy"
		})
		// `docker compose stop db`: the daemon leaves it down, as meant
		since = time.Now()
		if r := s.compose(t, "stop", "db"); r.Code != 0 {
			t.Fatalf("compose stop db: %s", r)
		}
		eventually(t, 30*time.Second, "StoppedByUser", func() bool { return hasRecordSince(t, base, "StoppedByUser", "db", since) })
		// the daemon decides at once; seconds later it is still down
		time.Sleep(3 * time.Second)
		if st := s.Inspect(db).State; st.Running || st.ExitCode != 0 {
			t.Errorf("db after compose stop: running %v, exit %d; want left down, exited 0", st.Running, st.ExitCode)
		}
		if hasRecordSince(t, base, "Started", "db", since) {
			t.Error("the daemon started the stopped db")
		}
		// `docker compose restart`: the course says the database should
		// not start; compose restarts every container of the project,
		// stopped ones included, and it does
		if r := s.compose(t, "restart"); r.Code != 0 {
			t.Fatalf("compose restart: %s", r)
		}
		if !s.Inspect(db).State.Running {
			t.Error("db not running after compose restart")
		}
		s.waitHealthy(t)
	})

	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Errorf("daemon exit %d on SIGTERM", code)
	}
}

// compose runs the real compose CLI on the stack, with its files.
func (s *stack) compose(t *testing.T, args ...string) enginetest.Result {
	t.Helper()
	cmd := exec.Command(enginetest.ComposeCLI(t), append(s.flags(), args...)...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "COMPOSE_PROGRESS=quiet")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := enginetest.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		r.Code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		}
	}
	return r
}

// serviceStatus is the named service's status: a service missing from it
// fails the test.
func serviceStatus(t *testing.T, st plan.ProjectStatus, service string) plan.ServiceStatus {
	t.Helper()
	for _, svc := range st.Services {
		if svc.Service == service {
			return svc
		}
	}
	t.Fatalf("no %s in the status: %+v", service, st)
	return plan.ServiceStatus{}
}

// cgroupValue reads a number from process pid's cgroup: file1 under
// cgroup v1's controller, file2 under v2.
func cgroupValue(pid int, controller, file1, file2 string) (int64, error) {
	dir, v2, err := cgroupDir(pid, controller)
	if err != nil {
		return 0, err
	}
	file := filepath.Join(dir, file1)
	if v2 {
		file = filepath.Join(dir, file2)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// cgroupDir is the directory of process pid's cgroup for controller.
func cgroupDir(pid int, controller string) (string, bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", false, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			return "/sys/fs/cgroup" + parts[2], true, nil
		}
		if ctrls := strings.Split(parts[1], ","); slices.Contains(ctrls, controller) {
			return "/sys/fs/cgroup/" + parts[1] + parts[2], false, nil
		}
	}
	return "", false, fmt.Errorf("pid %d: no %s cgroup", pid, controller)
}

// cpuStat reads cpu.stat of process pid's cgroup: nr_throttled, and
// throttled (nanoseconds: v1's throttled_time, v2's throttled_usec).
func cpuStat(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	dir, v2, err := cgroupDir(pid, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case k == "throttled_time" && !v2:
			out["throttled"] = n
		case k == "throttled_usec" && v2:
			out["throttled"] = n * 1000
		default:
			out[k] = n
		}
	}
	return out
}

// boundPorts lists the host addresses a container's ports are bound to:
// an exposed port with no binding (the image's EXPOSE) is not one.
func boundPorts(ports network.PortMap) []string {
	var out []string
	for _, bindings := range ports {
		for _, b := range bindings {
			out = append(out, net.JoinHostPort(b.HostIP.String(), b.HostPort))
		}
	}
	slices.Sort(out)
	return out
}
