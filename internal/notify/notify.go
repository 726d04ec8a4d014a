// Package notify tells people about the daemon's records through
// notification URLs (generic webhooks, ntfy, Slack, Discord, Teams, e-mail
// and the rest), sent by shoutrrr. A storm is one message, not a thousand:
// a reason on one container is sent once per window, and what followed in
// the window is summed up in one more message with a count. Sending never
// blocks the daemon: records wait in a bounded outbox, and a receiver that
// hangs only delays the messages behind it.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nicholas-fedor/shoutrrr"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// Defaults.
const (
	// DefaultWindow is how long a reason on one container is not sent again.
	DefaultWindow = 5 * time.Minute
	// outboxSize bounds the messages waiting to be sent; more are dropped
	// and counted.
	outboxSize = 64
	// sendAttempts and sendBackoff: a failed send is tried again after 1 s,
	// 2 s, then given up (and logged).
	sendAttempts = 3
	sendBackoff  = time.Second
)

// Sender is what sends one message to every URL: shoutrrr's router.
type Sender interface {
	Send(message string, params *types.Params) []error
}

// NewSenders checks the URLs (an unknown scheme, a malformed URL) and
// returns a shoutrrr router for each: one receiver that hangs must not
// hold the others' messages. A URL often holds a token (a Slack or Discord
// webhook's): an error names the URL by its position and scheme only.
func NewSenders(urls []string) ([]Sender, error) {
	out := make([]Sender, 0, len(urls))
	for i, u := range urls {
		s, err := shoutrrr.CreateSender(u)
		if err != nil {
			scheme, _, _ := strings.Cut(u, ":")
			return nil, fmt.Errorf("--notify #%d (%s:...): not a notification URL shoutrrr can send to", i+1, scheme)
		}
		out = append(out, s)
	}
	return out, nil
}

// Filter chooses the records sent. Empty fields allow all; a record must
// pass every field that is set.
type Filter struct {
	Types    []record.Type
	Reasons  []record.Reason
	Projects []string
}

// urlish is anything a sender's error may quote of its receiver's address:
// a URL (scheme://...), whose path or user part carries a token.
var urlish = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"']+`)

// withoutURLs cuts every URL out of a sender's error, keeping its scheme.
func withoutURLs(s string) string {
	return urlish.ReplaceAllStringFunc(s, func(u string) string {
		scheme, _, _ := strings.Cut(u, "://")
		return scheme + "://<redacted>"
	})
}

// DefaultFilter sends Warning records only.
var DefaultFilter = Filter{Types: []record.Type{record.Warning}}

// ParseFilter reads --notify-filter values: key=value[,value...] with key
// type, reason or project; given several times, the keys add up.
func ParseFilter(specs []string) (Filter, error) {
	if len(specs) == 0 {
		return DefaultFilter, nil
	}
	var f Filter
	for _, spec := range specs {
		key, values, ok := strings.Cut(spec, "=")
		if !ok || values == "" {
			return Filter{}, fmt.Errorf("--notify-filter %q: want key=value[,value...] with key type, reason or project", spec)
		}
		for _, v := range strings.Split(values, ",") {
			v = strings.TrimSpace(v)
			switch key {
			case "type":
				if v != string(record.Normal) && v != string(record.Warning) {
					return Filter{}, fmt.Errorf("--notify-filter %q: type is Normal or Warning", spec)
				}
				f.Types = append(f.Types, record.Type(v))
			case "reason":
				if !record.Reason(v).Known() {
					return Filter{}, fmt.Errorf("--notify-filter %q: no reason %q (docs/records.md lists them)", spec, v)
				}
				f.Reasons = append(f.Reasons, record.Reason(v))
			case "project":
				f.Projects = append(f.Projects, v)
			default:
				return Filter{}, fmt.Errorf("--notify-filter %q: key is type, reason or project", spec)
			}
		}
	}
	return f, nil
}

func (f Filter) allows(r record.Record) bool {
	return (len(f.Types) == 0 || slices.Contains(f.Types, r.Type)) &&
		(len(f.Reasons) == 0 || slices.Contains(f.Reasons, r.Reason)) &&
		(len(f.Projects) == 0 || slices.Contains(f.Projects, r.Project))
}

