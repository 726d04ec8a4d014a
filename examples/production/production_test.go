// Package production tests the course's production-ready stack as a learner
// would check it: brought up by `reconcile --once`, then the exercise's
// verification checklist, item by item, against the running containers.
package production

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/reconciler/plan"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// buildImages runs build.sh: the Debian-package images and the api.
func buildImages(t *testing.T) {
	t.Helper()
	enginetest.BuildScript(t, "./build.sh")
}

// stack is a running copy of the example.
type stack struct {
	*enginetest.Project
	override string              // docker-compose.dev.yml or docker-compose.prod.yml
	ids      map[string][]string // service -> container IDs, by replica number
}

// up copies the example, writes the test's variables to test.env (a second
// env file, as a user would pass), and brings it up with reconcile --once.
func up(t *testing.T, override string, vars ...string) (*stack, *enginetest.EventLog) {
	t.Helper()
	p := enginetest.CopyProject(t, ".")
	s := &stack{Project: p, override: override}
	p.Write("test.env", strings.Join(append([]string{"DB_VOLUME_NAME=" + p.Name + "-db-data"}, vars...), "\n")+"\n")
	events := p.Record()
	r := s.reconcile(t, "--once", "--timeout", "3m")
	if r.Code != 0 {
		t.Fatalf("reconcile --once: %s", r)
	}
	s.refresh()
	return s, events
}

func (s *stack) options() desired.Options {
	return desired.Options{
		Files:       []string{filepath.Join(s.Dir, "docker-compose.yml"), filepath.Join(s.Dir, s.override)},
		EnvFiles:    []string{filepath.Join(s.Dir, "local-images.env"), filepath.Join(s.Dir, "test.env")},
		ProjectName: s.Name,
	}
}

// flags name the stack's project, files and env files, as reconcile and
// compose both take them.
func (s *stack) flags() []string {
	o := s.options()
	flags := []string{"-p", o.ProjectName}
	for _, f := range o.Files {
		flags = append(flags, "-f", f)
	}
	for _, f := range o.EnvFiles {
		flags = append(flags, "--env-file", f)
	}
	return flags
}

func (s *stack) reconcile(t *testing.T, args ...string) enginetest.Result {
	t.Helper()
	return enginetest.Run(t, s.Dir, nil, append(args, s.flags()...)...)
}

func (s *stack) refresh() {
	s.ids = map[string][]string{}
	for _, c := range s.Snapshot().Containers {
		s.ids[c.Service] = append(s.ids[c.Service], c.ID)
	}
}

func (s *stack) exec(t *testing.T, service string, cmd ...string) engine.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := engine.Exec(ctx, s.Engine.Client, s.ids[service][0], cmd)
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, service, err)
	}
	return res
}

// requests GETs url every pause until the returned stop is called, which
// says how many requests were sent and how each that failed failed.
func requests(url string, pause time.Duration) (stop func() (sent int, failures []string)) {
	quit := make(chan struct{})
	type result struct {
		sent     int
		failures []string
	}
	done := make(chan result)
	go func() {
		var r result
		for {
			select {
			case <-quit:
				done <- r
				return
			default:
			}
			r.sent++
			if body, err := get(url); err != nil {
				r.failures = append(r.failures, fmt.Sprintf("%v %q", err, body))
			}
			time.Sleep(pause)
		}
	}()
	return func() (int, []string) {
		close(quit)
		r := <-done
		return r.sent, r.failures
	}
}

