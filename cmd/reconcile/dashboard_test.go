package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reconcile-dev/reconcile/internal/browsertest"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// openBrowser opens a tab in a 1400×900 window.
func openBrowser(t *testing.T) *browsertest.Page {
	t.Helper()
	return browsertest.Open(t, 1400, 900)
}

// eval runs a JavaScript expression in the page and returns its value.
func eval[T any](t *testing.T, p *browsertest.Page, expr string) T {
	t.Helper()
	return browsertest.Eval[T](t, p, expr)
}

// TestDashboardInABrowser opens the page a learner watches, in a real
// browser: it draws the services by dependency, a killed replica's mark
// turns to exited and back as the daemon restarts it, the timeline says
// so, the page only ever reads, it comes back by itself when the daemon
// restarts, and nothing goes to the console.
func TestDashboardInABrowser(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  db:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 3}
  web:
    image: {{.Image}}
    restart: always
    deploy: {replicas: 2}
    depends_on:
      db: {condition: service_healthy, restart: true}
`)
	once(t, p)
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	d, _ := startDaemon(t, p, nil, "--listen", addr) // the last --listen wins
	base := "http://" + addr
	br := openBrowser(t)
	web1 := p.Name + "-web-1"

	// first load: from navigation to the three marks drawn
	start := time.Now()
	ctx, cancel := context.WithTimeout(br.Ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#graph g.replica[data-container=%q][data-state="running"]`, web1)))); err != nil {
		t.Fatalf("the page did not draw %s running: %v", web1, err)
	}
	t.Logf("first load to marks drawn: %s", time.Since(start).Round(time.Millisecond))
	marks := eval[int](t, br, `document.querySelectorAll("#graph g.replica").length`)
	arrow := eval[string](t, br, `(() => { const e = document.querySelector('#graph g.edge[data-from="web"][data-to="db"] text'); return e ? e.textContent : "" })()`)
	if marks != 3 || arrow != "healthy · restart" {
		t.Errorf("%d replica marks (want 3), web→db arrow %q (want the condition and restart: true)", marks, arrow)
	}
	br.Screenshot(t, "1-converged.png")

	// watch the mark: every state it shows, with the browser's clock
	eval[bool](t, br, fmt.Sprintf(`(() => {
		window.__states = [];
		const seen = () => {
			const m = document.querySelector('#graph g.replica[data-container=%q]');
			const s = m ? m.getAttribute("data-state") : "gone";
			const last = window.__states[window.__states.length - 1];
			if (!last || last.s !== s) window.__states.push({s, at: Date.now()});
		};
		seen();
		new MutationObserver(seen).observe(document.getElementById("graph"), {subtree: true, childList: true, attributes: true});
		return true;
	})()`, web1))

	events := p.Record()
	killed := time.Now()
	kill(t, p, p.IDs()[web1])
	type seenState struct {
		S  string `json:"s"`
		At int64  `json:"at"`
	}
	var states []seenState
	eventually(t, 30*time.Second, "the mark going down and coming back", func() bool {
		states = eval[[]seenState](t, br, `window.__states`)
		down := false
		for _, s := range states {
			down = down || s.S == "exited" || s.S == "restarting"
			if down && s.S == "running" {
				return true
			}
		}
		return false
	})
	if die, ok := events.First(web1, "die"); ok {
		for _, s := range states {
			if s.S != "running" {
				t.Logf("engine's die event -> the mark changed in the browser: %d ms (states %+v)", s.At-die.UnixMilli(), states)
				break
			}
		}
	}
	eventually(t, 15*time.Second, "the restart in the timeline", func() bool {
		return eval[int](t, br, fmt.Sprintf(`document.querySelectorAll('#timeline li.record[data-container=%q][data-reason="Started"]').length`, web1)) > 0
	})
	entry := eval[string](t, br, fmt.Sprintf(`document.querySelector('#timeline li.record[data-container=%q][data-reason="Started"]').textContent`, web1))
	t.Logf("timeline: %s (%s after the kill)", entry, time.Since(killed).Round(time.Millisecond))
	br.Screenshot(t, "2-after-kill.png")

	// the daemon restarts: the page reconnects by itself
	updates := eval[int](t, br, `window.__reconcileUpdates`)
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Fatalf("daemon exit %d on SIGTERM", code)
	}
	startDaemon(t, p, nil, "--listen", addr)
	eventually(t, 30*time.Second, "the page live again after the daemon's restart", func() bool {
		now := eval[int](t, br, `window.__reconcileUpdates`)
		conn := eval[string](t, br, `document.getElementById("connection").textContent`)
		return now > updates && conn == "live"
	})

	if console := br.Console(); len(console) > 0 {
		t.Errorf("console errors: %q", console)
	}
	requests := br.Requests()
	for _, r := range requests {
		if !strings.HasPrefix(r, "GET ") {
			t.Errorf("the page made a request that is not a read: %s", r)
		}
	}
	if len(requests) == 0 {
		t.Error("no request seen: the test checked nothing")
	}
}

// TestAnAgentsDashboardListsItsProjects: an agent's page lists its
// projects, each a link to its own page, and the projects it does not
// reconcile with why; a project's page draws that project.
func TestAnAgentsDashboardListsItsProjects(t *testing.T) {
	root := t.TempDir()
	shop := agentProject(t, root, "shop", "services:\n  api:\n    image: {{.Image}}\n    restart: always\n")
	blog := agentProject(t, root, "blog", "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	if err := os.MkdirAll(filepath.Join(root, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "broken", "compose.yaml"), []byte("services: ["), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base := startAgent(t, root)
	eventually(t, 60*time.Second, "both converged", func() bool {
		return converged(shop, map[string]int{"api": 1})() && converged(blog, map[string]int{"web": 1})()
	})
	br := openBrowser(t)
	ctx, cancel := context.WithTimeout(br.Ctx, 30*time.Second)
	defer cancel()
	link := func(p *enginetest.Project) string {
		return fmt.Sprintf(`#projects a[href=%q]`, "?project="+p.Name)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(link(shop))), chromedp.WaitVisible(chromedp.CSS(link(blog))),
		chromedp.WaitVisible(chromedp.CSS(`#projects li.problem`))); err != nil {
		t.Fatalf("the agent's page does not list its projects: %v", err)
	}
	if got := eval[string](t, br, `document.querySelector("#projects li.problem").textContent`); !strings.Contains(got, "ProjectInvalid") {
		t.Errorf("the problem listed is %q, want the invalid project", got)
	}
	br.Screenshot(t, "agent-projects.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(link(shop))),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#graph g.replica[data-container=%q][data-state="running"]`, shop.Name+"-api-1")))); err != nil {
		t.Fatalf("a project's page does not draw it: %v", err)
	}
	if n := eval[int](t, br, `document.querySelectorAll("#graph g.replica").length`); n != 1 {
		t.Errorf("the project's page draws %d replicas, want shop's one", n)
	}
	if console := br.Console(); len(console) > 0 {
		t.Errorf("console: %v", console)
	}
}
