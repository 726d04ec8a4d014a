package main

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestTheDaemonSpeaksSystemdsNotifyProtocol plays systemd: a datagram
// socket as NOTIFY_SOCKET and a watchdog interval. The daemon sends READY=1
// once it has synced (its /readyz already answers 200), WATCHDOG=1 pings at
// half the interval, and STOPPING=1 on SIGTERM.
func TestTheDaemonSpeaksSystemdsNotifyProtocol(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, "services:\n  web:\n    image: {{.Image}}\n")
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var got []string
	readyAnswer := make(chan int, 1)
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			msg := strings.TrimSpace(string(buf[:n]))
			if msg == "READY=1" {
				// what systemd would now take as up: is it?
				code := 0
				if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				readyAnswer <- code
			}
			mu.Lock()
			got = append(got, msg)
			mu.Unlock()
		}
	}()
	count := func(msg string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, m := range got {
			if m == msg {
				n++
			}
		}
		return n
	}
	d, _ := startDaemon(t, p, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}, "--listen", addr)
	select {
	case code := <-readyAnswer:
		if code != http.StatusOK {
			t.Errorf("READY=1 sent while /readyz answered %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no READY=1 within 30s")
	}
	eventually(t, 10*time.Second, "watchdog pings", func() bool { return count("WATCHDOG=1") >= 3 })
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Errorf("daemon exit %d on SIGTERM", code)
	}
	eventually(t, 5*time.Second, "STOPPING=1", func() bool { return count("STOPPING=1") == 1 })
	if n := count("READY=1"); n != 1 {
		t.Errorf("READY=1 sent %d times, want once", n)
	}
}
