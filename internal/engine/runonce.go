package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Runner is the part of the engine client that runs a one-off container.
type Runner interface {
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	CopyToContainer(ctx context.Context, containerID string, options client.CopyToContainerOptions) (client.CopyToContainerResult, error)
	ContainerStart(ctx context.Context, containerID string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerWait(ctx context.Context, containerID string, options client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerLogs(ctx context.Context, containerID string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
}

// OneOff is a command run once in a container of an image, with files put
// in place first, and no network: a check that must see what a service
// would see, and touch nothing.
type OneOff struct {
	Image   string
	Command []string // the entrypoint, in exec form
	Env     []string
	// Files are written into the container before it starts, by absolute
	// path (their directories made), read-only to others.
	Files  map[string][]byte
	Labels map[string]string
	// Timeout bounds the run; the container is removed in every case.
	Timeout time.Duration
}

// RunOnce runs o, waits for it, and returns its output (the last
// MaxExecOutput bytes of each stream) and exit code. A non-zero exit code
// is a result, not an error. It works against a remote engine too: the
// files are copied in, not bind-mounted.
func RunOnce(ctx context.Context, c Runner, o OneOff) (ExecResult, error) {
	if len(o.Command) == 0 {
		return ExecResult{}, fmt.Errorf("a one-off container of %s needs a command", o.Image)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	// errors name the command's first word only, as Exec's do
	what := fmt.Sprintf("%q in a one-off container of %s", o.Command[0], o.Image)
	created, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: o.Image, Entrypoint: o.Command, Cmd: []string{}, Env: o.Env, Labels: o.Labels},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return ExecResult{}, fmt.Errorf("creating %s: %w", what, err)
	}
	id := created.ID
	defer func() {
		// removed whatever happened, even once ctx ended
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer rcancel()
		_, _ = c.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true})
	}()
	if len(o.Files) > 0 {
		archive, err := tarOf(o.Files)
		if err != nil {
			return ExecResult{}, fmt.Errorf("packing the files of %s: %w", what, err)
		}
		if _, err := c.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: archive}); err != nil {
			return ExecResult{}, fmt.Errorf("copying the files of %s: %w", what, err)
		}
	}
	wait := c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return ExecResult{}, fmt.Errorf("starting %s: %w", what, err)
	}
	var code int
	select {
	case res := <-wait.Result:
		if res.Error != nil {
			return ExecResult{}, fmt.Errorf("waiting for %s: %s", what, res.Error.Message)
		}
		code = int(res.StatusCode)
	case err := <-wait.Error:
		return ExecResult{}, fmt.Errorf("waiting for %s: %w", what, err)
	}
	logs, err := c.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return ExecResult{}, fmt.Errorf("reading the output of %s: %w", what, err)
	}
	defer logs.Close()
	stdout, stderr := &tail{max: MaxExecOutput}, &tail{max: MaxExecOutput}
	if _, err := stdcopy.StdCopy(stdout, stderr, logs); err != nil {
		return ExecResult{}, fmt.Errorf("reading the output of %s: %w", what, err)
	}
	return ExecResult{ExitCode: code, Stdout: stdout.String(), Stderr: stderr.String()}, nil
}

// tarOf packs files (absolute paths) and their directories, relative to /.
func tarOf(files map[string][]byte) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	names := make([]string, 0, len(files))
	for name := range files {
		if !path.IsAbs(name) {
			return nil, fmt.Errorf("%q is not an absolute path", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		clean := strings.TrimPrefix(path.Clean(name), "/")
		for dir := path.Dir(clean); dir != "." && !dirs[dir]; dir = path.Dir(dir) {
			dirs[dir] = true
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(dirs)) { // a parent sorts before its children
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		data := files[name]
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path.Clean(name), "/"), Mode: 0o444, Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	return &buf, tw.Close()
}
