package enginetest

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// FaultProxy is an HTTP proxy in front of the engine's socket that fails a
// share of the engine's calls with a 500, as a loaded engine does now and
// then. The event stream and pings pass untouched, so that what fails is
// the lists and actions around a working stream.
type FaultProxy struct {
	Path string
	// Subscriptions counts the event streams opened through the proxy.
	Subscriptions atomic.Int64
	// Failed counts the calls failed on purpose.
	Failed atomic.Int64

	mu   sync.Mutex
	rate float64
	rng  *rand.Rand
}

// NewFaultProxy fails rate (0..1) of the calls, drawn from a seeded
// generator, and stops with the test.
func NewFaultProxy(t testing.TB, rate float64, seed uint64) *FaultProxy {
	t.Helper()
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	dir, err := os.MkdirTemp("", "fproxy")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{Path: filepath.Join(dir, "docker.sock"), rate: rate, rng: rand.New(rand.NewPCG(seed, seed))}
	ln, err := net.Listen("unix", p.Path)
	if err != nil {
		t.Fatal(err)
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
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events, ping := strings.HasSuffix(r.URL.Path, "/events"), strings.HasSuffix(r.URL.Path, "/_ping")
		if events {
			p.Subscriptions.Add(1)
		}
		if !events && !ping && p.fail() {
			p.Failed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"injected fault"}`))
			return
		}
		engine.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
	return p
}

func (p *FaultProxy) fail() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64() < p.rate
}

// Env routes a client through the proxy.
func (p *FaultProxy) Env() string { return "DOCKER_HOST=unix://" + p.Path }
