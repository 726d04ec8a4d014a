package desired

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/internal/kernelfs"
	"github.com/reconcile-dev/reconcile/internal/secrets"
)

// ProjectLoader is the part of the Compose SDK that desired needs: its
// project loader, so that files, overrides, interpolation, profiles and
// project naming behave exactly as in `docker compose`.
type ProjectLoader interface {
	LoadProject(ctx context.Context, options api.ProjectLoadOptions) (*types.Project, error)
}

// Options are compose's project flags. Empty fields fall back to compose's
// own environment variables (COMPOSE_FILE, COMPOSE_PROJECT_NAME,
// COMPOSE_PROFILES, COMPOSE_ENV_FILES) and defaults, with compose's
// precedence, because the SDK's loader applies them.
type Options struct {
	Files       []string
	ProjectName string
	ProjectDir  string
	EnvFiles    []string
	Profiles    []string
	// Scale overrides replica counts, as `docker compose up --scale`.
	Scale map[string]int
	// Timeout bounds one load (LoadTimeout when zero): a file that never
	// ends (a FIFO an include names, a device) must not hang the caller.
	Timeout time.Duration
}

// LoadTimeout bounds one load of the project by default. A load takes tens
// of milliseconds; one that takes seconds reads something that is not a
// file.
const LoadTimeout = 10 * time.Second

// State is the desired state of one project.
type State struct {
	Project *types.Project
	// Services holds every enabled service by name.
	Services map[string]*Service
	// Order lists service names so that dependencies come before dependents,
	// ties broken by name: a deterministic order for plans and output.
	Order []string
	// Files are the absolute paths whose content shapes this state: compose
	// files and env files. A daemon watches them.
	Files []string
	// Disabled says the project opted out of agents with
	// `x-reconcile: {enabled: false}` at the top level; a daemon given the
	// project by -f still reconciles it.
	Disabled bool
	// Secrets is what is never printed of this project: every string about
	// it that leaves the process is passed through Secrets.Mask.
	Secrets *secrets.Set

	loc *locator
}

// InputError builds an error about a service's key, located in the compose
// file that sets it, for problems found after loading (an image that cannot
// be pulled, say).
func (s *State) InputError(service, key string, err error) *InputError {
	path := []string{"services", service}
	if key != "" {
		path = append(path, strings.Split(key, ".")...)
	}
	file, line := s.loc.find(path...)
	return &InputError{File: file, Line: line, Service: service, Key: key, Err: err, secrets: s.Secrets}
}

// TopLevelError builds an error about a top-level key (networks.front.external),
// located in the compose file that sets it.
func (s *State) TopLevelError(key string, err error) *InputError {
	file, line := s.loc.find(strings.Split(key, ".")...)
	return &InputError{File: file, Line: line, Key: key, Err: err, secrets: s.Secrets}
}

// Service is one service's desired shape and policy.
type Service struct {
	Name     string
	Config   types.ServiceConfig
	Replicas int
	Policy   Policy
	// DependsOn is sorted by service name.
	DependsOn       []Dependency
	StopGracePeriod time.Duration
	HasHealthcheck  bool
	// Secrets is the project's: what is never printed.
	Secrets *secrets.Set
	// Update is how a change of definition replaces the replicas;
	// Rollback how a failed update goes back.
	Update, Rollback UpdatePolicy
}

// Dependency is one depends_on entry.
type Dependency struct {
	Service   string
	Condition string // service_started, service_healthy or service_completed_successfully
	Required  bool
	Restart   bool
}

// Load reads the project through the Compose SDK and validates reconcile's
// policy. Every failure is an *InputError naming the file, and the service
// and key where there is one. Compose files and env files that are not
// regular files are refused, and the whole load has a deadline: a load that
// does not end in time is abandoned (its reader may stay blocked on the
// file) and reported as bad input.
func Load(ctx context.Context, loader ProjectLoader, opts Options) (*State, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = LoadTimeout
	}
	type result struct {
		state *State
		err   error
	}
	done := make(chan result, 1)
	go func() {
		// compose's loader has panicked on input it should refuse (a
		// !reset tag on a whole document): that is bad input too, never a
		// crash of a daemon that keeps its last good state
		defer func() {
			if r := recover(); r != nil {
				ie := &InputError{Err: fmt.Errorf("the compose loader failed on this input (%v): it cannot be loaded", r)}
				if c := candidateFiles(opts); len(c) > 0 {
					ie.File = c[0]
				}
				done <- result{nil, ie}
			}
		}()
		st, err := load(ctx, loader, opts)
		done <- result{st, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.state, r.err
	case <-timer.C:
		ie := &InputError{Err: fmt.Errorf("loading the project did not end within %s: does it read a FIFO or a device (an include, an env file)?", timeout)}
		if c := candidateFiles(opts); len(c) > 0 {
			ie.File = c[0]
		}
		return nil, ie
	case <-ctx.Done():
		return nil, fmt.Errorf("loading the project: %w", ctx.Err())
	}
}

