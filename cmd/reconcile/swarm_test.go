package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// swarmStack is the quickstart's shape on a swarm: a db with a slow
// healthcheck, a one-shot migration (a replicated job), two api replicas
// behind both, and a web behind the api. Ports are host-mode and names
// resolve by DNS round robin: this machine's kernel has no IPVS, so
// Swarm's VIPs and routing mesh do not work here (docs/swarm.md).
const swarmStack = `
services:
  db:
    image: {{.Image}}
    environment: {START_DELAY: 3s}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 10}
    deploy: {endpoint_mode: dnsrr}
  migrate:
    image: {{.Image}}
    environment: {EXIT_AFTER: 500ms, EXIT_CODE: "0"}
    depends_on: {db: {condition: service_healthy}}
    deploy: {mode: replicated-job, endpoint_mode: dnsrr}
  api:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    deploy: {replicas: 2, endpoint_mode: dnsrr}
  web:
    image: {{.Image}}
    depends_on: [api]
    deploy: {endpoint_mode: dnsrr}
`

// swarmDaemon starts the daemon on the stack (its log format and any other
// flags in args) and waits until it watches it.
func swarmDaemon(t *testing.T, s *enginetest.Stack, args ...string) *enginetest.Proc {
	t.Helper()
	d := enginetest.Start(t, s.Dir, nil, append([]string{"--swarm", "-f", s.File, "-p", s.Name, "--state-dir", s.Dir + "/state"}, args...)...)
	d.WaitFor("watching the stack on the swarm", 30*time.Second)
	return d
}

func swarmOnce(t *testing.T, s *enginetest.Stack, extra ...string) result {
	t.Helper()
	return reconcile(t, s.Dir, nil, append([]string{"--swarm", "--once", "-f", s.File, "-p", s.Name, "--timeout", "90s", "--state-dir", s.Dir + "/state"}, extra...)...)
}

// firstRunning is when the first task of service reached running (after
// its healthcheck passed, for a service with one: Swarm reports a task
// running only then) or complete.
func firstAt(t *testing.T, s *enginetest.Stack, service string, state swarm.TaskState) time.Time {
	t.Helper()
	var first time.Time
	for _, task := range s.Tasks(service) {
		at := task.Status.Timestamp
		if task.Status.State == state || state == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateRunning {
			if first.IsZero() || at.Before(first) {
				first = at
			}
		}
	}
	if first.IsZero() {
		t.Fatalf("no task of %s is %s", service, state)
	}
	return first
}

// TestSwarmOnceDeploysInDependencyOrder: docker stack deploy creates every
// service at once and ignores depends_on; reconcile --swarm --once creates
// each only once its dependencies' tasks run healthy (or completed), then
// waits for the whole stack and exits 0.
func TestSwarmOnceDeploysInDependencyOrder(t *testing.T) {
	s := enginetest.NewStack(t, swarmStack)
	r := swarmOnce(t, s)
	if r.Code != 0 {
		t.Fatalf("reconcile --swarm --once: %s", r)
	}
	dbHealthy := firstAt(t, s, "db", swarm.TaskStateRunning)
	migrated := firstAt(t, s, "migrate", swarm.TaskStateComplete)
	apiUp := firstAt(t, s, "api", swarm.TaskStateRunning)
	for _, c := range []struct {
		service string
		after   time.Time
		what    string
	}{
		{"migrate", dbHealthy, "db healthy"},
		{"api", migrated, "migrate completed"},
		{"web", apiUp, "api healthy"},
	} {
		if created := s.Service(c.service).CreatedAt; created.Before(c.after) {
			t.Errorf("%s was created at %s, before %s (%s)", c.service, created.Format(time.StampMilli), c.what, c.after.Format(time.StampMilli))
		}
	}
	for _, name := range []string{"db", "api", "web"} {
		st := runningOf(t, s, name)
		if want := map[string]uint64{"db": 1, "api": 2, "web": 1}[name]; st != want {
			t.Errorf("%s: %d tasks running, want %d", name, st, want)
		}
	}
	if !strings.Contains(r.Stdout, "api") || !strings.Contains(r.Stdout, "converged") {
		t.Errorf("--once printed no status table:\n%s", r.Stdout)
	}
	// what Swarm ignores is said, where it is written
	if !strings.Contains(r.Stderr, `compose.yaml:11: service "migrate": depends_on: Swarm ignores it; reconcile`) {
		t.Errorf("the depends_on note is missing:\n%s", r.Stderr)
	}
	// a second run finds nothing to do
	if d := reconcile(t, s.Dir, nil, "--swarm", "diff", "-f", s.File, "-p", s.Name); d.Code != 0 || !strings.Contains(d.Stdout, "matches the compose files") {
		t.Errorf("diff after --once: %s", d)
	}
}

