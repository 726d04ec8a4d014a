// Package testimage builds the image of reconcile's test program: the static
// testapp binary in a FROM scratch image. No registry is needed, so tests and
// the demo run on machines that can pull nothing.
package testimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"runtime"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/imagebuild"
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
	return imagebuild.Build(ctx, c, tag, map[string]string{sumLabel: want},
		imagebuild.File{Name: "Dockerfile", Mode: 0o644, Data: []byte(dockerfile)},
		imagebuild.File{Name: "testapp", Mode: 0o755, Data: bin},
	)
}

// Binary is the testapp, compiled statically: for a test that builds its
// own images of it (pushed to a registry of its own, say).
func Binary(ctx context.Context) ([]byte, error) { return buildBinary(ctx) }

// buildBinary compiles the testapp statically and returns it.
func buildBinary(ctx context.Context) ([]byte, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("locating the testapp source")
	}
	return imagebuild.CompileStatic(ctx, filepath.Join(filepath.Dir(self), "..", "testapp"), ".")
}
