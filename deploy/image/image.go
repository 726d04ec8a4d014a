// Package image builds reconcile's own container image: the static binary
// FROM scratch, with the Dockerfile beside this file. It needs only the
// engine and the Go toolchain, no registry.
package image

import (
	"context"
	_ "embed"
	"errors"
	"path/filepath"
	"runtime"

	"github.com/reconcile-dev/reconcile/internal/imagebuild"
)

// User is the unprivileged user the image runs as (distroless's
// "nonroot"): it owns /state and /run/reconcile in the image.
const User = "65532:65532"

// Tag is the image `make image` builds.
const Tag = "reconcile:dev"

//go:embed Dockerfile
var dockerfile []byte

// Build compiles reconcile statically (CGO off, so it runs FROM scratch)
// and builds the image as tag.
func Build(ctx context.Context, c imagebuild.Builder, tag string) error {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("locating the module")
	}
	bin, err := imagebuild.CompileStatic(ctx, filepath.Join(filepath.Dir(self), "..", ".."), "./cmd/reconcile")
	if err != nil {
		return err
	}
	return imagebuild.Build(ctx, c, tag, nil,
		imagebuild.File{Name: "Dockerfile", Mode: 0o644, Data: dockerfile},
		imagebuild.File{Name: "reconcile", Mode: 0o755, Data: bin},
		imagebuild.File{Name: "tmp/", Mode: 0o1777},
		imagebuild.File{Name: "state/", Mode: 0o700},
		imagebuild.File{Name: "locks/", Mode: 0o700},
	)
}
