// Command testapp is the program inside reconcile's test and demo images: a
// static binary in a FROM scratch image, which has no shell, curl or wget, so
// the binary is also its own healthcheck probe and control client.
//
//	testapp [serve]        serve HTTP (the default)
//	testapp health         exit 0 if the local server says healthy, 1 if not
//	testapp ctl VERB [ARG] ask the local server to: healthy, unhealthy, exit CODE, reload, hog MB
//	testapp reload         record a config reload (for x-reconcile.reload.exec)
//	testapp get URL        GET a URL and print the body (exit 1 on failure)
//	testapp dial HOST:PORT exit 0 if a TCP connection opens within 2 s, 1 if not
//	testapp check FILE     a config check (like nginx -t): exit 1 if FILE is
//	                       missing or contains the word "invalid"
//
// Environment of serve:
//
//	PORT             listen port (default 8080)
//	START_DELAY      report unhealthy for this long after start (default 0)
//	UNHEALTHY_AFTER  turn unhealthy after this long
//	EXIT_AFTER       exit after this long, with EXIT_CODE (default 0)
//	WATCH_FILE       a file whose content /config returns
//
// GET / answers "hello from HOSTNAME"; GET /health 200 or 503; GET /reloads
// the number of reloads recorded (SIGHUP or `testapp reload`).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve()
	case "health":
		err = health()
	case "ctl":
		err = ctl(args)
	case "reload":
		err = ctl([]string{"reload"})
	case "get":
		err = get(args)
	case "dial":
		err = dial(args)
	case "check":
		err = check(args)
	case "exit":
		exitLater(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}

func envDuration(name string) (time.Duration, bool) {
	v := os.Getenv(name)
	if v == "" {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testapp: %s=%q: %v\n", name, v, err)
		os.Exit(2)
	}
	return d, true
}

type server struct {
	started   time.Time
	unhealthy atomic.Bool
	reloads   atomic.Int64
	mu        sync.Mutex
	hog       [][]byte
}

func serve() error {
	s := &server{started: time.Now()}
	startDelay, _ := envDuration("START_DELAY")
	if d, ok := envDuration("UNHEALTHY_AFTER"); ok {
		time.AfterFunc(d, func() { s.unhealthy.Store(true) })
	}
	if d, ok := envDuration("EXIT_AFTER"); ok {
		code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
		time.AfterFunc(d, func() {
			fmt.Printf("exiting with code %d as asked\n", code)
			os.Exit(code)
		})
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if s.unhealthy.Load() || time.Since(s.started) < startDelay {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /reloads", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, s.reloads.Load())
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		data, err := os.ReadFile(os.Getenv("WATCH_FILE"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
	})
	mux.HandleFunc("POST /ctl/{verb}", func(w http.ResponseWriter, r *http.Request) {
		arg := r.URL.Query().Get("arg")
		switch r.PathValue("verb") {
		case "healthy":
			s.unhealthy.Store(false)
		case "unhealthy":
			s.unhealthy.Store(true)
		case "reload":
			n := s.reloads.Add(1)
			fmt.Printf("reload %d recorded\n", n)
		case "exit":
			code, _ := strconv.Atoi(arg)
			fmt.Fprintln(w, "exiting")
			go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
			return
		case "hog":
			mb, _ := strconv.Atoi(arg)
			go s.allocate(mb)
		default:
			http.Error(w, "unknown verb", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	srv := &http.Server{Addr: ":" + port(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				n := s.reloads.Add(1)
				fmt.Printf("reload %d recorded (SIGHUP)\n", n)
				continue
			}
			fmt.Println("shutting down on", sig)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			os.Exit(0)
		}
	}()
	fmt.Printf("listening on :%s\n", port())
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	select {} // Shutdown in progress: the signal goroutine exits
}

// allocate touches mb MiB of memory, one MiB at a time, so that a memory
// limit is reached for real and the kernel's OOM killer acts.
func (s *server) allocate(mb int) {
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		s.mu.Lock()
		s.hog = append(s.hog, b)
		s.mu.Unlock()
	}
}

func localURL(path string) string { return "http://127.0.0.1:" + port() + path }

func health() error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(localURL("/health"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

func ctl(args []string) error {
	if len(args) == 0 {
		return errors.New("ctl needs a verb: healthy, unhealthy, exit CODE, reload, hog MB")
	}
	url := localURL("/ctl/" + args[0])
	if len(args) > 1 {
		url += "?arg=" + args[1]
	}
	resp, err := postWhenListening(url, ctlListenWait)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return nil
}

// ctlListenWait bounds how long ctl waits for the server to listen: a
// post_start hook or an exec can run before serve has bound its port.
const ctlListenWait = 10 * time.Second

// postWhenListening posts to url, trying again while the connection is
// refused (the server is not listening yet), until wait has passed.
func postWhenListening(url string, wait time.Duration) (*http.Response, error) {
	c := http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(wait)
	for {
		resp, err := c.Post(url, "text/plain", nil)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return resp, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(args []string) error {
	if len(args) != 1 {
		return errors.New("get needs a URL")
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", args[0], resp.Status)
	}
	return nil
}

func dial(args []string) error {
	if len(args) != 1 {
		return errors.New("dial needs HOST:PORT")
	}
	conn, err := net.DialTimeout("tcp", args[0], 2*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// exitLater runs for a while, then exits with a code: `exit 3 1s` is a
// container that looks started and dies a second later.
func exitLater(args []string) {
	code, after := 1, time.Duration(0)
	if len(args) > 0 {
		code, _ = strconv.Atoi(args[0])
	}
	if len(args) > 1 {
		after, _ = time.ParseDuration(args[1])
	}
	time.Sleep(after)
	os.Exit(code)
}

func check(args []string) error {
	if len(args) != 1 {
		return errors.New("check needs a FILE")
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	if strings.Contains(string(data), "invalid") {
		return fmt.Errorf("%s: invalid configuration", args[0])
	}
	fmt.Printf("%s: configuration ok\n", args[0])
	return nil
}
