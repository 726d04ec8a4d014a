// Package swarmspec turns a loaded compose project into what `docker stack
// deploy` makes of it: the networks, secrets, configs and service specs of a
// stack, with the names and labels stack deploy gives them. The conversion
// is docker/cli's own (cli/compose/loader, cli/compose/convert); this
// package only hands it the Compose SDK's model, already merged, extended
// and interpolated, and lists what Swarm cannot honour, where it is written.
package swarmspec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"go.yaml.in/yaml/v4"

	"github.com/reconcile-dev/reconcile/desired"
)

// Stack is a project as Swarm runs it.
type Stack struct {
	// Namespace is the stack's name: the project's, as `docker stack deploy
	// -c FILE NAME` would be given it.
	Namespace convert.Namespace
	// Config is docker/cli's model of the project, which its conversion
	// reads.
	Config *composetypes.Config
	// Networks are created before any service, as stack deploy does;
	// External must exist already.
	Networks map[string]client.NetworkCreateOptions
	External []string
	Secrets  []swarm.SecretSpec
	Configs  []swarm.ConfigSpec
	// Order lists services so that dependencies come first; DependsOn is
	// each service's, which Swarm ignores and reconcile enforces.
	Order     []string
	DependsOn map[string][]desired.Dependency
	// Adopt are each service's fields whose hand changes are kept
	// (x-reconcile.swarm.adopt), as spec paths.
	Adopt map[string][]string
	// Checks are the services' x-reconcile.reload with a check: a changed
	// config or secret is checked with it before the service is rolled
	// onto it.
	Checks map[string]*desired.ReloadAction
	// Notes are the keys Swarm cannot honour, each where it is written.
	Notes []Note
}

// Note is one key of the project that Swarm ignores, or that reconcile
// honours in its place.
type Note struct {
	File    string
	Line    int
	Service string
	Key     string
	// Why says what becomes of the key.
	Why string
	// Handled is true when reconcile does what Swarm does not.
	Handled bool
}

func (n Note) String() string {
	var b strings.Builder
	if n.File != "" {
		b.WriteString(desired.DisplayPath(n.File))
		if n.Line > 0 {
			fmt.Fprintf(&b, ":%d", n.Line)
		}
		b.WriteString(": ")
	}
	if n.Service != "" {
		fmt.Fprintf(&b, "service %q: ", n.Service)
	}
	fmt.Fprintf(&b, "%s: %s", n.Key, n.Why)
	return b.String()
}

// handledByReconcile are the service keys docker stack deploy drops that
// reconcile enforces on a swarm.
var handledByReconcile = map[string]string{
	"depends_on": "Swarm ignores it; reconcile creates and updates services in this order, each once its dependencies' tasks run (healthy where they have a healthcheck, complete for a job)",
}

// unwrittenTargets drops the targets the Compose SDK gives a secret or
// config that names none (/run/secrets/NAME): stack deploy leaves them to
// the engine, which puts them at the same place, and a spec that differs
// from its own would be updated back and forth by the two.
func unwrittenTargets(st *desired.State, service string, sd map[string]any) {
	for _, key := range []string{"secrets", "configs"} {
		list, _ := sd[key].([]any)
		for i, item := range list {
			ref, ok := item.(map[string]any)
			if !ok {
				continue
			}
			if _, written := st.Written("services", service, key, strconv.Itoa(i), "target"); !written {
				delete(ref, "target")
			}
		}
	}
}

// unsupportedWhy says what becomes of a key docker stack deploy calls
// unsupported.
func unsupportedWhy(key string) string {
	if key == "restart" {
		// stack deploy warns, then converts it all the same when
		// deploy.restart_policy is not set
		return "docker stack deploy calls it unsupported, but converts it to Swarm's restart policy unless deploy.restart_policy is set (always and unless-stopped: condition any; on-failure[:N]: condition on-failure)"
	}
	return "Swarm does not support it; ignored, as docker stack deploy ignores it"
}

// topLevel are the project keys stack deploy reads.
var topLevel = []string{"services", "networks", "volumes", "secrets", "configs"}

