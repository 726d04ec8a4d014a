package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestListenBeyondLoopbackNeedsAToken: a daemon asked to serve beyond
// loopback without a token refuses to start (exit 2, nothing touched); with
// --listen-token-file every endpoint but /healthz wants the token, and the
// commands that read a daemon send it.
func TestListenBeyondLoopbackNeedsAToken(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, "services:\n  app:\n    image: {{.Image}}\n")
	port := enginetest.FreePort(t)
	args := []string{"-f", p.File, "-p", p.Name, "--state-dir", t.TempDir(), "--listen", "0.0.0.0:" + port}

	r := reconcile(t, p.Dir, nil, args...)
	if r.Code != exitInput || !strings.Contains(r.Stderr, "--listen-token-file") {
		t.Fatalf("beyond loopback without a token: %s", r)
	}
	if n := len(p.Snapshot().Containers); n != 0 {
		t.Fatalf("the refused daemon touched the project: %d containers", n)
	}

	const token = "a-token-of-32-characters-0123456"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := enginetest.Start(t, p.Dir, nil, append(args, "--listen-token-file", tokenFile, "--log-format", "json")...)
	d.WaitFor(`"daemon started"`, 30*time.Second)
	base := "http://127.0.0.1:" + port
	get := func(path, auth string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for _, tt := range []struct {
		path, auth string
		want       int
	}{
		{"/healthz", "", 200},
		{"/status", "", 401},
		{"/events", "", 401},
		{"/metrics", "", 401},
		{"/status", "wrong-token-of-32-characters-000", 401},
		{"/status", token, 200},
		{"/metrics", token, 200},
	} {
		if got := get(tt.path, tt.auth); got != tt.want {
			t.Errorf("GET %s (token %v): %d, want %d", tt.path, tt.auth != "", got, tt.want)
		}
	}
	listen := "127.0.0.1:" + port
	if r := reconcile(t, p.Dir, nil, "events", "--listen", listen, "--listen-token-file", tokenFile); r.Code != 0 {
		t.Errorf("events with the token: %s", r)
	}
	if r := reconcile(t, p.Dir, nil, "events", "--listen", listen); r.Code == 0 {
		t.Errorf("events without the token: %s", r)
	}
	eventually(t, 30*time.Second, "ready", func() bool {
		return reconcile(t, p.Dir, nil, "healthcheck", "--listen", listen, "--listen-token-file", tokenFile).Code == 0
	})
	if r := reconcile(t, p.Dir, nil, "healthcheck", "--listen", listen); r.Code != exitNotConverged {
		t.Errorf("healthcheck without the token: %s", r)
	}
	if strings.Contains(d.Output(), token) {
		t.Errorf("the daemon printed its token")
	}
}
