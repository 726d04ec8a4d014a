// Command git measures a git source (--git): a repository served over
// smart HTTP by git's own http-backend, a daemon following it, and a
// number of pushes, each changing the one service's environment. For each
// push it takes three times: to CommitApplied (the daemon's log), to the
// new container's start (the engine's event), to the new container
// healthy; once with the daemon polling every -interval, once with a long
// interval and a signed webhook sent right after each push.
//
//	go run ./bench/git -bin bin/reconcile [-pushes 10] [-interval 5s]
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
)

const compose = `services:
  web:
    image: %[1]s
    restart: always
    environment: {VERSION: "0"}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 2}
`

const hookSecret = "bench-hook-secret-0123456789"

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	pushes := flag.Int("pushes", 10, "pushes per mode")
	interval := flag.Duration("interval", 5*time.Second, "the polling mode's --git-interval")
	flag.Parse()
	benchkit.Exit(run(*bin, *pushes, *interval))
}

func run(bin string, pushes int, interval time.Duration) error {
	ctx := context.Background()
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (go build -o bin/reconcile ./cmd/reconcile)", bin, err)
	}
	backend, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("the repository is served by git http-backend: %w", err)
	}
	p, err := benchkit.NewProject(ctx, "bgit", "", compose)
	if err != nil {
		return err
	}
	defer p.Close()
	repo, err := git.PlainInit(p.Dir, false)
	if err != nil {
		return err
	}
	srv := httptest.NewServer(&cgi.Handler{Path: backend, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(p.Dir), "GIT_HTTP_EXPORT_ALL=1"}})
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(p.Dir)
	body, err := os.ReadFile(p.File)
	if err != nil {
		return err
	}
	version := 0
	push := func() (time.Time, error) {
		version++
		text := strings.Replace(string(body), `VERSION: "0"`, fmt.Sprintf(`VERSION: "%d"`, version), 1)
		if err := os.WriteFile(p.File, []byte(text), 0o644); err != nil {
			return time.Time{}, err
		}
		wt, err := repo.Worktree()
		if err != nil {
			return time.Time{}, err
		}
		if _, err := wt.Add("compose.yaml"); err != nil {
			return time.Time{}, err
		}
		at := time.Now()
		_, err = wt.Commit(fmt.Sprintf("version %d", version), &git.CommitOptions{Author: &object.Signature{Name: "bench", When: at}})
		return at, err
	}
	if _, err := push(); err != nil {
		return err
	}
	secretFile := filepath.Join(p.Dir, "..", filepath.Base(p.Dir)+".hook")
	if err := os.WriteFile(secretFile, []byte(hookSecret), 0o600); err != nil {
		return err
	}
	defer os.Remove(secretFile)
	state, err := os.MkdirTemp("", "bgit-state")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)

	evs := benchkit.FollowEvents(ctx, p.Engine, make(client.Filters).Add("label", "com.docker.compose.project="+p.Name).Add("event", "start").Add("event", "health_status: healthy"))
	for _, mode := range []struct {
		name     string
		interval time.Duration
		hook     bool
	}{
		{fmt.Sprintf("polling every %s", interval), interval, false},
		{"webhook (interval 1h)", time.Hour, true},
	} {
		port, err := benchkit.FreePort()
		if err != nil {
			return err
		}
		base := "http://127.0.0.1:" + port
		cmd := exec.Command(bin, "--git", url, "-p", p.Name, "--state-dir", state, "--git-interval", mode.interval.String(),
			"--listen", "127.0.0.1:"+port, "--git-webhook-secret-file", secretFile, "--log-format", "json")
		logs, err := cmd.StderrPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		var tl benchkit.Timeline
		go benchkit.ReadLog(logs, map[string][]string{"applied": {`"reason":"CommitApplied"`}}, tl.Add)
		stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
		if err := ready(base); err != nil {
			stop()
			return err
		}
		if _, err := benchkit.WaitRunning(ctx, p, 1, time.Minute); err != nil {
			stop()
			return err
		}
		var applied, started, healthy []time.Duration
		for range pushes {
			at, err := push()
			if err == nil && mode.hook {
				err = hook(base)
			}
			var a, s, h time.Time
			if err == nil {
				a, err = tl.Next("applied", at, time.Minute)
			}
			if err == nil {
				s, err = waitEvent(evs, "start", at)
			}
			if err == nil {
				h, err = waitEvent(evs, "health_status: healthy", s)
			}
			if err != nil {
				stop()
				return fmt.Errorf("%s, push %d: %w", mode.name, version, err)
			}
			applied, started, healthy = append(applied, a.Sub(at)), append(started, s.Sub(at)), append(healthy, h.Sub(at))
		}
		stop()
		fmt.Printf("%s, %d pushes:\n", mode.name, pushes)
		benchkit.Report("  push to CommitApplied", applied)
		benchkit.Report("  push to the new container started", started)
		benchkit.Report("  push to the new container healthy", healthy)
	}
	return nil
}

// waitEvent is the time of the first event of action on any container of
// the project after after.
func waitEvent(evs *benchkit.Events, action string, after time.Time) (time.Time, error) {
	return evs.WaitAny(action, after, time.Minute)
}

// ready waits until the daemon's /readyz answers 200: its first sync done.
func ready(base string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the daemon was not ready within a minute")
}

// hook sends the push webhook as Gitea signs it.
func hook(base string) error {
	body := `{"ref":"refs/heads/master"}`
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(body))
	req, err := http.NewRequest("POST", base+"/hooks/git", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Gitea-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return errors.New("webhook answered " + resp.Status)
	}
	return nil
}