func runningOf(t *testing.T, s *enginetest.Stack, service string) uint64 {
	t.Helper()
	f := make(client.Filters).Add("name", s.Name+"_"+service)
	l, err := s.Engine.Client.ServiceList(context.Background(), client.ServiceListOptions{Filters: f, Status: true})
	if err != nil || len(l.Items) != 1 || l.Items[0].ServiceStatus == nil {
		t.Fatalf("listing %s: %v", service, err)
	}
	return l.Items[0].ServiceStatus.RunningTasks
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestSwarmDaemonRevertsHandChanges: a docker service scale and a docker
// service update --env-add by hand are reported as drift and undone by the
// daemon, through the service's own update.
func TestSwarmDaemonRevertsHandChanges(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  api:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    deploy: {replicas: 2, endpoint_mode: dnsrr}
`)
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("reconcile --swarm --once: %s", r)
	}
	d := swarmDaemon(t, s, "--log-format", "text")
	docker(t, "service", "scale", "-d", s.Name+"_api=4")
	d.WaitFor("Mode.Replicated.Replicas", 20*time.Second)
	docker(t, "service", "update", "-d", "--env-add", "HAND=1", s.Name+"_api")
	d.WaitFor("TaskTemplate.ContainerSpec.Env", 20*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		spec := s.Service("api").Spec
		if *spec.Mode.Replicated.Replicas == 2 && len(spec.TaskTemplate.ContainerSpec.Env) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hand changes were not undone: replicas %d, env %v", *spec.Mode.Replicated.Replicas, spec.TaskTemplate.ContainerSpec.Env)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := d.Output()
	if n := strings.Count(out, "reason=ServiceDrift"); n != 2 {
		t.Errorf("%d drift records, want one per hand change:\n%s", n, out)
	}
}

// v3Stack is a file docker stack deploy takes as it is.
const v3Stack = `version: "3.9"
services:
  api:
    image: {{.Image}}
    environment: {MODE: prod}
    labels: {tier: back}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    configs: [{source: app, target: /etc/app.conf}]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: {parallelism: 1, delay: 1s, order: start-first}
      resources: {limits: {memory: 64M}}
  web:
    image: {{.Image}}
    ports: [{target: 8080, published: {{.Port}}, mode: host}]
    networks: [front, default]
    deploy: {endpoint_mode: dnsrr, restart_policy: {condition: on-failure, max_attempts: 3}}
networks:
  front: {driver: overlay}
configs:
  app: {file: ./app.conf}
`

// TestSwarmStackDeployParity: after reconcile deploys a v3 file, docker
// stack deploy of the same file changes no spec and replaces no task; and
// a stack docker stack deploy made is one reconcile finds nothing to do
// on. The stack is the same stack to both tools.
func TestSwarmStackDeployParity(t *testing.T) {
	port := enginetest.FreePort(t)
	s := enginetest.NewStack(t, strings.Replace(v3Stack, "{{.Port}}", port, 1))
	s.Write("app.conf", "workers=2\n")
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("reconcile --swarm --once: %s", r)
	}
	before := map[string]string{}
	tasks := map[string][]string{}
	for _, name := range []string{"api", "web"} {
		b, _ := json.Marshal(s.Service(name).Spec)
		before[name] = string(b)
		tasks[name] = taskIDs(t, s, name)
	}
	docker(t, "stack", "deploy", "--resolve-image", "never", "-c", s.File, s.Name)
	for _, name := range []string{"api", "web"} {
		b, _ := json.Marshal(s.Service(name).Spec)
		if string(b) != before[name] {
			t.Errorf("docker stack deploy changed %s's spec:\nreconcile's: %s\nafter:       %s", name, before[name], b)
		}
	}
	// no rollout: the same tasks keep running (give Swarm a moment to
	// have started one, were it going to)
	time.Sleep(2 * time.Second)
	for _, name := range []string{"api", "web"} {
		if got := taskIDs(t, s, name); !slices.Equal(got, tasks[name]) {
			t.Errorf("docker stack deploy replaced %s's tasks: %v, then %v", name, tasks[name], got)
		}
	}
	if d := reconcile(t, s.Dir, nil, "--swarm", "diff", "-f", s.File, "-p", s.Name); d.Code != 0 {
		t.Errorf("diff after docker stack deploy: %s", d)
	}

	// the other way round: a stack deployed by docker stack deploy alone
	other := enginetest.NewStack(t, strings.Replace(v3Stack, "{{.Port}}", enginetest.FreePort(t), 1))
	other.Write("app.conf", "workers=2\n")
	docker(t, "stack", "deploy", "--resolve-image", "never", "-c", other.File, other.Name)
	if d := reconcile(t, other.Dir, nil, "--swarm", "diff", "-f", other.File, "-p", other.Name); d.Code != 0 || !strings.Contains(d.Stdout, "matches the compose files") {
		t.Errorf("diff of a stack docker stack deploy made: %s", d)
	}
}

// taskIDs are the IDs of service's tasks meant to run.
func taskIDs(t *testing.T, s *enginetest.Stack, service string) []string {
	t.Helper()
	var ids []string
	for _, task := range s.Tasks(service) {
		if task.DesiredState == swarm.TaskStateRunning {
			ids = append(ids, task.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestSwarmConfigRotation: Swarm's configs cannot change (docker stack
// deploy fails on an edited config file); reconcile creates the new content
// as a versioned config, rolls the service onto it through its own
// update_config, and removes the old one once nothing uses it.
func TestSwarmConfigRotation(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  api:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    environment: {WATCH_FILE: /etc/app.conf}
    configs: [{source: app, target: /etc/app.conf}]
    secrets: [pw]
    deploy: {replicas: 2, endpoint_mode: dnsrr, update_config: {parallelism: 1, order: start-first}}
configs:
  app: {file: ./app.conf}
secrets:
  pw: {file: ./pw.txt}
`)
	s.Write("app.conf", "workers=2\n")
	s.Write("pw.txt", "first-secret-value\n")
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("first deploy: %s", r)
	}
	first := s.Service("api").Spec.TaskTemplate.ContainerSpec.Configs[0].ConfigName
	if first != s.Name+"_app" {
		t.Fatalf("the first version is named %q, want docker stack deploy's %q", first, s.Name+"_app")
	}
	firstSecret := s.Service("api").Spec.TaskTemplate.ContainerSpec.Secrets[0].SecretName
	s.Write("app.conf", "workers=8\n")
	s.Write("pw.txt", "second-secret-value\n")
	r := swarmOnce(t, s)
	if r.Code != 0 {
		t.Fatalf("deploy of the changed config: %s", r)
	}
	ref := s.Service("api").Spec.TaskTemplate.ContainerSpec.Configs[0]
	if !strings.HasPrefix(ref.ConfigName, s.Name+"_app-") {
		t.Fatalf("api refers to config %q, want a new version of %s_app", ref.ConfigName, s.Name)
	}
	res, err := s.Engine.Client.ConfigInspect(context.Background(), ref.ConfigID, client.ConfigInspectOptions{})
	if err != nil || string(res.Config.Spec.Data) != "workers=8\n" {
		t.Fatalf("the new config holds %q (%v)", res.Config.Spec.Data, err)
	}
	if _, err := s.Engine.Client.ConfigInspect(context.Background(), first, client.ConfigInspectOptions{}); err == nil {
		t.Errorf("the old config %s is still there once no service uses it", first)
	}
	// a secret likewise (its data never comes back from the engine: the
	// tasks read it)
	sec := s.Service("api").Spec.TaskTemplate.ContainerSpec.Secrets[0]
	if firstSecret != s.Name+"_pw" || !strings.HasPrefix(sec.SecretName, s.Name+"_pw-") {
		t.Fatalf("secrets: first %q, then %q", firstSecret, sec.SecretName)
	}
	if _, err := s.Engine.Client.SecretInspect(context.Background(), firstSecret, client.SecretInspectOptions{}); err == nil {
		t.Errorf("the old secret %s is still there once no service uses it", firstSecret)
	}
	if strings.Contains(r.Stdout+r.Stderr, "second-secret-value") || strings.Contains(r.Stdout+r.Stderr, "first-secret-value") {
		t.Errorf("a secret's value was printed:\n%s", r)
	}
	for _, want := range []string{"reason=ObjectCreated", "reason=ServiceUpdated", "reason=ObjectRemoved"} {
		if !strings.Contains(strings.ReplaceAll(r.Stderr, `"reason":"`, "reason="), want) {
			t.Errorf("no %s record:\n%s", want, r.Stderr)
		}
	}
	// every running task reads the new content
	for _, task := range s.Tasks("api") {
		if task.DesiredState != swarm.TaskStateRunning || task.Status.ContainerStatus == nil {
			continue
		}
		if got := docker(t, "exec", task.Status.ContainerStatus.ContainerID, "/testapp", "get", "http://127.0.0.1:8080/config"); !strings.Contains(got, "workers=8") {
			t.Errorf("task %s reads %q", task.ID, got)
		}
		// testapp check exits 1 (and docker fails the test) on a missing file
		docker(t, "exec", task.Status.ContainerStatus.ContainerID, "/testapp", "check", "/run/secrets/pw")
	}
}

