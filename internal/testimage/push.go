package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"
)

// Push pushes the testapp binary bin (Binary's) to ref, a tag at a
// registry the caller runs, as an image with env that says it was created
// at created, and returns the manifest's digest: what a test of image
// updates pushes to see it followed.
func Push(ref string, bin []byte, created time.Time, env ...string) (string, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: "testapp", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		return "", err
	}
	if _, err := tw.Write(bin); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.Bytes())), nil })
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err == nil {
		img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/testapp"}, Env: env})
	}
	if err == nil {
		img, err = mutate.CreatedAt(img, v1.Time{Time: created})
	}
	if err != nil {
		return "", fmt.Errorf("making the image for %s: %w", ref, err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// Remover is the part of the engine client RemoveImages needs.
type Remover interface {
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	ImageRemove(ctx context.Context, image string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
}

// RemoveImages removes every image of the engine a tag or digest of repo
// (a test registry's "127.0.0.1:PORT/app") names: an image pulled by
// digest has no tag, so the engine's reference filter misses it.
func RemoveImages(ctx context.Context, c Remover, repo string) {
	l, err := c.ImageList(ctx, client.ImageListOptions{All: true})
	if err != nil {
		return
	}
	for _, img := range l.Items {
		for _, ref := range append(append([]string(nil), img.RepoTags...), img.RepoDigests...) {
			if strings.HasPrefix(ref, repo+":") || strings.HasPrefix(ref, repo+"@") {
				_, _ = c.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
				break
			}
		}
	}
}
