package observed

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/client"
)

// ContainerConfig is the part of a container's configuration that explains
// why its config hash diverged from the compose file.
type ContainerConfig struct {
	Image      string
	Env        map[string]string
	ImageEnv   map[string]string // what the image itself sets
	Command    []string
	Entrypoint []string
	Labels     map[string]string
}

// ConfigInspector is the engine calls behind InspectConfig.
type ConfigInspector interface {
	Inspector
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

// InspectConfig reads a container's configuration and its image's
// environment: two calls, made only for containers that diverged.
func InspectConfig(ctx context.Context, c ConfigInspector, id string) (*ContainerConfig, error) {
	res, err := c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspecting container %s: %w", id, err)
	}
	cfg := &ContainerConfig{Env: map[string]string{}, ImageEnv: map[string]string{}}
	if in := res.Container.Config; in != nil {
		cfg.Image = in.Image
		cfg.Env = envMap(in.Env)
		cfg.Command = in.Cmd
		cfg.Entrypoint = in.Entrypoint
		cfg.Labels = in.Labels
	}
	if img, err := c.ImageInspect(ctx, res.Container.Image); err == nil && img.Config != nil {
		cfg.ImageEnv = envMap(img.Config.Env)
	}
	return cfg, nil
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
