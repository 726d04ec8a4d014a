// Package imagebuild builds the project's own images without a registry:
// a Go program compiled statically, put FROM scratch by the engine's
// builder. The test program's image and reconcile's own image share it.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Builder is the part of the engine client a build needs.
type Builder interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
}

// File is one entry of a build context; a name ending in / is a directory.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// Build sends files as the build context and builds tag with labels.
func Build(ctx context.Context, c Builder, tag string, labels map[string]string, files ...File) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, f := range files {
		hdr := &tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: now}
		if f.Name[len(f.Name)-1] == '/' {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing the build context of %s: %w", tag, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("writing the build context of %s: %w", tag, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing the build context of %s: %w", tag, err)
	}
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag}, Labels: labels, Remove: true, ForceRemove: true, Version: build.BuilderV1,
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
			return fmt.Errorf("reading the build output of %s: %w", tag, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("building image %s: %s", tag, msg.Error.Message)
		}
	}
}

// CompileStatic builds the Go package pkg, from the module directory dir,
// as a static Linux binary (no cgo: it runs FROM scratch) and returns it.
func CompileStatic(ctx context.Context, dir, pkg string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "imagebuild")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %s statically: %w\n%s", pkg, err, msg)
	}
	return os.ReadFile(out)
}