// TestSwarmOnceExitCodes: a definition Swarm rolls back is exit 1, named,
// and not tried again; bad input is exit 2 with the stack untouched; an
// engine that is no swarm manager is exit 3.
func TestSwarmOnceExitCodes(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  api:
    image: {{.Image}}
    environment: {MODE: "1"}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: {parallelism: 1, failure_action: rollback, monitor: 3s}
`)
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("first deploy: %s", r)
	}
	good := s.Service("api").Spec
	// a definition whose tasks fail at once: Swarm rolls it back
	s.Write("compose.yaml", strings.Replace(readFile(t, s.File), `environment: {MODE: "1"}`, `environment: {MODE: "2", EXIT_AFTER: 500ms, EXIT_CODE: "3"}`, 1))
	r := swarmOnce(t, s)
	if r.Code != 1 || !strings.Contains(r.Stderr, "api: failed: Swarm rolled back") {
		t.Fatalf("a rolled-back definition: %s", r)
	}
	spec := s.Service("api").Spec
	if !slices.Equal(spec.TaskTemplate.ContainerSpec.Env, good.TaskTemplate.ContainerSpec.Env) {
		t.Errorf("api runs %v after the rollback, want the good %v", spec.TaskTemplate.ContainerSpec.Env, good.TaskTemplate.ContainerSpec.Env)
	}

	before := s.Service("api").Version
	s.Write("compose.yaml", readFile(t, s.File)+"  broken: [\n")
	if r := swarmOnce(t, s); r.Code != 2 || !strings.Contains(r.Stderr, "compose.yaml") {
		t.Fatalf("bad input: %s", r)
	}
	if after := s.Service("api").Version; after != before {
		t.Errorf("bad input touched the stack: version %v, then %v", before, after)
	}
}

// TestSwarmNeedsAManager: against an engine that is no swarm manager,
// --swarm says so and exits 3. The engine is a stand-in answering as one
// outside any swarm: the tests never leave the real engine's swarm while
// other tests run (on engine 20.10, leaving a swarm breaks name resolution
// in every running compose project: moby/moby#45144).
func TestSwarmNeedsAManager(t *testing.T) {
	notManager := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			fmt.Fprint(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/info"):
			fmt.Fprint(w, `{"ID":"stand-in","Name":"stand-in","Swarm":{"LocalNodeState":"inactive","ControlAvailable":false}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"not in this stand-in"}`)
		}
	}))
	defer notManager.Close()
	p := enginetest.NewProject(t, "services:\n  api:\n    image: {{.Image}}\n")
	r := reconcile(t, p.Dir, []string{"DOCKER_HOST=tcp://" + strings.TrimPrefix(notManager.URL, "http://")}, "--swarm", "--once", "-f", p.File, "-p", p.Name)
	if r.Code != 3 || !strings.Contains(r.Stderr, "not a swarm manager") {
		t.Fatalf("--swarm without a swarm: %s", r)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSwarmRestartTrueCascades: Swarm has no depends_on, let alone
// restart: true. When reconcile replaces a dependency's tasks (its
// definition changed), the dependents that say restart: true get theirs
// replaced too, once the dependency is healthy again; a dependent without
// it keeps its tasks.
func TestSwarmRestartTrueCascades(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  db:
    image: {{.Image}}
    environment: {VERSION: "1"}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 5}
    deploy: {endpoint_mode: dnsrr}
  api:
    image: {{.Image}}
    depends_on: {db: {condition: service_healthy, restart: true}}
    deploy: {endpoint_mode: dnsrr}
  web:
    image: {{.Image}}
    depends_on: {db: {condition: service_healthy}}
    deploy: {endpoint_mode: dnsrr}
`)
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("first deploy: %s", r)
	}
	api, web := taskIDs(t, s, "api"), taskIDs(t, s, "web")
	s.Write("compose.yaml", strings.Replace(readFile(t, s.File), `VERSION: "1"`, `VERSION: "2"`, 1))
	r := swarmOnce(t, s)
	if r.Code != 0 {
		t.Fatalf("deploy of the changed db: %s", r)
	}
	if got := taskIDs(t, s, "api"); slices.Equal(got, api) {
		t.Errorf("api (restart: true) kept its tasks %v after db's were replaced", got)
	}
	if got := taskIDs(t, s, "web"); !slices.Equal(got, web) {
		t.Errorf("web (no restart: true) had its tasks replaced: %v, then %v", web, got)
	}
	// the api's new task started once the db's new one ran healthy
	dbUp := s.Service("db").UpdateStatus.CompletedAt
	if dbUp == nil {
		t.Fatalf("db's update never completed: %+v", s.Service("db").UpdateStatus)
	}
	for _, task := range s.Tasks("api") {
		if task.DesiredState == swarm.TaskStateRunning && task.CreatedAt.Before(*dbUp) {
			t.Errorf("api's task %s was created at %s, before db's update completed at %s", task.ID, task.CreatedAt, dbUp)
		}
	}
	if !strings.Contains(r.Stderr, "restart: true: db's tasks were replaced") {
		t.Errorf("the cascade is not said:\n%s", r.Stderr)
	}
}

