// Command storm kills 60 replicas at once beside the daemon and measures
// how long the longest engine event held the daemon's event reader (the
// engine drops a reader that lags 100 ms), and how long the daemon takes to
// have all 60 running again, against this program's own parallel
// `docker start` of the same 60 (the floor), measured in the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	n := flag.Int("n", 60, "replicas killed at once")
	rounds := flag.Int("rounds", 3, "storms per side")
	flag.Parse()
	benchkit.Exit(run(*bin, *n, *rounds))
}

func run(bin string, n, rounds int) error {
	ctx := context.Background()
	p, err := benchkit.NewProject(ctx, "bench-storm", "", benchkit.AlwaysReplicas(n))
	if err != nil {
		return err
	}
	defer p.Close()
	eng := p.Engine

	st := benchkit.FollowStarts(ctx, p)
	defer st.Stop()

	port, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + port
	daemon := func() (*exec.Cmd, error) {
		cmd := exec.Command(bin, "-f", p.File, "-p", p.Name, "--state-dir", p.Dir, "--listen", "127.0.0.1:"+port, "--log-level", "error")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd, cmd.Start()
	}
	cmd, err := daemon()
	if err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	ids, err := benchkit.WaitRunning(ctx, p, n, 3*time.Minute)
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // past reset_after: every replica's budget is whole

	killAll := func() (time.Time, error) { return benchkit.KillAll(ctx, p, ids) }
	waitStarts := func(t0 time.Time) (time.Duration, error) {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			if got, latest := st.Since(t0); got == len(ids) {
				return latest.Sub(t0), nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		got, _ := st.Since(t0)
		return 0, fmt.Errorf("%d of %d replicas started again within 2m", got, len(ids))
	}

	var daemonTimes, floorTimes []time.Duration
	first := time.Now()
	for range rounds {
		t0, err := killAll()
		if err != nil {
			return err
		}
		took, err := waitStarts(t0)
		if err != nil {
			return err
		}
		daemonTimes = append(daemonTimes, took)
		time.Sleep(2 * time.Second)
	}
	extra := st.Total(first) - rounds*len(ids)
	readerMax, err := benchkit.Metric(base, "reconcile_event_reader_max_seconds")
	if err != nil {
		return err
	}
	events, err := benchkit.Metric(base, "reconcile_event_reader_seconds_count")
	if err != nil {
		return err
	}
	under := map[string]float64{}
	for _, le := range []string{"0.0001", "0.001", "0.01"} {
		if under[le], err = benchkit.Metric(base, `reconcile_event_reader_seconds_bucket{le="`+le+`"}`); err != nil {
			return err
		}
	}

	// the floor: no daemon; this program starts the 60 itself, in parallel,
	// once the engine has them all down
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	for range rounds {
		t0, err := killAll()
		if err != nil {
			return err
		}
		if _, err := benchkit.WaitRunning(ctx, p, 0, time.Minute); err != nil {
			return err
		}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() { _, _ = eng.Client.ContainerStart(ctx, id, client.ContainerStartOptions{}) })
		}
		wg.Wait()
		took, err := waitStarts(t0)
		if err != nil {
			return err
		}
		floorTimes = append(floorTimes, took)
	}

	fmt.Printf("%d replicas of a restart: always service killed at once (docker kill: the engine leaves them down), %d storms each\n", len(ids), rounds)
	fmt.Printf("  event reader: the longest any of %.0f events held it: %.3f ms   (the engine drops a reader that lags 100 ms)\n", events, readerMax*1000)
	fmt.Printf("  event reader: %.0f%% of events held it under 0.1 ms, %.0f%% under 1 ms, %.0f%% under 10 ms\n",
		100*under["0.0001"]/events, 100*under["0.001"]/events, 100*under["0.01"]/events)
	benchkit.Report("kill -> all running again (reconcile)", daemonTimes)
	benchkit.Report("kill -> all running again (floor: parallel docker start)", floorTimes)
	fmt.Printf("  starts beyond one per replica per storm (double starts): %d\n", extra)
	fmt.Printf("  ratio, medians: %.2f (target <= 1.1)\n", float64(benchkit.Pct(daemonTimes, 0.5))/float64(benchkit.Pct(floorTimes, 0.5)))
	return nil
}
