package observed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		status string
		health string
		code   int
	}{
		{"Up 3 seconds", HealthNone, 0},
		{"Up 3 seconds (healthy)", HealthHealthy, 0},
		{"Up 2 minutes (unhealthy)", HealthUnhealthy, 0},
		{"Up 1 second (health: starting)", HealthStarting, 0},
		{"Exited (137) 2 seconds ago", HealthNone, 137},
		{"Exited (0) About a minute ago", HealthNone, 0},
		{"Restarting (1) Less than a second ago", HealthNone, 1},
		{"Created", HealthNone, 0},
		{"Up 5 seconds (Paused)", HealthNone, 0},
	}
	for _, tt := range tests {
		h, c := parseStatus(tt.status)
		if h != tt.health || c != tt.code {
			t.Errorf("parseStatus(%q) = %q, %d; want %q, %d", tt.status, h, c, tt.health, tt.code)
		}
	}
}

// fakeLister answers list calls from fixed data and counts them.
type fakeLister struct {
	containers []container.Summary
	networks   []network.Summary
	volumes    []volume.Volume
	images     []image.Summary
	mu         sync.Mutex
	calls      int
	filters    []client.Filters
	fail       error
}

func (f *fakeLister) count(filters client.Filters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if filters != nil {
		f.filters = append(f.filters, filters)
	}
}

func (f *fakeLister) ContainerList(_ context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	f.count(o.Filters)
	if !o.All {
		return client.ContainerListResult{}, errors.New("stopped containers must be listed too")
	}
	return client.ContainerListResult{Items: f.containers}, f.fail
}

func (f *fakeLister) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	f.count(nil)
	return client.NetworkListResult{Items: f.networks}, nil
}

func (f *fakeLister) VolumeList(context.Context, client.VolumeListOptions) (client.VolumeListResult, error) {
	f.count(nil)
	return client.VolumeListResult{Items: f.volumes}, nil
}

func (f *fakeLister) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	f.count(nil)
	return client.ImageListResult{Items: f.images}, nil
}

func summary(name, service, number, state, status string, extra map[string]string) container.Summary {
	labels := map[string]string{api.ProjectLabel: "p", api.ServiceLabel: service, api.ContainerNumberLabel: number, api.ConfigHashLabel: "h-" + service, api.OneoffLabel: "False"}
	for k, v := range extra {
		labels[k] = v
	}
	return container.Summary{
		ID: "id-" + name, Names: []string{"/" + name}, Labels: labels, State: container.ContainerState(state), Status: status,
		NetworkSettings: &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{"p_default": {NetworkID: "net1"}}},
	}
}

func TestObserve(t *testing.T) {
	f := &fakeLister{
		containers: []container.Summary{
			summary("p-web-2", "web", "2", "exited", "Exited (3) 1 second ago", nil),
			summary("p-web-1", "web", "1", "running", "Up 1 second (healthy)", nil),
			summary("p-db-1", "db", "1", "running", "Up 1 second", nil),
			summary("p-web-run-1", "web", "", "running", "Up 1 second", map[string]string{api.OneoffLabel: "True"}),
			summary("p-web-hook", "web", "", "exited", "Exited (0)", map[string]string{api.HookLabel: "pre_start"}),
		},
		networks: []network.Summary{{Network: network.Network{ID: "net1", Name: "p_default", Labels: map[string]string{api.NetworkLabel: "default"}}}},
		volumes:  []volume.Volume{{Name: "p_data", Labels: map[string]string{api.VolumeLabel: "data"}}},
		images:   []image.Summary{{ID: "sha256:abc", RepoTags: []string{"app:1"}, RepoDigests: []string{"app@sha256:def"}}},
	}
	now := time.Unix(100, 0)
	snap, err := Observe(context.Background(), f, "p", now)
	if err != nil {
		t.Fatal(err)
	}
	if f.calls != ListCallsPerPass {
		t.Errorf("Observe made %d calls, want %d", f.calls, ListCallsPerPass)
	}
	if got := f.filters[0]["label"]; !got[api.ProjectLabel+"=p"] {
		t.Errorf("containers not filtered by project label: %v", f.filters[0])
	}
	var names []string
	for _, c := range snap.Containers {
		names = append(names, c.Name)
	}
	if want := []string{"p-db-1", "p-web-1", "p-web-2"}; !slices.Equal(names, want) {
		t.Errorf("containers = %v, want %v (sorted, one-offs and hook runners left out)", names, want)
	}
	web2 := snap.Containers[2]
	if web2.Service != "web" || web2.Number != 2 || web2.State != StateExited || web2.ExitCode != 3 || web2.ConfigHash != "h-web" || web2.Networks["p_default"] != "net1" {
		t.Errorf("web-2 = %+v", web2)
	}
	if snap.Containers[1].Health != HealthHealthy {
		t.Errorf("web-1 health = %q", snap.Containers[1].Health)
	}
	if n, ok := snap.NetworkByName("p_default"); !ok || n.Key != "default" {
		t.Errorf("network = %+v %v", n, ok)
	}
	if !snap.HasVolume("p_data") || snap.HasVolume("p_other") {
		t.Error("volume lookup wrong")
	}
	for _, ref := range []string{"app:1", "app@sha256:def", "sha256:abc"} {
		if snap.Images[ref] != "sha256:abc" {
			t.Errorf("image %s not indexed", ref)
		}
	}
	if !snap.TakenAt.Equal(now) {
		t.Errorf("TakenAt = %v", snap.TakenAt)
	}
}