// TestSwarmExample walks the README's Swarm steps on examples/swarm: it
// deploys in order and exits 0, a hand scale shows in diff, and a second
// --once puts it back.
func TestSwarmExample(t *testing.T) {
	s := enginetest.NewStack(t, "services: {}\n")
	src, err := os.ReadFile("../../examples/swarm/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// the example's own name, port and image, but this test's stack name
	s.Write("compose.yaml", strings.Replace(strings.Replace(string(src), "name: swarmdemo", "name: "+s.Name, 1),
		"published: 8089", "published: "+enginetest.FreePort(t), 1))
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("--once on the example: %s", r)
	}
	if n := runningOf(t, s, "api"); n != 2 {
		t.Fatalf("api runs %d tasks", n)
	}
	docker(t, "service", "scale", "-d", s.Name+"_api=5")
	d := reconcile(t, s.Dir, nil, "--swarm", "diff", "-f", s.File)
	if d.Code != 1 || !strings.Contains(d.Stdout, "~ service api: Mode.Replicated.Replicas") {
		t.Fatalf("diff after a hand scale: %s", d)
	}
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("--once after a hand scale: %s", r)
	}
	if spec := s.Service("api").Spec; *spec.Mode.Replicated.Replicas != 2 {
		t.Errorf("api scaled to %d, want the file's 2", *spec.Mode.Replicated.Replicas)
	}
}