// regularFile refuses what is not a regular file (a FIFO, a device, a
// directory) before anything reads it: reading a FIFO blocks for ever. A
// file of the kernel's is refused too, however regular it looks.
func regularFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return nil // a missing file is reported by whoever needs it
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s): refused", info.Mode().Type())
	}
	if kernelfs.Is(path) {
		// /proc/self/mem is "regular", and fails or never ends when read
		return errors.New("a file of the kernel's (/proc, /sys, /dev or a pseudo-filesystem), not configuration: refused")
	}
	return nil
}

func load(ctx context.Context, loader ProjectLoader, opts Options) (_ *State, err error) {
	// what the files interpolate, and the env files they read it from:
	// what a failure's message is masked with
	var refs map[string]bool
	var dotenvFiles []string
	defer func() {
		var ie *InputError
		if err != nil && errors.As(err, &ie) && ie.secrets == nil {
			ie.secrets = failureSecrets(refs, dotenvFiles)
		}
	}()
	envFiles, err := absPaths(opts.EnvFiles)
	if err != nil {
		return nil, &InputError{Key: "--env-file", Err: err}
	}
	if len(envFiles) == 0 {
		// compose's CLI reads this variable as the default of --env-file
		envFiles, _ = absPaths(splitList(os.Getenv("COMPOSE_ENV_FILES"), ","))
	}
	for _, f := range envFiles {
		if _, err := os.Stat(f); err != nil {
			return nil, &InputError{File: f, Key: "--env-file", Err: errors.New("env file not found")}
		}
	}
	candidates := candidateFiles(opts)
	for _, f := range envFiles {
		if err := boundedFile(f); err != nil {
			var ie *InputError
			errors.As(err, &ie)
			ie.Key = "--env-file"
			return nil, ie
		}
	}
	dotenvFiles = envFiles
	if len(envFiles) == 0 && len(candidates) > 0 {
		dotenv := filepath.Join(filepath.Dir(candidates[0]), ".env")
		if opts.ProjectDir != "" {
			dotenv = filepath.Join(opts.ProjectDir, ".env")
		}
		if err := boundedFile(dotenv); err != nil {
			return nil, err
		}
		dotenvFiles = []string{dotenv}
	}
	refs, from, err := prescan(candidates)
	if err != nil {
		return nil, err
	}
	loc := newLocator(candidates)
	loc.from = from

	project, err := loader.LoadProject(ctx, api.ProjectLoadOptions{
		ProjectName: opts.ProjectName,
		ConfigPaths: opts.Files,
		WorkingDir:  opts.ProjectDir,
		EnvFiles:    envFiles,
		Profiles:    opts.Profiles,
		// Remote (git, OCI) includes would reach for the network, which a
		// reconciler must not need to know what it wants.
		Offline: true,
		// compose's CLI resolves service environments after loading, and
		// discards env_file entries from the hashed config: do the same so
		// containers get the config hash `docker compose up` gives them.
		ProjectOptionsFns: []cli.ProjectOptionsFn{cli.WithoutEnvironmentResolution},
	})
	if err != nil {
		return nil, classifyLoadError(err, loc, nil)
	}
	loc = newLocator(project.ComposeFiles)
	loc.from = from

	files := append([]string{}, project.ComposeFiles...)
	files = append(files, envFiles...)
	if len(envFiles) == 0 {
		if dotenv := filepath.Join(project.WorkingDir, ".env"); fileExists(dotenv) {
			files = append(files, dotenv)
		}
	}
	serviceEnvFiles := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		for i, ef := range project.Services[name].EnvFiles {
			if err := boundedFile(ef.Path); err != nil {
				file, line := loc.find("services", name, "env_file")
				return nil, &InputError{File: file, Line: line, Service: name, Key: "env_file." + strconv.Itoa(i), Err: fmt.Errorf("%s: %w", ef.Path, errors.Unwrap(err))}
			}
		}
	}
	for name, svc := range project.Services {
		for _, ef := range svc.EnvFiles {
			serviceEnvFiles[name] = append(serviceEnvFiles[name], ef.Path)
			files = append(files, ef.Path)
		}
	}

	project, err = project.WithServicesEnvironmentResolved(true)
	if err != nil {
		return nil, classifyLoadError(err, loc, serviceEnvFiles)
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Scale)) {
		svc, ok := project.Services[name]
		if !ok {
			return nil, &InputError{Key: "--scale", Err: fmt.Errorf("no such service: %s", name)}
		}
		if opts.Scale[name] < 0 {
			return nil, &InputError{Key: "--scale", Service: name, Err: errors.New("replicas must not be negative")}
		}
		if opts.Scale[name] > MaxReplicas {
			return nil, &InputError{Key: "--scale", Service: name, Err: fmt.Errorf("%d replicas, more than the limit of %d for one service", opts.Scale[name], MaxReplicas)}
		}
		svc.SetScale(opts.Scale[name])
		project.Services[name] = svc
	}

	if err := boundReplicas(project, loc); err != nil {
		return nil, err
	}
	if err := createChecks(project, loc); err != nil {
		return nil, err
	}
	state := &State{Project: project, Services: map[string]*Service{}, Files: dedupe(files), loc: loc,
		Secrets: projectSecrets(project, refs)}
	if err := uniqueContainerNames(state); err != nil {
		return nil, err
	}
	projectRaw, err := parseExtension(project.Extensions[ExtensionKey], "project", "", loc)
	if err != nil {
		return nil, err
	}
	state.Disabled = projectRaw != nil && projectRaw.Enabled != nil && !*projectRaw.Enabled
	for name, svc := range project.Services {
		serviceRaw, err := parseExtension(svc.Extensions[ExtensionKey], "service", name, loc)
		if err != nil {
			return nil, err
		}
		s := &Service{
			Name:            name,
			Config:          svc,
			Replicas:        svc.GetScale(),
			Policy:          effectivePolicy(svc, projectRaw, serviceRaw),
			HasHealthcheck:  hasHealthcheck(svc),
			StopGracePeriod: DefaultStopGracePeriod,
		}
		if svc.StopGracePeriod != nil {
			s.StopGracePeriod = time.Duration(*svc.StopGracePeriod)
		}
		if s.Update, s.Rollback, err = updatePolicies(svc, s.Replicas, s.HasHealthcheck, loc); err != nil {
			return nil, err
		}
		for _, dep := range slices.Sorted(maps.Keys(svc.DependsOn)) {
			d := svc.DependsOn[dep]
			cond := d.Condition
			if cond == "" {
				cond = types.ServiceConditionStarted
			}
			s.DependsOn = append(s.DependsOn, Dependency{Service: dep, Condition: cond, Required: d.Required, Restart: d.Restart})
		}
		if r := &s.Policy.Reload; len(r.Check)+len(r.Exec) > 0 {
			r.maskCommands(func(key string, i int) (string, bool) {
				return loc.scalar("services", name, ExtensionKey, "reload", key, strconv.Itoa(i))
			})
		}
		if err := resolveUpstreams(project, s, loc); err != nil {
			return nil, err
		}
		s.Secrets = state.Secrets
		s.Policy.Reload.secrets = state.Secrets
		state.Services[name] = s
	}
	if err := validateDependencies(state, loc); err != nil {
		return nil, err
	}
	state.Order = dependencyOrder(state.Services)
	return state, nil
}

