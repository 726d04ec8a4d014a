package production

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// verifyReport is `reconcile verify -o json`.
type verifyReport struct {
	Passed bool `json:"passed"`
	Items  []struct {
		ID, Result, Why string
	} `json:"items"`
}

// verifyLive runs `reconcile verify --live` on the stack (through the
// daemon at listen when not empty) and returns its report.
func (s *stack) verifyLive(t *testing.T, listen string) (verifyReport, string) {
	t.Helper()
	args := []string{"verify", "--live", "-o", "json", "--wait", "90s"}
	if listen != "" {
		args = append(args, "--listen", listen)
	}
	r := s.reconcile(t, args...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("verify --live: %v\n%s", err, r)
	}
	return rep, r.Stderr
}

// failed lists the IDs of the items that failed, and why each did.
func (r verifyReport) failed() ([]string, string) {
	var ids, why []string
	for _, it := range r.Items {
		if it.Result == "fail" {
			ids = append(ids, it.ID)
			why = append(why, it.ID+": "+it.Why)
		}
	}
	return ids, strings.Join(why, "\n")
}

// TestEveryLiveCheckCanFail breaks the running production stack one way
// at a time, by hand as a learner could, and runs `verify --live` on it:
// each break fails exactly its item, static and live items included, and
// each is put right before the next. The files stay as they are, so the
// static items pass throughout: what fails is what the stack does.
func TestEveryLiveCheckCanFail(t *testing.T) {
	t.Parallel()
	buildImages(t)
	port := enginetest.FreePort(t)
	s, _ := up(t, "docker-compose.prod.yml", "LB_PORT="+port)
	ctx := context.Background()
	name := func(service string, n int) string { return s.Name + "-" + service + "-" + string(rune('0'+n)) }
	conf := filepath.Join(s.Dir, "lb", "conf.d", "default.conf")
	original, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	reloadByHand := func(t *testing.T) {
		t.Helper()
		if res := s.exec(t, "lb", "nginx", "-s", "reload"); res.ExitCode != 0 {
			t.Fatalf("nginx -s reload: %+v", res)
		}
	}
	// variants that need no daemon: its items (recovery, health) are n/a
	noDaemon := []struct {
		fails        string
		break_, mend func(t *testing.T)
	}{
		{"live-isolation",
			// the frontend joins the database's network by hand: the
			// files still keep them apart, the wire does not
			func(t *testing.T) {
				if _, err := s.Engine.Client.NetworkConnect(ctx, s.Name+"_db-network", client.NetworkConnectOptions{Container: name("frontend", 1)}); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T) {
				if _, err := s.Engine.Client.NetworkDisconnect(ctx, s.Name+"_db-network", client.NetworkDisconnectOptions{Container: name("frontend", 1)}); err != nil {
					t.Fatal(err)
				}
			}},
		{"live-memory",
			// docker update --memory 300m on one replica
			func(t *testing.T) { s.setMemory(t, name("api", 2), 300<<20) },
			func(t *testing.T) { s.setMemory(t, name("api", 2), 256<<20) }},
		{"live-graceful-stop",
			// the replica verify stops ignores SIGTERM, as a shell
			// entrypoint that does not forward it: killed at the grace's end
			func(t *testing.T) {
				if res, err := engine.Exec(ctx, s.Engine.Client, name("api", 3), []string{"/api", "sigterm", "ignore"}); err != nil || res.ExitCode != 0 {
					t.Fatalf("api sigterm ignore: %v %+v", err, res)
				}
			},
			func(t *testing.T) {}}, // verify started it again: a new process drains
		{"live-load-balancing",
			// nginx sends /api/ to one replica by name
			func(t *testing.T) {
				edited := strings.Replace(string(original), "proxy_pass http://api_backend/;", "proxy_pass http://"+name("api", 1)+":3000/;", 1)
				if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
					t.Fatal(err)
				}
				reloadByHand(t)
			},
			func(t *testing.T) {
				if err := os.WriteFile(conf, original, 0o644); err != nil {
					t.Fatal(err)
				}
				reloadByHand(t)
			}},
	}
	for _, v := range noDaemon {
		t.Run(v.fails, func(t *testing.T) {
			v.break_(t)
			rep, _ := s.verifyLive(t, "")
			v.mend(t)
			if ids, why := rep.failed(); !slices.Equal(ids, []string{v.fails}) {
				t.Errorf("failed %v, want exactly [%s]:\n%s", ids, v.fails, why)
			} else {
				t.Logf("%s", why)
			}
			s.waitHealthy(t)
		})
	}

	d, base := s.daemon(t)
	addr := strings.TrimPrefix(base, "http://")
	t.Run("live-health-balancing", func(t *testing.T) {
		// every replica by name, and nginx's own passive check off: a
		// balancer that knows nothing of health
		edited := strings.Replace(string(original), "server {", "upstream api_by_name {\n    server api:3000 max_fails=0;\n}\n\nserver {", 1)
		edited = strings.Replace(edited, "proxy_pass http://api_backend/;", "proxy_pass http://api_by_name/;", 1)
		since := time.Now()
		if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the daemon's reload of the edit", func() bool { return hasRecordSince(t, base, "Reloaded", "lb", since) })
		rep, _ := s.verifyLive(t, addr)
		since = time.Now()
		if err := os.WriteFile(conf, original, 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the daemon's reload of the original", func() bool { return hasRecordSince(t, base, "Reloaded", "lb", since) })
		if ids, why := rep.failed(); !slices.Equal(ids, []string{"live-health-balancing"}) {
			t.Errorf("failed %v, want exactly [live-health-balancing]:\n%s", ids, why)
		} else {
			t.Logf("%s", why)
		}
		s.waitHealthy(t)
	})
	t.Run("live-recovery", func(t *testing.T) {
		// --listen names something that answers like a daemon and
		// watches nothing: the daemon of the stack still runs (so an
		// unhealthy replica still leaves the pool), but the one verify
		// was told of never starts the killed replica itself
		fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer fake.Close()
		rep, _ := s.verifyLive(t, strings.TrimPrefix(fake.URL, "http://"))
		if ids, why := rep.failed(); !slices.Equal(ids, []string{"live-recovery"}) {
			t.Errorf("failed %v, want exactly [live-recovery]:\n%s", ids, why)
		} else {
			t.Logf("%s", why)
		}
		s.waitHealthy(t)
	})
	t.Run("unbroken, every item passes", func(t *testing.T) {
		rep, _ := s.verifyLive(t, addr)
		if ids, why := rep.failed(); len(ids) > 0 || !rep.Passed {
			t.Errorf("failed %v:\n%s", ids, why)
		}
	})
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Errorf("daemon exit %d on SIGTERM", code)
	}
}

// setMemory changes a container's memory limit by hand (docker update),
// swap included, as the engine wants both.
func (s *stack) setMemory(t *testing.T, name string, bytes int64) {
	t.Helper()
	_, err := s.Engine.Client.ContainerUpdate(context.Background(), name, client.ContainerUpdateOptions{
		Resources: &container.Resources{Memory: bytes, MemorySwap: 2 * bytes}})
	if err != nil {
		t.Fatalf("docker update --memory %d %s: %v", bytes, name, err)
	}
}

// waitHealthy waits until every container of the stack runs healthy.
func (s *stack) waitHealthy(t *testing.T) {
	t.Helper()
	eventually(t, 90*time.Second, "every container healthy", func() bool {
		snap := s.Snapshot()
		if len(snap.Containers) != 7 {
			return false
		}
		for _, c := range snap.Containers {
			if c.State != "running" || c.Health != "healthy" {
				return false
			}
		}
		return true
	})
}