// TestSwarmDaemonServesItsStack: the daemon of a stack answers as a
// project's does: /readyz once it has looked, /status with each service's
// tasks as containers and the node each runs on, /metrics with the tasks
// per node and its records counted, /events with a hand scale's drift, the
// dashboard; and status --swarm -o json prints what /status serves.
func TestSwarmDaemonServesItsStack(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  db:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    deploy: {endpoint_mode: dnsrr}
  api:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    depends_on: {db: {condition: service_healthy}}
    deploy: {replicas: 2, endpoint_mode: dnsrr}
`)
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("reconcile --swarm --once: %s", r)
	}
	node := strings.TrimSpace(docker(t, "node", "ls", "--format", "{{.Hostname}}"))
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	base := "http://" + addr
	swarmDaemon(t, s, "--log-format", "json", "--listen", addr)
	statusOf := func() plan.ProjectStatus {
		var st plan.ProjectStatus
		if err := json.Unmarshal([]byte(httpGet(t, base+"/status")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	eventually(t, 30*time.Second, "the stack healthy and synced in /status", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return false
		}
		st := statusOf()
		return st.Health == plan.Healthy && st.Sync == plan.Synced
	})
	st := statusOf()
	if st.Project != s.Name || len(st.Services) != 2 || st.Services[0].Service != "db" || st.Services[1].Service != "api" {
		t.Fatalf("status: %+v", st)
	}
	api := st.Services[1]
	if api.Desired != 2 || api.Healthy != 2 || len(api.Containers) != 2 || len(api.DependsOn) != 1 {
		t.Errorf("api: %+v", api)
	}
	for _, c := range api.Containers {
		if c.Node != node || c.State != "running" || !strings.HasPrefix(c.Name, s.Name+"_api.") {
			t.Errorf("api task %+v: want running on %s", c, node)
		}
	}
	want := fmt.Sprintf(`reconcile_swarm_tasks{node=%q,project=%q,service="api"} 2`, node, s.Name)
	m := httpGet(t, base+"/metrics")
	if !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	// the loop's reconciles are counted, so the alert on failing ones reads them
	if counted := fmt.Sprintf(`reconcile_total{project=%q,result="success"}`, s.Name); !strings.Contains(m, counted) {
		t.Errorf("/metrics lacks %s", counted)
	}
	// the dashboard draws the stack, each task's mark saying its node
	br := openBrowser(t)
	ctx, cancel := context.WithTimeout(br.Ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#graph g.replica[data-container=%q][data-node=%q][data-state="running"]`, s.Name+"_api.2", node)))); err != nil {
		t.Fatalf("the dashboard did not draw api's second task on %s: %v", node, err)
	}
	if n := eval[int](t, br, fmt.Sprintf(`document.querySelectorAll('#graph g.replica[data-node=%q]').length`, node)); n != 3 {
		t.Errorf("%d marks on %s, want 3 (db's task and api's two)", n, node)
	}
	if title := eval[string](t, br, `document.querySelector('#graph g.replica title').textContent`); !strings.Contains(title, " on "+node) {
		t.Errorf("a mark's title %q does not say its node", title)
	}

	// a hand scale: recorded, counted, put back, and said in the status
	docker(t, "service", "scale", "-d", s.Name+"_api=4")
	eventually(t, 30*time.Second, "ServiceDrift in /events", func() bool {
		for _, r := range records(t, base) {
			if r.Reason == record.ServiceDrift && r.Service == "api" && r.Project == s.Name {
				return true
			}
		}
		return false
	})
	counted := fmt.Sprintf(`reconcile_events_total{project=%q,reason="ServiceDrift",type="Warning"} 1`, s.Name)
	if m := httpGet(t, base+"/metrics"); !strings.Contains(m, counted) {
		t.Errorf("/metrics lacks %s", counted)
	}
	eventually(t, 60*time.Second, "api back to 2 tasks, synced", func() bool {
		st := statusOf()
		return st.Sync == plan.Synced && st.Health == plan.Healthy && len(st.Services[1].Containers) == 2
	})

	// status --swarm -o json: the same status, from one look
	r := reconcile(t, s.Dir, nil, "--swarm", "status", "-o", "json", "-f", s.File, "-p", s.Name)
	var once plan.ProjectStatus
	if err := json.Unmarshal([]byte(r.Stdout), &once); err != nil || r.Code != 0 {
		t.Fatalf("status --swarm -o json: %v\n%s", err, r)
	}
	if len(once.Services) != 2 || once.Services[1].Containers[0].Node != node {
		t.Errorf("status --swarm -o json: %+v", once)
	}
}

