package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

type result = enginetest.Result

// reconcile runs the binary in dir with args and extra environment.
func reconcile(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	return enginetest.Run(t, dir, env, args...)
}

// once converges p and fails the test unless it exits 0.
func once(t *testing.T, p *enginetest.Project, extra ...string) result {
	t.Helper()
	r := reconcile(t, p.Dir, nil, append([]string{"--once", "-f", p.File, "-p", p.Name, "--timeout", "90s"}, extra...)...)
	if r.Code != 0 {
		t.Fatalf("reconcile --once: %s", r)
	}
	return r
}

const orderedStack = `
services:
  db:
    image: {{.Image}}
    environment: {START_DELAY: 3s}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 10}
  migrate:
    image: {{.Image}}
    environment: {EXIT_AFTER: 500ms, EXIT_CODE: "0"}
    depends_on: {db: {condition: service_healthy}}
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
  web:
    image: {{.Image}}
    depends_on: [api]
`

func TestOnceConvergesInDependencyOrder(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, orderedStack)
	events := p.Record()
	once(t, p)

	snap := p.Snapshot()
	byName := map[string]container.InspectResponse{}
	for _, c := range snap.Containers {
		byName[c.Name] = p.Inspect(c.ID)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{p.Name + "-api-1", p.Name + "-api-2", p.Name + "-db-1", p.Name + "-migrate-1", p.Name + "-web-1"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("containers %v, want %v", names, want)
	}
	if db := byName[p.Name+"-db-1"]; db.State.Health == nil || db.State.Health.Status != "healthy" {
		t.Fatalf("db not healthy: %+v", db.State.Health)
	}
	if m := byName[p.Name+"-migrate-1"]; m.State.Status != "exited" || m.State.ExitCode != 0 {
		t.Errorf("migrate: %s exit %d", m.State.Status, m.State.ExitCode)
	}

	// the order, from the engine's own event timestamps
	at := func(name, action string) time.Time {
		t.Helper()
		ts, ok := events.First(p.Name+"-"+name, action)
		if !ok {
			t.Fatalf("no %q event for %s", action, name)
		}
		return ts
	}
	dbHealthy := at("db-1", "health_status: healthy")
	migrateStart, migrateDone := at("migrate-1", "start"), at("migrate-1", "die")
	if !migrateStart.After(dbHealthy) {
		t.Errorf("migrate started at %s, before db was healthy at %s", migrateStart, dbHealthy)
	}
	for _, n := range []string{"api-1", "api-2"} {
		if start := at(n, "start"); !start.After(dbHealthy) || !start.After(migrateDone) {
			t.Errorf("%s started at %s: db healthy at %s, migrate done at %s", n, start, dbHealthy, migrateDone)
		}
		if web := at("web-1", "start"); !web.After(at(n, "start")) {
			t.Errorf("web started at %s, before %s", web, n)
		}
	}

	if r := reconcile(t, p.Dir, nil, "diff", "-f", p.File, "-p", p.Name); r.Code != 0 || !strings.Contains(r.Stdout, "in sync") {
		t.Errorf("diff after --once: %s", r)
	}

	// compose's own view: Ps lists every container, and Up recreates and
	// restarts nothing.
	ctx := context.Background()
	ps, err := p.Engine.Compose.Ps(ctx, p.Name, api.PsOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(want) {
		t.Errorf("compose ps lists %d containers, want %d", len(ps), len(want))
	}
	before := p.Resources()
	project := p.Load().Project
	if err := p.Engine.Compose.Up(ctx, project, api.UpOptions{
		Create: api.CreateOptions{Recreate: api.RecreateDiverged, RecreateDependencies: api.RecreateDiverged},
		Start:  api.StartOptions{Project: project},
	}); err != nil {
		t.Fatal(err)
	}
	for name, c := range byName {
		now := p.Inspect(c.ID)
		if now.State.StartedAt != c.State.StartedAt && name != p.Name+"-migrate-1" {
			t.Errorf("compose up restarted %s", name)
		}
	}
	after := p.Resources()
	for k, v := range before {
		id, _, _ := strings.Cut(v, " ")
		if got, _, _ := strings.Cut(after[k], " "); got != id {
			t.Errorf("compose up recreated %s", k)
		}
	}
}

const smallStack = `
services:
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
    environment: {COLOR: blue}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
  web:
    image: {{.Image}}
    depends_on: {api: {condition: service_healthy}}
`

func TestRemovedReplicaIsDiffedAndRecreated(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, smallStack)
	once(t, p)
	ids := p.IDs()
	p.RemoveForce(ids[p.Name+"-api-1"])

	r := reconcile(t, p.Dir, nil, "diff", "-f", p.File, "-p", p.Name)
	if r.Code != 1 || !strings.Contains(r.Stdout, "ReplicaMissing") || !strings.Contains(r.Stdout, "CreateContainer") {
		t.Fatalf("diff after rm -f: %s", r)
	}
	if r := reconcile(t, p.Dir, nil, "diff", "--exit-code=false", "-f", p.File, "-p", p.Name); r.Code != 0 {
		t.Errorf("diff --exit-code=false: %s", r)
	}
	once(t, p)
	after := p.IDs()
	if len(after) != 3 {
		t.Fatalf("containers after --once: %v", after)
	}
	for _, keep := range []string{p.Name + "-api-2", p.Name + "-web-1"} {
		if after[keep] != ids[keep] {
			t.Errorf("%s was replaced", keep)
		}
	}
	if _, ok := after[p.Name+"-api-3"]; !ok {
		t.Errorf("the new replica should be numbered as compose numbers it, after the highest (api-3): %v", after)
	}
}

