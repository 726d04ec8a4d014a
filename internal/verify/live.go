package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// Engine is what the live checks ask of the engine.
type Engine interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerKill(ctx context.Context, id string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerStats(ctx context.Context, id string, options client.ContainerStatsOptions) (client.ContainerStatsResult, error)
}

// Live proves behaviour on the running stack rather than configuration.
// It needs the engine on this machine (it enters containers' network
// namespaces and reads their cgroups: root) and, for the recovery item, a
// daemon of the project answering at Daemon.
type Live struct {
	Engine Engine
	Daemon string // host:port of the daemon's --listen; "" skips recovery
	// Say is told, before anything is touched, what will be.
	Say func(line string)
	// Timeout bounds each wait (a replica coming back).
	Timeout time.Duration
}

// liveContainer is one running container of the project, inspected.
type liveContainer struct {
	id, name, service string
	number            int
	pid               int
	ips               []string
	inspect           container.InspectResponse
}

// Check runs the live items and returns them, after telling Say what they
// will touch; the stack is left as it was found (a stopped replica started
// again, a killed or failed one waited for until it is back and healthy).
func (l *Live) Check(ctx context.Context, d *desired.State) ([]Item, error) {
	ctrs, err := l.running(ctx, d)
	if err != nil {
		return nil, err
	}
	byService := map[string][]*liveContainer{}
	for _, c := range ctrs {
		byService[c.service] = append(byService[c.service], c)
	}
	stopVictim, killVictim := victims(d, byService)
	lb, port := balancer(d, byService)
	var failVictim *liveContainer
	if lb != "" {
		failVictim = healthVictim(byService[d.Services[lb].Policy.Upstreams[0].Service])
	}

	say := l.Say
	if say == nil {
		say = func(string) {}
	}
	say("verify --live will touch the running stack:")
	say("  dial between the containers of every pair of services, by address, from inside their network namespaces (nothing changes)")
	say("  read the memory limit the kernel enforces on each container (its cgroup)")
	if lb != "" {
		say(fmt.Sprintf("  send at least %d requests through %s at 127.0.0.1:%s, and ask each replica how many it answered (GET /stats, from inside it)", lbRequests, lb, port))
	}
	if failVictim != nil && l.Daemon != "" {
		say("  make " + failVictim.name + " fail its healthcheck (POST /admin/fail, from inside it), send requests while it is not healthy, and wait for it to be back")
	}
	if stopVictim != nil {
		say("  stop " + stopVictim.name + " (docker stop) and start it again")
	}
	if killVictim != nil && l.Daemon != "" {
		say("  kill " + killVictim.name + " (docker kill) and wait for the daemon at " + l.Daemon + " to start it again")
	}

	isolated := l.isolation(ctx, d, byService)
	memory := l.memory(d, ctrs)
	// the spread is measured before a replica is failed, stopped or
	// killed: one just started is rightly out of a health-aware pool
	// until healthy
	balanced := l.loadBalancing(ctx, d, byService, lb, port)
	byHealth := l.healthBalancing(ctx, d, byService, lb, port, failVictim)
	items := []Item{
		isolated,
		memory,
		l.gracefulStop(ctx, d, stopVictim),
		l.recovery(ctx, killVictim),
		balanced,
		byHealth,
	}
	return items, nil
}

// lbRequests is how many requests the load-balancing item sends at least;
// it goes on, for at most lbWindow, until every healthy replica answered.
// lbPace spaces them: at most lbWindow/lbPace requests.
const (
	lbRequests = 30
	lbWindow   = 10 * time.Second
	lbPace     = 5 * time.Millisecond
)

func (l *Live) running(ctx context.Context, d *desired.State) ([]*liveContainer, error) {
	list, err := l.Engine.ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+d.Project.Name)})
	if err != nil {
		return nil, fmt.Errorf("listing the project's containers: %w", err)
	}
	var out []*liveContainer
	for _, s := range list.Items {
		svc := s.Labels[api.ServiceLabel]
		if _, ok := d.Services[svc]; !ok || s.Labels[api.OneoffLabel] == "True" {
			continue
		}
		in, err := l.Engine.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("inspecting %s: %w", s.ID, err)
		}
		c := &liveContainer{id: s.ID, name: strings.TrimPrefix(in.Container.Name, "/"), service: svc, inspect: in.Container}
		c.number, _ = strconv.Atoi(s.Labels[api.ContainerNumberLabel])
		if in.Container.State != nil {
			c.pid = in.Container.State.Pid
		}
		if in.Container.NetworkSettings != nil {
			for _, n := range in.Container.NetworkSettings.Networks {
				if n != nil && n.IPAddress.IsValid() {
					c.ips = append(c.ips, n.IPAddress.String())
				}
			}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *liveContainer) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// victims picks the replicas the stop and the kill touch: of the service
