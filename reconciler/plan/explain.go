package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/secrets"
	"github.com/reconcile-dev/reconcile/observed"
)

// Explain lists what differs between a service's desired configuration and
// a container's, one line per setting, for a container whose config hash
// diverged. Environment values are never shown, only their keys; every
// other value shown (command, entrypoint, labels) is masked with the
// project's secrets and with the container's own environment values, which
// may be a secret's old value.
func Explain(s *desired.Service, cfg *observed.ContainerConfig) []string {
	lines := explain(s, cfg)
	old := secrets.New(slices.Collect(maps.Values(cfg.Env))...)
	for i, l := range lines {
		lines[i] = old.Mask(s.Secrets.Mask(l))
	}
	return lines
}

func explain(s *desired.Service, cfg *observed.ContainerConfig) []string {
	var lines []string
	if s.Config.Image != "" && s.Config.Image != cfg.Image {
		lines = append(lines, fmt.Sprintf("image: %s -> %s", cfg.Image, s.Config.Image))
	}
	want := map[string]string{}
	for k, v := range s.Config.Environment {
		if v != nil {
			want[k] = *v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		have, ok := cfg.Env[k]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("environment.%s: added (value %s)", k, secrets.Masked))
		case have != want[k]:
			lines = append(lines, fmt.Sprintf("environment.%s: changed (values %s)", k, secrets.Masked))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		if _, ok := want[k]; ok {
			continue
		}
		if iv, fromImage := cfg.ImageEnv[k]; fromImage && iv == cfg.Env[k] {
			continue
		}
		lines = append(lines, fmt.Sprintf("environment.%s: removed", k))
	}
	if s.Config.Command != nil && !slices.Equal(s.Config.Command, cfg.Command) {
		lines = append(lines, fmt.Sprintf("command: %s -> %s", quoted(cfg.Command), quoted(s.Config.Command)))
	}
	if s.Config.Entrypoint != nil && !slices.Equal(s.Config.Entrypoint, cfg.Entrypoint) {
		lines = append(lines, fmt.Sprintf("entrypoint: %s -> %s", quoted(cfg.Entrypoint), quoted(s.Config.Entrypoint)))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Config.Labels)) {
		if have, ok := cfg.Labels[k]; !ok || have != s.Config.Labels[k] {
			lines = append(lines, fmt.Sprintf("labels.%s: %q -> %q", k, have, s.Config.Labels[k]))
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "other settings changed (ports, volumes, limits, healthcheck, ...)")
	}
	return lines
}

func quoted(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