// get fetches a URL from the host, through the load balancer's port.
func get(url string) (string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

func TestProductionChecklist(t *testing.T) {
	t.Parallel()
	buildImages(t)
	port := enginetest.FreePort(t)
	s, events := up(t, "docker-compose.prod.yml", "LB_PORT="+port)
	lb := "http://127.0.0.1:" + port

	t.Run("every service healthy", func(t *testing.T) {
		r := s.reconcile(t, "status", "-o", "json")
		var st plan.ProjectStatus
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Fatalf("status: %v\n%s", err, r)
		}
		want := map[string]int{"lb": 1, "frontend": 1, "api": 3, "db": 1, "cache": 1}
		for _, svc := range st.Services {
			if svc.Health != plan.Healthy || svc.Sync != plan.Synced || svc.Healthy != want[svc.Service] {
				t.Errorf("%s: %d/%d healthy, %s %s: %s", svc.Service, svc.Healthy, svc.Desired, svc.Sync, svc.Health, svc.Reason)
			}
			delete(want, svc.Service)
		}
		if len(want) != 0 {
			t.Errorf("services missing from status: %v", want)
		}
	})

	t.Run("start order from the engine's events", func(t *testing.T) {
		at := func(container, action string) time.Time {
			t.Helper()
			ts, ok := events.First(s.Name+"-"+container, action)
			if !ok {
				t.Fatalf("no %q event for %s", action, container)
			}
			return ts
		}
		for _, api := range []string{"api-1", "api-2", "api-3"} {
			start := at(api, "start")
			for _, dep := range []string{"db-1", "cache-1"} {
				if healthy := at(dep, "health_status: healthy"); !start.After(healthy) {
					t.Errorf("%s started at %s, before %s was healthy at %s", api, start, dep, healthy)
				}
			}
			if fe := at("frontend-1", "start"); !fe.After(at(api, "health_status: healthy")) {
				t.Errorf("frontend started before %s was healthy", api)
			}
		}
		if lbStart := at("lb-1", "start"); !lbStart.After(at("frontend-1", "health_status: healthy")) {
			t.Errorf("lb started before frontend was healthy")
		}
	})

	t.Run("restart policies", func(t *testing.T) {
		want := map[string]string{"db": "unless-stopped", "cache": "unless-stopped", "api": "unless-stopped", "lb": "unless-stopped", "frontend": "unless-stopped"}
		for svc, policy := range want {
			if got := s.Inspect(s.ids[svc][0]).HostConfig.RestartPolicy.Name; string(got) != policy {
				t.Errorf("%s restart policy %q, want %q", svc, got, policy)
			}
		}
		d := loadDesired(t, s)
		if r := d.Services["api"].Policy.Restart; r.MaxAttempts != 3 {
			t.Errorf("api restart budget %d, want 3 (x-reconcile in the prod file)", r.MaxAttempts)
		}
	})

	t.Run("limits and reservations", func(t *testing.T) {
		const mib = 1 << 20
		want := map[string][3]int64{ // memory limit, memory reservation, nano CPUs
			"db":    {512 * mib, 256 * mib, 1e9},
			"cache": {256 * mib, 128 * mib, 5e8},
			"api":   {256 * mib, 128 * mib, 5e8},
		}
		for svc, w := range want {
			for _, id := range s.ids[svc] {
				h := s.Inspect(id).HostConfig
				if got := [3]int64{h.Memory, h.MemoryReservation, h.NanoCPUs}; got != w {
					t.Errorf("%s limits %v, want %v", svc, got, w)
				}
			}
		}
	})

	t.Run("named volume with a custom name", func(t *testing.T) {
		name := s.Name + "-db-data"
		found := false
		for _, m := range s.Inspect(s.ids["db"][0]).Mounts {
			found = found || (m.Type == "volume" && m.Name == name && m.Destination == "/var/lib/postgresql/data")
		}
		if !found {
			t.Errorf("db does not mount volume %s", name)
		}
	})

	t.Run("redis.conf edit visible without a restart", func(t *testing.T) {
		started := s.Inspect(s.ids["cache"][0]).State.StartedAt
		conf := filepath.Join(s.Dir, "cache", "redis.conf")
		old, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		// save as editors do: write a new file and rename it over the old one
		tmp := conf + ".swp"
		if err := os.WriteFile(tmp, append(old, []byte("# edited by the test\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, conf); err != nil {
			t.Fatal(err)
		}
		if res := s.exec(t, "cache", "cat", "/usr/local/etc/redis/redis.conf"); !strings.Contains(res.Stdout, "edited by the test") {
			t.Errorf("the edit is not visible inside the container: %+v", res)
		}
		if now := s.Inspect(s.ids["cache"][0]).State.StartedAt; now != started {
			t.Error("the cache was restarted")
		}
	})

	t.Run("tmpfs emptied by a restart", func(t *testing.T) {
		if res := s.exec(t, "cache", "sh", "-c", "echo test > /tmp/redis-tmp/file.txt && cat /tmp/redis-tmp/file.txt"); res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "test" {
			t.Fatalf("writing to the tmpfs: %+v", res)
		}
		timeout := 10
		if _, err := s.Engine.Client.ContainerRestart(context.Background(), s.ids["cache"][0], client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
			t.Fatal(err)
		}
		if res := s.exec(t, "cache", "cat", "/tmp/redis-tmp/file.txt"); res.ExitCode == 0 {
			t.Errorf("the file survived the restart: %+v", res)
		}
	})

	t.Run("network isolation by connections", func(t *testing.T) {
		tests := []struct {
			from, to string
			want     bool
		}{
			{"frontend", "api:3000", true},
			{"lb", "api:3000", true},
			{"lb", "frontend:80", true},
			{"api", "db:5432", true},
			{"api", "cache:6379", true},
			{"frontend", "db:5432", false},
			{"frontend", "cache:6379", false},
			{"db", "cache:6379", false},
			{"cache", "db:5432", false},
		}
		for _, tt := range tests {
			if got := s.DialFrom(s.ids[tt.from][0], tt.to); got != tt.want {
				t.Errorf("%s -> %s reachable = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		}
	})

	t.Run("load balancing over the three replicas", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 30; i++ {
			body, err := get(lb + "/api/")
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			seen[strings.TrimSpace(body)]++
		}
		if len(seen) != 3 {
			t.Errorf("30 requests reached %d replicas: %v", len(seen), seen)
		}
		for _, id := range s.ids["api"] {
			if seen["hello from "+id[:12]] == 0 {
				t.Errorf("replica %s got no request: %v", id[:12], seen)
			}
		}
	})

	t.Run("a killed replica fails no request", func(t *testing.T) {
		victim := s.ids["api"][0]
		if _, err := s.Engine.Client.ContainerKill(context.Background(), victim, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 30; i++ {
			if body, err := get(lb + "/api/"); err != nil || strings.Contains(body, victim[:12]) {
				t.Errorf("request %d: %q %v", i, body, err)
			}
		}
		// the engine leaves a killed container down, whatever its policy;
		// --once brings it back
		if r := s.reconcile(t, "--once", "--timeout", "2m"); r.Code != 0 {
			t.Fatalf("--once after the kill: %s", r)
		}
		if !s.Inspect(victim).State.Running {
			t.Error("the killed replica was not started again")
		}
	})

	t.Run("init.sql ran once", func(t *testing.T) {
		psql := func(query string) string {
			t.Helper()
			res := s.exec(t, "db", "psql", "-U", "app", "-d", "app", "-tAc", query)
			if res.ExitCode != 0 {
				t.Fatalf("psql %q: %+v", query, res)
			}
			return strings.TrimSpace(res.Stdout)
		}
		check := func() {
			t.Helper()
			if got := psql("SELECT string_agg(username, ',' ORDER BY id) FROM users"); got != "admin,user1" {
				t.Errorf("users: %q", got)
			}
			if got := psql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'users' AND indexname LIKE 'idx_%'"); got != "idx_users_email,idx_users_username" {
				t.Errorf("indexes: %q", got)
			}
		}
		check()
		timeout := 30
		if _, err := s.Engine.Client.ContainerRestart(context.Background(), s.ids["db"][0], client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
			t.Fatal(err)
		}
		if r := s.reconcile(t, "--once", "--timeout", "2m"); r.Code != 0 {
			t.Fatalf("--once after the restart: %s", r)
		}
		check()
		logs := s.Logs(s.ids["db"][0])
		if n := strings.Count(logs, "running /docker-entrypoint-initdb.d/init.sql"); n != 1 {
			t.Errorf("init.sql ran %d times", n)
		}
	})

	// From here on the daemon runs beside the stack: what --once cannot do.
	d, base := s.daemon(t)

	t.Run("daemon: the upstream file lists the three healthy replicas", func(t *testing.T) {
		eventually(t, 30*time.Second, "3 api servers in the upstream file", func() bool { return len(s.upstreams(t)) == 3 })
		for _, srv := range s.upstreams(t) {
			if !strings.HasPrefix(srv, s.Name+"-api-") || !strings.HasSuffix(srv, ":3000") {
				t.Errorf("upstream server %q: want a replica's container name and port 3000", srv)
			}
		}
	})

	t.Run("daemon: an unhealthy replica leaves the pool and no request fails", func(t *testing.T) {
		s.refresh()
		victim := s.ids["api"][0]
		since := time.Now()
		stop := requests(lb+"/api/", 50*time.Millisecond)
		if res, err := engine.Exec(context.Background(), s.Engine.Client, victim, []string{"/api", "fail"}); err != nil || res.ExitCode != 0 {
			t.Fatalf("api fail: %v %+v", err, res)
		}
		eventually(t, 15*time.Second, "the failing replica out of the upstream file", func() bool {
			return len(s.upstreams(t)) == 2
		})
		for i := 0; i < 20; i++ {
			if body, err := get(lb + "/api/"); err != nil || strings.Contains(body, victim[:12]) {
				t.Errorf("request %d after the removal: %q %v", i, body, err)
			}
		}
		// reconcile restarts the unhealthy replica (on_unhealthy), and it
		// comes back into the pool once healthy
		eventually(t, 60*time.Second, "the replica back in the pool", func() bool { return len(s.upstreams(t)) == 3 })
		if _, failures := stop(); len(failures) > 0 {
			t.Errorf("%d requests failed through the lb: %v", len(failures), failures)
		}
		// the pool's change is the daemon's doing, after the failure: a
		// reload of an earlier change would not prove it
		if !hasRecordSince(t, base, "Restarted", "api", since) || !hasRecordSince(t, base, "Reloaded", "lb", since) {
			t.Errorf("no Restarted api / Reloaded lb record since the replica failed")
		}
	})

	t.Run("daemon: an nginx.conf edit is checked, then reloaded", func(t *testing.T) {
		conf := filepath.Join(s.Dir, "lb", "conf.d", "default.conf")
		old, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		lbStarted := s.Inspect(s.ids["lb"][0]).State.StartedAt
		edited := strings.Replace(string(old), "location = /healthz {", "add_header X-Course-Task 12 always;\n\n    location = /healthz {", 1)
		if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the header served", func() bool {
			resp, err := http.Get(lb + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.Header.Get("X-Course-Task") == "12"
		})
		// a broken edit: nginx -t fails, nothing reloads, the old config serves
		if err := os.WriteFile(conf, []byte(edited+"\nthis is not nginx;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "ReloadRejected", func() bool { return hasRecord(t, base, "ReloadRejected", "lb") })
		if _, err := get(lb + "/api/"); err != nil {
			t.Errorf("after a rejected edit: %v", err)
		}
		if err := os.WriteFile(conf, old, 0o644); err != nil {
			t.Fatal(err)
		}
		if s.Inspect(s.ids["lb"][0]).State.StartedAt != lbStarted {
			t.Error("the lb was restarted: a reload must not restart it")
		}
	})

	t.Run("daemon: a redis.conf edit restarts the cache (reload restart: true)", func(t *testing.T) {
		started := s.Inspect(s.ids["cache"][0]).State.StartedAt
		conf := filepath.Join(s.Dir, "cache", "redis.conf")
		old, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, append(old, []byte("# edited under the daemon\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "cache restarted and healthy", func() bool {
			st := s.Inspect(s.ids["cache"][0]).State
			return st.StartedAt != started && st.Health != nil && st.Health.Status == "healthy"
		})
	})

	t.Run("daemon: api killed four times stays down after three restarts", func(t *testing.T) {
		s.refresh()
		victim := s.ids["api"][1]
		name := strings.TrimPrefix(s.Inspect(victim).Name, "/")
		since := time.Now()
		for i := 0; i < 4; i++ {
			eventually(t, 30*time.Second, "api running", func() bool { return s.Inspect(victim).State.Running })
			if _, err := s.Engine.Client.ContainerKill(context.Background(), victim, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		time.Sleep(8 * time.Second) // longer than any backoff a fourth restart would owe
		if n := events.Count(name, "start", since); n != 3 {
			t.Errorf("%d restarts after four kills, want 3", n)
		}
		if s.Inspect(victim).State.Running {
			t.Error("restarted a fourth time")
		}
		var st plan.ProjectStatus
		if err := getJSON(base+"/status", &st); err != nil {
			t.Fatal(err)
		}
		if svc := serviceStatus(t, st, "api"); svc.Health != plan.Degraded || svc.Reason != "RestartBudgetExhausted" || svc.RestartsAllowed != 3 {
			t.Errorf("api status %+v", svc)
		}
		// the learner starts it by hand: that is their call, not a restart
		if _, err := s.Engine.Client.ContainerStart(context.Background(), victim, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "api healthy again", func() bool {
			st := s.Inspect(victim).State
			return st.Health != nil && st.Health.Status == "healthy"
		})
	})

	t.Run("daemon: verify --live proves the checklist on the running stack", func(t *testing.T) {
		eventually(t, 60*time.Second, "every api replica healthy before", func() bool { return len(s.upstreams(t)) == 3 })
		r := s.reconcile(t, "verify", "--live", "--listen", strings.TrimPrefix(base, "http://"), "-o", "json")
		var rep struct {
			Passed bool `json:"passed"`
			Items  []struct {
				ID, Result, Why string
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("verify --live: %v\n%s", err, r)
		}
		live := 0
		for _, it := range rep.Items {
			if strings.HasPrefix(it.ID, "live-") {
				live++
			}
			if it.Result != "pass" {
				t.Errorf("%s: %s (%s)", it.ID, it.Result, it.Why)
			} else if strings.HasPrefix(it.ID, "live-") {
				t.Logf("%s: %s", it.ID, it.Why)
			}
		}
		if r.Code != 0 || !rep.Passed || live != 6 {
			t.Errorf("exit %d, passed %v, %d live items", r.Code, rep.Passed, live)
		}
		if !strings.Contains(r.Stderr, "verify --live will touch the running stack") || !strings.Contains(r.Stderr, "stop "+s.Name+"-api-3") {
			t.Errorf("it did not say first what it would touch:\n%s", r.Stderr)
		}
		// as it found it: every service healthy again
		eventually(t, 60*time.Second, "the stack as verify found it", func() bool {
			var st plan.ProjectStatus
			if err := getJSON(base+"/status", &st); err != nil {
				return false
			}
			return st.Health == plan.Healthy && st.Sync == plan.Synced
		})
	})

	// an api change rolls, one replica at a time, drained from nginx
	// first and entering once healthy: no request through the lb fails;
	// one whose replicas never turn healthy is rolled back the same way
	override := filepath.Join(s.Dir, s.override)
	prod, err := os.ReadFile(override)
	if err != nil {
		t.Fatal(err)
	}
	apiHashes := func() map[string]int {
		out := map[string]int{}
		for _, c := range s.Snapshot().Containers {
			if c.Service == "api" && c.State == "running" && c.Health == "healthy" {
				out[c.ConfigHash]++
			}
		}
		return out
	}
	roll := func(t *testing.T, edit string, reason record.Reason, settled func(map[string]int) bool) {
		t.Helper()
		eventually(t, 60*time.Second, "every api replica in the pool before", func() bool { return len(s.upstreams(t)) == 3 })
		stop := make(chan struct{})
		done := make(chan [2]int)
		go func() {
			var sent, failed int
			for {
				select {
				case <-stop:
					done <- [2]int{sent, failed}
					return
				default:
				}
				sent++
				if _, err := get(lb + "/api/"); err != nil {
					failed++
					t.Logf("request failed: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		if err := os.WriteFile(override, []byte(edit), 0o644); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		eventually(t, 3*time.Minute, string(reason), func() bool { return hasRecord(t, base, string(reason), "api") })
		eventually(t, 60*time.Second, "the api settled", func() bool { return settled(apiHashes()) && len(s.upstreams(t)) == 3 })
		close(stop)
		counts := <-done
		t.Logf("%d requests through nginx in %s, %d failed", counts[0], time.Since(since).Round(time.Millisecond), counts[1])
		if counts[1] > 0 {
			lbState := s.Inspect(s.ids["lb"][0]).State
			t.Errorf("%d of %d requests failed through the lb during the rollout (lb: %s, started %s, OOM %v, exit %d)",
				counts[1], counts[0], lbState.Status, lbState.StartedAt, lbState.OOMKilled, lbState.ExitCode)
		}
	}
	var before string
	for h := range apiHashes() {
		before = h
	}
	var after string
	t.Run("daemon: an api change rolls one replica at a time, no request fails", func(t *testing.T) {
		roll(t, strings.Replace(string(prod), "LOG_LEVEL: warn", "LOG_LEVEL: error", 1), record.RolloutComplete, func(h map[string]int) bool {
			for k, n := range h {
				after = k
				return n == 3 && k != before
			}
			return false
		})
	})
	t.Run("daemon: an api change that never turns healthy is rolled back, no request fails", func(t *testing.T) {
		if after == "" {
			t.Skip("the update before did not complete")
		}
		// the same, with a probe that cannot run: never healthy
		broken := strings.Replace(string(prod), "LOG_LEVEL: warn", "LOG_LEVEL: error", 1)
		broken = strings.Replace(broken, "  api:\n", "  api:\n    healthcheck:\n      test: [\"CMD\", \"/no-such-probe\"]\n", 1)
		roll(t, broken, record.RolledBack, func(h map[string]int) bool { return h[after] == 3 && len(h) == 1 })
		var st plan.ProjectStatus
		if err := getJSON(base+"/status", &st); err != nil {
			t.Fatal(err)
		}
		if svc := serviceStatus(t, st, "api"); svc.Sync != plan.OutOfSync || !strings.Contains(svc.Reason, "rolled back") {
			t.Errorf("api after the rollback: %s %q, want OutOfSync and why", svc.Sync, svc.Reason)
		}
	})
	if err := os.WriteFile(override, prod, 0o644); err != nil {
		t.Fatal(err)
	}

	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Errorf("daemon exit %d on SIGTERM", code)
	}
	s.refresh()

	t.Run("logging options", func(t *testing.T) {
		for svc, ids := range s.ids {
			lc := s.Inspect(ids[0]).HostConfig.LogConfig
			if lc.Type != "json-file" || lc.Config["max-size"] != "10m" || lc.Config["max-file"] != "3" {
				t.Errorf("%s logging %+v", svc, lc)
			}
		}
	})

	t.Run("down: every service exits 0, no errors logged", func(t *testing.T) {
		d := loadDesired(t, s)
		since := time.Now()
		if err := s.Engine.Compose.Stop(context.Background(), s.Name, api.StopOptions{Project: d.Project}); err != nil {
			t.Fatal(err)
		}
		for svc, ids := range s.ids {
			for _, id := range ids {
				st := s.Inspect(id).State
				if st.Running || st.ExitCode != 0 || st.OOMKilled {
					t.Errorf("%s stopped with exit code %d (running %v, OOM %v)", svc, st.ExitCode, st.Running, st.OOMKilled)
				}
				logs := s.LogsSince(id, since)
				// the engine runs db's healthcheck (pg_isready) until the
				// container stops: a probe that lands in postgres's shutdown
				// is refused with this FATAL line, the probe's and not the
				// stack's (seen once in five runs, under load)
				logs = withoutLines(logs, "FATAL:  the database system is shutting down")
				for _, bad := range []string{"[emerg]", "[crit]", "FATAL", "PANIC", `"level":"ERROR"`, "# Error"} {
					if strings.Contains(logs, bad) {
						t.Errorf("%s logged %q while stopping:\n%s", svc, bad, logs)
					}
				}
			}
		}
	})
}

// withoutLines is text without the lines that contain what.
func withoutLines(text, what string) string {
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, what) {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

// daemon starts reconcile's daemon on the stack, with its endpoints.
func (s *stack) daemon(t *testing.T) (*enginetest.Proc, string) {
	t.Helper()
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	args := append([]string{"--state-dir", t.TempDir(), "--listen", addr, "--log-format", "json"}, s.flags()...)
	d := enginetest.Start(t, s.Dir, nil, args...)
	d.WaitFor(`"daemon started"`, 30*time.Second)
	return d, "http://" + addr
}

// upstreams lists the servers of the generated upstream file.
func (s *stack) upstreams(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "lb", "upstreams", "api_backend.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if srv, ok := strings.CutPrefix(strings.TrimSpace(line), "server "); ok {
			out = append(out, strings.TrimSuffix(srv, ";"))
		}
	}
	return out
}

func hasRecord(t *testing.T, base, reason, service string) bool {
	t.Helper()
	return hasRecordSince(t, base, reason, service, time.Time{})
}

// hasRecordSince reports whether the daemon made a record of reason about
// service (any when "") at since or later.
func hasRecordSince(t *testing.T, base, reason, service string, since time.Time) bool {
	t.Helper()
	for _, r := range readRecords(t, base) {
		if string(r.Reason) == reason && (service == "" || r.Service == service) && !r.Time.Before(since) {
			return true
		}
	}
	return false
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loadDesired loads the stack's compose files as reconcile does.
func loadDesired(t *testing.T, s *stack) *desired.State {
	t.Helper()
	return s.LoadWith(s.options())
}

func TestDevConfiguration(t *testing.T) {
	t.Parallel()
	buildImages(t)
	ports := map[string]string{}
	var vars []string
	for _, v := range []string{"LB_PORT", "FRONTEND_PORT", "DB_PORT", "CACHE_PORT"} {
		ports[v] = enginetest.FreePort(t)
		vars = append(vars, v+"="+ports[v])
	}
	s, _ := up(t, "docker-compose.dev.yml", vars...)

	for svc, ids := range s.ids {
		for _, id := range ids {
			in := s.Inspect(id)
			if p := in.HostConfig.RestartPolicy.Name; p != "no" && p != "" {
				t.Errorf("%s restart policy %q, want no", svc, p)
			}
			if in.HostConfig.Memory != 0 || in.HostConfig.NanoCPUs != 0 || in.HostConfig.MemoryReservation != 0 {
				t.Errorf("%s has limits in dev: %d bytes, %d nano CPUs", svc, in.HostConfig.Memory, in.HostConfig.NanoCPUs)
			}
		}
	}
	for v, port := range ports {
		if !dialable("127.0.0.1:" + port) {
			t.Errorf("%s %s not published on loopback", v, port)
		}
	}
	// loopback only, as bound: a 0.0.0.0 binding answers on 127.0.0.1 too
	for svc, ids := range s.ids {
		for _, id := range ids {
			bound := boundPorts(s.Inspect(id).NetworkSettings.Ports)
			if len(bound) == 0 {
				t.Errorf("%s publishes no port in dev", svc)
			}
			for _, b := range bound {
				if !strings.HasPrefix(b, "127.0.0.1:") {
					t.Errorf("%s bound at %s, want loopback only", svc, b)
				}
			}
		}
	}
	if body, err := get("http://127.0.0.1:" + ports["LB_PORT"] + "/api/"); err != nil || !strings.HasPrefix(body, "hello from") {
		t.Errorf("through the lb: %q %v", body, err)
	}
	api := s.Inspect(s.ids["api"][0])
	if !slices.Contains(api.Config.Env, "LOG_LEVEL=debug") {
		t.Errorf("api env %v lacks LOG_LEVEL=debug", api.Config.Env)
	}
	// live reload where there is something to reload: the site's files,
	// bind-mounted, are served as edited, with no restart
	fe := s.Inspect(s.ids["frontend"][0]).State.StartedAt
	page := filepath.Join(s.Dir, "frontend", "html", "index.html")
	old, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, append(old, []byte("<p>edited live</p>\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"http://127.0.0.1:" + ports["FRONTEND_PORT"] + "/", "http://127.0.0.1:" + ports["LB_PORT"] + "/"} {
		if body, err := get(url); err != nil || !strings.Contains(body, "edited live") {
			t.Errorf("%s after the edit: %q %v", url, body, err)
		}
	}
	if s.Inspect(s.ids["frontend"][0]).State.StartedAt != fe {
		t.Error("the frontend was restarted to show the edit")
	}
}

func dialable(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
