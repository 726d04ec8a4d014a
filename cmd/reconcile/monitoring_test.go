package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// TestAMonitoringStacksMountsCostNothing: node-exporter and cAdvisor mount
// the host's root, /sys and devices read-only. The daemon used to hash the
// whole host tree as "configuration", converged nothing for minutes and
// ignored SIGTERM. Now such mounts are said once and not watched: the stack
// converges as fast as any, a kill is undone, SIGTERM ends it at once.
func TestAMonitoringStacksMountsCostNothing(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  node:
    image: {{.Image}}
    restart: always
    volumes: ["/:/rootfs:ro", "/sys:/host/sys:ro", "/dev/kmsg:/dev/kmsg:ro"]
`)
	start := time.Now()
	d, base := startDaemon(t, p, nil)
	took := eventually(t, 30*time.Second, "convergence", converged(p, map[string]int{"node": 1}))
	t.Logf("converged %s after the daemon started (%s in all)", took, time.Since(start).Round(time.Millisecond))
	recs := records(t, base)
	for _, path := range []string{"/", "/sys", "/dev/kmsg"} {
		found := false
		for _, r := range recs {
			if r.Reason == record.ConfigNotWatched && r.Service == "node" && strings.HasPrefix(r.Message, path+" is mounted") {
				found = true
			}
		}
		if !found {
			t.Errorf("no ConfigNotWatched record for %s", path)
		}
	}
	node := p.Name + "-node-1"
	dockerKill(t, p, p.IDs()[node])
	eventually(t, 10*time.Second, "the killed replica back", func() bool { return running(p)["node"] == 1 })

	stop := time.Now()
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if took := time.Since(stop); took > 2*time.Second {
		t.Errorf("SIGTERM took %s to end the daemon, want within 2 s", took)
	}
}
