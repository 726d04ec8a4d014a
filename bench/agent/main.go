// Command agent measures one agent over a directory of -projects projects
// of -services services × -replicas replicas (each with a healthcheck, all
// `restart: always`, probed every 30 s, Docker's default): what it costs while nothing happens (CPU, engine
// requests, peak RSS over -duration), then its detect-to-act latency with
// every container running: -n times a replica of another project is killed
// with `docker kill`, and the time from the engine's `die` to the agent's
// start call is set against the floor, this program starting a control
// container the moment its own `die` arrives.
//
// Before the agent starts, the same projects are brought up the way a user
// would without it, in the same run: `docker compose up -d --wait` of every
// project at once (the real compose CLI, -compose), timed until each has
// returned, then taken down; the agent's convergence from nothing is set
// against it.
//
//	go run ./bench/agent -bin bin/reconcile -compose bin/docker-compose [-projects 10] [-services 10] [-replicas 2] [-duration 60s] [-n 25]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	flag.StringVar(&composeBin, "compose", "bin/docker-compose", "the compose CLI (make compose-cli); empty: no comparison")
	projects := flag.Int("projects", 10, "projects in the agent's directory")
	services := flag.Int("services", 10, "services per project")
	replicas := flag.Int("replicas", 2, "replicas per service")
	duration := flag.Duration("duration", 60*time.Second, "how long to measure the idle agent")
	n := flag.Int("n", 25, "kills for the detect-to-act latency")
	flag.StringVar(&logFile, "log", "", "keep the agent's JSON log in this file")
	flag.IntVar(&engineConcurrency, "engine-concurrency", -1, "the agent's --engine-concurrency (-1: its default)")
	flag.IntVar(&workers, "workers", 0, "the agent's --workers (0: its default)")
	flag.BoolVar(&healthchecks, "healthchecks", true, "give every service a healthcheck every 30 s (at 1,000 containers the probes alone overload a 2-core engine 20.10, which then panicked in a probe while removing them)")
	flag.Parse()
	benchkit.Exit(run(*bin, *projects, *services, *replicas, *duration, *n))
}

// logFile, when set, keeps the agent's log.
var logFile string

// engineConcurrency is the agent's --engine-concurrency, when >= 0;
// workers its --workers, when > 0.
var engineConcurrency, workers int

// healthchecks gives every service a healthcheck.
var healthchecks bool

// composeBin is the compose CLI the agent's convergence is compared with.
var composeBin string

// composeUpAll brings every project up with the compose CLI, all at once,
// as a user would (`docker compose up -d --wait` in each directory), and
// returns how long until the last returned; then takes them down again.
func composeUpAll(ps []*benchkit.Project) (time.Duration, error) {
	start := time.Now()
	errs := make(chan error, len(ps))
	for _, p := range ps {
		go func() {
			out, err := exec.Command(composeBin, "-p", p.Name, "-f", p.File, "up", "-d", "--wait", "--quiet-pull").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("compose up of %s: %w: %s", p.Name, err, out)
			}
			errs <- err
		}()
	}
	var first error
	for range ps {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	took := time.Since(start)
	for _, p := range ps {
		go func() {
			out, err := exec.Command(composeBin, "-p", p.Name, "-f", p.File, "down", "-t", "0").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("compose down of %s: %w: %s", p.Name, err, out)
			}
			errs <- err
		}()
	}
	for range ps {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return took, first
}

// agentStatus is the part of an agent's /status this program reads.
type agentStatus struct {
	Projects []struct {
		Project string `json:"project"`
		Sync    string `json:"sync"`
		Health  string `json:"health"`
	} `json:"projects"`
}

