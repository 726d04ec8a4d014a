package swarmspec_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/docker/cli/cli/compose/loader"
	"github.com/docker/cli/cli/compose/schema"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/swarmspec"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
)

// objects answers the secret and config lists docker/cli's conversion
// makes to learn the objects' IDs: each is found, with its name as ID.
type objects struct{ client.APIClient }

func (objects) SecretList(_ context.Context, o client.SecretListOptions) (client.SecretListResult, error) {
	var out client.SecretListResult
	for name := range o.Filters["name"] {
		out.Items = append(out.Items, swarm.Secret{ID: "id-" + name, Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name}}})
	}
	return out, nil
}

func (objects) ConfigList(_ context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	var out client.ConfigListResult
	for name := range o.Filters["name"] {
		out.Items = append(out.Items, swarm.Config{ID: "id-" + name, Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name}}})
	}
	return out, nil
}

// stackDeploy converts file as `docker stack deploy -c file p` does: its
// own loader (interpolation and the v3 schema) on the raw file, then the
// same conversion.
func stackDeploy(t *testing.T, file string) (map[string]swarm.ServiceSpec, map[string]client.NetworkCreateOptions, []swarm.SecretSpec, []swarm.ConfigSpec) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dict, err := loader.ParseYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loader.Load(composetypes.ConfigDetails{
		WorkingDir:  filepath.Dir(file),
		ConfigFiles: []composetypes.ConfigFile{{Filename: file, Config: dict}},
		Version:     schema.Version(dict),
		Environment: map[string]string{},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := convert.NewNamespace("p")
	services, err := convert.Services(context.Background(), ns, cfg, objects{})
	if err != nil {
		t.Fatal(err)
	}
	nets := map[string]struct{}{}
	for _, s := range cfg.Services {
		if len(s.Networks) == 0 {
			nets["default"] = struct{}{}
		}
		for n := range s.Networks {
			nets[n] = struct{}{}
		}
	}
	networks, _ := convert.Networks(ns, cfg.Networks, nets)
	secrets, err := convert.Secrets(ns, cfg.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	configs, err := convert.Configs(ns, cfg.Configs)
	if err != nil {
		t.Fatal(err)
	}
	return services, networks, secrets, configs
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.MarshalIndent(got, "", " ")
	w, _ := json.MarshalIndent(want, "", " ")
	if string(g) != string(w) {
		gl, wl := strings.Split(string(g), "\n"), strings.Split(string(w), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				lo := max(0, i-3)
				t.Errorf("%s differs from docker stack deploy's at line %d:\n got %s\nwant %s", what, i+1,
					strings.Join(gl[lo:min(len(gl), i+6)], "\n"), strings.Join(wl[lo:min(len(wl), i+6)], "\n"))
				return
			}
		}
		t.Errorf("%s differs from docker stack deploy's:\n got %s\nwant %s", what, g, w)
	}
}

// TestSpecsAreStackDeploys: a v3 file stack deploy takes as it is comes out
// of the Compose SDK and reconcile's conversion as the very specs, networks,
// secrets and configs `docker stack deploy` makes of it.
func TestSpecsAreStackDeploys(t *testing.T) {
	file, err := filepath.Abs("testdata/v3.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantServices, wantNetworks, wantSecrets, wantConfigs := stackDeploy(t, file)
	st := desiredtest.LoadFile(t, file)
	stack, err := swarmspec.FromDesired(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stack.Services(context.Background(), objects{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(wantServices) || len(got) != 3 {
		t.Fatalf("%d services, stack deploy %d", len(got), len(wantServices))
	}
	for name, want := range wantServices {
		same(t, "service "+name, got[name], want)
	}
	same(t, "networks", stack.Networks, wantNetworks)
	byName := func(a, b swarm.Annotations) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(wantSecrets, func(a, b swarm.SecretSpec) int { return byName(a.Annotations, b.Annotations) })
	slices.SortFunc(wantConfigs, func(a, b swarm.ConfigSpec) int { return byName(a.Annotations, b.Annotations) })
	same(t, "secrets", stack.Secrets, wantSecrets)
	same(t, "configs", stack.Configs, wantConfigs)
	if len(wantSecrets) != 1 || string(wantSecrets[0].Data) != "s3cr3t-value\n" {
		t.Errorf("the fixture's secret was not read: %+v", wantSecrets)
	}
}

// TestNotesSayWhatSwarmDoesNotHonour: each key Swarm ignores or reconcile
// honours in its place is listed where it is written; a key Swarm refuses
// is bad input at its line.
func TestNotesSayWhatSwarmDoesNotHonour(t *testing.T) {
	st := desiredtest.Load(t, `services:
  db:
    image: postgres:16
    container_name: the-db
    healthcheck: {test: ["CMD", "true"]}
  api:
    image: api:1
    build: ./api
    ports: ["127.0.0.1:8080:80", "9090:90"]
    pull_policy: always
    depends_on:
      db: {condition: service_healthy}
    volumes: ["./src:/src"]
`)
	stack, err := swarmspec.FromDesired(st)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range stack.Notes {
		got = append(got, filepath.Base(n.File)+":"+itoa(n.Line)+" "+n.Service+" "+n.Key)
	}
	want := []string{
		"compose.yaml:11 api depends_on",
		"compose.yaml:8 api build",
		"compose.yaml:9 api ports.0.host_ip",
		"compose.yaml:10 api pull_policy",
		"compose.yaml:4 db container_name",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("notes:\n got %q\nwant %q", got, want)
	}
	for _, n := range stack.Notes {
		if n.Handled != (n.Key == "depends_on") {
			t.Errorf("%s: handled %v", n, n.Handled)
		}
	}

	for _, tc := range []struct{ name, yaml, want string }{
		{"forbidden key", "services:\n  api:\n    image: api:1\n    mem_limit: 64m\n", `compose.yaml:4: service "api": mem_limit: docker stack deploy refuses it`},
		{"no image", "services:\n  api:\n    build: .\n", `service "api": image: a swarm runs images only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			st := desiredtest.LoadFile(t, writeFile(t, dir, tc.yaml))
			_, err := swarmspec.FromDesired(st)
			if !desired.IsInputError(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an input error with %q", err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, dir, yaml string) string {
	t.Helper()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func itoa(n int) string { return strconv.Itoa(n) }
