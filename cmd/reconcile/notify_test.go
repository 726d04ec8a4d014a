package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestNotificationsComeOncePerWindowAndNeverSlowTheDaemon: a local HTTP
// receiver, as a generic webhook, gets a crash loop's exits as one message
// and then a summary with a count per window, never a secret value; a
// second receiver that never answers holds neither the first one's
// messages nor the daemon's restarts.
func TestNotificationsComeOncePerWindowAndNeverSlowTheDaemon(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	hang := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { close(hang); srv.Close() })
	received := func(substr string) (n int, all []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bodies {
			if strings.Contains(b, substr) {
				n++
			}
		}
		return n, append([]string(nil), bodies...)
	}

	p := enginetest.NewProject(t, `
services:
  crash:
    image: {{.Image}}
    command: ["crash"]   # exits 1 at once
    restart: always
    environment: {API_TOKEN: s3cret-token-value}
    x-reconcile: {restart: {max_attempts: 0, delay: 100ms, max_delay: 500ms}}
  web:
    image: {{.Image}}
    restart: always
`)
	const window = 4 * time.Second
	hook := "generic+http://" + ln.Addr().String() + "/hook"
	hung := "generic+http://" + ln.Addr().String() + "/hang"
	start := time.Now()
	startDaemon(t, p, nil, "--notify", hook, "--notify", hung, "--notify-window", window.String())
	crash := p.Name + "-crash-1"

	eventually(t, 60*time.Second, "a summary of the crash loop's exits", func() bool {
		n, _ := received("ContainerExited on " + crash + ": ")
		s, _ := received("more time(s)")
		return n >= 2 && s >= 1
	})
	windows := int(time.Since(start)/window) + 1
	first, all := received("Warning ContainerExited on " + crash + ": exited")
	if first > windows {
		t.Errorf("%d first messages of ContainerExited on %s in %d windows: a storm must be one message per window", first, crash, windows)
	}
	for _, b := range all {
		if strings.Contains(b, "s3cret-token-value") {
			t.Errorf("a secret value in a notification: %q", b)
		}
		if strings.Contains(b, "Started") || strings.Contains(b, "BackOff") {
			t.Errorf("a Normal record sent by default: %q", b)
		}
	}

	// the hung receiver holds nothing: a killed replica is back at once
	id := p.IDs()[p.Name+"-web-1"]
	before := p.Inspect(id).State.StartedAt
	kill(t, p, id)
	eventually(t, 10*time.Second, "web started again while a receiver hangs", func() bool {
		st := p.Inspect(id).State
		return st.Running && st.StartedAt != before
	})
}