func TestEditedServiceIsRecreatedAlone(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, smallStack)
	once(t, p)
	ids := p.IDs()
	p.Rewrite(strings.Replace(smallStack, "COLOR: blue", "COLOR: green", 1))

	r := reconcile(t, p.Dir, nil, "diff", "-f", p.File, "-p", p.Name)
	if r.Code != 1 || strings.Count(r.Stdout, "ConfigDiverged") != 2 || !strings.Contains(r.Stdout, "environment.COLOR: changed (values ***)") {
		t.Fatalf("diff after edit: %s", r)
	}
	if strings.Contains(r.Stdout, "green") || strings.Contains(r.Stdout, "blue") {
		t.Errorf("diff printed an environment value: %s", r)
	}
	once(t, p)
	after := p.IDs()
	for name, id := range ids {
		switch {
		case strings.Contains(name, "-api-") && after[name] == id:
			t.Errorf("%s was not recreated", name)
		case strings.Contains(name, "-web-") && after[name] != id:
			t.Errorf("%s was recreated although its service did not change", name)
		}
	}
	for _, c := range p.Snapshot().Containers {
		if c.Service == "api" {
			env := p.Inspect(c.ID).Config.Env
			if !containsString(env, "COLOR=green") {
				t.Errorf("%s env %v", c.Name, env)
			}
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSecretsNeverPrinted: a value from .env reaches the environment, the
// command and a label; as it changes, diff, --once and status print it
// nowhere, and an edit that makes compose refuse the value (an invalid
// duration quoting it) is refused without it.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	const first, second, third = "canary-first-5d1e0c", "canary-second-a94f21", "canary-third-77c0aa"
	p := enginetest.NewProject(t, `
services:
  api:
    image: {{.Image}}
    command: ["serve", "--key=${DB_PASSWORD}"]
    labels: {auth: "basic ${DB_PASSWORD}"}
    environment: {DB_PASSWORD: "${DB_PASSWORD}"}
    stop_grace_period: ${GRACE:-2s}
`)
	p.Write(".env", "DB_PASSWORD="+first+"\n")
	r1 := once(t, p, "--log-level", "debug")
	p.Write(".env", "DB_PASSWORD="+second+"\n")
	r2 := reconcile(t, p.Dir, nil, "diff", "-f", p.File, "-p", p.Name, "--log-level", "debug")
	if r2.Code != 1 || !strings.Contains(r2.Stdout, "environment.DB_PASSWORD: changed") ||
		!strings.Contains(r2.Stdout, `command: ["serve", "--key=***"] -> ["serve", "--key=***"]`) ||
		!strings.Contains(r2.Stdout, `labels.auth: "basic ***" -> "basic ***"`) {
		t.Fatalf("diff after the secret changed: %s", r2)
	}
	r2j := reconcile(t, p.Dir, nil, "diff", "-o", "json", "-f", p.File, "-p", p.Name)
	r3 := once(t, p, "--log-level", "debug")
	r4 := reconcile(t, p.Dir, nil, "status", "-f", p.File, "-p", p.Name, "-o", "json", "--log-level", "debug")
	p.Write(".env", "DB_PASSWORD="+second+"\nGRACE="+third+"\n")
	r5 := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name)
	if r5.Code != 2 || !strings.Contains(r5.Stderr, "stop_grace_period") {
		t.Fatalf("--once with an invalid duration from .env: %s", r5)
	}
	for _, r := range []result{r1, r2, r2j, r3, r4, r5} {
		if strings.Contains(r.Stdout+r.Stderr, "canary-") {
			t.Errorf("a secret value was printed:\n%s", r)
		}
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, smallStack)
	once(t, p)
	p.RemoveForce(p.IDs()[p.Name+"-api-1"])

	r := reconcile(t, p.Dir, nil, "status", "-f", p.File, "-p", p.Name, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("status: %s", r)
	}
	var st plan.ProjectStatus
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.Stdout)
	}
	got := map[string]string{}
	for _, s := range st.Services {
		got[s.Service] = fmt.Sprintf("%d/%d/%d %s %s", s.Desired, s.Running, s.Healthy, s.Sync, s.Health)
	}
	if got["api"] != "2/1/1 OutOfSync Degraded" || got["web"] != "1/1/1 Synced Healthy" {
		t.Errorf("status = %v", got)
	}
	table := reconcile(t, p.Dir, nil, "status", "-f", p.File, "-p", p.Name)
	if table.Code != 0 || !strings.Contains(table.Stdout, "SERVICE") || !strings.Contains(table.Stdout, "OutOfSync") {
		t.Errorf("status table: %s", table)
	}
}