// FromDesired converts st. A key Swarm refuses (docker/cli's
// ForbiddenProperties, mem_limit and the like) is bad input, located as
// every other; the keys it ignores are Notes.
func FromDesired(st *desired.State) (_ *Stack, err error) {
	defer func() {
		// docker/cli's transforms panic on a shape they do not expect:
		// that is input this conversion cannot take, never a crash
		if r := recover(); r != nil {
			err = &desired.InputError{File: firstFile(st), Err: fmt.Errorf("converting for Swarm failed (%v)", r)}
		}
	}()
	raw, err := st.Project.MarshalYAML()
	if err != nil {
		return nil, fmt.Errorf("reading the project's model: %w", err)
	}
	var dict map[string]any
	if err := yaml.Unmarshal(raw, &dict); err != nil {
		return nil, fmt.Errorf("reading the project's model: %w", err)
	}
	s := &Stack{
		Namespace: convert.NewNamespace(st.Project.Name),
		Order:     st.Order,
		DependsOn: map[string][]desired.Dependency{},
		Adopt:     map[string][]string{},
		Checks:    map[string]*desired.ReloadAction{},
	}
	for name, svc := range st.Services {
		s.DependsOn[name] = svc.DependsOn
		if len(svc.Policy.Adopt) > 0 {
			s.Adopt[name] = svc.Policy.Adopt
		}
		if r := svc.Policy.Reload; len(r.Check) > 0 {
			s.Checks[name] = &r
		}
	}
	for k := range dict {
		if !slices.Contains(topLevel, k) && !strings.HasPrefix(k, "x-") && k != "name" {
			s.note(st, []string{k}, "", "Swarm has no such key; ignored", false)
		}
	}
	services, _ := dict["services"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(services)) {
		sd, _ := services[name].(map[string]any)
		if sd == nil {
			continue
		}
		for key, why := range composetypes.ForbiddenProperties {
			if _, ok := sd[key]; ok {
				return nil, st.InputError(name, key, fmt.Errorf("docker stack deploy refuses it: %s", why))
			}
		}
		for _, key := range slices.Sorted(maps.Keys(sd)) {
			if why, ok := handledByReconcile[key]; ok {
				s.note(st, []string{"services", name, key}, name, why, true)
				delete(sd, key)
			}
		}
		// stack deploy warns of these and leaves them in its model: so
		// does reconcile, for the same specs
		for _, key := range composetypes.UnsupportedProperties {
			if _, ok := sd[key]; ok {
				s.note(st, []string{"services", name, key}, name, unsupportedWhy(key), false)
			}
		}
		for key, why := range composetypes.DeprecatedProperties {
			if _, ok := sd[key]; ok {
				s.note(st, []string{"services", name, key}, name, "ignored on Swarm: "+why, false)
			}
		}
		unwrittenTargets(st, name, sd)
		conformed, dropped := conform(sd, serviceType, []string{"services", name})
		services[name] = conformed
		for _, path := range dropped {
			s.noteDropped(st, path, name)
		}
	}
	for _, section := range []string{"networks", "volumes", "secrets", "configs"} {
		m, _ := dict[section].(map[string]any)
		for _, key := range slices.Sorted(maps.Keys(m)) {
			conformed, dropped := conform(m[key], sectionTypes[section], []string{section, key})
			m[key] = conformed
			for _, path := range dropped {
				s.noteDropped(st, path, "")
			}
		}
	}
	for k := range dict {
		if !slices.Contains(topLevel, k) {
			delete(dict, k)
		}
	}
	cfg, err := loader.Load(composetypes.ConfigDetails{
		WorkingDir:  st.Project.WorkingDir,
		ConfigFiles: []composetypes.ConfigFile{{Filename: firstFile(st), Config: dict}},
		Environment: map[string]string{},
	}, func(o *loader.Options) {
		// the Compose SDK interpolated and validated it already, against
		// the compose specification; docker/cli's v3 schema would refuse
		// the keys dropped above
		o.SkipInterpolation = true
		o.SkipValidation = true
	})
	if err != nil {
		return nil, &desired.InputError{File: firstFile(st), Err: fmt.Errorf("converting for Swarm: %w", err)}
	}
	s.Config = cfg
	for _, svc := range cfg.Services {
		if svc.Image == "" {
			return nil, st.InputError(svc.Name, "image", errors.New("a swarm runs images only: a service needs an image (build it and push it where every node can pull it)"))
		}
	}
	s.Networks, s.External = convert.Networks(s.Namespace, cfg.Networks, servicesNetworks(cfg.Services))
	if s.Secrets, err = convert.Secrets(s.Namespace, cfg.Secrets); err != nil {
		return nil, &desired.InputError{File: firstFile(st), Key: "secrets", Err: fmt.Errorf("reading a secret: %w", err)}
	}
	if s.Configs, err = convert.Configs(s.Namespace, cfg.Configs); err != nil {
		return nil, &desired.InputError{File: firstFile(st), Key: "configs", Err: fmt.Errorf("reading a config: %w", err)}
	}
	slices.SortFunc(s.Notes, func(a, b Note) int { return strings.Compare(a.String(), b.String()) })
	return s, nil
}

// Services are the stack's service specs by service name, converted by
// docker/cli as stack deploy converts them. The engine is asked the IDs of
// the secrets and configs the services use, which must exist by then.
func (s *Stack) Services(ctx context.Context, engine client.APIClient) (map[string]swarm.ServiceSpec, error) {
	specs, err := convert.Services(ctx, s.Namespace, s.Config, engine)
	if err != nil {
		return nil, fmt.Errorf("converting the services for Swarm: %w", err)
	}
	return specs, nil
}

// servicesNetworks are the networks services join, "default" for one that
// names none, as stack deploy counts them.
func servicesNetworks(services []composetypes.ServiceConfig) map[string]struct{} {
	out := map[string]struct{}{}
	for _, svc := range services {
		if len(svc.Networks) == 0 {
			out["default"] = struct{}{}
		}
		for nw := range svc.Networks {
			out[nw] = struct{}{}
		}
	}
	return out
}

func (s *Stack) note(st *desired.State, path []string, service, why string, handled bool) {
	var at *desired.InputError
	if service != "" {
		at = st.InputError(service, strings.Join(path[2:], "."), nil)
	} else {
		at = st.TopLevelError(strings.Join(path, "."), nil)
	}
	s.Notes = append(s.Notes, Note{File: at.File, Line: at.Line, Service: service, Key: at.Key, Why: why, Handled: handled})
}

// noteDropped notes a key docker/cli's model has no place for, when the
// user wrote it: spelled out, or implied by a short form (the host address
// of "127.0.0.1:8080:80"). A key the Compose SDK filled in itself is
// dropped in silence.
func (s *Stack) noteDropped(st *desired.State, path []string, service string) {
	_, written := st.Written(path...)
	if !written && len(path) > 1 {
		parent, ok := st.Written(path[:len(path)-1]...)
		written = ok && parent.Scalar
	}
	if !written {
		return
	}
	s.note(st, path, service, "Swarm has no such setting; ignored", false)
}

func firstFile(st *desired.State) string {
	if len(st.Files) > 0 {
		return st.Files[0]
	}
	return ""
}
