package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// fakeSender keeps the messages; block, when set, holds every send until
// it is closed.
type fakeSender struct {
	mu    sync.Mutex
	msgs  []string
	block chan struct{}
}

func (f *fakeSender) Send(msg string, _ *types.Params) []error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msg)
	return []error{nil}
}

func (f *fakeSender) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.msgs...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func rec(reason record.Reason, container, msg string) record.Record {
	return record.Record{Type: reason.Type(), Reason: reason, Project: "shop", Service: "api", Container: container, Message: msg}
}

// TestAStormIsOneMessageAndASummary: a hundred exits of one replica in a
// window are one message at once and one summary with the count when the
// window ends; Normal records are not sent by default.
func TestAStormIsOneMessageAndASummary(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	s := &fakeSender{}
	n := &Notifier{Senders: []Sender{s}, Filter: DefaultFilter, Window: time.Minute, Clock: clk}
	records := make(chan record.Record)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx, records); close(done) }()
	for i := range 100 {
		records <- rec(record.ContainerExited, "shop-api-1", "exited (code 1)")
		records <- rec(record.Started, "shop-api-1", "started") // Normal: not sent
		if i == 0 {
			records <- rec(record.ContainerExited, "shop-api-2", "exited (code 1)")
		}
	}
	waitFor(t, "the first messages", func() bool { return len(s.messages()) == 2 })
	clk.Advance(time.Minute + time.Second)
	waitFor(t, "the summary", func() bool { return len(s.messages()) == 3 })
	cancel()
	<-done
	msgs := s.messages()
	if !strings.Contains(msgs[0], "reconcile shop: Warning ContainerExited on shop-api-1: exited (code 1)") || !strings.Contains(msgs[2], "99 more time(s)") {
		t.Errorf("messages %q", msgs)
	}
	for _, m := range msgs {
		if strings.Contains(m, "Started") {
			t.Errorf("a Normal record was sent by default: %q", m)
		}
	}
}

// TestAReceiverThatHangsNeverBlocksTheDaemon: with every send stuck, the
// notifier keeps reading records (the recorder never waits for it) and
// drops what its outbox cannot hold, counting it.
func TestAReceiverThatHangsNeverBlocksTheDaemon(t *testing.T) {
	s := &fakeSender{block: make(chan struct{})}
	ok := &fakeSender{}
	n := &Notifier{Senders: []Sender{s, ok}, Filter: Filter{}, Window: time.Hour}
	records := make(chan record.Record)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx, records); close(done) }()
	fed := make(chan struct{})
	go func() {
		for i := range 1000 {
			records <- rec(record.ContainerExited, "c"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "exited")
		}
		close(fed)
	}()
	select {
	case <-fed:
	case <-time.After(5 * time.Second):
		t.Fatal("the notifier stopped reading records while its receiver hung")
	}
	if n.Dropped.Load() == 0 {
		t.Error("nothing dropped although the outbox cannot hold 1000 messages")
	}
	// the receiver that answers is not held by the one that hangs
	waitFor(t, "the other receiver's messages", func() bool { return len(ok.messages()) >= outboxSize })
	close(s.block)
	cancel()
	<-done
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		specs   []string
		allow   []record.Record
		deny    []record.Record
		wantErr string
	}{
		{specs: nil, allow: []record.Record{rec(record.ContainerExited, "a", "")}, deny: []record.Record{rec(record.Started, "a", "")}},
		{specs: []string{"reason=RestartBudgetExhausted,HookFailed"}, allow: []record.Record{rec(record.HookFailed, "a", "")}, deny: []record.Record{rec(record.ContainerExited, "a", "")}},
		{specs: []string{"type=Normal", "project=shop"}, allow: []record.Record{rec(record.Started, "a", "")}, deny: []record.Record{rec(record.ContainerExited, "a", "")}},
		{specs: []string{"project=other"}, deny: []record.Record{rec(record.ContainerExited, "a", "")}},
		{specs: []string{"reason=NoSuchReason"}, wantErr: "no reason"},
		{specs: []string{"colour=red"}, wantErr: "key is type"},
		{specs: []string{"type=Error"}, wantErr: "Normal or Warning"},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.specs)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.specs, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range tt.allow {
			if !f.allows(r) {
				t.Errorf("%q denies %s", tt.specs, r.Reason)
			}
		}
		for _, r := range tt.deny {
			if f.allows(r) {
				t.Errorf("%q allows %s", tt.specs, r.Reason)
			}
		}
	}
}

// failingSender fails every send with what shoutrrr's senders say: the
// request's URL, token and all.
type failingSender struct{ url string }

func (f failingSender) Send(string, *types.Params) []error {
	return []error{fmt.Errorf(`failed to send discord notification: Post "%s": dial tcp: connection refused`, f.url)}
}

// TestAFailedSendNeverPrintsTheReceiversURL: the Discord webhook's token
// was printed in the warning of a failed send.
func TestAFailedSendNeverPrintsTheReceiversURL(t *testing.T) {
	const canary = "tok3n-canary-8f2e"
	var logs strings.Builder
	var mu sync.Mutex
	n := &Notifier{
		Senders: []Sender{&fakeSender{}, failingSender{url: "https://discord.com/api/webhooks/123/" + canary}},
		Clock:   clock.NewFake(time.Unix(1_000_000, 0)),
		Log:     slog.New(slog.NewTextHandler(syncWriter{&logs, &mu}, nil)),
	}
	recs := make(chan record.Record, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx, recs); close(done) }()
	recs <- rec(record.RestartBudgetExhausted, "shop-api-1", "left down")
	clk := n.Clock.(*clock.Fake)
	waitFor(t, "the send given up", func() bool {
		clk.Advance(time.Minute)
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "notification not sent")
	})
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if out := logs.String(); strings.Contains(out, canary) || !strings.Contains(out, "--notify #2") || !strings.Contains(out, "https://<redacted>") {
		t.Errorf("the warning must name the receiver by position and never print its URL:\n%s", out)
	}
}

type syncWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
