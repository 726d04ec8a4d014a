package production

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestImageUpdateThroughTheLB: the example's api follows its tag at a
// registry (run in this process); a new digest pushed there is rolled out
// one replica at a time, each drained from nginx first, and not one
// request through nginx fails meanwhile.
func TestImageUpdateThroughTheLB(t *testing.T) {
	t.Parallel()
	buildImages(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	e := enginetest.Require(t)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/api:stable"
	// registered first, run last: after the stack's containers are gone
	enginetest.RemoveImagesOf(t, e, strings.TrimSuffix(ref, ":stable"))
	// the example's api image, from the engine, pushed with a version of its own
	base := engineImage(t, e.Client, "reconcile-example-api:latest")
	push := func(version string) string {
		t.Helper()
		cf, err := base.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg := cf.Config
		cfg.Env = append(append([]string(nil), cfg.Env...), "IMAGE_VERSION="+version)
		img, err := mutate.Config(base, cfg)
		if err == nil {
			img, err = mutate.CreatedAt(img, v1.Time{Time: time.Now().Add(-2 * time.Hour)})
		}
		if err != nil {
			t.Fatal(err)
		}
		tag, _ := name.NewTag(ref)
		if err := remote.Write(tag, img); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	push("1")

	p := enginetest.CopyProject(t, ".")
	s := &stack{Project: p, override: "docker-compose.prod.yml"}
	compose, err := os.ReadFile(filepath.Join(p.Dir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "      rollback_config: {parallelism: 1, order: stop-first}\n"
	if !strings.Contains(string(compose), anchor) {
		t.Fatal("the example's api has no rollback_config line to add image_updates after")
	}
	p.Write("docker-compose.yml", strings.Replace(string(compose), anchor, anchor+"    x-reconcile:\n      image_updates: {interval: 1s}\n", 1))
	port := enginetest.FreePort(t)
	p.Write("test.env", fmt.Sprintf("DB_VOLUME_NAME=%s-db-data\nLB_PORT=%s\nAPI_IMAGE=%s\n", p.Name, port, ref))
	if r := s.reconcile(t, "--once", "--timeout", "3m"); r.Code != 0 {
		t.Fatalf("reconcile --once: %s", r)
	}
	lb := "http://127.0.0.1:" + port
	_, events := s.daemon(t)
	eventually(t, 60*time.Second, "3 api servers in the upstream file", func() bool { return len(s.upstreams(t)) == 3 })

	stop := requests(lb+"/api/", 20*time.Millisecond)
	digest := push("2")
	eventually(t, 3*time.Minute, "the new digest rolled out", func() bool { return hasRecord(t, events, "ImageUpdated", "api") })
	sent, failures := stop()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed through nginx during the update: %v", len(failures), sent, failures)
	}
	s.refresh()
	if len(s.ids["api"]) != 3 {
		t.Fatalf("%d api replicas after the update", len(s.ids["api"]))
	}
	for _, id := range s.ids["api"] {
		if img := s.Inspect(id).Config.Image; img != ref+"@"+digest {
			t.Errorf("api replica %s runs %s, want %s", id[:12], img, ref+"@"+digest)
		}
	}
	t.Logf("%d requests through nginx during the update, none failed", sent)
}

// engineImage is an image of the engine's, as go-containerregistry reads
// `docker save`.
func engineImage(t *testing.T, c client.APIClient, ref string) v1.Image {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "image.tar")
	res, err := c.ImageSave(context.Background(), []string{ref})
	if err != nil {
		t.Fatalf("saving %s: %v", ref, err)
	}
	f, err := os.Create(tmp)
	if err == nil {
		_, err = io.Copy(f, res)
		f.Close()
	}
	res.Close()
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(tmp, &tag)
	if err != nil {
		t.Fatalf("reading %s as saved: %v", ref, err)
	}
	return img
}
