// Package testimage builds the image of reconcile's test program: the static
// testapp binary in a FROM scratch image. No registry is needed, so tests and
// the demo run on machines that can pull nothing.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Tag is the image tests use.
const Tag = "reconcile-testapp:latest"

// sumLabel records the binary's checksum, so an unchanged image is reused.
const sumLabel = "dev.reconcile.testapp.sum"

// Builder is the part of the engine client a build needs.
type Builder interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

const dockerfile = `FROM scratch
COPY testapp /testapp
ENTRYPOINT ["/testapp"]
`

// Ensure builds the testapp binary and, unless an image with the same binary
// already carries tag, builds the image. It returns the image's tag.
func Ensure(ctx context.Context, c Builder, tag string) error {
	bin, err := buildBinary(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(bin)
	want := hex.EncodeToString(sum[:])
	if img, err := c.ImageInspect(ctx, tag); err == nil && img.Config != nil && img.Config.Labels[sumLabel] == want {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"testapp", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return fmt.Errorf("writing build context: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("writing build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing build context: %w", err)
	}
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      map[string]string{sumLabel: want},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
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
			return fmt.Errorf("reading build output of %s: %w", tag, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("building image %s: %s", tag, msg.Error.Message)
		}
	}
}

// buildBinary compiles the testapp statically and returns it.
func buildBinary(ctx context.Context) ([]byte, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("locating the testapp source")
	}
	src := filepath.Join(filepath.Dir(self), "..", "testapp")
	dir, err := os.MkdirTemp("", "testapp-build")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "testapp")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building testapp: %w: %s", err, msg)
	}
	return os.ReadFile(out)
}
