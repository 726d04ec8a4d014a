package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// followRetry is how soon `events --follow` tries again when the daemon
// goes away (it is restarting, say).
const followRetry = time.Second

func newEventsCommand(g *globals) *cobra.Command {
	var (
		addr, service, typ string
		follow             bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print a running daemon's timeline: its records, as lines",
		Long: `events prints the records of a daemon started with --listen ADDR, oldest
first, one line each, coloured on a terminal: TIME TYPE REASON OBJECT MESSAGE.
With --follow it goes on printing each new record as it happens, like
kubectl get events -w, and reconnects by itself when the daemon restarts.

Exit code: 0 done (or interrupted while following), 3 the daemon cannot be
reached (without --follow).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ != "" && typ != string(record.Normal) && typ != string(record.Warning) {
				return withCode(exitInput, fmt.Errorf("--type %q: want Normal or Warning", typ))
			}
			p := &eventPrinter{w: g.stdout, color: logging.IsTerminal(g.stdout), service: service, typ: typ, seen: map[string]bool{}, authorize: g.authorize}
			base := "http://" + addr
			if !follow {
				return p.recent(cmd.Context(), base)
			}
			return p.follow(cmd.Context(), base, g)
		},
	}
	cmd.Flags().StringVar(&addr, "listen", "127.0.0.1:9090", "the address the daemon serves on (its --listen)")
	cmd.Flags().BoolVarP(&follow, "follow", "w", false, "keep printing records as they happen")
	cmd.Flags().StringVar(&service, "service", "", "only this service's records")
	cmd.Flags().StringVar(&typ, "type", "", "only Normal or only Warning records")
	return cmd
}

// eventPrinter prints records as lines, each once.
type eventPrinter struct {
	w             io.Writer
	color         bool
	service, typ  string
	seen          map[string]bool
	headerPrinted bool
	// authorize adds the daemon's token to a request.
	authorize func(*http.Request) error
}

func (p *eventPrinter) print(r record.Record) {
	if (p.service != "" && r.Service != p.service) || (p.typ != "" && string(r.Type) != p.typ) {
		return
	}
	key := r.Time.Format(time.RFC3339Nano) + string(r.Reason) + r.Service + r.Container
	if p.seen[key] {
		return // replayed after a reconnect
	}
	p.seen[key] = true
	if !p.headerPrinted {
		fmt.Fprintf(p.w, "%-8s  %-7s  %-24s  %-28s  %s\n", "TIME", "TYPE", "REASON", "OBJECT", "MESSAGE")
		p.headerPrinted = true
	}
	object := r.Container
	if object == "" {
		object = r.Service
	}
	if object == "" {
		object = "project"
	}
	typ := string(r.Type)
	if p.color {
		code := "32" // green
		if r.Type == record.Warning {
			code = "31" // red
		}
		typ = "\x1b[" + code + "m" + fmt.Sprintf("%-7s", typ) + "\x1b[0m"
	} else {
		typ = fmt.Sprintf("%-7s", typ)
	}
	fmt.Fprintf(p.w, "%-8s  %s  %-24s  %-28s  %s\n", r.Time.Local().Format("15:04:05"), typ, logging.Printable(string(r.Reason)), logging.Printable(object), logging.Printable(r.Message))
}

// recent prints the daemon's recent records once.
func (p *eventPrinter) recent(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
	if err != nil {
		return withCode(exitInput, fmt.Errorf("--listen: %w", err))
	}
	if err := p.authorize(req); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return withCode(exitEngine, fmt.Errorf("reading the daemon's records at %s: %w", base, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return withCode(exitEngine, fmt.Errorf("reading the daemon's records at %s: %s", base, resp.Status))
	}
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var r record.Record
		if err := dec.Decode(&r); err != nil {
			return withCode(exitInternal, fmt.Errorf("reading the daemon's records: %w", err))
		}
		p.print(r)
	}
	return nil
}

// follow streams the records until ctx ends, reconnecting every
// followRetry while the daemon is away.
func (p *eventPrinter) follow(ctx context.Context, base string, g *globals) error {
	away := false
	for ctx.Err() == nil {
		err := p.stream(ctx, base, func() {
			if away {
				g.log.Info("connected to the daemon again", "at", base)
				away = false
			}
		})
		if ctx.Err() != nil {
			break
		}
		if !away {
			g.log.Warn("the daemon is away; retrying", "at", base, "error", err)
			away = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(followRetry):
		}
	}
	return nil
}

// stream reads one Server-Sent Events connection to its end.
func (p *eventPrinter) stream(ctx context.Context, base string, connected func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?as=record", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if err := p.authorize(req); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	connected()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var r record.Record
		if err := json.Unmarshal([]byte(data), &r); err == nil {
			p.print(r)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF // the daemon closed the stream
}