// TestSwarmAdoptsWhatItIsToldTo: a service whose x-reconcile.swarm.adopt
// names replicas keeps a hand scale (DriftAdopted, diff says nothing to
// do), while a hand change beside it is still put back, the hand's
// replicas carried through that update.
func TestSwarmAdoptsWhatItIsToldTo(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  api:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    deploy: {replicas: 2, endpoint_mode: dnsrr}
    x-reconcile:
      swarm: {adopt: [replicas]}
`)
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("reconcile --swarm --once: %s", r)
	}
	d := swarmDaemon(t, s, "--log-format", "text")
	docker(t, "service", "scale", "-d", s.Name+"_api=3")
	d.WaitFor("reason=DriftAdopted", 20*time.Second)
	if r := reconcile(t, s.Dir, nil, "--swarm", "diff", "-f", s.File, "-p", s.Name); r.Code != 0 || !strings.Contains(r.Stdout, "matches the compose file") {
		t.Errorf("diff after an adopted hand scale: %s", r)
	}
	// a change beside it is put back; the update keeps the hand's replicas
	docker(t, "service", "update", "-d", "--env-add", "HAND=1", s.Name+"_api")
	d.WaitFor("TaskTemplate.ContainerSpec.Env", 20*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		spec := s.Service("api").Spec
		if len(spec.TaskTemplate.ContainerSpec.Env) == 0 {
			if n := *spec.Mode.Replicated.Replicas; n != 3 {
				t.Errorf("replicas %d after the env was put back, want the hand's 3", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hand env was not undone: %v", spec.TaskTemplate.ContainerSpec.Env)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := d.Output()
	if n := strings.Count(out, "reason=ServiceDrift"); n != 1 || strings.Count(out, "reason=DriftAdopted") != 1 {
		t.Errorf("want one DriftAdopted (the scale) and one ServiceDrift (the env):\n%s", out)
	}
}

// TestSwarmRestartTrueFollowsSwarmsOwnRestarts: when Swarm itself replaces
// a dependency's task (here its container is killed: Swarm starts a new
// task), the dependents that say restart: true have theirs replaced once it
// is healthy again, as after reconcile's own update; the others keep theirs.
func TestSwarmRestartTrueFollowsSwarmsOwnRestarts(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  db:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 5}
    deploy: {endpoint_mode: dnsrr}
  api:
    image: {{.Image}}
    depends_on: {db: {condition: service_healthy, restart: true}}
    deploy: {endpoint_mode: dnsrr}
  web:
    image: {{.Image}}
    depends_on: {db: {condition: service_healthy}}
    deploy: {endpoint_mode: dnsrr}
`)
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("first deploy: %s", r)
	}
	d := swarmDaemon(t, s, "--log-format", "text")
	db, api, web := taskIDs(t, s, "db"), taskIDs(t, s, "api"), taskIDs(t, s, "web")
	ctr := strings.TrimSpace(docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+s.Name+"_db"))
	docker(t, "kill", ctr)
	eventually(t, 60*time.Second, "api's task replaced after db's", func() bool {
		return !slices.Equal(taskIDs(t, s, "db"), db) && !slices.Equal(taskIDs(t, s, "api"), api) && runningOf(t, s, "api") == 1
	})
	if got := taskIDs(t, s, "web"); !slices.Equal(got, web) {
		t.Errorf("web (no restart: true) had its tasks replaced: %v, then %v", web, got)
	}
	d.WaitFor("restart: true: db's tasks were replaced", 10*time.Second)
	// the api's new task was made once the db's new one ran healthy
	var dbRunning time.Time
	for _, task := range s.Tasks("db") {
		if task.DesiredState == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateRunning {
			dbRunning = task.Status.Timestamp
		}
	}
	for _, task := range s.Tasks("api") {
		if task.DesiredState == swarm.TaskStateRunning && !task.CreatedAt.After(dbRunning) {
			t.Errorf("api's new task was created at %s, before db's new task ran healthy at %s", task.CreatedAt, dbRunning)
		}
	}
}

