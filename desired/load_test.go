package desired

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/engine"
)

// loader is the Compose SDK's own loader; loading needs no engine.
func loader(t testing.TB) ProjectLoader {
	t.Helper()
	l, err := engine.Loader()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeFiles writes name -> content into a fresh directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// clearComposeEnv keeps the developer's environment out of the tests.
func clearComposeEnv(t testing.TB) {
	for _, k := range []string{"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_ENV_FILES", "COMPOSE_PATH_SEPARATOR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestLoadProjectNaming(t *testing.T) {
	const base = "services:\n  app:\n    image: img\n"
	tests := []struct {
		name     string
		files    map[string]string
		env      map[string]string
		flagName string
		want     string
	}{
		{name: "directory", files: map[string]string{"compose.yaml": base}, want: ""},
		{name: "name in file", files: map[string]string{"compose.yaml": "name: fromfile\n" + base}, want: "fromfile"},
		{name: "env over file", files: map[string]string{"compose.yaml": "name: fromfile\n" + base}, env: map[string]string{"COMPOSE_PROJECT_NAME": "fromenv"}, want: "fromenv"},
		{name: "flag over env", files: map[string]string{"compose.yaml": "name: fromfile\n" + base}, env: map[string]string{"COMPOSE_PROJECT_NAME": "fromenv"}, flagName: "fromflag", want: "fromflag"},
		{name: "dotenv", files: map[string]string{"compose.yaml": base, ".env": "COMPOSE_PROJECT_NAME=fromdotenv\n"}, want: "fromdotenv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			dir := writeFiles(t, tt.files)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: tt.flagName})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = strings.ToLower(filepath.Base(dir))
			}
			if st.Project.Name != want {
				t.Errorf("project name = %q, want %q", st.Project.Name, want)
			}
		})
	}
}

func TestLoadMergesFilesInOrderAndHonoursComposeEnv(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{
		"compose.yaml":      "services:\n  app:\n    image: base\n    environment: {A: base, B: base}\n  extra:\n    image: x\n    profiles: [debug]\n",
		"compose.prod.yaml": "services:\n  app:\n    image: prod\n    environment: {B: prod}\n    deploy: {replicas: 3}\n",
		"prod.env":          "TAG=1.2\n",
	})
	t.Setenv("COMPOSE_FILE", filepath.Join(dir, "compose.yaml")+string(os.PathListSeparator)+filepath.Join(dir, "compose.prod.yaml"))
	t.Setenv("COMPOSE_PROFILES", "debug")
	st, err := Load(context.Background(), loader(t), Options{ProjectName: "p", ProjectDir: dir, EnvFiles: []string{filepath.Join(dir, "prod.env")}})
	if err != nil {
		t.Fatal(err)
	}
	app := st.Services["app"]
	if app.Config.Image != "prod" || *app.Config.Environment["A"] != "base" || *app.Config.Environment["B"] != "prod" {
		t.Errorf("merge: image %q env %v", app.Config.Image, app.Config.Environment)
	}
	if app.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", app.Replicas)
	}
	if _, ok := st.Services["extra"]; !ok {
		t.Error("COMPOSE_PROFILES=debug did not enable service extra")
	}
	for _, want := range []string{"compose.yaml", "compose.prod.yaml", "prod.env"} {
		found := false
		for _, f := range st.Files {
			found = found || filepath.Base(f) == want
		}
		if !found {
			t.Errorf("Files %v lacks %s", st.Files, want)
		}
	}
}