// with the most replicas (two at least), so the service stays up.
func victims(d *desired.State, byService map[string][]*liveContainer) (stop, kill *liveContainer) {
	best := ""
	for _, name := range d.Order {
		if n := len(byService[name]); n >= 2 && (best == "" || n > len(byService[best])) {
			best = name
		}
	}
	if best == "" {
		return nil, nil
	}
	cs := byService[best]
	return cs[len(cs)-1], cs[0]
}

// balancer finds a service that balances over another through an
// x-reconcile upstream and publishes a port on the host.
func balancer(d *desired.State, byService map[string][]*liveContainer) (string, string) {
	for _, name := range d.Order {
		s := d.Services[name]
		if len(s.Policy.Upstreams) == 0 || len(s.Config.Ports) == 0 || len(byService[name]) == 0 {
			continue
		}
		if p := s.Config.Ports[0].Published; p != "" {
			return name, p
		}
	}
	return "", ""
}

// isolation dials from each service's container to each other's addresses:
// an answer (even a refusal) means reachable, a timeout or no route means
// not. What it must find is the course's segmentation, not the file's own
// networks (a hand `docker network connect` is caught): a service reaches
// what it depends on, and a database or cache is reached by nothing that
// does not depend on it. Other pairs are dialled and not judged.
func (l *Live) isolation(ctx context.Context, d *desired.State, byService map[string][]*liveContainer) Item {
	it := Item{ID: "live-isolation", Title: "Isolation holds on the wire", Tasks: []int{14}}
	pairs := segmentation(d, func(service string) bool { return len(byService[service]) > 0 })
	if len(pairs) == 0 {
		it.Result, it.Why = NotApplicable, "no running service depends on another or holds data"
		return it
	}
	var mu sync.Mutex
	var wrong []string
	var errs []error
	var wg sync.WaitGroup
	for _, p := range pairs {
		from, to := byService[p.a.Name][0], byService[p.b.Name][0]
		wg.Go(func() {
			reached, err := reachable(ctx, from.pid, to)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if reached != p.want {
				why := "it depends on it"
				if !p.want {
					why = "it holds data " + p.a.Name + " does not use"
				}
				wrong = append(wrong, fmt.Sprintf("%s→%s %s, want %s: %s", p.a.Name, p.b.Name, word(reached), word(p.want), why))
			}
		})
	}
	wg.Wait()
	switch {
	case len(errs) > 0:
		it.Result, it.Why = Fail, "could not dial from inside the containers (it needs root on the engine's machine): "+errs[0].Error()
	case len(wrong) > 0:
		slices.Sort(wrong)
		it.Result, it.Why = Fail, strings.Join(wrong, "; ")
	default:
		reach, kept := 0, 0
		for _, p := range pairs {
			if p.want {
				reach++
			} else {
				kept++
			}
		}
		it.Result, it.Why = Pass, fmt.Sprintf("%d ordered pairs dialled by address: %d dependencies reached, %d kept from data they do not use", len(pairs), reach, kept)
	}
	return it
}

// pair is an ordered pair of services the isolation item dials, and
// whether the first must reach the second.
type pair struct {
	a, b *desired.Service
	want bool
}

// segmentation is the course's rule over the running services: a service
// must reach each it depends on, and a database or cache must be out of
// reach of every service that does not depend on it. Pairs the rule says
// nothing of are left out.
func segmentation(d *desired.State, running func(service string) bool) []pair {
	var pairs []pair
	for _, an := range d.Order {
		for _, bn := range d.Order {
			if an == bn || !running(an) || !running(bn) {
				continue
			}
			a, b := d.Services[an], d.Services[bn]
			switch {
			case dependsOn(a, bn):
				pairs = append(pairs, pair{a, b, true})
			case role(b) == roleDatabase || role(b) == roleCache:
				pairs = append(pairs, pair{a, b, false})
			}
		}
	}
	return pairs
}