// TestSwarmDaemonRotatesAnEditedConfig: under the daemon, an edit of a
// config's file (not of the compose file) is a new versioned config, the
// service rolled onto it, the old one removed: the daemon watches the
// files its configs and secrets are made of, and a change of the file
// after an update of its own is made.
func TestSwarmDaemonRotatesAnEditedConfig(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  api:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    configs: [{source: app, target: /etc/app.conf}]
    deploy: {endpoint_mode: dnsrr, update_config: {order: start-first}}
configs:
  app: {file: ./app.conf}
`)
	s.Write("app.conf", "workers=2\n")
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("first deploy: %s", r)
	}
	d := swarmDaemon(t, s, "--log-format", "text")
	// a hand change the daemon puts back first: the file's edit after
	// reconcile's own update is a change still (it was taken for the
	// engine's form of that update, and never made)
	docker(t, "service", "update", "-d", "--env-add", "HAND=1", s.Name+"_api")
	d.WaitFor("reason=ServiceUpdated", 30*time.Second)
	s.Write("app.conf", "workers=8\n")
	d.WaitFor("reason=ObjectRemoved", 60*time.Second)
	// a look after the old version's removal (a hand change to put
	// back): the old name, now free, draws the service onto no copy of
	// the same data, and the conversion finds the data where it lives
	docker(t, "service", "update", "-d", "--label-add", "hand=1", s.Name+"_api")
	eventually(t, 60*time.Second, "the hand label put back", func() bool {
		return strings.Count(d.Output(), "reason=ServiceUpdated") == 3
	})
	if out := d.Output(); strings.Count(out, "reason=ObjectCreated") != 1 {
		t.Errorf("want one config created (the new data):\n%s", out)
	}
	ref := s.Service("api").Spec.TaskTemplate.ContainerSpec.Configs[0]
	res, err := s.Engine.Client.ConfigInspect(context.Background(), ref.ConfigID, client.ConfigInspectOptions{})
	if err != nil || string(res.Config.Spec.Data) != "workers=8\n" || !strings.HasPrefix(ref.ConfigName, s.Name+"_app-") {
		t.Errorf("api refers to %s holding %q (%v), want a new version holding workers=8", ref.ConfigName, res.Config.Spec.Data, err)
	}
}

// TestSwarmChecksANewConfigFirst: a service with a reload check gets a
// changed config only once the check passes on it, run in a one-off
// container of its image with the new files where its tasks would read
// them: a refused config is recorded with the check's output, the tasks
// keep the old one, and a good edit after it rolls out.
func TestSwarmChecksANewConfigFirst(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  api:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    configs: [{source: app, target: /etc/app.conf}]
    deploy: {endpoint_mode: dnsrr, update_config: {order: start-first}}
    x-reconcile:
      reload: {check: ["/testapp", "check", "/etc/app.conf"], signal: SIGHUP}
configs:
  app: {file: ./app.conf}
`)
	s.Write("app.conf", "workers=2\n")
	if r := swarmOnce(t, s); r.Code != 0 {
		t.Fatalf("first deploy: %s", r)
	}
	tasks := taskIDs(t, s, "api")
	d := swarmDaemon(t, s, "--log-format", "text")
	s.Write("app.conf", "workers=invalid\n")
	d.WaitFor("/etc/app.conf: invalid configuration", 60*time.Second)
	if ref := s.Service("api").Spec.TaskTemplate.ContainerSpec.Configs[0]; ref.ConfigName != s.Name+"_app" {
		t.Errorf("api moved to %s though its check refused it", ref.ConfigName)
	}
	if got := taskIDs(t, s, "api"); !slices.Equal(got, tasks) {
		t.Errorf("api's tasks replaced for a refused config: %v, then %v", tasks, got)
	}
	if n := strings.Count(d.Output(), "reason=ReloadRejected"); n != 1 {
		t.Errorf("%d ReloadRejected records, want the one with the check's output:\n%s", n, d.Output())
	}
	s.Write("app.conf", "workers=8\n")
	d.WaitFor("passed /testapp check /etc/app.conf", 60*time.Second)
	eventually(t, 60*time.Second, "api on the new config", func() bool {
		ref := s.Service("api").Spec.TaskTemplate.ContainerSpec.Configs[0]
		return strings.HasPrefix(ref.ConfigName, s.Name+"_app-") && runningOf(t, s, "api") == 1
	})
	if out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.stack.namespace.check="+s.Name).Output(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("check containers left behind: %q %v", out, err)
	}
}

