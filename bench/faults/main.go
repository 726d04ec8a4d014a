// Command faults measures how fast the daemon recovers when the engine
// misbehaves, through a fault-injecting proxy in front of the engine's
// socket (the daemon talks to the proxy; this program to the engine):
//
//   - an outage: the engine away for -outage (20 s) while -n replicas of a
//     `restart: always` service are killed (the engine leaves them down);
//     the time from the first ping the engine answers after it is back to
//     every replica running again (goal: 5 s);
//
//   - failing calls: -rate (20 %) of the daemon's engine calls answered
//     with a 500; -n replicas killed at once, -rounds times; the time until
//     all run again, against the same with no call failing, in one run.
//
//     go run ./bench/faults -bin bin/reconcile
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	n := flag.Int("n", 10, "replicas killed each time")
	outage := flag.Duration("outage", 20*time.Second, "how long the engine is away")
	outages := flag.Int("outages", 3, "outages")
	rate := flag.Float64("rate", 0.2, "share of engine calls failed")
	rounds := flag.Int("rounds", 10, "kills with calls failing, and as many without")
	flag.Parse()
	benchkit.Exit(run(*bin, *n, *outage, *outages, *rate, *rounds))
}

func run(bin string, n int, outage time.Duration, outages int, rate float64, rounds int) error {
	ctx := context.Background()
	p, err := benchkit.NewProject(ctx, "bench-faults", "", benchkit.AlwaysReplicas(n))
	if err != nil {
		return err
	}
	defer p.Close()
	proxy, err := enginetest.StartFaultProxy(0, 1)
	if err != nil {
		return err
	}
	defer proxy.Close()
	st := benchkit.FollowStarts(ctx, p)
	defer st.Stop()

	port, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-f", p.File, "-p", p.Name, "--state-dir", p.Dir, "--listen", "127.0.0.1:"+port, "--log-level", "error")
	cmd.Env = append(os.Environ(), proxy.Env())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	ids, err := benchkit.WaitRunning(ctx, p, n, 3*time.Minute)
	if err != nil {
		return err
	}

	killAll := func() (time.Time, error) { return benchkit.KillAll(ctx, p, ids) }
	// allRunning waits until every replica started after t0, and returns
	// the latest of those starts.
	allRunning := func(t0 time.Time, timeout time.Duration) (time.Time, error) {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if got, latest := st.Since(t0); got == len(ids) {
				return latest, nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		got, _ := st.Since(t0)
		return time.Time{}, fmt.Errorf("%d of %d replicas started again within %s", got, len(ids), timeout)
	}

	// settle lets every replica run past reset_after, so that each kill is
	// its first failure and owes no backoff: what is measured is the
	// engine's faults, not a crash loop's backoff
	settle := func() error {
		if _, err := benchkit.WaitRunning(ctx, p, n, time.Minute); err != nil {
			return err
		}
		time.Sleep(1500 * time.Millisecond)
		return nil
	}

	// outages
	var afterPing, afterUp []time.Duration
	for range outages {
		if err := settle(); err != nil {
			return err
		}
		proxy.Down()
		t0, err := killAll()
		if err != nil {
			return err
		}
		time.Sleep(outage) // the outage itself: what is measured starts after it
		proxy.Up()
		up := time.Now()
		latest, err := allRunning(t0, 2*time.Minute)
		if err != nil {
			return err
		}
		ping := proxy.FirstPingSinceUp()
		if ping.IsZero() {
			return fmt.Errorf("the daemon never pinged the engine after the outage")
		}
		afterPing = append(afterPing, latest.Sub(ping))
		afterUp = append(afterUp, latest.Sub(up))
	}

	// failing calls, against none failing, alternating
	var failing, clean []time.Duration
	for i := range 2 * rounds {
		r := 0.0
		if i%2 == 0 {
			r = rate
		}
		if err := settle(); err != nil {
			return err
		}
		proxy.SetRate(r)
		t0, err := killAll()
		if err != nil {
			return err
		}
		latest, err := allRunning(t0, 5*time.Minute)
		if err != nil {
			return err
		}
		if r > 0 {
			failing = append(failing, latest.Sub(t0))
		} else {
			clean = append(clean, latest.Sub(t0))
		}
		proxy.SetRate(0)
	}

	fmt.Printf("%d replicas of a restart: always service, the daemon behind a fault-injecting proxy\n", len(ids))
	fmt.Printf("engine away for %s while the %d were killed, %d times:\n", outage, len(ids), outages)
	benchkit.Report("first answered ping -> all running (goal 5 s)", afterPing)
	benchkit.Report("engine back -> all running", afterUp)
	fmt.Printf("%.0f%% of engine calls failing (%d calls failed on purpose), %d rounds each:\n", 100*rate, proxy.Failed.Load(), rounds)
	benchkit.Report("kill -> all running, calls failing", failing)
	benchkit.Report("kill -> all running, no call failing", clean)
	return nil
}
