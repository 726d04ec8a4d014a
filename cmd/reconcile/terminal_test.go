package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// terminal runs reconcile with args in a pseudo-terminal, as a user at a
// shell would, and keeps what it prints.
type terminal struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func runInTerminal(t *testing.T, dir string, args ...string) *terminal {
	t.Helper()
	term := &terminal{cmd: exec.Command(enginetest.Binary(t), args...)}
	term.cmd.Dir = dir
	f, err := pty.StartWithSize(term.cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatalf("starting reconcile %v in a terminal: %v", args, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return // io.EOF or EIO once the program exits
			}
		}
	}()
	t.Cleanup(func() {
		_ = term.cmd.Process.Signal(syscall.SIGINT)
		waited := make(chan error, 1)
		go func() { waited <- term.cmd.Wait() }()
		select {
		case err := <-waited:
			if err != nil {
				t.Errorf("reconcile %v on SIGINT: %v, want exit 0", args, err)
			}
		case <-time.After(10 * time.Second):
			_ = term.cmd.Process.Kill()
			t.Errorf("reconcile %v did not stop on SIGINT", args)
		}
		f.Close()
		<-done
	})
	return term
}

func (term *terminal) text() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// lastFrame is what a terminal shows after the last screen clear.
func (term *terminal) lastFrame() string {
	s := term.text()
	if i := strings.LastIndex(s, "\x1b[2J"); i >= 0 {
		return s[i:]
	}
	return s
}

// TestStatusWatchAndEventsFollowInATerminal drives `status --watch` and
// `events --follow` through a pseudo-terminal: the table is redrawn as a
// replica is stopped and started, and the timeline follows, coloured.
func TestStatusWatchAndEventsFollowInATerminal(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  web:
    image: {{.Image}}
    restart: always
`)
	once(t, p)
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	startDaemon(t, p, nil, "--listen", addr)
	web1 := p.Name + "-web-1"

	watch := runInTerminal(t, p.Dir, "status", "--watch", "-f", p.File, "-p", p.Name)
	events := runInTerminal(t, p.Dir, "events", "--follow", "--listen", addr)
	healthy := func() bool {
		f := watch.lastFrame()
		return strings.Contains(f, "web ") && strings.Contains(f, "Healthy")
	}
	eventually(t, 30*time.Second, "the status table drawn, web healthy", healthy)

	// a graceful stop is the user's intent: left down, and the table says so
	id := p.IDs()[web1]
	timeout := 2
	if _, err := p.Engine.Client.ContainerStop(context.Background(), id, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the table redrawn with web down", func() bool {
		f := watch.lastFrame()
		return strings.Contains(f, "Degraded")
	})
	eventually(t, 30*time.Second, "StoppedByUser followed", func() bool {
		return strings.Contains(events.text(), "StoppedByUser")
	})
	if _, err := p.Engine.Client.ContainerStart(context.Background(), id, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the table redrawn with web healthy again", healthy)

	// a kill: a Warning, in red on a terminal, then reconcile's start
	kill(t, p, id)
	eventually(t, 30*time.Second, "the kill and the restart followed", func() bool {
		out := events.text()
		return strings.Contains(out, "ContainerExited") && strings.Contains(out, "Started")
	})
	out := events.text()
	if !strings.Contains(out, "\x1b[31mWarning") {
		t.Errorf("a Warning is not coloured on a terminal:\n%q", out)
	}
	if i, j := strings.Index(out, "ContainerExited"), strings.LastIndex(out, "Started"); i > j {
		t.Errorf("the timeline is out of order:\n%s", out)
	}
	if n := strings.Count(watch.text(), "\x1b[2J"); n < 3 {
		t.Errorf("the status table was drawn %d times, want a redraw per change", n)
	}
}