// TestSwarmSpentRestartBudget: Swarm honours restart_policy.max_attempts
// itself; reconcile says when it is spent, with the reason it gives on one
// host: --once exits 1 at once, naming it, rather than at its timeout; the
// daemon records RestartBudgetExhausted once, and /status says Degraded.
func TestSwarmSpentRestartBudget(t *testing.T) {
	s := enginetest.NewStack(t, `
services:
  worker:
    image: {{.Image}}
    # it fails before its first probe: never healthy, never converged
    environment: {EXIT_AFTER: 200ms, EXIT_CODE: "1"}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 2s, retries: 3}
    deploy:
      endpoint_mode: dnsrr
      restart_policy: {condition: on-failure, max_attempts: 2, delay: 200ms}
`)
	start := time.Now()
	r := swarmOnce(t, s, "--timeout", "2m")
	if r.Code != 1 || !strings.Contains(r.Stderr, "RestartBudgetExhausted") || !strings.Contains(r.Stderr, "max_attempts (2)") {
		t.Fatalf("--once on a service whose restart budget Swarm spends: %s", r)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("--once took %s: it waited for its timeout", took)
	}
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	d := enginetest.Start(t, s.Dir, nil, "--swarm", "-f", s.File, "-p", s.Name, "--state-dir", s.Dir+"/state", "--listen", addr, "--log-format", "text")
	d.WaitFor("reason=RestartBudgetExhausted", 30*time.Second)
	var st plan.ProjectStatus
	eventually(t, 30*time.Second, "the status Degraded", func() bool {
		if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/status")), &st); err != nil {
			return false
		}
		return st.Health == plan.Degraded && strings.Contains(st.Services[0].Reason, "RestartBudgetExhausted")
	})
	if n := strings.Count(d.Output(), "reason=RestartBudgetExhausted"); n != 1 {
		t.Errorf("%d RestartBudgetExhausted records, want 1:\n%s", n, d.Output())
	}
}
