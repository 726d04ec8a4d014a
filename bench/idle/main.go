// Command idle measures what the daemon costs while nothing happens: it
// converges a project of -services services × -replicas replicas (each with
// a healthcheck, whose probes the engine reports as exec events), lets the
// daemon settle, then over -duration reads the daemon's CPU time and peak
// RSS from /proc and its engine requests from its own metric.
//
// With -page, the dashboard is open in a headless chromium during the idle
// window (the daemon's figures with a page watching), and its first load
// (navigation to the services drawn) is measured over -loads loads first.
//
//	go run ./bench/idle -bin bin/reconcile [-services 25] [-replicas 2] [-duration 60s] [-page]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/reconcile-dev/reconcile/reconciler/plan"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	services := flag.Int("services", 25, "services in the project")
	replicas := flag.Int("replicas", 2, "replicas per service")
	duration := flag.Duration("duration", 60*time.Second, "how long to measure the idle daemon")
	withPage := flag.Bool("page", false, "keep the dashboard open in a headless chromium while idle")
	loads := flag.Int("loads", 20, "with -page: first loads of the dashboard measured")
	flag.Parse()
	benchkit.Exit(run(*bin, *services, *replicas, *duration, *withPage, *loads))
}

func run(bin string, services, replicas int, duration time.Duration, withPage bool, loads int) error {
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range services {
		fmt.Fprintf(&b, "  svc%02d:\n    image: %%[1]s\n    deploy: {replicas: %d}\n", i, replicas)
		b.WriteString("    healthcheck: {test: [\"CMD\", \"/testapp\", \"health\"], interval: 2s}\n")
	}
	p, err := benchkit.NewProject(ctx, "bench-idle", "", b.String())
	if err != nil {
		return err
	}
	defer p.Close()
	name, dir, file := p.Name, p.Dir, p.File

	port, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + port
	cmd := exec.Command(bin, "-f", file, "-p", name, "--state-dir", dir, "--listen", "127.0.0.1:"+port, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	start := time.Now()
	for {
		if time.Since(start) > 5*time.Minute {
			return errors.New("the project did not converge in 5 minutes")
		}
		var st plan.ProjectStatus
		if err := benchkit.GetJSON(base+"/status", &st); err == nil && st.Sync == plan.Synced && st.Health == plan.Healthy {
			break
		}
		time.Sleep(time.Second)
	}
	fmt.Printf("converged %d containers in %s\n", services*replicas, time.Since(start).Round(time.Millisecond))
	time.Sleep(5 * time.Second) // let the last events of the start-up pass

	if withPage {
		closePage, err := openDashboard(base, loads)
		if err != nil {
			return err
		}
		defer closePage()
		time.Sleep(5 * time.Second) // the page's connections settle
	}

	idle, err := benchkit.MeasureIdle(cmd.Process.Pid, base, duration)
	if err != nil {
		return err
	}
	elapsed, cpu, calls := idle.Elapsed, idle.CPU, idle.Requests
	rss, cur, startPeak := idle.PeakKiB, idle.EndKiB, idle.StartPeakKiB
	watching := ""
	if withPage {
		watching = ", the dashboard open in a browser"
	}
	fmt.Printf("idle for %s with %d containers%s:\n", elapsed.Round(time.Millisecond), services*replicas, watching)
	fmt.Printf("  cpu        %.3f s  = %.3f%% of one core   (target < 0.5%%)\n", cpu, 100*cpu/elapsed.Seconds())
	fmt.Printf("  engine     %.0f requests = %.3f/s             (target <= 0.2/s)\n", calls, calls/elapsed.Seconds())
	fmt.Printf("  peak RSS   %.1f MiB while idle              (target < 40 MiB; %.1f MiB at the end)\n", float64(rss)/1024, float64(cur)/1024)
	fmt.Printf("  peak RSS   %.1f MiB during start-up and convergence (binary pages included)\n", float64(startPeak)/1024)
	return nil
}
