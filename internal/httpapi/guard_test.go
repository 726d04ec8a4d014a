package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
)

const testToken = "t0ken-of-twenty-chars"

func guarded(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	s.Registry = prometheus.NewRegistry()
	s.Records = record.New(slog.New(slog.DiscardHandler), clock.Real{}, 10)
	s.Status = func(context.Context, string) (any, error) { return map[string]string{"project": "shop"}, nil }
	s.Ready = func() (bool, string) { return true, "" }
	s.Page = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("dashboard")) })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func TestTokenIsRequiredOfEveryEndpointButLiveness(t *testing.T) {
	srv := guarded(t, &Server{Token: testToken})
	for _, tt := range []struct {
		path, auth string
		want       int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 401},
		{"/status", "", 401},
		{"/metrics", "", 401},
		{"/events", "", 401},
		{"/reasons", "", 401},
		{"/", "", 401},
		{"/status", "Bearer wrong-token-of-twenty", 401},
		{"/status", "Bearer " + testToken[:len(testToken)-1], 401},
		{"/status", "Basic " + testToken, 401},
		{"/status", "Bearer " + testToken, 200},
		{"/metrics", "Bearer " + testToken, 200},
		{"/events", "Bearer " + testToken, 200},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s with %q: %d, want %d", tt.path, tt.auth, resp.StatusCode, tt.want)
		}
		if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", tt.path)
		}
	}
}

// TestGitHookAnswersWithoutTheBearerToken: a forge cannot send the bearer
// token; the hook is reached without it and checks its own signature (a
// GET is refused by the hook, not by the dashboard's route).
func TestGitHookAnswersWithoutTheBearerToken(t *testing.T) {
	poked := 0
	hook := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		poked++
		w.WriteHeader(http.StatusAccepted)
	})
	srv := guarded(t, &Server{Token: testToken, GitHook: hook, Page: http.NotFoundHandler()})
	for _, tt := range []struct {
		method string
		want   int
	}{{"POST", 202}, {"GET", 405}} {
		resp, err := http.DefaultClient.Do(must(http.NewRequest(tt.method, srv.URL+GitHookPath, nil)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s without a token: %d, want %d", tt.method, GitHookPath, resp.StatusCode, tt.want)
		}
	}
	if poked != 1 {
		t.Errorf("the hook ran %d times, want 1", poked)
	}
	// without a git source there is no hook, and nothing open beside /healthz
	plain := guarded(t, &Server{Token: testToken})
	resp, err := http.Post(plain.URL+GitHookPath, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 && resp.StatusCode != 405 {
		t.Errorf("POST %s without a git source: %d, want no such route (404 or 405)", GitHookPath, resp.StatusCode)
	}
}

func must(r *http.Request, err error) *http.Request {
	if err != nil {
		panic(err)
	}
	return r
}

// TestDashboardLinkMovesTheTokenIntoACookie: a browser opens /?token=...
// once; the page and its streams then carry an HttpOnly cookie, and the
// token leaves the address bar.
func TestDashboardLinkMovesTheTokenIntoACookie(t *testing.T) {
	srv := guarded(t, &Server{Token: testToken})
	jar, _ := cookiejar.New(nil)
	var redirectedTo string
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		redirectedTo = req.URL.String()
		return nil
	}}
	resp, err := c.Get(srv.URL + "/?project=shop&token=" + testToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(redirectedTo, "token") || !strings.Contains(redirectedTo, "project=shop") {
		t.Fatalf("status %d, redirected to %q: want the page, the token gone from the address and the rest kept", resp.StatusCode, redirectedTo)
	}
	for _, path := range []string{"/status", "/events"} {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s with the cookie: %d", path, resp.StatusCode)
		}
	}
	bad, err := http.Get(srv.URL + "/?token=not-the-token-at-all")
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != 401 {
		t.Errorf("a wrong token in the link: %d, want 401", bad.StatusCode)
	}
}

func TestStreamsAreCapped(t *testing.T) {
	srv := guarded(t, &Server{MaxStreams: 3, MaxStreamsPerClient: 2})
	open := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first, second := open("/status/stream"), open("/events")
	if first.StatusCode != 200 || second.StatusCode != 200 {
		t.Fatalf("the first two streams: %d %d", first.StatusCode, second.StatusCode)
	}
	third := open("/status/stream")
	third.Body.Close()
	if third.StatusCode != http.StatusTooManyRequests || third.Header.Get("Retry-After") == "" {
		t.Errorf("a third stream of one client: %d, want 429 with Retry-After", third.StatusCode)
	}
	// plain /events (JSON lines, not a stream) is not counted
	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	plain, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != 200 {
		t.Errorf("plain /events while streams are at the cap: %d", plain.StatusCode)
	}
	first.Body.Close()
	waitFor(t, func() bool {
		r := open("/status/stream")
		defer r.Body.Close()
		return r.StatusCode == 200
	})
	second.Body.Close()
}

func TestStreamCapInAll(t *testing.T) {
	var s streams
	var releases []func()
	for i := range 3 {
		rel, ok := s.acquire(string(rune('a'+i)), 3, 2)
		if !ok {
			t.Fatalf("stream %d refused under the cap", i)
		}
		releases = append(releases, rel)
	}
	if _, ok := s.acquire("d", 3, 2); ok {
		t.Fatal("a fourth stream in all accepted over a cap of 3")
	}
	releases[0]()
	if _, ok := s.acquire("d", 3, 2); !ok {
		t.Fatal("a stream refused after one was released")
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", testToken+"\n")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path string
		ok         bool
	}{
		{"a token and a newline", good, true},
		{"too short", write("short", "abc\n"), false},
		{"spaces inside", write("spaced", "a token with spaces inside\n"), false},
		{"too large", write("large", strings.Repeat("x", 5000)), false},
		{"a link", link, false},
		{"a FIFO", fifo, false},
		{"missing", filepath.Join(dir, "missing"), false},
	} {
		tok, err := ReadToken(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
		if tt.ok && tok != testToken {
			t.Errorf("%s: token %q", tt.name, tok)
		}
		if err != nil && strings.Contains(err.Error(), "xxxxxxxx") {
			t.Errorf("%s: the error quotes the file: %v", tt.name, err)
		}
	}
}

// waitFor polls cond until it holds, failing after 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
