package production

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/browsertest"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestWatchItRecover is the README's "watch it recover" walk-through, in a
// real browser on the dashboard of the production stack: converged, a
// replica stopped by hand (left down, and why), a replica killed (started
// again by the daemon, in the timeline). Its screenshots are the README's
// (make course-screenshots copies them there).
func TestWatchItRecover(t *testing.T) {
	t.Parallel()
	buildImages(t)
	s, _ := up(t, "docker-compose.prod.yml", "LB_PORT="+enginetest.FreePort(t))
	d, base := s.daemon(t)
	br := browsertest.Open(t, 1100, 760)
	ctx := context.Background()
	mark := func(name, state string) string {
		return fmt.Sprintf(`#graph g.replica[data-container=%q][data-state=%q]`, name, state)
	}
	record := func(name, reason string) string {
		return fmt.Sprintf(`#timeline li.record[data-container=%q][data-reason=%q]`, name, reason)
	}
	wait := func(what, selector string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(br.Ctx, 60*time.Second)
		defer cancel()
		if _, err := chromedp.Run(wctx, chromedp.WaitVisible(chromedp.CSS(selector))); err != nil {
			t.Fatalf("the page never showed %s (%s): %v", what, selector, err)
		}
	}
	api2, api3 := s.Name+"-api-2", s.Name+"-api-3"

	nctx, cancel := context.WithTimeout(br.Ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(nctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"lb-1", "frontend-1", "api-1", "api-2", "api-3", "db-1", "cache-1"} {
		wait(svc+" running", mark(s.Name+"-"+svc, "running"))
	}
	br.Screenshot(t, "1-converged.png")

	// docker stop: the learner's call, left down, and the page says why
	if _, err := s.Engine.Client.ContainerStop(ctx, api2, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("api-2 exited", mark(api2, "exited"))
	wait("StoppedByUser in the timeline", record(api2, "StoppedByUser"))
	br.Screenshot(t, "2-stopped-by-hand.png")
	if _, err := s.Engine.Client.ContainerStart(ctx, api2, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("api-2 running again", mark(api2, "running"))

	// docker kill: the engine leaves it down; the daemon starts it
	if _, err := s.Engine.Client.ContainerKill(ctx, api3, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	wait("the daemon's start of api-3", record(api3, "Started"))
	wait("api-3 running", mark(api3, "running"))
	br.Screenshot(t, "3-kill-undone.png")

	if console := br.Console(); len(console) > 0 {
		t.Errorf("console: %v", console)
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Errorf("daemon exit %d on SIGTERM", code)
	}
}
