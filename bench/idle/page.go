package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
)

// openDashboard loads the daemon's page loads times in a headless chromium,
// prints the first-load figures (navigation start to the services drawn,
// the page's own performance clock), and leaves the last load open until
// the returned func closes the browser.
func openDashboard(base string, loads int) (func(), error) {
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return nil, fmt.Errorf("-page needs chromium (Debian: apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	closeAll := func() { cancel(); cancelAlloc() }
	if err := chromedp.Do(ctx); err != nil {
		closeAll()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	var firsts []time.Duration
	for range loads {
		tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(tctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#graph g.replica")))
		var ms float64
		if err == nil {
			ms, err = chromedp.Run(tctx, chromedp.Evaluate[float64](`window.__firstDraw`))
		}
		tcancel()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("loading the dashboard: %w", err)
		}
		firsts = append(firsts, time.Duration(ms*float64(time.Millisecond)))
	}
	benchkit.Report(fmt.Sprintf("dashboard first load, %d loads", loads), firsts)
	return closeAll, nil
}
