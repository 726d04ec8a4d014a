package production

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// TestTask7ACrashLoopingAPIIsHeldDown is the course's task 7 the way it
// happens in production: an api that crashes as soon as it starts (here its
// entrypoint is its own health probe, which finds nothing listening and
// exits 1). The production file gives it `restart: unless-stopped`, which
// the engine honours for ever, and a budget of 3: each replica starts at
// most 4 times, then stays down, exited, and the exhaustion is said once.
func TestTask7ACrashLoopingAPIIsHeldDown(t *testing.T) {
	t.Parallel()
	buildImages(t)
	p := enginetest.CopyProject(t, ".")
	s := &stack{Project: p, override: "docker-compose.prod.yml"}
	p.Write("test.env", "DB_VOLUME_NAME="+p.Name+"-db-data\nLB_PORT="+enginetest.FreePort(t)+"\n")
	p.Write("crashloop.yml", "services:\n  api:\n    entrypoint: [\"/api\", \"health\"]\n")
	events := p.Record()
	since := time.Now()
	o := s.options()
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	args := []string{"-p", o.ProjectName, "--state-dir", t.TempDir(), "--listen", addr, "--log-format", "json",
		"-f", o.Files[0], "-f", o.Files[1], "-f", filepath.Join(p.Dir, "crashloop.yml")}
	for _, f := range o.EnvFiles {
		args = append(args, "--env-file", f)
	}
	d := enginetest.Start(t, p.Dir, nil, args...)
	d.WaitFor(`"daemon started"`, 60*time.Second)
	base := "http://" + addr

	exhausted := func() map[string]int {
		n := map[string]int{}
		for _, r := range readRecords(t, base) {
			if r.Reason == record.RestartBudgetExhausted {
				n[r.Container]++
			}
		}
		return n
	}
	replicas := []string{p.Name + "-api-1", p.Name + "-api-2", p.Name + "-api-3"}
	eventually(t, 3*time.Minute, "the three api replicas held down", func() bool {
		n := exhausted()
		for _, name := range replicas {
			if n[name] == 0 {
				return false
			}
		}
		return true
	})
	// Held down means nothing starts it again: the engine's own next
	// restart would come within seconds, so a minute of quiet is the proof.
	time.Sleep(time.Minute)
	s.refresh()
	n := exhausted()
	for _, name := range replicas {
		if starts := events.Count(name, "start", since); starts != 4 {
			t.Errorf("%s: %d starts, want 4 (the first and 3 restarts)", name, starts)
		}
		if n[name] != 1 {
			t.Errorf("%s: %d RestartBudgetExhausted records, want 1", name, n[name])
		}
	}
	for _, id := range s.ids["api"] {
		st := s.Inspect(id).State
		if st.Status != "exited" || st.Restarting {
			t.Errorf("%s: %s (restarting %v), want exited: `docker compose ps` shows it exited, as task 7 says", id[:12], st.Status, st.Restarting)
		}
	}
}

// readRecords reads the daemon's /events (none yet is an empty list).
func readRecords(t *testing.T, base string) []record.Record {
	t.Helper()
	return enginetest.Records(t, base+"/events")
}
