// Package httpapi serves the daemon's HTTP endpoints: Prometheus metrics,
// liveness and readiness, the project's status, and the event records as
// JSON lines or a live Server-Sent Events stream.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

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
	// Status returns what `reconcile status -o json` prints.
	Status func(ctx context.Context) (any, error)
	// Ready reports whether the daemon is connected and has synced once,
	// and if not, why.
	Ready func() (bool, string)
}

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
		st, err := s.Status(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	mux.HandleFunc("GET /events", s.events)
	return mux
}

// events writes the recent records as JSON lines, or, for a client that
// accepts text/event-stream, the recent ones and then each new one as it
// happens.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, rec := range s.Records.Recent() {
			_ = enc.Encode(rec)
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
	send := func(rec record.Record) error {
		b, _ := json.Marshal(rec)
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", rec.Reason, b)
		return err
	}
	for _, rec := range s.Records.Recent() {
		if send(rec) != nil {
			return
		}
	}
	flusher.Flush()
	keepalive := time.NewTicker(15 * time.Second)
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
