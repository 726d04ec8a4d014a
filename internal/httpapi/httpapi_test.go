package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
)

func newServer(t *testing.T, ready bool, statusErr error) (*httptest.Server, *record.Recorder) {
	rec := record.New(slog.New(slog.DiscardHandler), clock.Real{}, 100)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "reconcile_total"})
	c.Add(3)
	reg.MustRegister(c)
	s := &Server{
		Registry: reg,
		Records:  rec,
		Status: func(_ context.Context, project string) (any, error) {
			switch project {
			case "", "shop":
				return map[string]string{"project": "shop"}, statusErr
			}
			return nil, fmt.Errorf("%w: %s", ErrNoProject, project)
		},
		Ready: func() (bool, string) { return ready, "engine not connected" },
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, rec
}

func get(t *testing.T, url string, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name      string
		ready     bool
		statusErr error
		path      string
		code      int
		contains  string
	}{
		{"metrics", true, nil, "/metrics", 200, "reconcile_total 3"},
		{"healthz", false, nil, "/healthz", 200, "ok"},
		{"ready", true, nil, "/readyz", 200, "ok"},
		{"not ready", false, nil, "/readyz", 503, "engine not connected"},
		{"status", true, nil, "/status", 200, `"project": "shop"`},
		{"status of a project", true, nil, "/status?project=shop", 200, `"project": "shop"`},
		{"status of a project not reconciled", true, nil, "/status?project=blog", 404, "no such project: blog"},
		{"status without engine", true, errors.New("engine down"), "/status", 503, "engine down"},
		{"unknown", true, nil, "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, tt.ready, tt.statusErr)
			resp, body := get(t, srv.URL+tt.path, "")
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("%s: %d %q, want %d containing %q", tt.path, resp.StatusCode, body, tt.code, tt.contains)
			}
		})
	}
}

func TestEventsAsJSONLinesAndLive(t *testing.T) {
	srv, rec := newServer(t, true, nil)
	rec.Event("ContainerMissing", "api", "shop-api-1", "replica missing")
	rec.Event("Created", "api", "shop-api-1", "created")

	_, body := get(t, srv.URL+"/events", "")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), body)
	}
	var r record.Record
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.Reason != "ContainerMissing" || r.Type != "Warning" {
		t.Fatalf("first line %q: %+v %v", lines[0], r, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []string
	go func() {
		time.Sleep(100 * time.Millisecond)
		rec.Event("Started", "web", "shop-web-1", "started")
	}()
	for sc.Scan() && len(events) < 3 {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, name)
		}
	}
	if strings.Join(events, ",") != "ContainerMissing,Created,Started" {
		t.Fatalf("stream events %v", events)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9090": true, "localhost:9090": true, "[::1]:9090": true,
		"0.0.0.0:9090": false, ":9090": false, "10.0.0.1:80": false, "bad": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestEventsOfOneProject(t *testing.T) {
	srv, rec := newServer(t, true, nil)
	rec.Event("EngineConnected", "", "", "connected")
	rec.For("shop", nil).Event("ContainerExited", "api", "shop-api-1", "exited")
	rec.For("blog", nil).Event("ContainerExited", "db", "blog-db-1", "exited")
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"", "shop", "blog"}},
		{"?project=shop", []string{"shop"}},
		{"?project=none", nil},
	}
	for _, tt := range tests {
		_, body := get(t, srv.URL+"/events"+tt.query, "")
		var got []string
		for line := range strings.SplitSeq(strings.TrimSpace(body), "\n") {
			if line == "" {
				continue
			}
			var r record.Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			got = append(got, r.Project)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("/events%s: projects %q, want %q", tt.query, got, tt.want)
		}
	}
}

// TestAStreamedValueCannotWriteAnEventOfItsOwn: /status/stream echoes an
// unknown ?project= in its `unavailable` event, and the dashboard copies
// its own ?project= there: a CR or LF in it used to end the data line and
// let a crafted link draw a status of the attacker's making.
func TestAStreamedValueCannotWriteAnEventOfItsOwn(t *testing.T) {
	srv, _ := newServer(t, true, nil)
	for _, evil := range []string{"x\revent: status\rdata: {\"project\":\"pwned\"}\r\r", "x\nevent: status\ndata: {}\n\n", "x\r\nevent: status"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/status/stream?project="+url.QueryEscape(evil), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		sc.Split(scanSSELines)
		for sc.Scan() && len(lines) < 6 {
			lines = append(lines, sc.Text())
		}
		cancel()
		resp.Body.Close()
		for _, l := range lines {
			if strings.HasPrefix(l, "event: status") || strings.Contains(l, "pwned") && !strings.HasPrefix(l, "data: ") {
				t.Errorf("%q wrote a line of its own into the stream: %q", evil, lines)
			}
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return l == "event: unavailable" }) {
			t.Errorf("%q: no unavailable event: %q", evil, lines)
		}
	}
}

// scanSSELines splits an event stream as a browser does: a line ends at
// CR, LF or CRLF.
func scanSSELines(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\n' {
			return i + 1, data[:i], nil
		}
		if b == '\r' {
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if atEOF {
				return i + 1, data[:i], nil
			}
			return 0, nil, nil // a LF may follow
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// TestARebindingPageCannotReadTheDaemon: a page of another site whose name
// was rebound to the daemon's address sends that name as Host; every
// endpoint refuses it, and answers loopback names and the allowed ones.
func TestARebindingPageCannotReadTheDaemon(t *testing.T) {
	rec := record.New(slog.New(slog.DiscardHandler), clock.Real{}, 10)
	s := &Server{Registry: prometheus.NewRegistry(), Records: rec,
		Status:       func(context.Context, string) (any, error) { return map[string]string{"project": "shop"}, nil },
		Ready:        func() (bool, string) { return true, "" },
		AllowedHosts: []string{"reconcile.internal"},
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:9090", true},
		{"localhost:9090", true},
		{"LOCALHOST", true},
		{"[::1]:9090", true},
		{"reconcile.internal:9090", true},
		{"attacker.example:9090", false},
		{"attacker.example", false},
		{"10.0.0.5:9090", false},
	} {
		for _, path := range []string{"/status", "/events", "/metrics", "/healthz", "/reasons"} {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			req.Host = tt.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ok := resp.StatusCode == http.StatusOK; ok != tt.ok {
				t.Errorf("Host %s, %s: %d, want answered %v", tt.host, path, resp.StatusCode, tt.ok)
			}
		}
	}
}
