package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stats is what a replica has answered on GET /, since it started: the
// count each replica keeps of its own traffic, so a load balancer's spread
// can be read from the replicas themselves.
type stats struct {
	requests atomic.Int64 // every GET /
	served   atomic.Int64 // answered 200
	failed   atomic.Int64 // answered 503 while failing
}

// Bounds of the admin commands: a learner's typo must not take the machine.
const (
	maxMemoryMiB = 4096
	maxCPU       = 5 * time.Minute
	maxLogMiB    = 1024
	logLine      = 1024 // bytes per line `api log` writes
)

// admin serves the loopback-only endpoints behind the admin commands.
type admin struct {
	log     *slog.Logger
	failing *atomic.Bool
	stats   *stats
	sigs    chan os.Signal // where serve waits for SIGTERM and SIGINT

	mu   sync.Mutex
	held [][]byte // what `api memory` allocated: kept, so it stays used
}

func (a *admin) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /stats", local(a.serveStats))
	mux.HandleFunc("POST /admin/fail", local(a.fail))
	mux.HandleFunc("POST /admin/memory", local(a.memory))
	mux.HandleFunc("POST /admin/cpu", local(a.cpu))
	mux.HandleFunc("POST /admin/log", local(a.writeLog))
	mux.HandleFunc("POST /admin/sigterm", local(a.sigterm))
}

// local refuses anything but loopback: the admin endpoints are for a
// command run inside the replica, never for traffic through the balancer.
func local(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !isLoopback(r.RemoteAddr) {
			http.Error(w, "local only", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

func (a *admin) serveStats(w http.ResponseWriter, _ *http.Request) {
	host, _ := os.Hostname()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"host":     host,
		"requests": a.stats.requests.Load(),
		"served":   a.stats.served.Load(),
		"failed":   a.stats.failed.Load(),
	})
}

func (a *admin) fail(w http.ResponseWriter, _ *http.Request) {
	a.failing.Store(true)
	a.log.Warn("failing on request: /health and / answer 503 until a restart")
	fmt.Fprintln(w, "failing: /health and / answer 503 until a restart")
}

// memory allocates and touches the MiB asked for, 16 MiB at a time, logging
// each step: past the container's limit the kernel kills the process, and
// the last line logged says how far it got.
func (a *admin) memory(w http.ResponseWriter, r *http.Request) {
	mib, err := bounded(r, "mib", maxMemoryMiB)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	const chunk = 16
	a.mu.Lock()
	defer a.mu.Unlock()
	for done := 0; done < mib; done += chunk {
		n := min(chunk, mib-done)
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page: allocated is not used until written
		}
		a.held = append(a.held, b)
		a.log.Warn("memory held", "mib", done+n)
	}
	total := 0
	for _, b := range a.held {
		total += len(b)
	}
	fmt.Fprintf(w, "holding %d MiB\n", total>>20)
}

// cpu keeps one core busy for the seconds asked for and says how much CPU
// time the process got in that wall time: under a 0.5 CPU limit, about
// half of it.
func (a *admin) cpu(w http.ResponseWriter, r *http.Request) {
	secs, err := bounded(r, "seconds", int(maxCPU/time.Second))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	before := cpuTime()
	start := time.Now()
	deadline := start.Add(time.Duration(secs) * time.Second)
	x := uint64(1)
	for time.Now().Before(deadline) {
		for i := 0; i < 1e5; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	wall := time.Since(start)
	used := cpuTime() - before
	a.log.Warn("cpu burnt", "wall", wall.String(), "cpu", used.String(), "sink", x&1)
	fmt.Fprintf(w, "busy for %s: got %s of CPU (%.0f%% of one core)\n", wall.Round(time.Millisecond), used.Round(time.Millisecond), 100*used.Seconds()/wall.Seconds())
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeLog writes the MiB asked for to stdout, in lines of logLine bytes.
func (a *admin) writeLog(w http.ResponseWriter, r *http.Request) {
	mib, err := bounded(r, "mib", maxLogMiB)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	line := strings.Repeat("x", logLine-len("filler \n")-8)
	n := mib << 20 / logLine
	for i := 0; i < n; i++ {
		fmt.Fprintf(os.Stdout, "filler %08d%s\n", i, line)
	}
	fmt.Fprintf(w, "wrote %d MiB (%d lines)\n", mib, n)
}

// sigterm changes what a SIGTERM does from now on.
func (a *admin) sigterm(w http.ResponseWriter, r *http.Request) {
	switch mode := r.URL.Query().Get("mode"); mode {
	case "drain":
		signal.Notify(a.sigs, syscall.SIGTERM)
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
	case "die":
		signal.Reset(syscall.SIGTERM)
	default:
		http.Error(w, fmt.Sprintf("mode %q: want drain, ignore or die", mode), http.StatusBadRequest)
		return
	}
	a.log.Warn("SIGTERM handling changed", "mode", r.URL.Query().Get("mode"))
	fmt.Fprintf(w, "on SIGTERM: %s\n", r.URL.Query().Get("mode"))
}

func bounded(r *http.Request, name string, most int) (int, error) {
	n, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || n < 1 || n > most {
		return 0, fmt.Errorf("%s: want a number from 1 to %d", name, most)
	}
	return n, nil
}

// runAdmin runs an admin command against the server in this container.
func runAdmin(command string, args []string) error {
	base := "http://127.0.0.1:" + env("PORT", "3000")
	arg := func(name string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("usage: api %s %s", command, strings.ToUpper(name))
		}
		return "?" + url.Values{name: {args[0]}}.Encode(), nil
	}
	var method, path string
	switch command {
	case "stats":
		method, path = http.MethodGet, "/stats"
	case "fail":
		method, path = http.MethodPost, "/admin/fail"
	case "memory", "cpu", "log", "sigterm":
		name := map[string]string{"memory": "mib", "cpu": "seconds", "log": "mib", "sigterm": "mode"}[command]
		q, err := arg(name)
		if err != nil {
			return err
		}
		method, path = http.MethodPost, "/admin/"+command+q
	default:
		return errors.New("unknown command: want health, fail, memory, cpu, log, sigterm or stats")
	}
	c := http.Client{Timeout: maxCPU + time.Minute}
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