// boundReplicas refuses a service with more than MaxReplicas replicas, or a
// project with more than MaxReplicasInAll, before anything is planned for
// them: a billion replicas would be a billion planned containers.
func boundReplicas(project *types.Project, loc *locator) error {
	total := 0
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		svc := project.Services[name]
		n := svc.GetScale()
		key := "deploy.replicas"
		if svc.Scale != nil {
			key = "scale"
		}
		file, line := loc.find(append([]string{"services", name}, strings.Split(key, ".")...)...)
		if n > MaxReplicas {
			return &InputError{File: file, Line: line, Service: name, Key: key,
				Err: fmt.Errorf("%d replicas, more than the limit of %d for one service", n, MaxReplicas)}
		}
		if total += n; total > MaxReplicasInAll {
			return &InputError{File: file, Line: line, Service: name, Key: key,
				Err: fmt.Errorf("the project's replicas come to more than %d here (the limit of one project)", MaxReplicasInAll)}
		}
	}
	return nil
}

// createChecks refuses at load what compose's create refuses of a valid
// file, so that it is bad input with its line before anything is touched,
// not a failure of the first container: a healthcheck's start_interval
// without a start_period (compose's convert.go, moby#48874).
func createChecks(project *types.Project, loc *locator) error {
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		hc := project.Services[name].HealthCheck
		if hc != nil && hc.StartInterval != nil && hc.StartPeriod == nil {
			file, line := loc.find("services", name, "healthcheck", "start_interval")
			return &InputError{File: file, Line: line, Service: name, Key: "healthcheck.start_interval",
				Err: errors.New("start_interval requires start_period to be set (compose refuses it when it creates the container)")}
		}
	}
	return nil
}

