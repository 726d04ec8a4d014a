package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Token files: a token shorter than MinTokenBytes is too easy to guess, and a
// file larger than maxTokenFileBytes is not a token.
const (
	MinTokenBytes     = 16
	maxTokenFileBytes = 4096
	// TokenCookie carries the token for a browser, which cannot set a header
	// on an EventSource: set by visiting the dashboard once as /?token=...
	TokenCookie = "reconcile_token"
)

// ReadToken reads a bearer token from path (opened without following a
// link or blocking on a FIFO): a regular file of at most 4 KiB
// whose content, trimmed, is at least MinTokenBytes long. Its content never
// appears in an error.
func ReadToken(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("opening the token file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("the token file %s is not a regular file (%s)", path, info.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("the token file %s is larger than %d bytes", path, maxTokenFileBytes)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenBytes {
		return "", fmt.Errorf("the token in %s is shorter than %d characters", path, MinTokenBytes)
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("the token in %s holds spaces or control characters", path)
	}
	return tok, nil
}

// ErrBeyondLoopback refuses an address beyond loopback with no token.
var ErrBeyondLoopback = errors.New("binds beyond loopback without a token: give --listen-token-file (or --listen-insecure to serve everyone who can reach it)")

// open lists what answers without a token: liveness, which says nothing but
// "ok", for probes that cannot send a header.
// /hooks/git is signed by the forge with the webhook's own secret
// (gitsource.Webhook), which is its authentication: a forge sends no
// bearer token.
var open = map[string]bool{"/healthz": true, GitHookPath: true}

// auth refuses a request without the token (Authorization: Bearer, or the
// cookie a browser got from /?token=); with no token set, it lets all pass.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.Token == "" {
		return next
	}
	want := []byte(s.Token)
	ok := func(got string) bool { return subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if open[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		if bearer, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && ok(bearer) {
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(TokenCookie); err == nil && ok(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		// the dashboard's link: the token is moved into a cookie the page's
		// own requests carry, and out of the address bar
		if q := r.URL.Query(); r.URL.Path == "/" && q.Has("token") && ok(q.Get("token")) {
			http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: s.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			http.Redirect(w, r, (&url.URL{Path: "/", RawQuery: q.Encode()}).String(), http.StatusSeeOther)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="reconcile"`)
		http.Error(w, "a token is required (--listen-token-file): Authorization: Bearer <token>", http.StatusUnauthorized)
	})
}

// Stream caps: each live stream holds a connection and a subscription for
// as long as the client likes.
const (
	DefaultMaxStreams          = 64
	DefaultMaxStreamsPerClient = 8
)

// streams counts the live streams open, in all and per client address.
type streams struct {
	mu        sync.Mutex
	total     int
	perClient map[string]int
}

// acquire takes a place for a stream of client, or says no.
func (s *streams) acquire(client string, max, perClient int) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perClient == nil {
		s.perClient = map[string]int{}
	}
	if s.total >= max || s.perClient[client] >= perClient {
		return nil, false
	}
	s.total++
	s.perClient[client]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total--
		if s.perClient[client]--; s.perClient[client] <= 0 {
			delete(s.perClient, client)
		}
	}, true
}

// limitStreams serves a stream only while the caps allow another.
func (s *Server) limitStreams(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !streamRequest(r) {
			next(w, r)
			return
		}
		max, per := s.MaxStreams, s.MaxStreamsPerClient
		if max <= 0 {
			max = DefaultMaxStreams
		}
		if per <= 0 {
			per = DefaultMaxStreamsPerClient
		}
		client, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			client = r.RemoteAddr
		}
		release, ok := s.streams.acquire(client, max, per)
		if !ok {
			w.Header().Set("Retry-After", "5")
			http.Error(w, fmt.Sprintf("too many live streams (at most %d per client, %d in all)", per, max), http.StatusTooManyRequests)
			return
		}
		defer release()
		next(w, r)
	}
}

// streamRequest says whether r asks for a live stream.
func streamRequest(r *http.Request) bool {
	return r.URL.Path == "/status/stream" || strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}
