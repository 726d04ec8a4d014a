package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// tcpEngine serves the local engine's socket on a loopback TCP port, the
// way a remote engine is reached (tcp://host:port), and counts connections.
func tcpEngine(t *testing.T) (addr string, conns *atomic.Int64) {
	t.Helper()
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			up, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return ln.Addr().String(), conns
}

// TestARemoteEngine: through DOCKER_HOST=tcp://... and through a docker CLI
// context, --once and the daemon work; the daemon refuses, in one line,
// what needs the engine's own files.
func TestARemoteEngine(t *testing.T) {
	t.Parallel()
	addr, conns := tcpEngine(t)
	host := "DOCKER_HOST=tcp://" + addr

	p := enginetest.NewProject(t, "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	if r := reconcile(t, p.Dir, []string{host}, "--once", "-f", p.File, "-p", p.Name, "--timeout", "60s"); r.Code != 0 {
		t.Fatalf("--once through tcp://: %s", r)
	}
	if conns.Load() == 0 {
		t.Fatal("nothing went through the TCP endpoint")
	}
	startDaemon(t, p, []string{host})
	id := p.IDs()[p.Name+"-web-1"]
	before := p.Inspect(id).State.StartedAt
	kill(t, p, id)
	eventually(t, 30*time.Second, "web started again by a daemon on a remote engine", func() bool {
		st := p.Inspect(id).State
		return st.Running && st.StartedAt != before
	})

	// a docker CLI context naming the same endpoint
	config := t.TempDir()
	sum := sha256.Sum256([]byte("rtest"))
	meta := filepath.Join(config, "contexts", "meta", hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(meta, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"Name": "rtest", "Metadata": map[string]any{},
		"Endpoints": map[string]any{"docker": map[string]any{"Host": "tcp://" + addr, "SkipTLSVerify": false}}})
	if err := os.WriteFile(filepath.Join(meta, "meta.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	seen := conns.Load()
	env := []string{"DOCKER_CONFIG=" + config, "DOCKER_HOST="}
	if r := reconcile(t, p.Dir, env, "--context", "rtest", "diff", "-f", p.File, "-p", p.Name); r.Code != 0 {
		t.Fatalf("diff --context rtest: %s", r)
	}
	if conns.Load() == seen {
		t.Error("--context rtest did not go through the context's endpoint")
	}

	// the engine's files are not this machine's: refused in one line
	lb := enginetest.NewProject(t, `
services:
  api:
    image: {{.Image}}
  lb:
    image: {{.Image}}
    volumes: ["./up:/up"]
    x-reconcile:
      upstreams: [{name: api, service: api, port: 8080, file: ./up/api.conf}]
`)
	r := reconcile(t, lb.Dir, []string{host}, "-f", lb.File, "-p", lb.Name, "--state-dir", t.TempDir())
	line := strings.TrimSpace(r.Stderr)
	if r.Code != exitInput || strings.Contains(line, "\n") || !strings.Contains(line, `compose.yaml:9: service "lb": x-reconcile.upstreams: needs the engine's files`) || !strings.HasSuffix(line, "is remote") {
		t.Errorf("a daemon with upstreams on a remote engine: %s; want exit 2 and one line naming the file, line and key", r)
	}
}
