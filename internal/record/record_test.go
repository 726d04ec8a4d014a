package record

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/secrets"
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

func TestProjectRecordersShareOneHistory(t *testing.T) {
	var logs bytes.Buffer
	root := New(slog.New(slog.NewJSONHandler(&logs, nil)), clock.Real{}, 10)
	counted := map[string]int{}
	root.SetCount(func(_ Type, reason Reason, project string) { counted[project+"/"+string(reason)]++ })
	ch, stop := root.Subscribe()
	defer stop()
	shop, blog := root.For("shop", nil), root.For("blog", nil)
	root.Event(EngineConnected, "", "", "connected")
	shop.Event(ContainerExited, "api", "shop-api-1", "exited")
	blog.Event(ContainerExited, "db", "blog-db-1", "exited")
	var got []string
	for _, r := range root.Recent() {
		got = append(got, r.Project+"/"+r.Container)
	}
	if want := []string{"/", "shop/shop-api-1", "blog/blog-db-1"}; !slices.Equal(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
	if r := <-ch; r.Project != "" || (<-ch).Project != "shop" || (<-ch).Project != "blog" {
		t.Error("subscribers do not get every project's records in order")
	}
	if counted["shop/ContainerExited"] != 1 || counted["blog/ContainerExited"] != 1 || counted["/EngineConnected"] != 1 {
		t.Errorf("counts %v", counted)
	}
	if !strings.Contains(logs.String(), `"project":"shop"`) {
		t.Errorf("a project's log lines do not name it: %s", logs.String())
	}
}

// TestMaskingRecorderKeepsNoSecret: a record's message is masked before it
// is logged, kept or streamed, whatever the policy that wrote it quoted.
func TestMaskingRecorderKeepsNoSecret(t *testing.T) {
	const canary = "c4n4ry-s3cret"
	var logs bytes.Buffer
	var h secrets.Holder
	h.Store(secrets.New(canary))
	r := New(slog.New(slog.NewJSONHandler(&logs, nil)), clock.Real{}, 10).For("p", nil).Masking(&h)
	live, cancel := r.Subscribe()
	defer cancel()
	r.Event("ReloadFailed", "api", "p-api-1", `exec "curl -H `+canary+`" failed: `+canary)
	got := <-live
	for where, text := range map[string]string{"log": logs.String(), "kept": r.Recent()[0].Message, "streamed": got.Message} {
		if strings.Contains(text, canary) {
			t.Errorf("%s record prints the value: %s", where, text)
		}
		if !strings.Contains(text, "***") {
			t.Errorf("%s record %q shows no mask", where, text)
		}
	}
}