func TestObserveCostDoesNotGrowWithContainers(t *testing.T) {
	for _, n := range []int{1, 100, 1000} {
		f := &fakeLister{}
		for i := 0; i < n; i++ {
			f.containers = append(f.containers, summary("c", "s", "1", "running", "Up", nil))
		}
		if _, err := Observe(context.Background(), f, "p", time.Now()); err != nil {
			t.Fatal(err)
		}
		if f.calls != ListCallsPerPass {
			t.Errorf("%d containers: %d calls", n, f.calls)
		}
	}
}

func TestObserveWrapsErrors(t *testing.T) {
	f := &fakeLister{fail: errors.New("boom")}
	_, err := Observe(context.Background(), f, "p", time.Now())
	if err == nil || err.Error() != "listing containers of project p: boom" {
		t.Errorf("err = %v", err)
	}
}

func TestObserveAllCutsEveryProjectOutOfOneListing(t *testing.T) {
	inProject := func(c container.Summary, p string) container.Summary {
		c.Labels[api.ProjectLabel] = p
		return c
	}
	f := &fakeLister{
		containers: []container.Summary{
			summary("p-web-1", "web", "1", "running", "Up 1 second", nil),
			inProject(summary("q-db-1", "db", "1", "exited", "Exited (1) 2 seconds ago", nil), "q"),
			inProject(summary("q-api-1", "api", "1", "running", "Up 1 second", nil), "q"),
		},
		images: []image.Summary{{ID: "sha256:abc", RepoTags: []string{"app:1"}}},
	}
	all, err := ObserveAll(context.Background(), f, time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	if f.calls != ListCallsPerPass {
		t.Errorf("ObserveAll made %d calls, want %d whatever the number of projects", f.calls, ListCallsPerPass)
	}
	if got := f.filters[0]["label"]; !got[api.ProjectLabel] || len(got) != 1 {
		t.Errorf("containers not filtered by the project label's presence: %v", f.filters[0])
	}
	tests := []struct {
		project string
		want    []string
	}{
		{"p", []string{"p-web-1"}},
		{"q", []string{"q-api-1", "q-db-1"}},
		{"empty", nil},
	}
	for _, tt := range tests {
		snap := all.Of(tt.project)
		var names []string
		for _, c := range snap.Containers {
			names = append(names, c.Name)
		}
		if snap.Project != tt.project || !slices.Equal(names, tt.want) {
			t.Errorf("Of(%q) = %s %v, want %v", tt.project, snap.Project, names, tt.want)
		}
		if snap.Images["app:1"] != "sha256:abc" {
			t.Errorf("Of(%q) lost the images", tt.project)
		}
	}
	// a project's snapshot is its own: patching one leaves the other alone
	p, q := all.Of("p"), all.Of("p")
	p.Images["app:1"] = "changed"
	p.Containers[0].State = StateExited
	if q.Images["app:1"] != "sha256:abc" || q.Containers[0].State != StateRunning {
		t.Error("two snapshots of one listing share state")
	}
}

func TestOriginsComeFromComposesLabels(t *testing.T) {
	withOrigin := func(c container.Summary, p, dir, files, env string) container.Summary {
		c.Labels[api.ProjectLabel] = p
		c.Labels[api.WorkingDirLabel] = dir
		c.Labels[api.ConfigFilesLabel] = files
		if env != "" {
			c.Labels[api.EnvironmentFileLabel] = env
		}
		return c
	}
	f := &fakeLister{containers: []container.Summary{
		withOrigin(summary("shop-web-1", "web", "1", "running", "Up", nil), "shop", "/srv/shop", "/srv/shop/compose.yaml,/srv/shop/prod.yaml", "/srv/shop/.env"),
		withOrigin(summary("shop-web-2", "web", "2", "running", "Up", nil), "shop", "/srv/shop", "/srv/shop/compose.yaml,/srv/shop/prod.yaml", "/srv/shop/.env"),
		withOrigin(summary("blog-db-1", "db", "1", "running", "Up", nil), "blog", "/srv/blog", "/srv/blog/compose.yaml", ""),
		withOrigin(summary("handmade-1", "x", "1", "running", "Up", nil), "handmade", "", "", ""),
	}}
	all, err := ObserveAll(context.Background(), f, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []Origin{
		{Project: "blog", WorkingDir: "/srv/blog", ConfigFiles: []string{"/srv/blog/compose.yaml"}},
		{Project: "shop", WorkingDir: "/srv/shop", ConfigFiles: []string{"/srv/shop/compose.yaml", "/srv/shop/prod.yaml"}, EnvFiles: []string{"/srv/shop/.env"}},
	}
	if got := all.Origins(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Origins() = %+v\nwant %+v", got, want)
	}
}

func TestParseUp(t *testing.T) {
	tests := []struct {
		status string
		want   time.Duration
	}{
		{"Up Less than a second", 0},
		{"Up 1 second (health: starting)", time.Second},
		{"Up 42 seconds (healthy)", 42 * time.Second},
		{"Up About a minute", time.Minute},
		{"Up 3 minutes (unhealthy)", 3 * time.Minute},
		{"Up About an hour", time.Hour},
		{"Up 5 hours", 5 * time.Hour},
		{"Up 2 days", 48 * time.Hour},
		{"Up 3 weeks", 24 * time.Hour},
		{"Exited (0) 2 seconds ago", 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := parseUp(tt.status); got != tt.want {
			t.Errorf("parseUp(%q) = %s, want %s", tt.status, got, tt.want)
		}
	}
}
