// Package verify grades a compose project against the verification
// checklist of the course's exercise 07 (Docker Compose advanced), from the
// project as loaded: each item passes, fails or does not apply, with why
// and the tasks behind it. It reads configuration only; what the engine
// then does with it is for `reconcile verify --live`.
package verify

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
)

// Result is an item's verdict.
type Result string

const (
	Pass          Result = "pass"
	Fail          Result = "fail"
	NotApplicable Result = "n/a"
)

// Item is one checklist item and its verdict.
type Item struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Tasks  []int  `json:"tasks"`
	Result Result `json:"result"`
	Why    string `json:"why"`
}

// check is one item's rule.
type check struct {
	id, title string
	tasks     []int
	rule      func(p *project) (Result, string)
}

// checks follow the course's checklist, in its order.
var checks = []check{
	{"healthchecks", "All services have working health checks", []int{1, 2, 3}, healthchecks},
	{"startup-order", "Services start in correct order based on health", []int{4, 5}, startupOrder},
	{"restart-policies", "Restart policies configured", []int{6, 7}, restartPolicies},
	{"limits", "Resource limits (CPU and memory) set", []int{8, 9}, limits},
	{"reservations", "Resource reservations configured", []int{10}, reservations},
	{"named-volume", "A named volume with a custom name", []int{11}, namedVolume},
	{"bind-mount", "A bind mount for a file edited while running", []int{12}, bindMount},
	{"tmpfs", "A tmpfs mount for fast temporary storage", []int{13}, tmpfs},
	{"isolation", "Multi-network architecture with isolation", []int{14}, isolation},
	{"published-ports", "Only the load balancer is exposed to the host", []int{15, 16}, publishedPorts},
	{"load-balancing", "A load balancer over a scaled service, by health", []int{15, 20}, loadBalancing},
	{"init-scripts", "Database initialization scripts run on first start", []int{17}, initScripts},
	{"graceful-shutdown", "Graceful shutdown configured", []int{18}, gracefulShutdown},
	{"logging", "Logging bounded so logs cannot fill the disk", []int{19}, logging},
}

// IDs lists the items' IDs, in order.
func IDs() []string {
	out := make([]string, len(checks))
	for i, c := range checks {
		out[i] = c.id
	}
	return out
}

// Check grades the project.
func Check(d *desired.State) []Item {
	p := &project{d: d}
	items := make([]Item, 0, len(checks))
	for _, c := range checks {
		res, why := c.rule(p)
		items = append(items, Item{ID: c.id, Title: c.title, Tasks: c.tasks, Result: res, Why: why})
	}
	return items
}

// Failed counts the items that failed.
func Failed(items []Item) int {
	n := 0
	for _, it := range items {
		if it.Result == Fail {
			n++
		}
	}
	return n
}

type project struct{ d *desired.State }

// services returns the services in dependency order.
func (p *project) services() []*desired.Service {
	out := make([]*desired.Service, 0, len(p.d.Order))
	for _, name := range p.d.Order {
		out = append(out, p.d.Services[name])
	}
	return out
}

