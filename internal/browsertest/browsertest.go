// Package browsertest drives Debian's chromium for the tests that look at
// the dashboard as a user does: a tab, what it logged and requested,
// JavaScript evaluated in it, and screenshots kept as test artifacts.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Path finds Debian's chromium. Under CI=true a missing browser fails the
// test (CI installs it); elsewhere the test is skipped, saying how to get
// one.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium: the browser test needs it (CI installs Debian's chromium)")
	}
	t.Skip("no chromium to drive: sudo apt-get install chromium")
	return ""
}

// Page is a browser tab, with what it logged and requested.
type Page struct {
	Ctx      context.Context
	mu       sync.Mutex
	console  []string // errors and exceptions
	requests []string // method and URL of every request the page made
}

// Open starts the browser with a window of width×height and one tab;
// both end with the test.
func Open(t testing.TB, width, height int) *Page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path(t)),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	p := &Page{Ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser and its tab
		t.Fatalf("starting the browser: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p.console = append(p.console, "console.error: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			p.console = append(p.console, fmt.Sprintf("exception: %s at %s:%d", e.ExceptionDetails.Text, e.ExceptionDetails.URL, e.ExceptionDetails.LineNumber))
		case *network.EventRequestWillBeSent:
			p.requests = append(p.requests, e.Request.Method+" "+e.Request.URL)
		}
	})
	if err != nil {
		t.Fatalf("listening to the browser: %v", err)
	}
	return p
}

// Console is what the page logged as errors and exceptions so far.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Requests is every request the page made so far, "METHOD URL".
func (p *Page) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// Eval runs a JavaScript expression in the page and returns its value.
func Eval[T any](t testing.TB, p *Page, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.Ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// Screenshot writes the whole page as a PNG named name among the test's
// artifacts, and returns its path.
func (p *Page) Screenshot(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.Ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
	return path
}