func run(bin string, nProjects, services, replicas int, duration time.Duration, n int) error {
	ctx := context.Background()
	root, err := os.MkdirTemp("", "bench-agent")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	var ps []*benchkit.Project
	defer func() {
		for _, p := range ps {
			p.Close()
		}
	}()
	// a second octet of the run's own: a network an earlier run's teardown
	// left behind (the engine sometimes keeps one with "active endpoints")
	// does not overlap
	subnetBase := 200 + time.Now().Nanosecond()%50
	for i := range nProjects {
		compose := "services:\n"
		for s := range services {
			compose += fmt.Sprintf("  svc%02d:\n    image: %%[1]s\n    restart: always\n    deploy: {replicas: %d}\n", s, replicas)
			if healthchecks {
				compose += "    healthcheck: {test: [\"CMD\", \"/testapp\", \"health\"], interval: 30s}\n"
			}
			compose += "    x-reconcile: {restart: {max_attempts: 0, reset_after: 1s}}\n"
		}
		if i == 0 {
			compose += "  control:\n    image: %[1]s\n    restart: \"no\"\n" // the floor's container: the agent leaves it down
		}
		// the engine's default address pools hold 31 bridge networks: each
		// project's own network gets a subnet of its own beyond them
		compose += fmt.Sprintf("networks:\n  default:\n    ipam: {config: [{subnet: 10.%d.%d.0/24}]}\n", subnetBase, i)
		p, err := benchkit.NewProject(ctx, fmt.Sprintf("bench-agent%02d", i), "", compose)
		if err != nil {
			return err
		}
		ps = append(ps, p)
		// the agent's directory holds each project, named by its file
		dir := filepath.Join(root, fmt.Sprintf("p%02d", i))
		b, err := os.ReadFile(p.File)
		if err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), append([]byte("name: "+p.Name+"\n"), b...), 0o644); err != nil {
			return err
		}
	}
	eng := ps[0].Engine
	total := nProjects*services*replicas + 1
	var composeTook time.Duration
	if composeBin != "" {
		if composeTook, err = composeUpAll(ps); err != nil {
			return err
		}
		fmt.Printf("docker compose up -d --wait, %d projects at once: %s\n", nProjects, composeTook.Round(time.Millisecond))
	}

	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	st := benchkit.FollowEvents(evCtx, eng, make(client.Filters).Add("label", api.ProjectLabel).Add("type", "container").Add("event", "die", "start"))

	port, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + port
	args := []string{"--projects", root, "--state-dir", root, "--listen", "127.0.0.1:" + port, "--log-level", "debug", "--log-format", "json"}
	if engineConcurrency >= 0 {
		args = append(args, "--engine-concurrency", fmt.Sprint(engineConcurrency))
	}
	if workers > 0 {
		args = append(args, "--workers", fmt.Sprint(workers))
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	calls := &benchkit.Timeline{} // the agent's start calls, by container
	start := time.Now()           // convergence from nothing counts the agent's own start-up
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	kinds := map[string][]string{}
	var victims []string
	// a different replica each time, going round the projects: a replica
	// killed twice would owe a backoff (its first probe comes 30 s after a
	// start, so it has not been healthy for reset_after yet)
	for i := range n {
		p := ps[i%len(ps)]
		v := fmt.Sprintf("%s-svc%02d-%d", p.Name, (i/len(ps))%services, 1+(i/(len(ps)*services))%replicas)
		victims = append(victims, v)
		kinds[v] = []string{`"operation start"`, `"StartContainer"`, `"container":"` + v + `"`}
	}
	var logTo io.Reader = out
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logTo = io.TeeReader(out, f)
	}
	go benchkit.ReadLog(logTo, kinds, calls.Add)

	for {
		var as agentStatus
		err := benchkit.GetJSON(base+"/status", &as)
		if err == nil && len(as.Projects) == nProjects && allSynced(as) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("the projects did not converge in 10 minutes: %d of %d projects reconciled, %v", len(as.Projects), nProjects, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	cpu, _ := benchkit.CPUSeconds(cmd.Process.Pid)
	fmt.Printf("converged %d projects, %d containers in %s (the agent's CPU meanwhile: %.1f s)\n", nProjects, total, took.Round(time.Millisecond), cpu)
	if composeTook > 0 {
		fmt.Printf("  against docker compose up -d --wait of each at once: %s, ratio %.2f   (target <= 1.0)\n", composeTook.Round(time.Millisecond), took.Seconds()/composeTook.Seconds())
	}
	time.Sleep(10 * time.Second) // the start-up's last events and health changes pass

	idle, err := benchkit.MeasureIdle(cmd.Process.Pid, base, duration)
	if err != nil {
		return err
	}
	secs := idle.Elapsed.Seconds()
	fmt.Printf("idle for %s, one agent, %d projects, %d containers:\n", idle.Elapsed.Round(time.Millisecond), nProjects, total)
	fmt.Printf("  cpu        %.3f s  = %.3f%% of one core   (target < 0.5%%)\n", idle.CPU, 100*idle.CPU/secs)
	fmt.Printf("  engine     %.0f requests = %.3f/s             (target < 0.2/s)\n", idle.Requests, idle.Requests/secs)
	fmt.Printf("  peak RSS   %.1f MiB while idle              (target < 100 MiB at 1,000 containers)\n", float64(idle.PeakKiB)/1024)
	fmt.Printf("  peak RSS   %.1f MiB during start-up and convergence\n", float64(idle.StartPeakKiB)/1024)

	control := ps[0].Name + "-control-1"
	var toCall, floorCall []time.Duration
	for i := range n {
		// the floor: this program reacting to the control's die
		call, _, err := benchkit.Floor(ctx, eng, st, control)
		if err != nil {
			return err
		}
		floorCall = append(floorCall, call)

		// the agent reacting to a replica's die, in project i of 10
		victim := victims[i]
		mark := time.Now()
		if _, err := eng.Client.ContainerKill(ctx, victim, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			return err
		}
		die, err := st.Wait(victim, "die", mark, 10*time.Second)
		if err != nil {
			return err
		}
		called, err := calls.Next(victim, die, 10*time.Second)
		if err != nil {
			return fmt.Errorf("iteration %d: %w", i, err)
		}
		if _, err := st.Wait(victim, "start", die, 10*time.Second); err != nil {
			return err
		}
		toCall = append(toCall, called.Sub(die))
		time.Sleep(1200 * time.Millisecond) // past reset_after: no backoff owed
	}
	fmt.Printf("%d kills, one replica in each project in turn, all %d containers running:\n", n, total)
	benchkit.Report("die -> start call (agent)", toCall)
	benchkit.Report("die -> start call (floor: this program)", floorCall)
	fmt.Printf("  overhead beyond the floor, die -> start call:     p50 %7.1fms  p99 %7.1fms   (targets p50 < 20ms, p99 < 100ms)\n",
		benchkit.MS(benchkit.Pct(toCall, 0.5)-benchkit.Pct(floorCall, 0.5)), benchkit.MS(benchkit.Pct(toCall, 0.99)-benchkit.Pct(floorCall, 0.99)))
	return nil
}

func allSynced(as agentStatus) bool {
	for _, p := range as.Projects {
		if p.Sync != "Synced" || p.Health != "Healthy" {
			return false
		}
	}
	return true
}