// longRunning leaves out one-shot services (restart "no" and no healthcheck
// that depend on nothing running after them): a migration need not be
// probed or limited like a server.
func (p *project) longRunning() []*desired.Service {
	var out []*desired.Service
	for _, s := range p.services() {
		if oneShot(p.d, s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// oneShot is a service another waits on with service_completed_successfully.
func oneShot(d *desired.State, s *desired.Service) bool {
	for _, other := range d.Services {
		for _, dep := range other.DependsOn {
			if dep.Service == s.Name && dep.Condition == types.ServiceConditionCompletedSuccessfully {
				return true
			}
		}
	}
	return false
}

// missing lists the services for which has is false; the verdict is Pass
// when none, Fail naming them otherwise, NotApplicable without services.
func missing(services []*desired.Service, has func(*desired.Service) bool, what string) (Result, string) {
	if len(services) == 0 {
		return NotApplicable, "no long-running service"
	}
	var without []string
	for _, s := range services {
		if !has(s) {
			without = append(without, s.Name)
		}
	}
	if len(without) > 0 {
		return Fail, fmt.Sprintf("%s: %s", what, strings.Join(without, ", "))
	}
	return Pass, fmt.Sprintf("all %d long-running services", len(services))
}

func healthchecks(p *project) (Result, string) {
	return missing(p.longRunning(), func(s *desired.Service) bool { return s.HasHealthcheck },
		"no healthcheck in the compose files (one only in the image cannot be seen here)")
}

func startupOrder(p *project) (Result, string) {
	var deps, bad []string
	for _, s := range p.services() {
		for _, dep := range s.DependsOn {
			target := p.d.Services[dep.Service]
			if target == nil {
				continue
			}
			deps = append(deps, s.Name+"→"+dep.Service)
			if target.HasHealthcheck && dep.Condition == types.ServiceConditionStarted {
				bad = append(bad, fmt.Sprintf("%s waits for %s only to start, though it has a healthcheck", s.Name, dep.Service))
			}
		}
	}
	switch {
	case len(deps) == 0:
		return NotApplicable, "no depends_on"
	case len(bad) > 0:
		return Fail, strings.Join(bad, "; ")
	}
	return Pass, fmt.Sprintf("%d dependencies, each on a health or completion condition where one exists", len(deps))
}

func restartPolicies(p *project) (Result, string) {
	return missing(p.longRunning(), func(s *desired.Service) bool {
		r := s.Config.Restart
		return r != "" && r != types.RestartPolicyNo
	}, `no restart policy (or restart: "no")`)
}

func limits(p *project) (Result, string) {
	return missing(p.longRunning(), func(s *desired.Service) bool {
		l := resourcesOf(s).Limits
		return l != nil && l.MemoryBytes > 0 && l.NanoCPUs > 0
	}, "no memory and CPU limit (deploy.resources.limits)")
}

func reservations(p *project) (Result, string) {
	return missing(p.longRunning(), func(s *desired.Service) bool {
		r := resourcesOf(s).Reservations
		return r != nil && r.MemoryBytes > 0
	}, "no memory reservation (deploy.resources.reservations)")
}

func resourcesOf(s *desired.Service) types.Resources {
	if s.Config.Deploy == nil {
		return types.Resources{}
	}
	return s.Config.Deploy.Resources
}

func namedVolume(p *project) (Result, string) {
	var named, used []string
	for _, key := range slices.Sorted(maps.Keys(p.d.Project.Volumes)) {
		v := p.d.Project.Volumes[key]
		used = append(used, key)
		if v.External || v.Name == "" {
			continue
		}
		if !strings.HasPrefix(v.Name, p.d.Project.Name+"_") {
			named = append(named, fmt.Sprintf("%s (name %s)", key, v.Name))
		}
	}
	switch {
	case len(used) == 0:
		return Fail, "no top-level volume"
	case len(named) == 0:
		return Fail, "volumes " + strings.Join(used, ", ") + " carry the project prefix: give one a name:"
	}
	return Pass, strings.Join(named, ", ")
}

// mounts returns the service/target of every mount of type t.
func (p *project) mounts(t string) []string {
	var out []string
	for _, s := range p.services() {
		for _, v := range s.Config.Volumes {
			if v.Type == t {
				out = append(out, s.Name+":"+v.Target)
			}
		}
		if t == types.VolumeTypeTmpfs {
			for _, target := range s.Config.Tmpfs {
				out = append(out, s.Name+":"+target)
			}
		}
	}
	return out
}

// bindMount wants a bind mount a user edits: the directory reconcile
// writes an upstream file into (x-reconcile.upstreams) is not one.
func bindMount(p *project) (Result, string) {
	var edited, generated []string
	for _, s := range p.services() {
		for _, v := range s.Config.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if holdsUpstream(s, v.Source) {
				generated = append(generated, s.Name+":"+v.Target)
			} else {
				edited = append(edited, s.Name+":"+v.Target)
			}
		}
	}
	switch {
	case len(edited) > 0:
		return Pass, strings.Join(edited, ", ")
	case len(generated) > 0:
		return Fail, "only the upstream files reconcile writes are bind-mounted (" + strings.Join(generated, ", ") + "): no file edited by hand"
	}
	return Fail, "no bind mount"
}

// holdsUpstream reports whether source is where s's x-reconcile upstream
// file is written.
func holdsUpstream(s *desired.Service, source string) bool {
	for _, up := range s.Policy.Upstreams {
		if up.File == source || filepath.Dir(up.File) == filepath.Clean(source) {
			return true
		}
	}
	return false
}

func tmpfs(p *project) (Result, string) {
	if m := p.mounts(types.VolumeTypeTmpfs); len(m) > 0 {
		return Pass, strings.Join(m, ", ")
	}
	return Fail, "no tmpfs mount"
}

func isolation(p *project) (Result, string) {
	services := p.services()
	if len(services) < 2 {
		return NotApplicable, "fewer than two services"
	}
	if len(p.d.Project.Networks) < 2 {
		return Fail, fmt.Sprintf("%d network: every service can reach every other", len(p.d.Project.Networks))
	}
	// the course's segmentation: a database or cache is reachable only by
	// what uses it (depends on it); any pair kept apart is not enough, as a
	// single backend network shared by the frontend shows
	var exposed, guarded []string
	for _, data := range services {
		if role(data) != roleDatabase && role(data) != roleCache {
			continue
		}
		guarded = append(guarded, data.Name)
		for _, s := range services {
			if s != data && sharesNetwork(s, data) && !dependsOn(s, data.Name) {
				exposed = append(exposed, s.Name+" reaches "+data.Name)
			}
		}
	}
	if len(exposed) > 0 {
		return Fail, "a service shares a network with data it does not use: " + strings.Join(exposed, ", ")
	}
	var apart []string
	for i, a := range services {
		for _, b := range services[i+1:] {
			if !sharesNetwork(a, b) {
				apart = append(apart, a.Name+"/"+b.Name)
			}
		}
	}
	if len(apart) == 0 {
		return Fail, "every pair of services shares a network"
	}
	if len(guarded) > 0 {
		return Pass, fmt.Sprintf("%d networks; %s reachable only by what depends on them", len(p.d.Project.Networks), strings.Join(guarded, ", "))
	}
	return Pass, fmt.Sprintf("%d networks; kept apart: %s", len(p.d.Project.Networks), strings.Join(apart, ", "))
}

// dependsOn reports whether s lists dep in its depends_on.
func dependsOn(s *desired.Service, dep string) bool {
	return slices.ContainsFunc(s.DependsOn, func(d desired.Dependency) bool { return d.Service == dep })
}

// A service's role, read from its image's name: what the course's
// checklist asks of a database, a cache or a load balancer.
type serviceRole int

const (
	roleOther serviceRole = iota
	roleDatabase
	roleCache
	roleProxy
)

var roleWords = []struct {
	role  serviceRole
	words []string
}{
	{roleDatabase, []string{"postgres", "mysql", "mariadb", "mongo"}},
	{roleCache, []string{"redis", "memcached", "valkey", "keydb"}},
	{roleProxy, []string{"nginx", "haproxy", "traefik", "caddy", "envoy"}},
}

func role(s *desired.Service) serviceRole {
	name := s.Config.Image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	name, _, _ = strings.Cut(name, ":")
	for _, r := range roleWords {
		for _, w := range r.words {
			if strings.Contains(name, w) {
				return r.role
			}
		}
	}
	return roleOther
}

// isBalancer reports whether s is the stack's load balancer: it keeps an
// x-reconcile upstream, or runs a proxy's image and depends on others.
func isBalancer(s *desired.Service) bool {
	return len(s.Policy.Upstreams) > 0 || role(s) == roleProxy && len(s.DependsOn) > 0
}

func sharesNetwork(a, b *desired.Service) bool {
	for n := range a.Config.Networks {
		if _, ok := b.Config.Networks[n]; ok {
			return true
		}
	}
	return false
}

func publishedPorts(p *project) (Result, string) {
	var published []string
	for _, s := range p.services() {
		if len(s.Config.Ports) > 0 {
			published = append(published, s.Name)
		}
	}
	switch len(published) {
	case 0:
		return Fail, "no service is exposed to the host"
	case 1:
		if !isBalancer(p.d.Services[published[0]]) {
			return Fail, "only " + published[0] + " is exposed, and it is not the load balancer"
		}
		return Pass, "only " + published[0]
	}
	return Fail, "exposed to the host: " + strings.Join(published, ", ")
}

func loadBalancing(p *project) (Result, string) {
	for _, s := range p.services() {
		for _, up := range s.Policy.Upstreams {
			target := p.d.Services[up.Service]
			if target == nil {
				continue
			}
			switch {
			case target.Replicas < 2:
				return Fail, fmt.Sprintf("%s balances over %s, which runs %d replica", s.Name, up.Service, target.Replicas)
			case !target.HasHealthcheck:
				return Fail, fmt.Sprintf("%s balances over %s, which has no healthcheck to leave the pool by", s.Name, up.Service)
			}
			return Pass, fmt.Sprintf("%s over %d healthy replicas of %s (x-reconcile upstream %s)", s.Name, target.Replicas, up.Service, up.Name)
		}
	}
	return Fail, "no x-reconcile upstream: a load balancer that only knows the service's name never learns of new replicas or of unhealthy ones"
}

func initScripts(p *project) (Result, string) {
	var databases []string
	for _, s := range p.services() {
		for _, v := range s.Config.Volumes {
			if strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d") {
				return Pass, fmt.Sprintf("%s mounts %s", s.Name, v.Target)
			}
		}
		if role(s) == roleDatabase {
			databases = append(databases, s.Name)
		}
	}
	if len(databases) > 0 {
		return Fail, strings.Join(databases, ", ") + ": no init scripts mounted (/docker-entrypoint-initdb.d)"
	}
	return NotApplicable, "no database service"
}

func gracefulShutdown(p *project) (Result, string) {
	return missing(p.longRunning(), func(s *desired.Service) bool { return s.Config.StopGracePeriod != nil },
		"no stop_grace_period (the engine's 10 s applies)")
}

func logging(p *project) (Result, string) {
	return missing(p.longRunning(), func(s *desired.Service) bool {
		l := s.Config.Logging
		if l == nil {
			return false
		}
		switch l.Driver {
		case "json-file", "local", "":
			return l.Options["max-size"] != "" && (l.Driver == "local" || l.Options["max-file"] != "")
		}
		return true // a driver that ships logs away keeps nothing on the disk
	}, "logs unbounded (logging: max-size and max-file)")
}