// TestBadInputTouchesNothing brings a project up, then feeds reconcile each
// kind of bad input: every one must exit 2 with one line naming the file,
// and leave every container, network and volume as it was.
func TestBadInputTouchesNothing(t *testing.T) {
	t.Parallel()
	const good = `
x-reconcile: {restart: {max_attempts: 3}}
services:
  api:
    image: {{.Image}}
    volumes: [data:/data]
volumes: {data: {}}
`
	p := enginetest.NewProject(t, good)
	once(t, p)
	before := p.Resources()
	if len(before) != 3 {
		t.Fatalf("resources: %v", before)
	}

	tests := []struct {
		name    string
		compose string
		args    []string
		want    string
	}{
		{name: "invalid yaml", compose: "services:\n  api:\n    image: x\n   bad: [\n", want: "invalid YAML"},
		{name: "unknown dependency", compose: "services:\n  api:\n    image: {{.Image}}\n    depends_on: [ghost]\n", want: `undefined service "ghost"`},
		{name: "cycle", compose: "services:\n  api:\n    image: {{.Image}}\n    depends_on: [b]\n  b:\n    image: {{.Image}}\n    depends_on: [api]\n", want: "dependency cycle"},
		{name: "missing env file", compose: "services:\n  api:\n    image: {{.Image}}\n    env_file: nowhere.env\n", want: "nowhere.env not found"},
		{name: "missing --env-file", compose: good, args: []string{"--env-file", "absent.env"}, want: "env file not found"},
		{name: "bad x-reconcile", compose: "services:\n  api:\n    image: {{.Image}}\n    x-reconcile: {restart: {max_attempts: lots}}\n", want: "x-reconcile.restart.max_attempts"},
		{name: "image neither present nor pullable", compose: "services:\n  api:\n    image: reconcile-absent/image:nope\n    volumes: [data:/data]\nvolumes: {data: {}}\n", want: "cannot be pulled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Rewrite(tt.compose)
			r := reconcile(t, p.Dir, nil, append([]string{"--once", "-f", p.File, "-p", p.Name, "--timeout", "30s"}, tt.args...)...)
			if r.Code != 2 {
				t.Errorf("exit %d, want 2: %s", r.Code, r)
			}
			errLine := lastLine(r.Stderr)
			if !strings.HasPrefix(errLine, "reconcile: ") || !strings.Contains(errLine, tt.want) {
				t.Errorf("error line %q lacks %q", errLine, tt.want)
			}
			if tt.args == nil && !strings.Contains(errLine, "compose.yaml") {
				t.Errorf("error line %q does not name the file", errLine)
			}
			if d := reconcile(t, p.Dir, nil, append([]string{"diff", "-f", p.File, "-p", p.Name}, tt.args...)...); tt.name != "image neither present nor pullable" && d.Code != 2 {
				t.Errorf("diff: exit %d, want 2", d.Code)
			}
			if after := p.Resources(); !maps.Equal(before, after) {
				t.Errorf("bad input touched the project:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	p.Rewrite(good)
	once(t, p)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestEngineUnreachable needs no engine: it points reconcile at a socket
// nobody listens on.
func TestEngineUnreachable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte("services:\n  api: {image: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"DOCKER_HOST=unix://" + filepath.Join(dir, "nobody.sock"), "DOCKER_CONTEXT="}
	for _, args := range [][]string{{"--once"}, {"diff"}, {"status"}} {
		r := reconcile(t, dir, env, append(args, "-f", file)...)
		if r.Code != 3 || !strings.Contains(r.Stderr, "docker engine unreachable") {
			t.Errorf("%v: %s", args, r)
		}
	}
	// bad input is reported as such even without an engine
	if err := os.WriteFile(file, []byte("services:\n  api: {image: x, depends_on: [ghost]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := reconcile(t, dir, env, "--once", "-f", file); r.Code != 2 {
		t.Errorf("bad input without engine: %s", r)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--no-such-flag"}, {"status", "-o", "yaml"}, {"--scale", "api"}, {"--log-level", "loud", "version"}, {}} {
		if r := reconcile(t, dir, nil, args...); r.Code != 2 {
			t.Errorf("%v: %s", args, r)
		}
	}
}

// TestQuickstartExample converges the README's example, as `make demo`
// does, under a project name and port of its own.
func TestQuickstartExample(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, "services: {}\n") // only for its name, teardown and helpers
	file, err := filepath.Abs("../../examples/quickstart/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"WEB_PORT=" + enginetest.FreePort(t)}
	r := reconcile(t, p.Dir, env, "--once", "-f", file, "-p", p.Name, "--timeout", "90s")
	if r.Code != 0 {
		t.Fatalf("quickstart --once: %s", r)
	}
	for _, svc := range []string{"db", "migrate", "api", "web"} {
		if !strings.Contains(r.Stdout, svc) {
			t.Errorf("status table lacks %s: %s", svc, r.Stdout)
		}
	}
	if d := reconcile(t, p.Dir, env, "diff", "-f", file, "-p", p.Name); d.Code != 0 {
		t.Errorf("diff after converging the quickstart: %s", d)
	}
	if n := len(p.Snapshot().Containers); n != 5 {
		t.Errorf("%d containers, want 5", n)
	}
}

// TestOnceTimesOutWithReasons: a service that never turns healthy makes
// --once exit 1 after --timeout, saying which service and why.
func TestOnceTimesOutWithReasons(t *testing.T) {
	t.Parallel()
	// api's check fails, but within its start period: it stays "starting",
	// which may still turn healthy, so the run waits for it until its end
	p := enginetest.NewProject(t, `
services:
  api:
    image: {{.Image}}
    environment: {UNHEALTHY_AFTER: 0s}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 2, start_period: 5m}
  web:
    image: {{.Image}}
    depends_on: {api: {condition: service_healthy}}
`)
	start := time.Now()
	r := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "10s")
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1: %s", r.Code, r)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("--timeout 10s took %s", took)
	}
	for _, want := range []string{"not converged within 10s", "api: Synced/Progressing: " + p.Name + "-api-1 health starting", "web: OutOfSync/Missing"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r)
		}
	}
	if _, ok := p.IDs()[p.Name+"-web-1"]; ok {
		t.Error("web was started although its dependency never became healthy")
	}
}

// TestOnceDoesNotCallADyingContainerConverged: compose's up returns with
// the container running, and it exits a moment later; convergence must
// hold for the settle time, so --once exits 1, not 0.
func TestOnceDoesNotCallADyingContainerConverged(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  oneshot:
    image: {{.Image}}
    command: ["exit", "3", "1s"]   # looks started, dies a second later
    restart: "no"
`)
	r := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "15s")
	if r.Code != 1 {
		t.Fatalf("--once on a container that dies at once: %s; want exit 1 (not converged)", r)
	}
	if !strings.Contains(r.Stderr, "oneshot") {
		t.Errorf("the output does not name the service that did not converge:\n%s", r.Stderr)
	}
}

// TestOnceEndsAtOnceOnAMissingExternalNetwork: no wait can create an
// external network; --once says so with the file and key, exit 2, and
// touches nothing.
func TestOnceEndsAtOnceOnAMissingExternalNetwork(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    networks: [shared]
networks:
  shared:
    external: true
    name: reconcile-test-no-such-network
`)
	r := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "2m")
	if r.Code != 2 || !strings.Contains(r.Stderr, "compose.yaml:") || !strings.Contains(r.Stderr, "reconcile-test-no-such-network does not exist") {
		t.Fatalf("%s; want exit 2 naming the file and the network", r)
	}
	if n := len(p.Snapshot().Containers); n != 0 {
		t.Errorf("%d containers created", n)
	}
}

