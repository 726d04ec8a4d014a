package verify

import (
	"context"
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
// again, a killed one waited for).
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

	say := l.Say
	if say == nil {
		say = func(string) {}
	}
	say("verify --live will touch the running stack:")
	say("  dial between the containers of every pair of services, by address, from inside their network namespaces (nothing changes)")
	say("  read the memory limit the kernel enforces on each container (its cgroup)")
	if stopVictim != nil {
		say("  stop " + stopVictim.name + " (docker stop) and start it again")
	}
	if killVictim != nil && l.Daemon != "" {
		say("  kill " + killVictim.name + " (docker kill) and wait for the daemon at " + l.Daemon + " to start it again")
	}
	if lb != "" {
		say(fmt.Sprintf("  send %d requests through %s at 127.0.0.1:%s, and count which replica answers each", lbRequests, lb, port))
	}

	// the spread is measured before a replica is stopped or killed: one
	// just started is rightly out of a health-aware pool until healthy
	balanced := l.loadBalancing(ctx, d, byService, lb, port)
	items := []Item{
		l.isolation(ctx, d, byService),
		l.memory(d, ctrs),
		l.gracefulStop(ctx, d, stopVictim),
		l.recovery(ctx, killVictim),
		balanced,
	}
	return items, nil
}

// lbRequests is how many requests the load-balancing item sends at least;
// it goes on, for at most lbWindow, until every healthy replica answered.
const (
	lbRequests = 30
	lbWindow   = 10 * time.Second
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
// not; it must match whether the two share a network.
func (l *Live) isolation(ctx context.Context, d *desired.State, byService map[string][]*liveContainer) Item {
	it := Item{ID: "live-isolation", Title: "Isolation holds on the wire", Tasks: []int{14}}
	type pair struct{ a, b *desired.Service }
	var pairs []pair
	for _, an := range d.Order {
		for _, bn := range d.Order {
			if an != bn && len(byService[an]) > 0 && len(byService[bn]) > 0 {
				pairs = append(pairs, pair{d.Services[an], d.Services[bn]})
			}
		}
	}
	if len(pairs) == 0 {
		it.Result, it.Why = NotApplicable, "fewer than two running services"
		return it
	}
	var mu sync.Mutex
	var wrong []string
	var errs []error
	var wg sync.WaitGroup
	for _, p := range pairs {
		from, to := byService[p.a.Name][0], byService[p.b.Name][0]
		wg.Go(func() {
			reached, err := reachable(ctx, from.pid, to.ips)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if want := sharesNetwork(p.a, p.b); reached != want {
				wrong = append(wrong, fmt.Sprintf("%s→%s %s (want %s)", p.a.Name, p.b.Name, word(reached), word(want)))
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
		it.Result, it.Why = Pass, fmt.Sprintf("%d ordered pairs dialled by address; each reaches exactly the services it shares a network with", len(pairs))
	}
	return it
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

// reachable dials port 1 of each address from inside the network namespace
// of process pid: a connection or a refusal means the address answered.
func reachable(ctx context.Context, pid int, ips []string) (bool, error) {
	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		// this thread enters the namespace and is never given back to the
		// scheduler: it ends with the goroutine
		runtime.LockOSThread()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			done <- result{err: fmt.Errorf("opening the network namespace of pid %d: %w", pid, err)}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("entering the network namespace of pid %d: %w", pid, err)}
			return
		}
		for _, ip := range ips {
			c, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", net.JoinHostPort(ip, "1"))
			if err == nil {
				c.Close()
				done <- result{ok: true}
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				done <- result{ok: true}
				return
			}
		}
		done <- result{}
	}()
	r := <-done
	return r.ok, r.err
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
	case in.Container.State.ExitCode != 0:
		it.Result, it.Why = Fail, fmt.Sprintf("%s exited %d after %s (grace %s): not a clean stop", c.name, in.Container.State.ExitCode, took.Round(time.Millisecond), grace)
	default:
		it.Result, it.Why = Pass, fmt.Sprintf("%s exited %d in %s (grace %s), and was started again", c.name, in.Container.State.ExitCode, took.Round(time.Millisecond), grace)
	}
	return it
}

// recovery kills a replica and waits for the daemon to start it again.
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
	if resp, err := http.Get("http://" + l.Daemon + "/healthz"); err != nil {
		it.Result, it.Why = Fail, fmt.Sprintf("no daemon answers at %s: %v", l.Daemon, err)
		return it
	} else {
		resp.Body.Close()
	}
	before := c.inspect.State.StartedAt
	if _, err := l.Engine.ContainerKill(ctx, c.id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		it.Result, it.Why = Fail, fmt.Sprintf("killing %s: %v", c.name, err)
		return it
	}
	killed := time.Now()
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	for time.Since(killed) < timeout {
		in, err := l.Engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
		if err == nil && in.Container.State != nil && in.Container.State.Running && in.Container.State.StartedAt != before {
			it.Result, it.Why = Pass, fmt.Sprintf("%s killed (signal 9) and running again %s later", c.name, time.Since(killed).Round(time.Millisecond))
			return it
		}
		select {
		case <-ctx.Done():
			it.Result, it.Why = Fail, ctx.Err().Error()
			return it
		case <-time.After(100 * time.Millisecond):
		}
	}
	it.Result, it.Why = Fail, fmt.Sprintf("%s killed and not running again within %s", c.name, timeout)
	return it
}

