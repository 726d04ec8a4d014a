package engine

import (
	"bytes"
	"context"
	"fmt"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Execer is the part of the engine client that runs commands in containers.
type Execer interface {
	ExecCreate(ctx context.Context, container string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
}

// MaxExecOutput is how much of each output stream of a command run in a
// container is kept: its last bytes, where an error says what went wrong.
const MaxExecOutput = 64 << 10

// tail keeps the last max bytes written to it.
type tail struct {
	buf bytes.Buffer
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	if over := t.buf.Len() + len(p) - t.max; over > 0 {
		t.buf.Next(over)
	}
	t.buf.Write(p)
	return n, nil
}

func (t *tail) String() string { return t.buf.String() }

// ExecResult is what a command run in a container produced.
type ExecResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// Exec runs cmd in a running container, waits for it, and returns its output
// and exit code. A non-zero exit code is a result, not an error; errors are
// for what kept the command from running. ctx bounds the whole run.
func Exec(ctx context.Context, c Execer, containerID string, cmd []string) (ExecResult, error) {
	return ExecWith(ctx, c, containerID, client.ExecCreateOptions{Cmd: cmd})
}

// ExecWith is Exec with the exec's user, environment, working directory and
// privileges given (a compose lifecycle hook sets them); output is always
// attached.
func ExecWith(ctx context.Context, c Execer, containerID string, opts client.ExecCreateOptions) (ExecResult, error) {
	// errors name the command's first word: its arguments may carry a
	// value interpolated from the environment
	cmd := "(none)"
	if len(opts.Cmd) > 0 {
		cmd = opts.Cmd[0]
	}
	opts.AttachStdout, opts.AttachStderr = true, true
	created, err := c.ExecCreate(ctx, containerID, opts)
	if err != nil {
		return ExecResult{}, fmt.Errorf("creating exec %q in %s: %w", cmd, containerID, err)
	}
	att, err := c.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("starting exec %q in %s: %w", cmd, containerID, err)
	}
	defer att.Close()
	// the output is kept to its last MaxExecOutput bytes a stream: a
	// command that prints without end costs bounded memory
	stdout, stderr := &tail{max: MaxExecOutput}, &tail{max: MaxExecOutput}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, att.Reader)
		copied <- err
	}()
	select {
	case err = <-copied:
	case <-ctx.Done():
		return ExecResult{}, fmt.Errorf("running %q in %s: %w", cmd, containerID, ctx.Err())
	}
	if err != nil {
		return ExecResult{}, fmt.Errorf("reading output of %q in %s: %w", cmd, containerID, err)
	}
	in, err := c.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("inspecting exec %q in %s: %w", cmd, containerID, err)
	}
	return ExecResult{ExitCode: in.ExitCode, Stdout: stdout.String(), Stderr: stderr.String()}, nil
}