// Notifier turns records into messages, sent to each of Senders.
type Notifier struct {
	Senders []Sender
	Filter  Filter
	// Window is how long one reason on one container is not sent again
	// (DefaultWindow when zero).
	Window time.Duration
	Clock  clock.Clock
	Log    *slog.Logger

	// Dropped counts messages dropped because the outbox was full.
	Dropped atomic.Int64
	// Sent counts messages sent (per receiver).
	Sent atomic.Int64
}

// burst is one reason on one container within a window.
type burst struct {
	first record.Record
	until time.Time
	more  int // records suppressed since the first
	last  record.Record
}

// Run reads records until ctx ends or the channel closes.
func (n *Notifier) Run(ctx context.Context, records <-chan record.Record) {
	clk := clock.Or(n.Clock)
	window := n.Window
	if window <= 0 {
		window = DefaultWindow
	}
	// one outbox and one sending goroutine per receiver
	outboxes := make([]chan string, len(n.Senders))
	var sending sync.WaitGroup
	for i, s := range n.Senders {
		outboxes[i] = make(chan string, outboxSize)
		sending.Go(func() {
			for msg := range outboxes[i] {
				n.send(ctx, clk, i, s, msg)
			}
		})
	}
	defer func() {
		for _, o := range outboxes {
			close(o)
		}
		sending.Wait()
	}()
	post := func(msg string) {
		for _, o := range outboxes {
			select {
			case o <- msg:
			default:
				n.Dropped.Add(1) // never block the daemon for a message
			}
		}
	}

	bursts := map[string]*burst{}
	// flush sends the summary of each window that ended.
	flush := func(now time.Time) {
		for _, key := range slices.Sorted(maps.Keys(bursts)) {
			b := bursts[key]
			if now.Before(b.until) {
				continue
			}
			if b.more > 0 {
				post(n.summary(b, window))
			}
			delete(bursts, key)
		}
	}
	tick := clk.After(window / 4)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			flush(clk.Now())
			tick = clk.After(window / 4)
		case r, ok := <-records:
			if !ok {
				return
			}
			if !n.Filter.allows(r) {
				continue
			}
			now := clk.Now()
			flush(now)
			key := r.Project + "|" + string(r.Reason) + "|" + r.Service + "|" + r.Container
			if b, ok := bursts[key]; ok {
				b.more++
				b.last = r
				continue
			}
			bursts[key] = &burst{first: r, until: now.Add(window), last: r}
			post(n.message(r))
		}
	}
}

// send delivers one message to receiver i, trying again with backoff. A
// failure names the receiver by its position, never by its URL, which
// carries its token: a sender's error that quotes a URL has it cut out.
func (n *Notifier) send(ctx context.Context, clk clock.Clock, i int, s Sender, msg string) {
	log := logging.Or(n.Log)
	delay := sendBackoff
	for attempt := 1; ; attempt++ {
		var failed []error
		for _, err := range s.Send(msg, &types.Params{}) {
			if err != nil {
				failed = append(failed, err)
			}
		}
		if len(failed) == 0 {
			n.Sent.Add(1)
			return
		}
		if attempt == sendAttempts {
			log.Warn("notification not sent", "receiver", fmt.Sprintf("--notify #%d", i+1), "attempts", attempt, "error", withoutURLs(failed[0].Error()))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-clk.After(delay):
		}
		delay *= 2
	}
}

// message says one record: built from the record's fields only, which
// never hold a secret value.
func (n *Notifier) message(r record.Record) string {
	return fmt.Sprintf("reconcile %s: %s %s on %s: %s", origin(r), r.Type, r.Reason, subject(r), r.Message)
}

func (n *Notifier) summary(b *burst, window time.Duration) string {
	return fmt.Sprintf("reconcile %s: %s %s on %s: %d more time(s) in %s; the last: %s",
		origin(b.first), b.first.Type, b.first.Reason, subject(b.first), b.more, window, b.last.Message)
}

// origin names the project a record is about, or the agent itself.
func origin(r record.Record) string {
	if r.Project == "" {
		return "agent"
	}
	return r.Project
}

func subject(r record.Record) string {
	switch {
	case r.Container != "":
		return r.Container
	case r.Service != "":
		return "service " + r.Service
	}
	return "the project"
}