// loadBalancing sends requests through the balancer's published port, to
// the path that reaches the target service (/<service>/, as the course's
// nginx routes /api/, else /), and counts the answers per replica by the
// replica each answer names (its hostname, as the course's api says "hello
// from <host>"): every replica must have answered some. An answer that names
// no replica proves nothing about the spread, so it is not counted.
func (l *Live) loadBalancing(ctx context.Context, d *desired.State, byService map[string][]*liveContainer, lb, port string) Item {
	it := Item{ID: "live-load-balancing", Title: "The load balancer spreads requests over the replicas", Tasks: []int{15, 20}}
	if lb == "" {
		it.Result, it.Why = NotApplicable, "no running service balances over another through a published port"
		return it
	}
	target := d.Services[lb].Policy.Upstreams[0].Service
	// the pool is health-aware: a replica not healthy now is rightly out
	// of it, so only the healthy ones must answer
	var replicas []*liveContainer
	var out []string
	for _, c := range byService[target] {
		if l.healthy(ctx, c) {
			replicas = append(replicas, c)
		} else {
			out = append(out, c.name)
		}
	}
	if len(replicas) < 2 {
		it.Result, it.Why = Fail, fmt.Sprintf("%d healthy replica(s) of %s: nothing to spread over", len(replicas), target)
		return it
	}
	excluded := ""
	if len(out) > 0 {
		excluded = "; not healthy, so out of the pool: " + strings.Join(out, ", ")
	}
	paths := []string{"/" + target + "/", "/"}
	var counts map[string]int
	var path string
	answered, sent := 0, 0
	all := func() bool {
		for _, c := range replicas {
			if counts[c.name] == 0 {
				return false
			}
		}
		return true
	}
	for _, path = range paths {
		counts, answered, sent = map[string]int{}, 0, 0
		// rounds of requests until every healthy replica has answered, for
		// at most lbWindow: a replica healthy a moment ago joins the pool
		// when the balancer's file is rewritten and it reloads
		deadline := time.Now().Add(lbWindow)
		for (sent < lbRequests || !all()) && time.Now().Before(deadline) {
			sent++
			resp, err := http.Get("http://127.0.0.1:" + port + path)
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				continue
			}
			answered++
			if c := answeredBy(string(body), replicas); c != nil {
				counts[c.name]++
			}
			if len(counts) == 0 && sent >= lbRequests {
				break // this path reaches no replica: try the next
			}
		}
		if len(counts) > 0 {
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
	switch {
	case answered == 0 && len(counts) == 0:
		it.Result, it.Why = Fail, fmt.Sprintf("no request through 127.0.0.1:%s (%s) was answered", port, strings.Join(paths, ", "))
	case len(counts) == 0:
		it.Result, it.Why = Fail, fmt.Sprintf("answers through 127.0.0.1:%s (%s) name no replica of %s (its hostname): which one answered cannot be told", port, strings.Join(paths, ", "), target)
	case len(idle) > 0:
		it.Result, it.Why = Fail, fmt.Sprintf("%d of %d requests to %s in %s answered, none by %s (%s)%s", answered, sent, path, lbWindow, strings.Join(idle, ", "), strings.Join(spread, ", "), excluded)
	default:
		it.Result, it.Why = Pass, fmt.Sprintf("%d of %d requests to %s answered, by every healthy replica of %s: %s%s", answered, sent, path, target, strings.Join(spread, ", "), excluded)
	}
	return it
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