// TestContainersCarryComposesDependsOnLabel: compose stamps each container
// with its service's depends_on (`dep:condition:restart`), and its
// file-less commands order by it; reconcile's containers carry the same.
func TestContainersCarryComposesDependsOnLabel(t *testing.T) {
	p := enginetest.NewProject(t, `
services:
  db:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 3}
  api:
    image: {{.Image}}
    depends_on:
      db: {condition: service_healthy, restart: true}
  worker:
    image: {{.Image}}
    depends_on: [api, db]
`)
	once(t, p)
	want := map[string][]string{
		"db":     {""},
		"api":    {"db:service_healthy:true"},
		"worker": {"api:service_started:false", "db:service_started:false"},
	}
	for _, c := range p.Snapshot().Containers {
		got := strings.Split(p.Inspect(c.ID).Config.Labels[api.DependenciesLabel], ",")
		slices.Sort(got)
		if !slices.Equal(got, want[c.Service]) {
			t.Errorf("%s: depends_on label %q, want %q as compose sets it", c.Name, got, want[c.Service])
		}
	}
}

// TestDiffAndOnceGiveOneVerdictOnAnImageThatCannotBeGot: an image neither
// present nor pullable is bad input for both, with one message.
func TestDiffAndOnceGiveOneVerdictOnAnImageThatCannotBeGot(t *testing.T) {
	p := enginetest.NewProject(t, "services:\n  app:\n    image: reconcile-test-no-such-image:1\n")
	d := reconcile(t, p.Dir, nil, "diff", "-f", p.File, "-p", p.Name)
	o := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "30s")
	for name, r := range map[string]enginetest.Result{"diff": d, "--once": o} {
		if r.Code != 2 || !strings.Contains(r.Stderr, "compose.yaml:3") || !strings.Contains(r.Stderr, "reconcile-test-no-such-image:1 is not present locally and cannot be pulled") {
			t.Errorf("%s: %s; want exit 2 naming the file, line and image", name, r)
		}
	}
	if n := len(p.Snapshot().Containers); n != 0 {
		t.Errorf("%d containers created", n)
	}
}

