// Package benchkit is what the benchmark programs share: a project of the
// test image in a temporary directory, torn down afterwards; percentiles;
// and timestamps read from the daemon's JSON log.
package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

// Project is a compose project written for a benchmark.
type Project struct {
	Engine *engine.Engine
	Dir    string
	Name   string
	File   string
	keep   bool
}

// NewProject connects to the engine, makes sure the test image exists, and
// writes compose (where %[1]s is the test image) to a fresh directory as
// project prefix-NNNNNN, or as name when name is not empty (kept afterwards).
func NewProject(ctx context.Context, prefix, name, compose string) (*Project, error) {
	eng, err := engine.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := eng.Ping(ctx); err != nil {
		return nil, err
	}
	if err := testimage.Ensure(ctx, eng.Client, testimage.Tag); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("creating the project directory: %w", err)
	}
	p := &Project{Engine: eng, Dir: dir, Name: name, keep: name != ""}
	if p.Name == "" {
		p.Name = fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e6)
	}
	p.File = filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(p.File, []byte(fmt.Sprintf(compose, testimage.Tag)), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", p.File, err)
	}
	return p, nil
}

// Close removes the project's containers and networks (unless it is kept)
// and its directory.
func (p *Project) Close() {
	if !p.keep {
		zero := time.Duration(0)
		_ = p.Engine.Compose.Down(context.Background(), p.Name, api.DownOptions{RemoveOrphans: true, Timeout: &zero})
	}
	os.RemoveAll(p.Dir)
}

// Pct is the p-th percentile (0..1) of ds.
func Pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// Report prints p50, p99 and max of ds.
func Report(what string, ds []time.Duration) {
	fmt.Printf("  %-48s p50 %7.1fms  p99 %7.1fms  max %7.1fms\n", what, MS(Pct(ds, 0.5)), MS(Pct(ds, 0.99)), MS(Pct(ds, 1)))
}

// MS is d in milliseconds.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ReadLog calls found with the time of every line of the daemon's JSON log
// that contains each of the markers of a kind.
func ReadLog(r io.Reader, kinds map[string][]string, found func(kind string, at time.Time)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		for kind, markers := range kinds {
			all := true
			for _, m := range markers {
				all = all && strings.Contains(line, m)
			}
			if !all {
				continue
			}
			var rec struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil {
				found(kind, rec.Time)
			}
		}
	}
}

// Exit ends a benchmark's main: with status 1 and the error when it failed.
func Exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// FreePort is a loopback TCP port free at the time of the call.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, nil
}

// Metric reads one unlabelled metric from a daemon's /metrics at base.
func Metric(base, name string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// Starts keeps the engine's start events of a project, per container.
type Starts struct {
	stop context.CancelFunc
	mu   sync.Mutex
	last map[string]time.Time
	all  []time.Time
}

// Total is how many starts there were after t.
func (s *Starts) Total(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.all {
		if at.After(t) {
			n++
		}
	}
	return n
}

// Since counts the containers started after t, and the latest such start.
func (s *Starts) Since(t time.Time) (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, latest := 0, time.Time{}
	for _, at := range s.last {
		if at.After(t) {
			n++
			if at.After(latest) {
				latest = at
			}
		}
	}
	return n, latest
}

// FollowStarts subscribes to the project's start events until Stop.
func FollowStarts(ctx context.Context, p *Project) *Starts {
	ctx, cancel := context.WithCancel(ctx)
	st := &Starts{stop: cancel, last: map[string]time.Time{}}
	res := p.Engine.Client.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("label", api.ProjectLabel+"="+p.Name).Add("event", "start")})
	go func() {
		for m := range res.Messages {
			st.mu.Lock()
			st.last[m.Actor.ID] = time.Unix(0, m.TimeNano)
			st.all = append(st.all, time.Unix(0, m.TimeNano))
			st.mu.Unlock()
		}
	}()
	return st
}

// Stop ends the subscription.
func (s *Starts) Stop() { s.stop() }

