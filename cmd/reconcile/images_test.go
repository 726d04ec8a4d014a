package main

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

// testRegistry is a registry run in the test's process
// (go-containerregistry's pkg/registry) on loopback, which the engine
// pulls from over plain HTTP (it takes 127.0.0.0/8 registries as
// insecure), and images of the testapp the test pushes to it.
type testRegistry struct {
	t    *testing.T
	host string
	bin  []byte
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	bin, err := testimage.Binary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &testRegistry{t: t, host: strings.TrimPrefix(srv.URL, "http://"), bin: bin}
}

// push pushes the testapp as ref with env, created at created, and
// returns the manifest's digest.
func (r *testRegistry) push(ref string, created time.Time, env ...string) string {
	r.t.Helper()
	d, err := testimage.Push(ref, r.bin, created, env...)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func shortDigest(d string) string { return strings.TrimPrefix(d, "sha256:")[:12] }

// TestImageUpdatesFollowATag: a service with x-reconcile.image_updates
// follows its tag at a registry: a digest younger than min_age is waited
// for; an old enough one is pinned and rolled out by update_config; one
// whose replica never turns healthy is rolled back and not tried again;
// the next good one is taken.
func TestImageUpdatesFollowATag(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.host + "/app:stable"
	old := time.Now().Add(-2 * time.Hour)
	reg.push(ref, old, "VERSION=1")
	// registered first, run last: after the project's containers are gone
	enginetest.RemoveImagesOf(t, enginetest.Require(t), reg.host+"/app")
	p := enginetest.NewProject(t, `services:
  web:
    image: `+ref+`
    restart: always
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 2}
    deploy:
      update_config: {order: start-first, failure_action: rollback, monitor: 5s}
    x-reconcile:
      image_updates: {interval: 1s, min_age: 1h}
`)
	_, base := startDaemon(t, p, nil)
	eventually(t, 90*time.Second, "web runs image 1", func() bool { return envOf(p) == "1" })

	young := reg.push(ref, time.Now(), "VERSION=2")
	eventually(t, 30*time.Second, "the young digest waited for", func() bool { return len(recordsWith(t, base, record.ImageUpdateWaiting)) > 0 })
	if w := recordsWith(t, base, record.ImageUpdateWaiting)[0]; !strings.Contains(w.Message, shortDigest(young)) || !strings.Contains(w.Message, "min_age 1h") {
		t.Errorf("waiting record: %s", w.Message)
	}

	good := reg.push(ref, old, "VERSION=3")
	eventually(t, 90*time.Second, "image 3 rolled out", func() bool { return envOf(p) == "3" && len(recordsWith(t, base, record.ImageUpdated)) > 0 })
	for _, c := range p.Snapshot().Containers {
		if img := p.Inspect(c.ID).Config.Image; img != ref+"@"+good {
			t.Errorf("%s runs %s, want the tag pinned to %s", c.Name, img, good)
		}
	}

	bad := reg.push(ref, old, "VERSION=4", "START_DELAY=1h")
	eventually(t, 120*time.Second, "image 4 rolled back", func() bool { return len(recordsWith(t, base, record.ImageUpdateFailed)) > 0 })
	if f := recordsWith(t, base, record.ImageUpdateFailed)[0]; !strings.Contains(f.Message, shortDigest(bad)) || !strings.Contains(f.Message, "back to "+shortDigest(good)) {
		t.Errorf("failed record: %s", f.Message)
	}
	eventually(t, 60*time.Second, "web back on image 3", func() bool { return envOf(p) == "3" })

	reg.push(ref, old, "VERSION=5")
	eventually(t, 90*time.Second, "image 5 rolled out", func() bool { return envOf(p) == "5" })
	tried := 0
	for _, r := range recordsWith(t, base, record.ImageUpdateStarted) {
		if strings.Contains(r.Message, shortDigest(bad)) {
			tried++
		}
		if strings.Contains(r.Message, shortDigest(young)) {
			t.Errorf("the young digest was rolled out: %s", r.Message)
		}
	}
	if tried != 1 {
		t.Errorf("the failed digest was rolled out %d times, want once", tried)
	}
}

// TestImageUpdatesSemverMovesToTheNextVersion: with policy semver, a
// higher version tag pushed beside the running one is rolled out, pinned
// to its digest; a pre-release is not.
func TestImageUpdatesSemverMovesToTheNextVersion(t *testing.T) {
	reg := newTestRegistry(t)
	repo := reg.host + "/app"
	old := time.Now().Add(-2 * time.Hour)
	reg.push(repo+":1.0.0", old, "VERSION=1.0.0")
	enginetest.RemoveImagesOf(t, enginetest.Require(t), repo)
	p := enginetest.NewProject(t, `services:
  web:
    image: `+repo+`:1.0.0
    restart: always
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 2}
    deploy:
      update_config: {order: start-first, failure_action: rollback, monitor: 5s}
    x-reconcile:
      image_updates: {policy: semver, interval: 1s}
`)
	_, base := startDaemon(t, p, nil)
	eventually(t, 90*time.Second, "web runs 1.0.0", func() bool { return envOf(p) == "1.0.0" })
	reg.push(repo+":2.0.0-rc1", old, "VERSION=2.0.0-rc1")
	next := reg.push(repo+":1.1.0", old, "VERSION=1.1.0")
	eventually(t, 90*time.Second, "1.1.0 rolled out", func() bool { return envOf(p) == "1.1.0" && len(recordsWith(t, base, record.ImageUpdated)) > 0 })
	for _, c := range p.Snapshot().Containers {
		if img := p.Inspect(c.ID).Config.Image; img != repo+":1.1.0@"+next {
			t.Errorf("%s runs %s, want %s", c.Name, img, repo+":1.1.0@"+next)
		}
	}
}