func TestLoadProfiles(t *testing.T) {
	const compose = "services:\n  app: {image: x}\n  debug: {image: x, profiles: [debug]}\n  trace: {image: x, profiles: [trace]}\n"
	tests := []struct {
		name  string
		env   string
		flags []string
		want  string
	}{
		{name: "none", want: "app"},
		{name: "flag", flags: []string{"debug"}, want: "app,debug"},
		{name: "env", env: "trace", want: "app,trace"},
		{name: "flag over env", env: "trace", flags: []string{"debug"}, want: "app,debug"},
		{name: "wildcard", flags: []string{"*"}, want: "app,debug,trace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			if tt.env != "" {
				t.Setenv("COMPOSE_PROFILES", tt.env)
			}
			dir := writeFiles(t, map[string]string{"compose.yaml": compose})
			st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p", Profiles: tt.flags})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(st.Order, ","); got != tt.want {
				t.Errorf("services = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLoadScaleAndOrder(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{"compose.yaml": `
services:
  web: {image: x, depends_on: [api]}
  api: {image: x, depends_on: {db: {condition: service_healthy}, cache: {condition: service_started, required: false}}}
  db: {image: x, healthcheck: {test: ["CMD", "true"]}}
  cache: {image: x}
`})
	st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p", Scale: map[string]int{"api": 4}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.Order, ","); got != "cache,db,api,web" {
		t.Errorf("order = %s", got)
	}
	if st.Services["api"].Replicas != 4 {
		t.Errorf("--scale api=4 gave %d replicas", st.Services["api"].Replicas)
	}
	deps := st.Services["api"].DependsOn
	if len(deps) != 2 || deps[0] != (Dependency{Service: "cache", Condition: "service_started", Required: false}) ||
		deps[1] != (Dependency{Service: "db", Condition: "service_healthy", Required: true}) {
		t.Errorf("depends_on = %+v", deps)
	}
}

func TestPolicyLayers(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{"compose.yaml": `
x-reconcile:
  restart: {max_attempts: 5, delay: 2s, reset_after: 30s}
  replicas: {prune: false}
services:
  plain: {image: x}
  onfail: {image: x, restart: "on-failure:3"}
  deployed:
    image: x
    restart: always
    deploy: {restart_policy: {condition: on-failure, max_attempts: 2, delay: 5s, window: 2m}}
  refined:
    image: x
    restart: unless-stopped
    healthcheck: {test: ["CMD", "true"]}
    x-reconcile:
      restart: {max_attempts: "${ATTEMPTS:-7}", max_delay: 10s, on_unhealthy: false}
      replicas: {prune: true}
      reload: {check: [nginx, -t], exec: [nginx, -s, reload], timeout: 5s}
  checked: {image: x, restart: always, healthcheck: {test: ["CMD", "true"]}}
  checkedno: {image: x, healthcheck: {test: ["CMD", "true"]}}
  checkednoon:
    image: x
    healthcheck: {test: ["CMD", "true"]}
    x-reconcile: {restart: {on_unhealthy: true}}
`})
	st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		svc   string
		want  RestartPolicy
		prune bool
	}{
		{"plain", RestartPolicy{Mode: RestartNo, MaxAttempts: 5, ResetAfter: 30 * time.Second, Delay: 2 * time.Second, MaxDelay: 60 * time.Second}, false},
		{"onfail", RestartPolicy{Mode: RestartOnFailure, EngineRetries: 3, MaxAttempts: 3, ResetAfter: 30 * time.Second, Delay: 2 * time.Second, MaxDelay: 60 * time.Second}, false},
		{"deployed", RestartPolicy{Mode: RestartOnFailure, EngineRetries: 2, MaxAttempts: 2, Window: 2 * time.Minute, ResetAfter: 30 * time.Second, Delay: 5 * time.Second, MaxDelay: 60 * time.Second}, false},
		{"refined", RestartPolicy{Mode: RestartUnlessStopped, MaxAttempts: 7, ResetAfter: 30 * time.Second, Delay: 2 * time.Second, MaxDelay: 10 * time.Second, OnUnhealthy: false}, true},
		// on_unhealthy: on with a healthcheck, except with restart "no", unless said
		{"checked", RestartPolicy{Mode: RestartAlways, MaxAttempts: 5, ResetAfter: 30 * time.Second, Delay: 2 * time.Second, MaxDelay: 60 * time.Second, OnUnhealthy: true}, false},
		{"checkedno", RestartPolicy{Mode: RestartNo, MaxAttempts: 5, ResetAfter: 30 * time.Second, Delay: 2 * time.Second, MaxDelay: 60 * time.Second}, false},
		{"checkednoon", RestartPolicy{Mode: RestartNo, MaxAttempts: 5, ResetAfter: 30 * time.Second, Delay: 2 * time.Second, MaxDelay: 60 * time.Second, OnUnhealthy: true}, false},
	}
	for _, tt := range tests {
		p := st.Services[tt.svc].Policy
		if p.Restart != tt.want {
			t.Errorf("%s restart = %+v\nwant %+v", tt.svc, p.Restart, tt.want)
		}
		if p.Replicas.Prune != tt.prune {
			t.Errorf("%s prune = %v, want %v", tt.svc, p.Replicas.Prune, tt.prune)
		}
	}
	r := st.Services["refined"].Policy.Reload
	if strings.Join(r.Check, " ") != "nginx -t" || strings.Join(r.Exec, " ") != "nginx -s reload" || r.Restart || r.Timeout != 5*time.Second {
		t.Errorf("reload = %+v", r)
	}
	if !st.Services["plain"].Policy.Reload.Restart {
		t.Error("the default reload action should be a rolling restart")
	}
}

func TestUpstreamsResolveAgainstBindMounts(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{"compose.yaml": `
services:
  api: {image: x}
  lb:
    image: nginx
    volumes: ["./nginx/conf.d:/etc/nginx/conf.d:ro"]
    x-reconcile:
      upstreams:
        - {name: api_backend, service: api, port: 3000, file: ./nginx/conf.d/api.conf}
`})
	st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
	if err != nil {
		t.Fatal(err)
	}
	ups := st.Services["lb"].Policy.Upstreams
	want := Upstream{Name: "api_backend", Service: "api", Port: 3000, File: filepath.Join(dir, "nginx/conf.d/api.conf"), Format: "nginx"}
	if len(ups) != 1 || ups[0] != want {
		t.Errorf("upstreams = %+v, want %+v", ups, want)
	}
}

// TestBadInput checks that every kind of bad input is one InputError that
// names the file, line, service and key.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		compose string
		extra   map[string]string
		opts    func(dir string) Options
		want    []string // substrings of the error
		service string
		key     string
	}{
		{name: "invalid yaml", compose: "services:\n  a:\n    image: x\n   bad: 1\n", want: []string{"compose.yaml:", "invalid YAML"}},
		{name: "tab indentation", compose: "services:\n\ta:\n", want: []string{"compose.yaml:2", "invalid YAML"}},
		{name: "unknown dependency", compose: "services:\n  a:\n    image: x\n    depends_on: [dbx]\n", want: []string{"compose.yaml:4", `undefined service "dbx"`}, service: "a", key: "depends_on"},
		{name: "cycle", compose: "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n", want: []string{"compose.yaml:", "dependency cycle"}, key: "depends_on"},
		{name: "missing service env file", compose: "services:\n  a:\n    image: x\n    env_file: missing.env\n", want: []string{"compose.yaml:4", "missing.env not found"}, service: "a", key: "env_file"},
		{name: "missing --env-file", compose: "services:\n  a: {image: x}\n", opts: func(dir string) Options {
			return Options{Files: []string{filepath.Join(dir, "compose.yaml")}, EnvFiles: []string{filepath.Join(dir, "nope.env")}}
		}, want: []string{"nope.env", "env file not found"}, key: "--env-file"},
		{name: "missing compose file", compose: "", opts: func(dir string) Options {
			return Options{Files: []string{filepath.Join(dir, "absent.yaml")}}
		}, want: []string{"absent.yaml", "no such file"}},
		{name: "unknown compose key", compose: "services:\n  a:\n    image: x\n    bogus: 1\n", want: []string{"compose.yaml:4", "unknown key"}, service: "a", key: "bogus"},
		{name: "no image", compose: "services:\n  a:\n    environment: [A=1]\n", want: []string{"neither an image nor a build"}, service: "a", key: "image"},
		{name: "required variable", compose: "services:\n  a:\n    image: ${TAG?set TAG}\n", want: []string{"compose.yaml:3", "set TAG"}, service: "a", key: "image"},
		{name: "unknown x-reconcile key", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      restrat: {}\n", want: []string{"compose.yaml:5", "unknown key"}, service: "a", key: "x-reconcile.restrat"},
		{name: "wrong type", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      restart:\n        max_attempts: three\n", want: []string{"compose.yaml:6", `expected an integer, got "three"`}, service: "a", key: "x-reconcile.restart.max_attempts"},
		{name: "negative attempts", compose: "services:\n  a:\n    image: x\n    x-reconcile: {restart: {max_attempts: -1}}\n", want: []string{"out of range"}, service: "a", key: "x-reconcile.restart.max_attempts"},
		{name: "bad duration", compose: "services:\n  a:\n    image: x\n    x-reconcile: {restart: {delay: 5}}\n", want: []string{"expected a duration"}, service: "a", key: "x-reconcile.restart.delay"},
		{name: "max_delay below delay", compose: "services:\n  a:\n    image: x\n    x-reconcile: {restart: {delay: 5s, max_delay: 1s}}\n", want: []string{"shorter than delay"}, service: "a", key: "x-reconcile.restart.max_delay"},
		{name: "bad bool", compose: "services:\n  a:\n    image: x\n    x-reconcile: {replicas: {prune: maybe}}\n", want: []string{"expected true or false"}, service: "a", key: "x-reconcile.replicas.prune"},
		{name: "two reload actions", compose: "services:\n  a:\n    image: x\n    x-reconcile: {reload: {exec: [a], signal: HUP}}\n", want: []string{"only one of"}, service: "a", key: "x-reconcile.reload"},
		{name: "check without action", compose: "services:\n  a:\n    image: x\n    x-reconcile: {reload: {check: [nginx, -t]}}\n", want: []string{"needs exec or signal"}, service: "a", key: "x-reconcile.reload.check"},
		{name: "unknown signal", compose: "services:\n  a:\n    image: x\n    x-reconcile: {reload: {signal: SIGFOO}}\n", want: []string{"unknown signal"}, service: "a", key: "x-reconcile.reload.signal"},
		{name: "string command", compose: "services:\n  a:\n    image: x\n    x-reconcile: {reload: {exec: nginx -s reload}}\n", want: []string{"exec form"}, service: "a", key: "x-reconcile.reload.exec"},
		{name: "reload at project level", compose: "x-reconcile: {reload: {restart: true}}\nservices:\n  a: {image: x}\n", want: []string{"compose.yaml:1", "only allowed on a service"}, key: "x-reconcile.reload"},
		{name: "enabled on a service", compose: "services:\n  a:\n    image: x\n    x-reconcile: {enabled: false}\n", want: []string{"compose.yaml:4", "only allowed at the top level"}, service: "a", key: "x-reconcile.enabled"},
		{name: "enabled not a bool", compose: "x-reconcile: {enabled: nope}\nservices:\n  a: {image: x}\n", want: []string{"compose.yaml:1", "expected true or false"}, key: "x-reconcile.enabled"},
		{name: "project unknown key", compose: "x-reconcile: {replicas: {prun: true}}\nservices:\n  a: {image: x}\n", want: []string{"unknown key"}, key: "x-reconcile.replicas.prun"},
		{name: "image updates at project level", compose: "x-reconcile: {image_updates: {min_age: 1h}}\nservices:\n  a: {image: x}\n", want: []string{"compose.yaml:1", "only allowed on a service"}, key: "x-reconcile.image_updates"},
		{name: "image updates unknown policy", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      image_updates: {policy: latest}\n", want: []string{"compose.yaml:5", `unknown policy "latest"`}, service: "a", key: "x-reconcile.image_updates.policy"},
		{name: "image updates interval too short", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      image_updates: {interval: 10ms}\n", want: []string{"at least 1s"}, service: "a", key: "x-reconcile.image_updates.interval"},
		{name: "image updates unknown key", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      image_updates: {schedule: daily}\n", want: []string{"schedule"}, service: "a", key: "x-reconcile.image_updates.schedule"},
		{name: "swarm adopt at project level", compose: "x-reconcile: {swarm: {adopt: [replicas]}}\nservices:\n  a: {image: x}\n", want: []string{"compose.yaml:1", "only allowed on a service"}, key: "x-reconcile.swarm"},
		{name: "swarm adopt an unknown field", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      swarm: {adopt: [replicas, cpus]}\n", want: []string{"compose.yaml:5", `"cpus" is neither`}, service: "a", key: "x-reconcile.swarm.adopt.1"},
		{name: "swarm adopt not a list", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      swarm: {adopt: replicas}\n", want: []string{"expected a list of fields"}, service: "a", key: "x-reconcile.swarm.adopt"},
		{name: "swarm unknown key", compose: "services:\n  a:\n    image: x\n    x-reconcile:\n      swarm: {ignore: [replicas]}\n", want: []string{"ignore"}, service: "a", key: "x-reconcile.swarm.ignore"},
		{name: "upstream unknown service", compose: "services:\n  lb:\n    image: x\n    volumes: ['./u:/u']\n    x-reconcile:\n      upstreams:\n        - {name: b, service: nope, port: 80, file: ./u/b.conf}\n", want: []string{"no such service"}, service: "lb", key: "x-reconcile.upstreams.0.service"},
		{name: "upstream missing port", compose: "services:\n  api: {image: x}\n  lb:\n    image: x\n    volumes: ['./u:/u']\n    x-reconcile:\n      upstreams:\n        - {name: b, service: api, file: ./u/b.conf}\n", want: []string{"is required"}, service: "lb", key: "x-reconcile.upstreams.0.port"},
		{name: "upstream bad port", compose: "services:\n  api: {image: x}\n  lb:\n    image: x\n    volumes: ['./u:/u']\n    x-reconcile:\n      upstreams:\n        - {name: b, service: api, port: 70000, file: ./u/b.conf}\n", want: []string{"out of range"}, service: "lb", key: "x-reconcile.upstreams.0.port"},
		{name: "upstream file not mounted", compose: "services:\n  api: {image: x}\n  lb:\n    image: x\n    x-reconcile:\n      upstreams:\n        - {name: b, service: api, port: 80, file: ./u/b.conf}\n", want: []string{"not inside any bind mount"}, service: "lb", key: "x-reconcile.upstreams.0.file"},
		{name: "healthy dependency without check", compose: "services:\n  db: {image: x, healthcheck: {disable: true}}\n  api:\n    image: x\n    depends_on: {db: {condition: service_healthy}}\n", want: []string{"disables its healthcheck"}, service: "api", key: "depends_on.db"},
		{name: "bad value in override file", compose: "services:\n  a: {image: x}\n",
			extra: map[string]string{"override.yaml": "services:\n  a:\n    x-reconcile:\n      restart: {window: soon}\n"},
			opts: func(dir string) Options {
				return Options{Files: []string{filepath.Join(dir, "compose.yaml"), filepath.Join(dir, "override.yaml")}}
			}, want: []string{"override.yaml:4", "expected a duration"}, service: "a", key: "x-reconcile.restart.window"},
		{name: "one container_name for two services", compose: "services:\n  a:\n    image: x\n    container_name: web\n  b:\n    image: x\n    container_name: web\n",
			want: []string{"compose.yaml:7", `container name "web" is already used by service "a"`}, service: "b", key: "container_name"},
		{name: "scale unknown service", compose: "services:\n  a: {image: x}\n", opts: func(dir string) Options {
			return Options{Files: []string{filepath.Join(dir, "compose.yaml")}, Scale: map[string]int{"b": 2}}
		}, want: []string{"no such service: b"}, key: "--scale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			files := map[string]string{}
			if tt.compose != "" {
				files["compose.yaml"] = tt.compose
			}
			for k, v := range tt.extra {
				files[k] = v
			}
			dir := writeFiles(t, files)
			opts := Options{Files: []string{filepath.Join(dir, "compose.yaml")}}
			if tt.opts != nil {
				opts = tt.opts(dir)
			}
			opts.ProjectName = "p"
			_, err := Load(context.Background(), loader(t), opts)
			if err == nil {
				t.Fatal("no error")
			}
			ie, ok := err.(*InputError)
			if !ok {
				t.Fatalf("error %T is not an *InputError: %v", err, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if tt.service != "" && ie.Service != tt.service {
				t.Errorf("service = %q, want %q (%s)", ie.Service, tt.service, msg)
			}
			if tt.key != "" && ie.Key != tt.key {
				t.Errorf("key = %q, want %q (%s)", ie.Key, tt.key, msg)
			}
		})
	}
}

func TestReloadCommandsMaskInterpolatedValues(t *testing.T) {
	clearComposeEnv(t)
	t.Setenv("RELOAD_TOKEN", "s3cr3t-t0ken")
	t.Setenv("SHORT", "on")
	dir := writeFiles(t, map[string]string{"compose.yaml": `
services:
  app:
    image: x
    x-reconcile:
      reload:
        check: ["/bin/check", "--token=${RELOAD_TOKEN}", "$SHORT"]
        exec: ["/bin/reload", "plain"]
`})
	st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
	if err != nil {
		t.Fatal(err)
	}
	r := st.Services["app"].Policy.Reload
	if got, want := r.Check, []string{"/bin/check", "--token=s3cr3t-t0ken", "on"}; !slices.Equal(got, want) {
		t.Fatalf("the command run is %q, want the interpolated %q", got, want)
	}
	if got := r.CheckShown(); got != "/bin/check --token=*** ***" {
		t.Errorf("check shown as %q, want the interpolated values masked", got)
	}
	if got := r.ExecShown(); got != "/bin/reload plain" {
		t.Errorf("exec shown as %q: nothing interpolated, nothing masked", got)
	}
	if got := r.Mask("bad token s3cr3t-t0ken, switch on"); got != "bad token ***, switch on" {
		t.Errorf("output masked as %q: want the token hidden, a value as short as %q left", got, "on")
	}
}

func TestEnvFileInRawFormatIsReadAsComposeReadsIt(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{
		"compose.yaml": "services:\n  a:\n    image: x\n    env_file:\n      - path: app.env\n        format: raw\n",
		"app.env":      "A=1\nB=\"x y\"\nC=${A}\n",
	})
	st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
	if err != nil {
		t.Fatalf("compose accepts the raw format: %v", err)
	}
	env := st.Services["a"].Config.Environment
	for k, want := range map[string]string{"A": "1", "B": `"x y"`, "C": "${A}"} {
		if got := env[k]; got == nil || *got != want {
			t.Errorf("%s = %v, want %q taken as written", k, got, want)
		}
	}
}

func TestAProjectOptsOutOfAgentsAtTheTopLevel(t *testing.T) {
	tests := []struct {
		compose  string
		disabled bool
	}{
		{"services:\n  a: {image: x}\n", false},
		{"x-reconcile: {enabled: true}\nservices:\n  a: {image: x}\n", false},
		{"x-reconcile: {enabled: false}\nservices:\n  a: {image: x}\n", true},
	}
	for _, tt := range tests {
		clearComposeEnv(t)
		dir := writeFiles(t, map[string]string{"compose.yaml": tt.compose})
		d, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
		if err != nil {
			t.Fatalf("%q: %v", tt.compose, err)
		}
		if d.Disabled != tt.disabled {
			t.Errorf("%q: Disabled = %v, want %v", tt.compose, d.Disabled, tt.disabled)
		}
	}
}
