// Package httpapi serves the daemon's HTTP endpoints: Prometheus metrics,
// liveness and readiness, the project's status, and the event records as
// JSON lines or a live Server-Sent Events stream.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reconcile-dev/reconcile/internal/record"
)

// Records is what /events reads.
type Records interface {
	Recent() []record.Record
	Subscribe() (<-chan record.Record, func())
}

// Server holds what the endpoints need.
type Server struct {
	Registry *prometheus.Registry
	Records  Records
	// Status returns what `reconcile status -o json` prints: of project
	// (?project=), or of every project the daemon reconciles when project
	// is "". An error wrapping ErrNoProject is a 404.
	Status func(ctx context.Context, project string) (any, error)
	// Ready reports whether the daemon is connected and has synced once,
	// and if not, why.
	Ready func() (bool, string)
	// LiveStatus, when set, is what /status/stream sends: a status from
	// what the daemon already knows, without asking the engine (an inspect
	// waits while the engine starts that container). Status otherwise.
	LiveStatus func(ctx context.Context, project string) (any, error)
	// Changes, when set, wakes /status/stream; records wake it too.
	Changes *Changes
	// Page, when set, is served at / (the dashboard).
	Page http.Handler
	// AllowedHosts are the Host names (no port) requests may name besides
	// the loopback ones (localhost, 127.0.0.1, ::1): the listen address's,
	// and --allowed-hosts. Any other is refused, so that a page of another
	// site whose name was rebound to this address cannot read it.
	AllowedHosts []string
	// Token, when set, is required of every request but /healthz and
	// the git webhook.
	Token string
	// GitHook, when set, is served at GitHookPath: a forge's push webhook,
	// which checks its own signature.
	GitHook http.Handler
	// MaxStreams and MaxStreamsPerClient cap the live streams (/events as
	// SSE, /status/stream) open at once, in all and per client address
	// (DefaultMaxStreams, DefaultMaxStreamsPerClient when zero).
	MaxStreams, MaxStreamsPerClient int

	streams streams
}

// GitHookPath is where a forge's push webhook is sent (--git).
const GitHookPath = "/hooks/git"

// ErrNoProject is what Status wraps for a ?project= the daemon does not
// reconcile.
var ErrNoProject = errors.New("no such project")

// sseLine is text made safe for one `data:` line of an event stream: a CR
// or LF (or any other control character) would end the line there and let
// what follows, a `?project=` value echoed in an error, write an event of
// its own into the page.
func sseLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// Pacing of the live streams: a burst of changes is one status sent, at
// most every statusDebounce; statusRefresh re-sends it regardless, for
// what moves with time alone; streamRetry is how soon a browser reconnects.
const (
	statusDebounce = 100 * time.Millisecond
	statusRefresh  = 5 * time.Second
	keepAlive      = 15 * time.Second
	streamRetry    = 1000 // milliseconds
)

// Handler routes the endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := s.Ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context(), r.URL.Query().Get("project"))
		if errors.Is(err, ErrNoProject) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	mux.HandleFunc("GET /events", s.limitStreams(s.events))
	mux.HandleFunc("GET /status/stream", s.limitStreams(s.statusStream))
	mux.HandleFunc("GET /reasons", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(record.Catalogue)
	})
	if s.GitHook != nil {
		// by method, beside "GET /": the hook answers a GET itself (405)
		mux.Handle("POST "+GitHookPath, s.GitHook)
		mux.Handle("GET "+GitHookPath, s.GitHook)
	}
	if s.Page != nil {
		mux.Handle("GET /", s.Page)
	}
	return s.hostCheck(s.auth(mux))
}

// hostCheck refuses a request whose Host is neither a loopback name nor an
// allowed one: DNS rebinding makes a browser send another site's name to
// this address, and the answer would be that site's to read.
func (s *Server) hostCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(strings.ToLower(host), "[]")
		ok := host == "localhost" || slices.ContainsFunc(s.AllowedHosts, func(a string) bool { return strings.EqualFold(a, host) })
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			ok = true
		}
		if !ok {
			http.Error(w, "host "+sseLine(r.Host)+" is not allowed (--allowed-hosts)", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusStream sends the status as Server-Sent Events: at once, then each
// time it changes (woken by Changes and by records, looked at no more than
// every statusDebounce), and every statusRefresh. It computes nothing while
// nobody is connected.
func (s *Server) statusStream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	var changed <-chan struct{}
	if s.Changes != nil {
		ch, cancel := s.Changes.Subscribe()
		defer cancel()
		changed = ch
	}
	records, cancelRecords := s.Records.Subscribe()
	defer cancelRecords()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", streamRetry); err != nil {
		return
	}
	status := s.Status
	if s.LiveStatus != nil {
		status = s.LiveStatus
	}
	project := r.URL.Query().Get("project")
	var last []byte
	send := func(force bool) error {
		st, err := status(r.Context(), project)
		if err != nil {
			_, err = fmt.Fprintf(w, "event: unavailable\ndata: %s\n\n", sseLine(err.Error()))
			flusher.Flush()
			return err
		}
		b, _ := json.Marshal(st)
		if !force && string(b) == string(last) {
			return nil
		}
		last = b
		if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", b); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	if send(true) != nil {
		return
	}
	refresh := time.NewTicker(statusRefresh)
	defer refresh.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case _, ok := <-records:
			if !ok {
				return
			}
		case <-debounce:
			debounce = nil
			if send(false) != nil && r.Context().Err() != nil {
				return
			}
			continue
		case <-refresh.C:
			if send(false) != nil && r.Context().Err() != nil {
				return
			}
			continue
		}
		if debounce == nil {
			debounce = time.After(statusDebounce)
		}
	}
}

// events writes the recent records as JSON lines, or, for a client that
// accepts text/event-stream, the recent ones and then each new one as it
// happens.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	project := r.URL.Query().Get("project")
	wanted := func(rec record.Record) bool { return project == "" || rec.Project == project }
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, rec := range s.Records.Recent() {
			if wanted(rec) {
				_ = enc.Encode(rec)
			}
		}
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	live, cancel := s.Records.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	// ?as=record names every event "record", for a reader that listens
	// for one name (the dashboard's EventSource); by default the name is
	// the record's reason
	named := r.URL.Query().Get("as") != "record"
	send := func(rec record.Record) error {
		if !wanted(rec) {
			return nil
		}
		b, _ := json.Marshal(rec)
		name := "record"
		if named {
			name = string(rec.Reason)
		}
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		return err
	}
	for _, rec := range s.Records.Recent() {
		if send(rec) != nil {
			return
		}
	}
	flusher.Flush()
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", streamRetry); err != nil {
		return
	}
	keepalive := time.NewTicker(keepAlive)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case rec, ok := <-live:
			if !ok || send(rec) != nil {
				return
			}
			flusher.Flush()
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// Loopback reports whether addr (host:port) binds only the loopback
// interface; the daemon warns otherwise, since the endpoints have no
// authentication.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