// TestOnceEndsAtOnceOnADefinitionTheEngineRefuses: the engine's "No command
// specified" (a bad request no wait can fix) ends --once at once, as
// compose's up fails at once, naming the service's line and key; it used to
// retry for its whole timeout.
func TestOnceEndsAtOnceOnADefinitionTheEngineRefuses(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  app:
    image: {{.Image}}
    entrypoint: []
`)
	start := time.Now()
	r := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "60s")
	took := time.Since(start)
	if r.Code != exitInput && r.Code != exitNotConverged {
		t.Fatalf("%s; want exit 2 (nothing touched) or 1 (its network made)", r)
	}
	if !strings.Contains(r.Stderr, `compose.yaml:5: service "app": entrypoint:`) || !strings.Contains(r.Stderr, "No command specified") {
		t.Errorf("%s; want the service's line, its entrypoint and the engine's words", r)
	}
	if took > 20*time.Second {
		t.Errorf("took %s: want it ended at once, not at the timeout", took.Round(time.Second))
	}
}

// TestOnceEndsAtOnceOnADependencyThatFailedForGood: a dependency gone
// unhealthy that nothing will restart (the engine never restarts an
// unhealthy container, and no x-reconcile.restart.on_unhealthy asks
// reconcile to) holds its dependent for ever; --once says so at once with
// exit 1, as compose's up does, where it waited out its whole timeout.
func TestOnceEndsAtOnceOnADependencyThatFailedForGood(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  api:
    image: {{.Image}}
    environment: {UNHEALTHY_AFTER: 0s}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 2}
  web:
    image: {{.Image}}
    depends_on: {api: {condition: service_healthy}}
`)
	start := time.Now()
	r := reconcile(t, p.Dir, nil, "--once", "-f", p.File, "-p", p.Name, "--timeout", "60s")
	took := time.Since(start)
	want := "web: its dependency api cannot become healthy: " + p.Name + "-api-1 is unhealthy, and nothing will restart it"
	if r.Code != exitNotConverged || !strings.Contains(r.Stderr, want) {
		t.Fatalf("%s; want exit 1 saying %q", r, want)
	}
	if took > 30*time.Second {
		t.Errorf("took %s: want it ended once api turned unhealthy, not at the timeout", took.Round(time.Second))
	}
	if _, ok := p.IDs()[p.Name+"-web-1"]; ok {
		t.Error("web was started although its dependency is unhealthy")
	}
}
