// Command api is the example stack's API: a small HTTP service on :3000 that
// answers with its hostname (so load balancing is visible), reports itself
// healthy only while it can reach postgres and redis, and shuts down
// gracefully on SIGTERM. Its admin commands let a learner make the course's
// tasks happen by hand (run inside a replica: docker exec NAME /api ...):
//
//	api                  serve
//	api health           probe the local /health (the image has no curl or wget)
//	api fail             make the server fail: /health and / answer 503 until it
//	                     restarts (a broken replica, for task 20)
//	api memory MIB       allocate and touch MIB MiB, and keep it (task 8: past
//	                     the limit, the kernel kills the replica)
//	api cpu SECONDS      keep one core busy for SECONDS (task 9: the limit
//	                     throttles it); says how much CPU it got
//	api log MIB          write MIB MiB of log lines to stdout (task 19: the
//	                     json-file driver rotates them)
//	api sigterm MODE     from now on, on SIGTERM: drain (the default: finish
//	                     requests, exit 0), ignore (as a shell entrypoint that
//	                     does not forward it: killed after the grace period) or
//	                     die (no handler: the signal's default action, exit 143)
//	api stats            what this replica has answered: GET / requests, by
//	                     status, since it started (JSON)
//
// The admin endpoints behind them (/admin/..., /stats) answer loopback only:
// through the load balancer they are refused.
//
// Environment: PORT (3000), DB_ADDR (db:5432), CACHE_ADDR (cache:6379),
// LOG_LEVEL (info or debug), SHUTDOWN_TIMEOUT (10s).
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		if err := probe(); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] != "serve" {
		if err := runAdmin(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		return
	}
	if err := serve(); err != nil {
		slog.Error("api stopped", "error", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func serve() error {
	level := slog.LevelInfo
	if env("LOG_LEVEL", "info") == "debug" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
	host, _ := os.Hostname()
	dbAddr, cacheAddr := env("DB_ADDR", "db:5432"), env("CACHE_ADDR", "cache:6379")
	var inflight atomic.Int64
	var failing atomic.Bool // set by `api fail`, cleared by a restart
	var st stats

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	mux := http.NewServeMux()
	a := &admin{log: log, failing: &failing, stats: &st, sigs: sigs}
	a.register(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Add(-1)
		st.requests.Add(1)
		if failing.Load() {
			st.failed.Add(1)
			http.Error(w, "failing "+host, http.StatusServiceUnavailable)
			return
		}
		st.served.Add(1)
		log.Debug("request", "path", r.URL.Path, "from", r.RemoteAddr)
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "failing", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := checkPostgres(ctx, dbAddr); err != nil {
			http.Error(w, "postgres: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := checkRedis(ctx, cacheAddr); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: ":" + env("PORT", "3000"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	errs := make(chan error, 1)
	go func() { errs <- srv.ListenAndServe() }()
	log.Info("listening", "addr", srv.Addr, "host", host)
	select {
	case err := <-errs:
		return err
	case <-sigs:
	}
	timeout, err := time.ParseDuration(env("SHUTDOWN_TIMEOUT", "10s"))
	if err != nil {
		return fmt.Errorf("SHUTDOWN_TIMEOUT: %w", err)
	}
	log.Info("shutting down: finishing requests", "inflight", inflight.Load(), "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	log.Info("stopped cleanly", "requests", st.requests.Load(), "served", st.served.Load(), "failed", st.failed.Load())
	return nil
}

// checkPostgres asks the server whether it speaks TLS (an SSLRequest): any
// answer of the protocol proves a postgres server is up and reading, with no
// driver and no credentials needed.
func checkPostgres(ctx context.Context, addr string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := make([]byte, 8)
	binary.BigEndian.PutUint32(req[0:4], 8)
	binary.BigEndian.PutUint32(req[4:8], 80877103)
	if _, err := conn.Write(req); err != nil {
		return err
	}
	answer := make([]byte, 1)
	if _, err := conn.Read(answer); err != nil {
		return err
	}
	if answer[0] != 'N' && answer[0] != 'S' {
		return fmt.Errorf("unexpected answer %q", answer)
	}
	return nil
}

// checkRedis sends PING and wants +PONG.
func checkRedis(ctx context.Context, addr string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("unexpected answer %q", strings.TrimSpace(line))
	}
	return nil
}

func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	return conn, nil
}

func probe() error {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + env("PORT", "3000") + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return errors.New(strings.TrimSpace(resp.Status + ": " + b.String()))
	}
	return nil
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}
