package enginetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FaultProxy is an HTTP proxy in front of the engine's socket that fails a
// share of the engine's calls with a 500, as a loaded engine does now and
// then, and can play the engine going away altogether. The event stream and
// pings pass untouched by the failure rate, so that what fails is the lists
// and actions around a working stream.
type FaultProxy struct {
	Path string
	// Subscriptions counts the event streams opened through the proxy.
	Subscriptions atomic.Int64
	// Failed counts the calls failed on purpose.
	Failed atomic.Int64

	srv *http.Server
	dir string

	mu        sync.Mutex
	rate      float64
	rng       *rand.Rand
	down      bool
	streams   map[*http.Request]context.CancelFunc
	upSince   time.Time // when the engine came back (Up)
	firstPing time.Time // the first ping answered since upSince
	endpoints map[string]bool
}

// Endpoints lists the engine API endpoints called through the proxy, as
// "METHOD /path" with the API version dropped and names and IDs written
// {id} (containers, networks, volumes, execs) or {name} (images).
func (p *FaultProxy) Endpoints() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.endpoints))
	for e := range p.endpoints {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// Endpoint writes a request's path as Endpoints lists it.
func Endpoint(method, path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "v1.") {
		parts = parts[1:]
	}
	fixed := map[string]bool{"json": true, "create": true, "prune": true, "load": true, "search": true}
	if len(parts) >= 2 {
		switch parts[0] {
		case "containers", "networks", "volumes", "exec", "plugins":
			if !fixed[parts[1]] {
				parts[1] = "{id}"
			}
		case "images", "distribution":
			if !fixed[parts[1]] && len(parts) >= 3 {
				parts = append([]string{parts[0], "{name}"}, parts[len(parts)-1])
			} else if !fixed[parts[1]] {
				parts[1] = "{name}"
			}
		}
	}
	return method + " /" + strings.Join(parts, "/")
}

// NewFaultProxy fails rate (0..1) of the calls, drawn from a seeded
// generator, and stops with the test.
func NewFaultProxy(t testing.TB, rate float64, seed uint64) *FaultProxy {
	t.Helper()
	p, err := StartFaultProxy(rate, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartFaultProxy is NewFaultProxy for programs (the benchmarks): Close
// stops it.
func StartFaultProxy(rate float64, seed uint64) (*FaultProxy, error) {
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	dir, err := os.MkdirTemp("", "fproxy")
	if err != nil {
		return nil, fmt.Errorf("creating the proxy's directory: %w", err)
	}
	p := &FaultProxy{Path: filepath.Join(dir, "docker.sock"), dir: dir, rate: rate,
		rng: rand.New(rand.NewPCG(seed, seed)), streams: map[*http.Request]context.CancelFunc{}, endpoints: map[string]bool{}}
	ln, err := net.Listen("unix", p.Path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listening on %s: %w", p.Path, err)
	}
	engine := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", target)
		}},
		FlushInterval: -1, // the event stream is written as it comes
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events, ping := strings.HasSuffix(r.URL.Path, "/events"), strings.HasSuffix(r.URL.Path, "/_ping")
		p.mu.Lock()
		p.endpoints[Endpoint(r.Method, r.URL.Path)] = true
		p.mu.Unlock()
		if p.isDown() {
			// what a client sees of an engine that went away: the
			// connection closes with no answer
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if events {
			p.Subscriptions.Add(1)
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			p.mu.Lock()
			p.streams[r] = cancel
			p.mu.Unlock()
			defer func() { p.mu.Lock(); delete(p.streams, r); p.mu.Unlock() }()
			r = r.WithContext(ctx)
		}
		if !events && !ping && p.fail() {
			p.Failed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"injected fault"}`))
			return
		}
		engine.ServeHTTP(w, r)
		if ping {
			p.pinged()
		}
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy.
func (p *FaultProxy) Close() {
	p.srv.Close()
	os.RemoveAll(p.dir)
}

func (p *FaultProxy) fail() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64() < p.rate
}

// SetRate changes the share of calls failed from now on.
func (p *FaultProxy) SetRate(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = rate
}

func (p *FaultProxy) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// Down plays the engine going away: open event streams end and every
// request, pings included, has its connection closed, until Up.
func (p *FaultProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, cancel := range p.streams {
		cancel()
	}
}

// Up brings the engine back.
func (p *FaultProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.upSince, p.firstPing = false, time.Now(), time.Time{}
}

func (p *FaultProxy) pinged() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.upSince.IsZero() && p.firstPing.IsZero() {
		p.firstPing = time.Now()
	}
}

// FirstPingSinceUp is when the engine first answered a ping after the last
// Up (zero until it has): where "recovering as fast as the engine allows"
// starts counting.
func (p *FaultProxy) FirstPingSinceUp() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstPing
}

// Env routes a client through the proxy.
func (p *FaultProxy) Env() string { return "DOCKER_HOST=unix://" + p.Path }