func word(reached bool) string {
	if reached {
		return "reachable"
	}
	return "unreachable"
}

// dialTimeout bounds one connection attempt: on a bridge the engine
// isolates, packets are dropped and only the timeout answers.
const dialTimeout = 1500 * time.Millisecond

// reachable dials port 1 of each of to's addresses from inside the network
// namespace of process pid: a connection or a refusal means the address
// answered. A container with no address cannot be dialled, which is an
// error, not a verdict.
func reachable(ctx context.Context, pid int, to *liveContainer) (bool, error) {
	if len(to.ips) == 0 {
		return false, fmt.Errorf("%s has no address on any network: nothing to dial", to.name)
	}
	var ok bool
	err := inNetns(pid, func() error {
		for _, ip := range to.ips {
			c, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", net.JoinHostPort(ip, "1"))
			if err == nil {
				c.Close()
				ok = true
				return nil
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				ok = true
				return nil
			}
		}
		return nil
	})
	return ok, err
}

// inNetns runs fn on a thread inside the network namespace of process pid.
// The thread never goes back to the scheduler: it ends with fn's goroutine.
// Sockets fn opens stay in that namespace whoever uses them later.
func inNetns(pid int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			done <- fmt.Errorf("opening the network namespace of pid %d: %w", pid, err)
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("entering the network namespace of pid %d: %w", pid, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// localHTTP sends a request to 127.0.0.1:port inside the network namespace
// of process pid, as a command run in the container would: the replica's
// loopback-only endpoints (/stats, /admin/...) answer it.
func localHTTP(ctx context.Context, pid, port int, method, path string) (int, []byte, error) {
	var conn net.Conn
	err := inNetns(pid, func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	used := false
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(context.Context, string, string) (net.Conn, error) {
		if used {
			return nil, errors.New("one connection per request")
		}
		used = true
		return conn, nil
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, localTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		conn.Close()
		return 0, nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, body, err
}

// localTimeout bounds a request to a replica's own endpoints.
const localTimeout = 5 * time.Second

// replicaStats is what a replica says it has answered on GET / (the
// course's api keeps the count: GET /stats, loopback only).
type replicaStats struct {
	Requests int64 `json:"requests"`
	Served   int64 `json:"served"`
	Failed   int64 `json:"failed"`
}

// errNoStats: the replica does not count its requests.
var errNoStats = errors.New("it does not count its requests (GET /stats)")

func statsOf(ctx context.Context, c *liveContainer, pid, port int) (replicaStats, error) {
	code, body, err := localHTTP(ctx, pid, port, http.MethodGet, "/stats")
	if err != nil {
		return replicaStats{}, fmt.Errorf("asking %s for its /stats: %w", c.name, err)
	}
	if code == http.StatusNotFound {
		return replicaStats{}, fmt.Errorf("%s: %w", c.name, errNoStats)
	}
	var s replicaStats
	if code != http.StatusOK {
		return s, fmt.Errorf("asking %s for its /stats: HTTP %d", c.name, code)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("reading %s's /stats: %w", c.name, err)
	}
	return s, nil
}

// memory reads, for each container whose service has a memory limit, the
// limit of its cgroup: what the kernel enforces.
func (l *Live) memory(d *desired.State, ctrs []*liveContainer) Item {
	it := Item{ID: "live-memory", Title: "Memory limits are what the kernel enforces", Tasks: []int{8}}
	var checked int
	var wrong []string
	for _, c := range ctrs {
		want := limitOf(d.Services[c.service])
		if want <= 0 {
			continue
		}
		got, err := cgroupMemoryMax(c.pid)
		if err != nil {
			wrong = append(wrong, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		checked++
		if got != want {
			wrong = append(wrong, fmt.Sprintf("%s: the kernel enforces %d bytes, the file says %d", c.name, got, want))
		}
	}
	switch {
	case len(wrong) > 0:
		it.Result, it.Why = Fail, strings.Join(wrong, "; ")
	case checked == 0:
		it.Result, it.Why = NotApplicable, "no running container has a memory limit"
	default:
		it.Result, it.Why = Pass, fmt.Sprintf("%d containers: their cgroups hold the file's limits", checked)
	}
	return it
}

func limitOf(s *desired.Service) int64 {
	if s == nil {
		return 0
	}
	if s.Config.MemLimit > 0 {
		return int64(s.Config.MemLimit)
	}
	if l := resourcesOf(s).Limits; l != nil {
		return int64(l.MemoryBytes)
	}
	return 0
}

// cgroupMemoryMax reads the memory limit of process pid's cgroup, v2 or v1.
func cgroupMemoryMax(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, fmt.Errorf("reading its cgroup: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			file = "/sys/fs/cgroup" + parts[2] + "/memory.max"
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			file = "/sys/fs/cgroup/memory" + parts[2] + "/memory.limit_in_bytes"
		default:
			continue
		}
		v, err := os.ReadFile(file)
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", file, err)
		}
		return strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
	}
	return 0, errors.New("no memory cgroup")
}

// gracefulStop stops a replica the way `docker compose down` does and
// reads how it ended: the process's own exit on SIGTERM within its grace
// period. 143 is SIGTERM's default action (the process never handled it:
// whatever it was doing was cut), 137 a kill after the grace. Then it
// starts it again.
func (l *Live) gracefulStop(ctx context.Context, d *desired.State, c *liveContainer) Item {
	it := Item{ID: "live-graceful-stop", Title: "A stop is graceful", Tasks: []int{18}}
	if c == nil {
		it.Result, it.Why = NotApplicable, "no service runs two replicas: nothing to stop without taking a service down"
		return it
	}
	grace := d.Services[c.service].StopGracePeriod
	t := int(grace.Seconds())
	start := time.Now()
	_, err := l.Engine.ContainerStop(ctx, c.id, client.ContainerStopOptions{Timeout: &t})
	took := time.Since(start)
	in, ierr := l.Engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	_, serr := l.Engine.ContainerStart(ctx, c.id, client.ContainerStartOptions{})
	switch {
	case err != nil || ierr != nil:
		it.Result, it.Why = Fail, fmt.Sprintf("stopping %s: %v", c.name, errors.Join(err, ierr))
	case serr != nil:
		it.Result, it.Why = Fail, fmt.Sprintf("starting %s again: %v", c.name, serr)
	case in.Container.State == nil:
		it.Result, it.Why = Fail, "no state for "+c.name
	case in.Container.State.ExitCode == 143:
		it.Result, it.Why = Fail, fmt.Sprintf("%s ended by SIGTERM itself (exit 143) after %s: the process does not handle SIGTERM, so what it was doing was cut", c.name, took.Round(time.Millisecond))
	case in.Container.State.ExitCode == 137:
		it.Result, it.Why = Fail, fmt.Sprintf("%s killed (exit 137) after %s, at the end of its grace (%s): the process did not exit on SIGTERM", c.name, took.Round(time.Millisecond), grace)
	case in.Container.State.ExitCode != 0:
		it.Result, it.Why = Fail, fmt.Sprintf("%s exited %d after %s (grace %s): not a clean stop", c.name, in.Container.State.ExitCode, took.Round(time.Millisecond), grace)
	default:
		it.Result, it.Why = Pass, fmt.Sprintf("%s exited %d in %s (grace %s), and was started again", c.name, in.Container.State.ExitCode, took.Round(time.Millisecond), grace)
	}
	return it
}

// recovery kills a replica and waits for the daemon to start it again.
// If nothing does, it starts it itself: the stack is left as found.
func (l *Live) recovery(ctx context.Context, c *liveContainer) Item {
	it := Item{ID: "live-recovery", Title: "A killed replica comes back", Tasks: []int{6, 7}}
	switch {
	case c == nil:
		it.Result, it.Why = NotApplicable, "no service runs two replicas"
		return it
	case l.Daemon == "":
		it.Result, it.Why = NotApplicable, "no daemon given (--listen): nothing would bring it back"
		return it
	}
	if resp, err := lbClient.Get("http://" + l.Daemon + "/healthz"); err != nil {
		it.Result, it.Why = Fail, fmt.Sprintf("no daemon answers at %s: %v", l.Daemon, err)
		return it
	} else {
		resp.Body.Close()
	}
	in, err := l.Engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	if err != nil || in.Container.State == nil {
		it.Result, it.Why = Fail, fmt.Sprintf("inspecting %s: %v", c.name, err)
		return it
	}
	before := in.Container.State.StartedAt
	if _, err := l.Engine.ContainerKill(ctx, c.id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		it.Result, it.Why = Fail, fmt.Sprintf("killing %s: %v", c.name, err)
		return it
	}
	killed := time.Now()
	timeout := l.timeout()
	for time.Since(killed) < timeout {
		in, err := l.Engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
		if err == nil && in.Container.State != nil && in.Container.State.Running && in.Container.State.StartedAt != before {
			took := time.Since(killed).Round(time.Millisecond)
			// the daemon knows its own actions: a start it did not
			// record was someone else's (another tool, a hand)
			if !l.recordedStart(ctx, c.name, killed) {
				it.Result, it.Why = Fail, fmt.Sprintf("%s killed (signal 9) and running again %s later, but the daemon at %s recorded no start of it: something else started it", c.name, took, l.Daemon)
				return it
			}
			it.Result, it.Why = Pass, fmt.Sprintf("%s killed (signal 9) and started again by the daemon %s later", c.name, took)
			return it
		}
		if !sleep(ctx, 100*time.Millisecond) {
			it.Result, it.Why = Fail, ctx.Err().Error()
			return it
		}
	}
	it.Result, it.Why = Fail, fmt.Sprintf("%s killed and not running again within %s: the daemon at %s did not start it", c.name, timeout, l.Daemon)
	if _, err := l.Engine.ContainerStart(ctx, c.id, client.ContainerStartOptions{}); err != nil {
		it.Why += fmt.Sprintf(" (and starting it again failed: %v)", err)
	} else {
		it.Why += " (verify started it again)"
	}
	return it
}

// recordWait is how long after a start the daemon's record of it may come.
const recordWait = 5 * time.Second

// recordedStart reports whether the daemon's records (/events) hold a start
// of the named container since the given time.
func (l *Live) recordedStart(ctx context.Context, name string, since time.Time) bool {
	deadline := time.Now().Add(recordWait)
	for {
		if recs, err := l.records(ctx); err == nil {
			for _, r := range recs {
				if r.Container == name && (r.Reason == record.Started || r.Reason == record.Restarted) && !r.Time.Before(since.Add(-time.Second)) {
					return true
				}
			}
		}
		if time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond) {
			return false
		}
	}
}

// records reads the daemon's recent records.
func (l *Live) records(ctx context.Context) ([]record.Record, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.Daemon+"/events", nil)
	if err != nil {
		return nil, err
	}
	resp, err := lbClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /events: %s", resp.Status)
	}
	var out []record.Record
	dec := json.NewDecoder(io.LimitReader(resp.Body, 16<<20))
	for dec.More() {
		var r record.Record
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("reading /events: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (l *Live) timeout() time.Duration {
	if l.Timeout > 0 {
		return l.Timeout
	}
	return time.Minute
}

// sleep waits d, or less if ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// lbClient sends the requests through the balancer (whose own timeouts
// are shorter) and asks the daemon whether it is there.
var lbClient = &http.Client{Timeout: 10 * time.Second}

// get sends one request through the balancer: its status and body.
func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := lbClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), err
}

// loadBalancing sends requests through the balancer's published port, to
// the path that reaches the target service (/<service>/, as the course's
// nginx routes /api/, else /), and asks every healthy replica, from inside
// it, how many requests it answered (the course's api counts them: GET
// /stats): each must have answered some. A replica that keeps no count is
// told by the hostname its answers name instead, and the item says so.
func (l *Live) loadBalancing(ctx context.Context, d *desired.State, byService map[string][]*liveContainer, lb, port string) Item {
	it := Item{ID: "live-load-balancing", Title: "The load balancer spreads requests over the replicas", Tasks: []int{15}}
	if lb == "" {
		it.Result, it.Why = NotApplicable, "no running service balances over another through a published port"
		return it
	}
	up := d.Services[lb].Policy.Upstreams[0]
	// the pool is health-aware: a replica not healthy now is rightly out
	// of it, so only the healthy ones must answer
	var replicas []*liveContainer
	var out []string
	for _, c := range byService[up.Service] {
		if l.healthy(ctx, c) {
			replicas = append(replicas, c)
		} else {
			out = append(out, c.name)
		}
	}
	if len(replicas) < 2 {
		it.Result, it.Why = Fail, fmt.Sprintf("%d healthy replica(s) of %s: nothing to spread over", len(replicas), up.Service)
		return it
	}
	excluded := ""
	if len(out) > 0 {
		excluded = "; not healthy, so out of the pool: " + strings.Join(out, ", ")
	}
	// the replicas' own counts, before
	before := map[string]replicaStats{}
	counted := true
	for _, c := range replicas {
		s, err := statsOf(ctx, c, c.pid, up.Port)
		if errors.Is(err, errNoStats) {
			counted = false
			break
		}
		if err != nil {
			it.Result, it.Why = Fail, err.Error()
			return it
		}
		before[c.name] = s
	}
	// by their counts, or by the names in their answers
	counts := map[string]int{}
	tally := func(body string) {
		if c := answeredBy(body, replicas); c != nil && !counted {
			counts[c.name]++
		}
	}
	recount := func() error {
		if !counted {
			return nil
		}
		for _, c := range replicas {
			s, err := statsOf(ctx, c, c.pid, up.Port)
			if err != nil {
				return err
			}
			counts[c.name] = int(s.Served - before[c.name].Served)
		}
		return nil
	}
	all := func() bool {
		for _, c := range replicas {
			if counts[c.name] == 0 {
				return false
			}
		}
		return true
	}
	paths := []string{"/" + up.Service + "/", "/"}
	var path string
	answered, sent := 0, 0
	for _, path = range paths {
		answered, sent = 0, 0
		clear(counts)
		for _, c := range replicas {
			s, err := statsOf(ctx, c, c.pid, up.Port)
			if err == nil {
				before[c.name] = s
			}
		}
		// rounds of requests until every healthy replica has answered, for
		// at most lbWindow: a replica healthy a moment ago joins the pool
		// when the balancer's file is rewritten and it reloads
		deadline := time.Now().Add(lbWindow)
		for (sent < lbRequests || !all()) && time.Now().Before(deadline) {
			sent++
			if code, body, err := get(ctx, "http://127.0.0.1:"+port+path); err == nil && code/100 == 2 {
				answered++
				tally(body)
			}
			if !sleep(ctx, lbPace) {
				break
			}
			if sent%10 == 0 {
				if err := recount(); err != nil {
					it.Result, it.Why = Fail, err.Error()
					return it
				}
				if sum(counts) == 0 && sent >= lbRequests {
					break // this path reaches no replica: try the next
				}
			}
		}
		if err := recount(); err != nil {
			it.Result, it.Why = Fail, err.Error()
			return it
		}
		if sum(counts) > 0 {
			break
		}
	}
	var idle, spread []string
	for _, c := range replicas {
		if counts[c.name] == 0 {
			idle = append(idle, c.name)
		}
		spread = append(spread, fmt.Sprintf("%s %d", c.name, counts[c.name]))
	}
	by := "as counted by the replicas themselves (GET /stats)"
	if !counted {
		by = "as named in the answers (the replicas keep no count: GET /stats)"
	}
	switch {
	case answered == 0 && sum(counts) == 0:
		it.Result, it.Why = Fail, fmt.Sprintf("no request through 127.0.0.1:%s (%s) was answered", port, strings.Join(paths, ", "))
	case sum(counts) == 0:
		it.Result, it.Why = Fail, fmt.Sprintf("%d requests through 127.0.0.1:%s (%s) answered, none by a replica of %s, %s", answered, port, strings.Join(paths, ", "), up.Service, by)
	case len(idle) > 0:
		it.Result, it.Why = Fail, fmt.Sprintf("%d of %d requests to %s in %s answered, none by %s, %s: %s%s", answered, sent, path, lbWindow, strings.Join(idle, ", "), by, strings.Join(spread, ", "), excluded)
	default:
		it.Result, it.Why = Pass, fmt.Sprintf("%d of %d requests to %s answered, by every healthy replica of %s, %s: %s%s", answered, sent, path, up.Service, by, strings.Join(spread, ", "), excluded)
	}
	return it
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// healthVictim is the replica the health item fails: the second of three
// or more (the first is the kill's, the last the stop's), else the last of
// two; none with fewer.
func healthVictim(replicas []*liveContainer) *liveContainer {
	if len(replicas) < 2 {
		return nil
	}
	return replicas[1]
}

// healthReaction is how long after the engine says a replica is unhealthy
// a request may still reach it: the balancer is told and reloads.
const healthReaction = time.Second

// healthWindow is how long the item watches a failed replica that nothing
// restarts (no daemon): long enough for requests to find it.
const healthWindow = 5 * time.Second

// healthBalancing makes one replica fail its healthcheck (the course's api:
// POST /admin/fail, from inside it) while requests go through the
// balancer, and asks the replica itself, until it is healthy again, how
// many requests reached it: none may while it is not healthy (unhealthy,
// restarting, or started and not yet healthy), from healthReaction after
// the engine said so. Counting at the balancer would prove nothing: nginx
// retries a 503 on the next server, so every request is answered anyway.
func (l *Live) healthBalancing(ctx context.Context, d *desired.State, byService map[string][]*liveContainer, lb, port string, victim *liveContainer) Item {
	it := Item{ID: "live-health-balancing", Title: "An unhealthy replica gets no requests until healthy again", Tasks: []int{20}}
	if lb == "" {
		it.Result, it.Why = NotApplicable, "no running service balances over another through a published port"
		return it
	}
	if victim == nil {
		it.Result, it.Why = NotApplicable, "fewer than two replicas to balance over"
		return it
	}
	if l.Daemon == "" {
		// the course's nginx has no active health checks: the daemon's
		// upstream file is what follows health
		it.Result, it.Why = NotApplicable, "no daemon given (--listen): nothing takes an unhealthy replica out of the pool"
		return it
	}
	up := d.Services[lb].Policy.Upstreams[0]
	if !l.healthy(ctx, victim) {
		it.Result, it.Why = Fail, victim.name+" is not healthy before the check"
		return it
	}
	if _, err := statsOf(ctx, victim, victim.pid, up.Port); err != nil {
		if errors.Is(err, errNoStats) {
			it.Result, it.Why = NotApplicable, "the replicas keep no count of their requests (GET /stats): whether one is reached cannot be told"
		} else {
			it.Result, it.Why = Fail, err.Error()
		}
		return it
	}
	code, _, err := localHTTP(ctx, victim.pid, up.Port, http.MethodPost, "/admin/fail")
	switch {
	case err != nil:
		it.Result, it.Why = Fail, fmt.Sprintf("making %s fail: %v", victim.name, err)
		return it
	case code == http.StatusNotFound:
		it.Result, it.Why = NotApplicable, "the replicas cannot be made to fail on demand (POST /admin/fail)"
		return it
	case code != http.StatusOK:
		it.Result, it.Why = Fail, fmt.Sprintf("making %s fail: HTTP %d", victim.name, code)
		return it
	}

	// requests through the balancer all along
	type tally struct{ sent, failed int }
	var mu sync.Mutex
	var during tally // while the victim is not healthy
	watching := false
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := "http://127.0.0.1:" + port + "/" + up.Service + "/"
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, _, err := get(ctx, path)
			mu.Lock()
			if watching {
				during.sent++
				if err != nil || code/100 != 2 {
					during.failed++
				}
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	finish := func() tally {
		close(stop)
		<-done
		return during
	}

	// wait for the engine to call it unhealthy
	timeout := l.timeout()
	failed := time.Now()
	var unhealthyAt time.Time
	for unhealthyAt.IsZero() {
		st := l.state(ctx, victim)
		if st.health == container.Unhealthy || (st.health != container.Healthy && st.startedAt != "" && st.startedAt != victim.inspect.State.StartedAt) {
			unhealthyAt = time.Now()
			break
		}
		if time.Since(failed) > timeout || !sleep(ctx, 100*time.Millisecond) {
			finish()
			it.Result, it.Why = Fail, fmt.Sprintf("%s answers 503 on /health and its healthcheck did not say unhealthy within %s", victim.name, timeout)
			l.restore(ctx, victim)
			return it
		}
	}
	if !sleep(ctx, healthReaction) {
		finish()
		it.Result, it.Why = Fail, ctx.Err().Error()
		return it
	}
	mu.Lock()
	watching = true
	mu.Unlock()

	// until it is healthy again: readings of its own count, per process,
	// each taken while it is not healthy
	type reading struct {
		pid  int
		seen int64
	}
	var last *reading
	reached, readings := int64(0), 0
	restarted := false
	for {
		st := l.state(ctx, victim)
		if st.health == container.Healthy {
			break
		}
		if st.running && st.pid != 0 {
			if s, err := statsOf(ctx, victim, st.pid, up.Port); err == nil {
				readings++
				if last != nil && last.pid == st.pid && s.Requests > last.seen {
					reached += s.Requests - last.seen
				}
				last = &reading{st.pid, s.Requests}
			}
		}
		if st.startedAt != victim.inspect.State.StartedAt {
			restarted = true
		}
		if !restarted && time.Since(unhealthyAt) > healthWindow {
			break // nothing restarts it: watched long enough
		}
		if time.Since(unhealthyAt) > timeout || !sleep(ctx, 100*time.Millisecond) {
			break
		}
	}
	mu.Lock()
	watching = false
	mu.Unlock()
	t := finish()
	notHealthy := time.Since(unhealthyAt).Round(time.Millisecond)
	back := l.restore(ctx, victim)
	switch {
	case reached > 0:
		it.Result, it.Why = Fail, fmt.Sprintf("%s answered %d of %d requests while not healthy (by its own count, in %s from %s after the engine said unhealthy)", victim.name, reached, t.sent, notHealthy, healthReaction)
	case readings < 2:
		it.Result, it.Why = Fail, fmt.Sprintf("%s could not be asked for its count while not healthy (%d readings in %s)", victim.name, readings, notHealthy)
	case t.sent == 0:
		it.Result, it.Why = Fail, "no request was sent while "+victim.name+" was not healthy"
	case t.failed > 0:
		it.Result, it.Why = Fail, fmt.Sprintf("%d of %d requests through %s failed while %s was not healthy", t.failed, t.sent, lb, victim.name)
	case !back:
		it.Result, it.Why = Fail, fmt.Sprintf("%s got no request while not healthy, and was not healthy again within %s", victim.name, timeout)
	default:
		how := "restarted by the daemon"
		if !restarted {
			how = "restarted by verify: nothing else did"
		}
		it.Result, it.Why = Pass, fmt.Sprintf("%s failed its healthcheck: %d requests answered by the others and none by it while it was not healthy (%s, %d readings of its own count), then %s and healthy again", victim.name, t.sent, notHealthy, readings, how)
	}
	return it
}

// liveState is what the health item watches of a replica.
type liveState struct {
	running   bool
	pid       int
	health    container.HealthStatus
	startedAt string
}

func (l *Live) state(ctx context.Context, c *liveContainer) liveState {
	in, err := l.Engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	if err != nil || in.Container.State == nil {
		return liveState{}
	}
	s := in.Container.State
	st := liveState{running: s.Running, pid: s.Pid, startedAt: s.StartedAt}
	if s.Health != nil {
		st.health = s.Health.Status
	}
	return st
}

// restore brings a failed replica back: if it was not restarted (no daemon
// did), verify restarts it; then it waits for it to be healthy. It reports
// whether it is.
func (l *Live) restore(ctx context.Context, c *liveContainer) bool {
	st := l.state(ctx, c)
	if st.startedAt == c.inspect.State.StartedAt && st.health != container.Healthy {
		t := 10
		_, _ = l.Engine.ContainerStop(ctx, c.id, client.ContainerStopOptions{Timeout: &t})
		_, _ = l.Engine.ContainerStart(ctx, c.id, client.ContainerStartOptions{})
	}
	deadline := time.Now().Add(l.timeout())
	for time.Now().Before(deadline) {
		if l.healthy(ctx, c) {
			return true
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return false
		}
	}
	return false
}

// healthy reports whether c runs and passes its healthcheck (or has none),
// as the engine says now.
func (l *Live) healthy(ctx context.Context, c *liveContainer) bool {
	in, err := l.Engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	if err != nil || in.Container.State == nil || !in.Container.State.Running {
		return false
	}
	h := in.Container.State.Health
	return h == nil || h.Status == container.Healthy || h.Status == container.NoHealthcheck
}

// answeredBy is the replica an answer names, by hostname or name.
func answeredBy(body string, replicas []*liveContainer) *liveContainer {
	for _, c := range replicas {
		if c.inspect.Config != nil && c.inspect.Config.Hostname != "" && strings.Contains(body, c.inspect.Config.Hostname) {
			return c
		}
		if strings.Contains(body, c.name) {
			return c
		}
	}
	return nil
}
