// Package image builds reconcile's own container image: the static binary
// FROM scratch, with the Dockerfile beside this file. It needs only the
// engine and the Go toolchain, no registry.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Tag is the image `make image` builds.
const Tag = "reconcile:dev"

//go:embed Dockerfile
var dockerfile []byte

// Builder is the part of the engine client a build needs.
type Builder interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
}

// Build compiles reconcile statically (CGO off, so it runs FROM scratch)
// and builds the image as tag.
func Build(ctx context.Context, c Builder, tag string) error {
	bin, err := compile(ctx)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	entries := []struct {
		hdr  tar.Header
		data []byte
	}{
		{tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), ModTime: now}, dockerfile},
		{tar.Header{Name: "reconcile", Mode: 0o755, Size: int64(len(bin)), ModTime: now}, bin},
		{tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir, ModTime: now}, nil},
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return fmt.Errorf("writing the build context: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("writing the build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing the build context: %w", err)
	}
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1})
	if err != nil {
		return fmt.Errorf("building image %s: %w", tag, err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the build output of %s: %w", tag, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("building image %s: %s", tag, msg.Error.Message)
		}
	}
}

// compile builds ./cmd/reconcile statically and returns the binary.
func compile(ctx context.Context) ([]byte, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("locating the module")
	}
	root := filepath.Join(filepath.Dir(self), "..", "..")
	dir, err := os.MkdirTemp("", "reconcile-image")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "reconcile")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/reconcile")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building reconcile statically: %w\n%s", err, msg)
	}
	return os.ReadFile(out)
}
