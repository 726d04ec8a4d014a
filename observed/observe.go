package observed

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// oneOffTrue is the value of compose's one-off label on `compose run`
// containers; the label names themselves are compose's own (api.*Label).
const oneOffTrue = "True"

// ListCallsPerPass is what one Observe costs, whatever the project's size.
const ListCallsPerPass = 4

// Lister is the part of the engine client a snapshot needs: list calls only.
type Lister interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	VolumeList(ctx context.Context, options client.VolumeListOptions) (client.VolumeListResult, error)
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
}

// Observe takes a snapshot of a project with one list call each for
// containers, networks, volumes and images. The four calls run at once: the
// engine answers them independently, and a pass costs the slowest, not the sum.
// Networks and volumes are listed whatever their labels: compose matches them
// by name, and so reuses one that exists without its labels.
func Observe(ctx context.Context, c Lister, project string, now time.Time) (*Snapshot, error) {
	filter := make(client.Filters).Add("label", api.ProjectLabel+"="+project)
	snap := &Snapshot{Project: project, Images: map[string]string{}, TakenAt: now}

	var (
		wg                     sync.WaitGroup
		containers             client.ContainerListResult
		networks               client.NetworkListResult
		volumes                client.VolumeListResult
		images                 client.ImageListResult
		cErr, nErr, vErr, iErr error
	)
	wg.Add(4)
	go func() {
		defer wg.Done()
		containers, cErr = c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	}()
	go func() {
		defer wg.Done()
		networks, nErr = c.NetworkList(ctx, client.NetworkListOptions{})
	}()
	go func() {
		defer wg.Done()
		volumes, vErr = c.VolumeList(ctx, client.VolumeListOptions{})
	}()
	go func() {
		defer wg.Done()
		images, iErr = c.ImageList(ctx, client.ImageListOptions{})
	}()
	wg.Wait()
	switch {
	case cErr != nil:
		return nil, fmt.Errorf("listing containers of project %s: %w", project, cErr)
	case nErr != nil:
		return nil, fmt.Errorf("listing networks: %w", nErr)
	case vErr != nil:
		return nil, fmt.Errorf("listing volumes: %w", vErr)
	case iErr != nil:
		return nil, fmt.Errorf("listing images: %w", iErr)
	}

	for _, s := range containers.Items {
		if s.Labels[api.OneoffLabel] == oneOffTrue || s.Labels[api.HookLabel] != "" {
			continue
		}
		snap.Containers = append(snap.Containers, fromSummary(s))
	}
	for _, n := range networks.Items {
		snap.Networks = append(snap.Networks, Network{ID: n.ID, Name: n.Name, Key: n.Labels[api.NetworkLabel]})
	}
	for _, v := range volumes.Items {
		snap.Volumes = append(snap.Volumes, Volume{Name: v.Name, Key: v.Labels[api.VolumeLabel]})
	}
	for _, img := range images.Items {
		snap.Images[img.ID] = img.ID
		for _, ref := range img.RepoTags {
			snap.Images[ref] = img.ID
		}
		for _, ref := range img.RepoDigests {
			snap.Images[ref] = img.ID
		}
	}
	snap.sort()
	return snap, nil
}

func fromSummary(s container.Summary) Container {
	c := Container{
		ID:          s.ID,
		Service:     s.Labels[api.ServiceLabel],
		Image:       s.Image,
		State:       string(s.State),
		ConfigHash:  s.Labels[api.ConfigHashLabel],
		ImageDigest: s.Labels[api.ImageDigestLabel],
		Networks:    map[string]string{},
		Created:     time.Unix(s.Created, 0),
	}
	if len(s.Names) > 0 {
		c.Name = strings.TrimPrefix(s.Names[0], "/")
	}
	c.Number, _ = strconv.Atoi(s.Labels[api.ContainerNumberLabel])
	c.Health, c.ExitCode = parseStatus(s.Status)
	if s.Health != nil && s.Health.Status != "" && s.Health.Status != container.NoHealthcheck {
		c.Health = string(s.Health.Status)
	}
	if s.NetworkSettings != nil {
		for name, ep := range s.NetworkSettings.Networks {
			id := ""
			if ep != nil {
				id = ep.NetworkID
			}
			c.Networks[name] = id
		}
	}
	return c
}

var (
	reExit   = regexp.MustCompile(`^(?:Exited|Restarting) \((-?\d+)\)`)
	reHealth = regexp.MustCompile(`\((healthy|unhealthy|health: starting)\)`)
)

// parseStatus reads health and exit code from the engine's status line
// ("Up 3 seconds (healthy)", "Exited (137) 2 seconds ago"): API 1.41 puts
// them nowhere else in a list answer, and an inspect per container would make
// the cost of a pass grow with the project.
func parseStatus(status string) (health string, exitCode int) {
	if m := reExit.FindStringSubmatch(status); m != nil {
		exitCode, _ = strconv.Atoi(m[1])
	}
	if m := reHealth.FindStringSubmatch(status); m != nil {
		health = m[1]
		if health == "health: starting" {
			health = HealthStarting
		}
	}
	return health, exitCode
}

// Inspector is the engine call behind Enrich.
type Inspector interface {
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// Enrich fills Details for every container that is not running, to explain
// why it is down. Its cost grows with the number of stopped containers only:
// a converged project costs nothing.
func Enrich(ctx context.Context, c Inspector, snap *Snapshot) error {
	for i := range snap.Containers {
		ctr := &snap.Containers[i]
		if ctr.State == StateRunning {
			continue
		}
		res, err := c.ContainerInspect(ctx, ctr.ID, client.ContainerInspectOptions{})
		if err != nil {
			if isNotFound(err) {
				continue // removed since the list: the next pass will see it
			}
			return fmt.Errorf("inspecting container %s: %w", ctr.Name, err)
		}
		ctr.Details = detailsOf(res.Container)
	}
	return nil
}

func detailsOf(in container.InspectResponse) *Details {
	d := &Details{RestartCount: in.RestartCount}
	if in.State != nil {
		d.OOMKilled = in.State.OOMKilled
		d.Error = in.State.Error
		d.StartedAt, _ = time.Parse(time.RFC3339Nano, in.State.StartedAt)
		d.FinishedAt, _ = time.Parse(time.RFC3339Nano, in.State.FinishedAt)
	}
	return d
}

func isNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}
