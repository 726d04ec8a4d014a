package record

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

func TestRecorderLogsKeepsAndStreams(t *testing.T) {
	var logs bytes.Buffer
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := New(slog.New(slog.NewJSONHandler(&logs, nil)), clk, 2)
	live, cancel := r.Subscribe()
	defer cancel()

	r.Event("ContainerMissing", "api", "p-api-1", "replica missing (1 of 2 exist)")
	r.Event("Created", "api", "p-api-2", "created")
	r.Event("Started", "web", "p-web-1", "started")

	recent := r.Recent()
	if len(recent) != 2 || recent[0].Reason != "Created" || recent[1].Reason != "Started" {
		t.Fatalf("kept %+v, want the last two", recent)
	}
	if !recent[0].Time.Equal(clk.Now()) {
		t.Errorf("time %s, want the clock's", recent[0].Time)
	}
	for _, want := range []Reason{"ContainerMissing", "Created", "Started"} {
		select {
		case got := <-live:
			if got.Reason != want {
				t.Errorf("live record %s, want %s", got.Reason, want)
			}
		case <-time.After(time.Second):
			t.Fatalf("no live record %s", want)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3", len(lines))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["level"] != "WARN" || first["reason"] != "ContainerMissing" || first["service"] != "api" || first["container"] != "p-api-1" {
		t.Errorf("log line %v", first)
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	r := New(slog.New(slog.DiscardHandler), clock.Real{}, 10)
	_, cancel := r.Subscribe()
	done := make(chan struct{})
	go func() {
		for range 500 {
			r.Event("Started", "s", "", "m")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("recording blocked on a subscriber that does not read")
	}
	cancel()
	cancel() // twice is harmless
}
