package observed

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
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
	all, err := list(ctx, c, project, now)
	if err != nil {
		return nil, err
	}
	return all.Of(project), nil
}

// ObserveContainers is Observe with one list call, the project's
// containers, and base's networks, volumes and images: what a look needs
// after container events alone, which change none of those (a container's
// destroy may come with its network's removal: that look lists all four).
func ObserveContainers(ctx context.Context, c Lister, project string, base *Snapshot, now time.Time) (*Snapshot, error) {
	filter := make(client.Filters).Add("label", api.ProjectLabel+"="+project)
	containers, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("listing containers of project %s: %w", project, err)
	}
	l := &Listing{now: now, containers: containers.Items, networks: base.Networks, volumes: base.Volumes, images: base.Images}
	return l.Of(project), nil
}

// ObserveAll lists every compose project on the engine with the same four
// calls as one project's Observe: an agent's periodic relist costs what one
// project's does, whatever the number of projects. Of cuts a project's
// snapshot out of it.
func ObserveAll(ctx context.Context, c Lister, now time.Time) (*Listing, error) {
	return list(ctx, c, "", now)
}

// Of is project's snapshot (one with no container when it has none); it
// shares nothing with other projects' snapshots, which are patched and
// sorted in place.
func (l *Listing) Of(project string) *Snapshot {
	snap := l.of(project)
	snap.sort()
	return snap
}

// Listing is what the four list calls returned.
type Listing struct {
	now        time.Time
	containers []container.Summary
	networks   []Network
	volumes    []Volume
	images     map[string]string
}

// list makes the four calls; project "" lists every compose project's
// containers.
func list(ctx context.Context, c Lister, project string, now time.Time) (*Listing, error) {
	label := api.ProjectLabel
	if project != "" {
		label += "=" + project
	}
	filter := make(client.Filters).Add("label", label)
	var (
		wg                     sync.WaitGroup
		containers             client.ContainerListResult
		networks               client.NetworkListResult
		volumes                client.VolumeListResult
		images                 client.ImageListResult
		cErr, nErr, vErr, iErr error
	)
	wg.Go(func() {
		containers, cErr = c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	})
	wg.Go(func() { networks, nErr = c.NetworkList(ctx, client.NetworkListOptions{}) })
	wg.Go(func() { volumes, vErr = c.VolumeList(ctx, client.VolumeListOptions{}) })
	wg.Go(func() { images, iErr = c.ImageList(ctx, client.ImageListOptions{}) })
	wg.Wait()
	switch {
	case cErr != nil && project != "":
		return nil, fmt.Errorf("listing containers of project %s: %w", project, cErr)
	case cErr != nil:
		return nil, fmt.Errorf("listing the compose projects' containers: %w", cErr)
	case nErr != nil:
		return nil, fmt.Errorf("listing networks: %w", nErr)
	case vErr != nil:
		return nil, fmt.Errorf("listing volumes: %w", vErr)
	case iErr != nil:
		return nil, fmt.Errorf("listing images: %w", iErr)
	}
	l := &Listing{now: now, containers: containers.Items, images: map[string]string{}}
	for _, n := range networks.Items {
		l.networks = append(l.networks, Network{ID: n.ID, Name: n.Name, Key: n.Labels[api.NetworkLabel]})
	}
	for _, v := range volumes.Items {
		l.volumes = append(l.volumes, Volume{Name: v.Name, Key: v.Labels[api.VolumeLabel]})
	}
	for _, img := range images.Items {
		l.images[img.ID] = img.ID
		for _, ref := range img.RepoTags {
			l.images[ref] = img.ID
		}
		for _, ref := range img.RepoDigests {
			l.images[ref] = img.ID
		}
	}
	return l, nil
}

func (l *Listing) of(project string) *Snapshot {
	snap := &Snapshot{
		Project:  project,
		Networks: slices.Clone(l.networks),
		Volumes:  slices.Clone(l.volumes),
		Images:   maps.Clone(l.images),
		TakenAt:  l.now,
	}
	for _, s := range l.containers {
		if s.Labels[api.ProjectLabel] != project || s.Labels[api.OneoffLabel] == oneOffTrue || s.Labels[api.HookLabel] != "" {
			continue
		}
		snap.Containers = append(snap.Containers, fromSummary(s))
	}
	return snap
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
	if c.State == StateRunning {
		c.Up = parseUp(s.Status)
	}
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

var reUp = regexp.MustCompile(`^Up (Less than a second|About an? (minute|hour)|(\d+) (second|minute|hour|day)s?)`)

// parseUp reads how long a container has run from its status line, in the
// engine's human words ("Up 5 seconds", "Up About a minute", "Up 3 hours"):
// to the second below a minute, the unit above. It is how long ago a
// running container was (last) started, which a list answer holds nowhere
// else; unknown words give a day, "long ago".
func parseUp(status string) time.Duration {
	m := reUp.FindStringSubmatch(status)
	switch {
	case m == nil:
		return 24 * time.Hour
	case m[1] == "Less than a second":
		return 0
	case m[2] == "minute":
		return time.Minute
	case m[2] == "hour":
		return time.Hour
	}
	n, _ := strconv.Atoi(m[3])
	unit := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[m[4]]
	return time.Duration(n) * unit
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
		d, err := InspectDetails(ctx, c, ctr.ID)
		if err != nil {
			return fmt.Errorf("inspecting container %s: %w", ctr.Name, err)
		}
		ctr.Details = d
	}
	return nil
}

// InspectDetails is what an inspect says of why container id is down; nil
// when it was removed since it was listed (the next list will not show it).
func InspectDetails(ctx context.Context, c Inspector, id string) (*Details, error) {
	res, err := c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return detailsOf(res.Container), nil
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

// Origin is where compose says a project on the engine came from: the
// labels `docker compose up` puts on every container. An agent with
// --discover loads the project from there.
type Origin struct {
	Project    string
	WorkingDir string
	// ConfigFiles and EnvFiles are absolute paths on the engine's machine.
	ConfigFiles []string
	EnvFiles    []string
}

// Origins lists the origin of every project with containers, sorted by
// project; a project whose containers carry no config files label (not made
// by compose) has none.
func (l *Listing) Origins() []Origin {
	seen := map[string]Origin{}
	for _, s := range l.containers {
		p := s.Labels[api.ProjectLabel]
		if _, ok := seen[p]; ok || s.Labels[api.ConfigFilesLabel] == "" {
			continue
		}
		seen[p] = Origin{
			Project:     p,
			WorkingDir:  s.Labels[api.WorkingDirLabel],
			ConfigFiles: splitComma(s.Labels[api.ConfigFilesLabel]),
			EnvFiles:    splitComma(s.Labels[api.EnvironmentFileLabel]),
		}
	}
	out := make([]Origin, 0, len(seen))
	for _, p := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[p])
	}
	return out
}

// splitComma splits a compose label that joins paths with commas.
func splitComma(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}