// WaitRunning waits until want containers of the project run, and returns
// all the project's container IDs.
func WaitRunning(ctx context.Context, p *Project, want int, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		list, err := p.Engine.Client.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+p.Name)})
		if err != nil {
			return nil, err
		}
		var ids []string
		running := 0
		for _, c := range list.Items {
			ids = append(ids, c.ID)
			if c.State == "running" {
				running++
			}
		}
		if running == want && (want > 0 || len(ids) > 0) {
			return ids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d containers running after %s", running, want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// KillAll sends SIGKILL to every container at once, as `docker kill` run in
// parallel, and returns when it started and the first error.
func KillAll(ctx context.Context, p *Project, ids []string) (time.Time, error) {
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for _, id := range ids {
		wg.Go(func() {
			if _, err := p.Engine.Client.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return t0, <-errs
}

// AlwaysReplicas is a service of n replicas of the test image with
// `restart: always`, whose restart budget is unlimited and whole again 1 s
// after a start: each kill is a first failure, owing no backoff.
func AlwaysReplicas(n int) string {
	return fmt.Sprintf(`services:
  app:
    image: %%[1]s
    restart: always
    deploy: {replicas: %d}
    x-reconcile: {restart: {max_attempts: 0, reset_after: 1s}}
`, n)
}

// CPUSeconds is the process's user+system time, from /proc/PID/stat.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// ProcStatus reads a KiB figure (VmHWM:, VmRSS:) of /proc/PID/status.
func ProcStatus(pid int, key string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New(key + " not found")
}

// Idle is what a daemon cost over a window in which nothing happened.
type Idle struct {
	Elapsed time.Duration
	// CPU is user+system seconds; Requests its engine requests (its own
	// counter, so scrapes are not counted).
	CPU, Requests float64
	// PeakKiB is the window's own peak RSS; StartPeakKiB the peak before
	// it (start-up and convergence).
	PeakKiB, StartPeakKiB, EndKiB int
}

// MeasureIdle watches the daemon pid, serving its metrics at base, for d.
func MeasureIdle(pid int, base string, d time.Duration) (Idle, error) {
	var m Idle
	m.StartPeakKiB, _ = ProcStatus(pid, "VmHWM:")
	// reset the peak, so that VmHWM below is the window's own
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return m, fmt.Errorf("resetting the peak RSS: %w", err)
	}
	cpu0, err := CPUSeconds(pid)
	if err != nil {
		return m, err
	}
	req0, err := Metric(base, "reconcile_engine_requests_total")
	if err != nil {
		return m, err
	}
	t0 := time.Now()
	time.Sleep(d)
	m.Elapsed = time.Since(t0)
	cpu1, _ := CPUSeconds(pid)
	req1, _ := Metric(base, "reconcile_engine_requests_total")
	if m.PeakKiB, err = ProcStatus(pid, "VmHWM:"); err != nil {
		return m, err
	}
	m.EndKiB, _ = ProcStatus(pid, "VmRSS:")
	m.CPU, m.Requests = cpu1-cpu0, req1-req0
	return m, nil
}

// Events keeps an engine event stream's messages for Wait.
type Events struct {
	mu  sync.Mutex
	evs []events.Message
}

// FollowEvents keeps the engine's events that filters select until ctx ends.
func FollowEvents(ctx context.Context, eng *engine.Engine, filters client.Filters) *Events {
	e := &Events{}
	res := eng.Client.Events(ctx, client.EventsListOptions{Filters: filters})
	go func() {
		for m := range res.Messages {
			e.mu.Lock()
			e.evs = append(e.evs, m)
			e.mu.Unlock()
		}
	}()
	return e
}

// Wait returns the time of the first action event of the container name
// after after.
func (e *Events) Wait(name, action string, after time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for _, m := range e.evs {
			at := time.Unix(0, m.TimeNano)
			if m.Actor.Attributes["name"] == name && string(m.Action) == action && at.After(after) {
				e.mu.Unlock()
				return at, nil
			}
		}
		e.mu.Unlock()
		time.Sleep(200 * time.Microsecond)
	}
	return time.Time{}, fmt.Errorf("no %s event for %s within %s", action, name, timeout)
}

// WaitAny returns the time of the first action event of any container
// followed after after.
func (e *Events) WaitAny(action string, after time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for _, m := range e.evs {
			at := time.Unix(0, m.TimeNano)
			if string(m.Action) == action && at.After(after) {
				e.mu.Unlock()
				return at, nil
			}
		}
		e.mu.Unlock()
		time.Sleep(200 * time.Microsecond)
	}
	return time.Time{}, fmt.Errorf("no %s event within %s", action, timeout)
}

// GetJSON decodes what url answers, which must be 200.
func GetJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Floor is a benchmark's floor for reacting to a kill: it kills control,
// starts it again itself the moment its die event arrives, and returns how
// long from the die to its start call and to the engine's start event.
func Floor(ctx context.Context, eng *engine.Engine, ev *Events, control string) (toCall, toRunning time.Duration, err error) {
	mark := time.Now()
	reacted := make(chan error, 1)
	var die time.Time
	go func() {
		var err error
		if die, err = ev.Wait(control, "die", mark, 10*time.Second); err != nil {
			reacted <- err
			return
		}
		toCall = time.Since(die)
		_, err = eng.Client.ContainerStart(ctx, control, client.ContainerStartOptions{})
		reacted <- err
	}()
	if _, err := eng.Client.ContainerKill(ctx, control, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return 0, 0, err
	}
	if err := <-reacted; err != nil {
		return 0, 0, err
	}
	started, err := ev.Wait(control, "start", die, 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	return toCall, started.Sub(die), nil
}

// Timeline keeps timestamps by kind (a log line's, an event's), for a
// benchmark to wait on.
type Timeline struct {
	mu sync.Mutex
	at map[string][]time.Time
}

// Add notes that kind happened at at.
func (t *Timeline) Add(kind string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at == nil {
		t.at = map[string][]time.Time{}
	}
	t.at[kind] = append(t.at[kind], at)
}

// Next waits for the first time of kind after after.
func (t *Timeline) Next(kind string, after time.Time, timeout time.Duration) (time.Time, error) {
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
		time.Sleep(200 * time.Microsecond)
	}
	return time.Time{}, fmt.Errorf("no %s within %s", kind, timeout)
}
