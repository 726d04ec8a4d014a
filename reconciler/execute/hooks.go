package execute

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/compose/v5/pkg/compose"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/secrets"
)

// HookError is a lifecycle hook that ran and failed. compose's own up fails
// the same way: after a failed pre_start the container stays created, after
// a failed post_start it runs; either way the operation failed.
type HookError struct {
	Service   string
	Container string
	Hook      string // post_start
	Index     int
	ExitCode  int
	Output    string // the tail of its stderr (else stdout), masked
}

func (e *HookError) Error() string {
	msg := fmt.Sprintf("service %q %s[%d] in %s exited with status %d", e.Service, e.Hook, e.Index, e.Container, e.ExitCode)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

// hookOutputTail bounds how much of a hook's output its error carries.
const hookOutputTail = 512

// postStart runs the service's post_start hooks in a container just started
// or restarted, in order, as compose's start and restart do: each an exec
// with the hook's user, privileges, environment and working directory; the
// first that fails ends the run.
func (e *Executor) postStart(ctx context.Context, service, containerID, containerName string) error {
	svc, ok := e.Desired.Services[service]
	if !ok || len(svc.Config.PostStart) == 0 {
		return nil
	}
	if e.Exec == nil {
		return fmt.Errorf("service %s has post_start hooks and this executor cannot run commands in containers", service)
	}
	limit := e.HookTimeout
	if limit <= 0 {
		limit = DefaultHookTimeout
	}
	for i, hook := range svc.Config.PostStart {
		hookCtx, cancel := context.WithTimeout(ctx, limit)
		res, err := engine.ExecWith(hookCtx, e.Exec, containerID, client.ExecCreateOptions{
			User:       hook.User,
			Privileged: hook.Privileged,
			Env:        compose.ToMobyEnv(hook.Environment),
			WorkingDir: hook.WorkingDir,
			Cmd:        hook.Command,
		})
		timedOut := hookCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if timedOut {
			// a hook that never ends fails for good: starting again would
			// run it again
			return &HookError{Service: service, Container: containerName, Hook: "post_start", Index: i,
				ExitCode: -1, Output: fmt.Sprintf("still running after %s (the post_start timeout)", limit)}
		}
		if err != nil {
			return fmt.Errorf("running post_start[%d] of service %s: %w", i, service, err)
		}
		if res.ExitCode != 0 {
			out := res.Stderr
			if strings.TrimSpace(out) == "" {
				out = res.Stdout
			}
			// masked before it is cut: a value cut in two would escape
			return &HookError{Service: service, Container: containerName, Hook: "post_start", Index: i,
				ExitCode: res.ExitCode, Output: tail(maskValues(out, svc, hook.Environment))}
		}
	}
	return nil
}

// DefaultHookTimeout bounds each post_start hook reconcile runs after its
// own starts: compose waits for a hook without end; a daemon must not.
const DefaultHookTimeout = 2 * time.Minute

// tail keeps the end of a hook's output, on one line.
func tail(out string) string {
	out = desired.OneLine(out)
	if len(out) > hookOutputTail {
		out = "..." + out[len(out)-hookOutputTail:]
	}
	return out
}

// maskValues hides the project's secret values and those of the hook's
// own environment in text a hook printed: a hook that echoes its
// environment must not put a password into a record.
func maskValues(text string, svc *desired.Service, hookEnv map[string]*string) string {
	var own []string
	for _, v := range hookEnv {
		if v != nil {
			own = append(own, *v)
		}
	}
	return secrets.New(own...).Mask(svc.Secrets.Mask(text))
}
