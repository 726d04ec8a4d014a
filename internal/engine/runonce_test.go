package engine

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestTarOf: files land at their paths below /, their directories made
// first, parents before children.
func TestTarOf(t *testing.T) {
	buf, err := tarOf(map[string][]byte{"/etc/nginx/conf.d/a.conf": []byte("a"), "/run/secrets/pw": []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	want := []string{"etc/", "etc/nginx/", "etc/nginx/conf.d/", "run/", "run/secrets/", "etc/nginx/conf.d/a.conf", "run/secrets/pw"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	if _, err := tarOf(map[string][]byte{"relative": nil}); err == nil {
		t.Error("a relative path was packed")
	}
}

// failingStart is an engine whose container will not start.
type failingStart struct {
	Runner
	removed []string
}

func (f *failingStart) ContainerCreate(context.Context, client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	return client.ContainerCreateResult{ID: "c1"}, nil
}
func (f *failingStart) CopyToContainer(context.Context, string, client.CopyToContainerOptions) (client.CopyToContainerResult, error) {
	return client.CopyToContainerResult{}, nil
}
func (f *failingStart) ContainerWait(context.Context, string, client.ContainerWaitOptions) client.ContainerWaitResult {
	return client.ContainerWaitResult{}
}
func (f *failingStart) ContainerStart(context.Context, string, client.ContainerStartOptions) (client.ContainerStartResult, error) {
	return client.ContainerStartResult{}, errors.New("no such image")
}
func (f *failingStart) ContainerRemove(_ context.Context, id string, _ client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	f.removed = append(f.removed, id)
	return client.ContainerRemoveResult{}, nil
}

// TestRunOnceRemovesWhatItCreated: a one-off container that fails to
// start is removed all the same, and the error names the command's first
// word only.
func TestRunOnceRemovesWhatItCreated(t *testing.T) {
	f := &failingStart{}
	_, err := RunOnce(context.Background(), f, OneOff{Image: "img", Command: []string{"nginx", "-t", "secret-arg"}, Files: map[string][]byte{"/etc/a": nil}, Timeout: time.Second})
	if err == nil || !slices.Equal(f.removed, []string{"c1"}) {
		t.Fatalf("err %v, removed %v", err, f.removed)
	}
	if msg := err.Error(); !strings.Contains(msg, `"nginx"`) || strings.Contains(msg, "secret-arg") {
		t.Errorf("error %q", msg)
	}
}