// uniqueContainerNames refuses two services with one container_name, as
// compose's own create does for the whole project: reconcile acts on one
// service at a time and would never meet that check.
func uniqueContainerNames(s *State) error {
	owner := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(s.Project.Services)) {
		cn := s.Project.Services[name].ContainerName
		if cn == "" {
			continue
		}
		if first, ok := owner[cn]; ok {
			return s.InputError(name, "container_name", fmt.Errorf("container name %q is already used by service %q", cn, first))
		}
		owner[cn] = name
	}
	return nil
}

// parseExtension validates one x-reconcile block and wraps its error with the
// file and line that hold the offending key.
func parseExtension(v any, scope, service string, loc *locator) (*rawPolicy, error) {
	if v == nil {
		return nil, nil
	}
	raw, ferr := parseBlock(v, scope)
	if ferr == nil {
		return raw, nil
	}
	path := strings.Split(ferr.key, ".")
	if service != "" {
		path = append([]string{"services", service}, path...)
	}
	file, line := loc.find(path...)
	return nil, &InputError{File: file, Line: line, Service: service, Key: ferr.key, Err: errors.New(ferr.msg)}
}

// resolveUpstreams makes upstream files absolute (relative to the project
// directory, like compose's own paths) and checks what loading alone can:
// the target exists and the file is visible inside the load balancer
// through one of its bind mounts.
func resolveUpstreams(project *types.Project, s *Service, loc *locator) error {
	for i := range s.Policy.Upstreams {
		u := &s.Policy.Upstreams[i]
		key := fmt.Sprintf("%s.upstreams.%d", ExtensionKey, i)
		fail := func(sub, format string, args ...any) error {
			file, line := loc.find(append([]string{"services", s.Name}, strings.Split(key+"."+sub, ".")...)...)
			return &InputError{File: file, Line: line, Service: s.Name, Key: key + "." + sub, Err: fmt.Errorf(format, args...)}
		}
		if _, ok := project.Services[u.Service]; !ok {
			return fail("service", "no such service %q", u.Service)
		}
		if u.Service == s.Name {
			return fail("service", "a service cannot balance over itself")
		}
		if !filepath.IsAbs(u.File) {
			u.File = filepath.Join(project.WorkingDir, u.File)
		}
		u.File = filepath.Clean(u.File)
		if !boundInto(s.Config, u.File) {
			return fail("file", "%s is not inside any bind mount of service %q, so the load balancer would never see it", u.File, s.Name)
		}
	}
	return nil
}

func boundInto(svc types.ServiceConfig, file string) bool {
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		src := filepath.Clean(v.Source)
		if file == src || strings.HasPrefix(file, src+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// validateDependencies checks what compose's loader leaves to `up` time: a
// service_healthy dependency needs a healthcheck to ever be satisfied. A
// check defined only in the image cannot be seen here, so this is limited
// to checks the compose file explicitly disables.
func validateDependencies(state *State, loc *locator) error {
	for _, name := range slices.Sorted(maps.Keys(state.Services)) {
		for _, d := range state.Services[name].DependsOn {
			dep, ok := state.Project.Services[d.Service]
			if !ok || d.Condition != types.ServiceConditionHealthy {
				continue
			}
			if dep.HealthCheck != nil && dep.HealthCheck.Disable {
				file, line := loc.find("services", name, "depends_on", d.Service)
				return &InputError{File: file, Line: line, Service: name, Key: "depends_on." + d.Service,
					Err: fmt.Errorf("condition service_healthy, but service %q disables its healthcheck", d.Service)}
			}
		}
	}
	return nil
}

// dependencyOrder sorts services so that every dependency precedes its
// dependents. compose's loader has already rejected cycles.
func dependencyOrder(services map[string]*Service) []string {
	var order []string
	done := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		if done[name] {
			return
		}
		done[name] = true
		for _, d := range services[name].DependsOn {
			if _, ok := services[d.Service]; ok {
				visit(d.Service)
			}
		}
		order = append(order, name)
	}
	for _, name := range slices.Sorted(maps.Keys(services)) {
		visit(name)
	}
	return order
}

// candidateFiles guesses the compose files of a load that failed before the
// SDK could say which it read, only to point errors at them.
func candidateFiles(opts Options) []string {
	files := opts.Files
	if len(files) == 0 {
		sep := os.Getenv("COMPOSE_PATH_SEPARATOR")
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		files = splitList(os.Getenv("COMPOSE_FILE"), sep)
	}
	dir := opts.ProjectDir
	if dir == "" {
		dir, _ = os.Getwd()
	}
	if len(files) == 0 {
		for _, name := range ComposeFileNames {
			if p := filepath.Join(dir, name); fileExists(p) {
				files = append(files, p)
				break
			}
		}
	}
	abs, _ := absPaths(files)
	return abs
}

func splitList(s, sep string) []string {
	var out []string
	for _, part := range strings.Split(s, sep) {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func absPaths(paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", p, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
