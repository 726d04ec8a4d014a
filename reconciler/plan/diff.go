package plan

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
)

// Options tune what Diff plans.
type Options struct {
	// RemoveOrphans plans the removal of containers whose service is no
	// longer in the compose file, as `docker compose up --remove-orphans`.
	RemoveOrphans bool
}

// Result is the outcome of a Diff.
type Result struct {
	Drift []Drift
	Plan  *Plan
}

// InSync reports whether nothing differs.
func (r *Result) InSync() bool { return len(r.Drift) == 0 }

// ForService returns the drift of one service.
func (r *Result) ForService(name string) []Drift {
	var out []Drift
	for _, d := range r.Drift {
		if d.Service == name {
			out = append(out, d)
		}
	}
	return out
}

// Diff compares desired with observed state and plans the operations that
// converge them. It makes no engine calls: everything it needs is in its
// arguments, so the same inputs always give the same drift and plan.
func Diff(d *desired.State, o *observed.Snapshot, opts Options) *Result {
	p := &planner{
		d:         d,
		o:         o,
		opts:      opts,
		res:       &Result{Plan: &Plan{}},
		byService: o.ByService(),
		infra:     map[string]*Node{},
		bringUp:   map[string][]*Node{},
		waits:     map[string]*Node{},
	}
	p.networks()
	p.volumes()
	for _, name := range d.Order {
		p.service(d.Services[name])
	}
	p.orphans()
	return p.res
}

type planner struct {
	d         *desired.State
	o         *observed.Snapshot
	opts      Options
	res       *Result
	byService map[string][]observed.Container
	// infra holds the creation node of each missing network and volume,
	// keyed "network:KEY" or "volume:KEY".
	infra map[string]*Node
	// bringUp holds, per service, the nodes that bring containers up.
	bringUp map[string][]*Node
	// waits dedupes waits on a dependency, keyed "service|condition".
	waits map[string]*Node
}

func (p *planner) drift(d Drift) {
	p.res.Drift = append(p.res.Drift, d)
}

func (p *planner) networks() {
	for _, key := range slices.Sorted(maps.Keys(p.d.Project.Networks)) {
		n := p.d.Project.Networks[key]
		if bool(n.External) {
			continue
		}
		if _, ok := p.o.NetworkByName(n.Name); ok {
			continue
		}
		p.drift(Drift{Kind: DriftNetworkMissing, Resource: n.Name, Cause: "network missing", Actionable: true})
		p.infra["network:"+key] = p.res.Plan.add(Operation{
			Type: OpCreateNetwork, ResourceID: "network:" + n.Name, Cause: "network missing",
			Network: n.Name, NetworkKey: key,
		}, "")
	}
}

func (p *planner) volumes() {
	for _, key := range slices.Sorted(maps.Keys(p.d.Project.Volumes)) {
		v := p.d.Project.Volumes[key]
		if bool(v.External) || p.o.HasVolume(v.Name) {
			continue
		}
		p.drift(Drift{Kind: DriftVolumeMissing, Resource: v.Name, Cause: "volume missing", Actionable: true})
		p.infra["volume:"+key] = p.res.Plan.add(Operation{
			Type: OpCreateVolume, ResourceID: "volume:" + v.Name, Cause: "volume missing", Volume: key,
		}, "")
	}
}

// candidate is an observed container of a service with its verdict.
type candidate struct {
	c        observed.Container
	obsolete bool
	kind     DriftKind
	cause    string
}

// pending is an operation decided for a service before its dependencies are
// known: bring-up operations wait for the service's dependencies.
type pending struct {
	op      Operation
	group   string
	bringUp bool
}

func (p *planner) service(s *desired.Service) {
	containers := p.byService[s.Name]
	hash := ExpectedHash(s.Config, p.byService)
	digest := p.imageID(s)
	expectedNets := p.expectedNetworks(s)

	cands := make([]candidate, 0, len(containers))
	for _, c := range containers {
		cand := candidate{c: c}
		switch {
		case c.ConfigHash != hash:
			cand.obsolete, cand.kind, cand.cause = true, DriftConfigDiverged, "config hash diverged"
		case digest != "" && c.ImageDigest != digest:
			cand.obsolete, cand.kind, cand.cause = true, DriftImageChanged, "image "+s.Config.Image+" changed"
		case c.State == observed.StateRunning:
			for _, name := range expectedNets {
				if _, ok := c.Networks[name]; !ok {
					cand.obsolete, cand.kind, cand.cause = true, DriftNetworkDetached, "not attached to network "+name
					break
				}
			}
		}
		cands = append(cands, cand)
	}
	// compose keeps the up-to-date replicas with the lowest numbers and
	// scales down obsolete ones first, then the highest numbers.
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].obsolete != cands[j].obsolete {
			return !cands[i].obsolete
		}
		return cands[i].c.Number < cands[j].c.Number
	})

	group := "up:" + s.Name
	// A service with pre_start hooks whose every replica is down is started
	// by compose's up: compose runs the hooks, in runner containers it
	// prepares, only on a start of its own when no replica runs. Started
	// through the engine, the container would run without them.
	startGroup := ""
	if len(s.Config.PreStart) > 0 && !slices.ContainsFunc(containers, func(c observed.Container) bool { return c.State == observed.StateRunning }) {
		startGroup = group
	}
	var ops []pending
	kept := cands[:min(len(cands), s.Replicas)]
	extras := slices.Clone(cands[len(kept):])
	for _, cand := range kept {
		c := cand.c
		resID := ReplicaID(s.Name, c.Number)
		base := Operation{ResourceID: resID, Service: s.Name, Container: c.Name, ContainerID: c.ID, Number: c.Number, StopTimeout: s.StopGracePeriod}
		add := func(kind DriftKind, cause string, t OpType, grp string) {
			p.drift(Drift{Kind: kind, Service: s.Name, Container: c.Name, ContainerID: c.ID, Number: c.Number, Cause: cause, Actionable: true})
			op := base
			op.Type, op.Cause, op.Kind = t, cause, kind
			ops = append(ops, pending{op: op, group: grp, bringUp: true})
		}
		if cand.obsolete {
			add(cand.kind, cand.cause, OpRecreateContainer, group)
			continue
		}
		switch c.State {
		case observed.StateRunning:
			if c.Health == observed.HealthUnhealthy {
				add(DriftUnhealthy, "unhealthy", OpRestartContainer, "")
			}
		case observed.StateExited:
			if !completed(s, c) {
				add(DriftExited, fmt.Sprintf("exited (code %d)", c.ExitCode), OpStartContainer, startGroup)
			}
		case observed.StateCreated:
			add(DriftNotStarted, "created but not started", OpStartContainer, startGroup)
		case observed.StatePaused:
			add(DriftPaused, "paused", OpUnpauseContainer, "")
		case observed.StateDead:
			add(DriftDead, "dead", OpRecreateContainer, group)
		}
		if c.State == observed.StateRunning && len(expectedNets) > 0 {
			for _, name := range slices.Sorted(maps.Keys(c.Networks)) {
				if slices.Contains(expectedNets, name) {
					continue
				}
				cause := "attached to network " + name + " the file does not give it"
				p.drift(Drift{Kind: DriftUnexpectedNetwork, Service: s.Name, Container: c.Name, ContainerID: c.ID, Number: c.Number, Resource: name, Cause: cause, Actionable: true})
				op := base
				op.Type, op.Cause, op.ResourceID = OpDisconnectNetwork, cause, "container:"+c.Name
				op.Network = c.Networks[name]
				if op.Network == "" {
					op.Network = name
				}
				ops = append(ops, pending{op: op})
			}
		}
	}

	// extra replicas go highest number first
	sort.SliceStable(extras, func(i, j int) bool { return extras[i].c.Number > extras[j].c.Number })
	for _, cand := range extras {
		c := cand.c
		cause := fmt.Sprintf("extra replica (%d desired)", s.Replicas)
		// A replica created and not yet started is someone's `up --scale`
		// between its create and its start: removing it now makes that
		// command fail. It is removed once it runs.
		prune := s.Policy.Replicas.Prune && c.State != observed.StateCreated
		if s.Policy.Replicas.Prune && !prune {
			cause += "; created, not started yet: removed once it starts"
		}
		p.drift(Drift{Kind: DriftExtraReplica, Service: s.Name, Container: c.Name, ContainerID: c.ID, Number: c.Number, Cause: cause, Actionable: prune})
		if prune {
			ops = append(ops, pending{op: Operation{
				Type: OpRemoveContainer, ResourceID: ReplicaID(s.Name, c.Number), Cause: cause,
				Service: s.Name, Container: c.Name, ContainerID: c.ID, Number: c.Number, StopTimeout: s.StopGracePeriod,
			}})
		}
	}

	next := 1
	for _, c := range containers {
		next = max(next, c.Number+1)
	}
	for i := len(kept); i < s.Replicas; i++ {
		cause := fmt.Sprintf("replica missing (%d of %d exist)", len(kept), s.Replicas)
		p.drift(Drift{Kind: DriftReplicaMissing, Service: s.Name, Number: next, Cause: cause, Actionable: true})
		ops = append(ops, pending{op: Operation{
			Type: OpCreateContainer, ResourceID: ReplicaID(s.Name, next), Cause: cause,
			Service: s.Name, Number: next, StopTimeout: s.StopGracePeriod,
		}, group: group, bringUp: true})
		next++
	}

	// Removals and disconnections come first: compose's `up` of the service
	// then finds exactly the replicas it is meant to keep.
	var removals []*Node
	for _, o := range ops {
		if !o.bringUp {
			n := p.res.Plan.add(o.op, o.group)
			if o.op.Type == OpRemoveContainer {
				removals = append(removals, n)
			}
		}
	}
	if !slices.ContainsFunc(ops, func(o pending) bool { return o.bringUp }) {
		return
	}
	deps := append(append(p.infraOf(s), p.waitsOf(s)...), removals...)
	for _, o := range ops {
		if o.bringUp {
			n := p.res.Plan.add(o.op, o.group, deps...)
			p.bringUp[s.Name] = append(p.bringUp[s.Name], n)
		}
	}
}

// infraOf returns the creation nodes of the networks and volumes s uses.
func (p *planner) infraOf(s *desired.Service) []*Node {
	var out []*Node
	for _, key := range slices.Sorted(maps.Keys(s.Config.Networks)) {
		if n, ok := p.infra["network:"+key]; ok {
			out = append(out, n)
		}
	}
	for _, v := range s.Config.Volumes {
		if v.Type != types.VolumeTypeVolume {
			continue
		}
		if n, ok := p.infra["volume:"+v.Source]; ok {
			out = append(out, n)
		}
	}
	return out
}

// waitsOf plans, for each dependency of s, a wait for its condition: after
// the dependency's own operations, or right away when it is observed not to
// meet its condition yet. A dependency that already meets it needs no wait.
func (p *planner) waitsOf(s *desired.Service) []*Node {
	var out []*Node
	for _, dep := range s.DependsOn {
		depSvc, ok := p.d.Services[dep.Service]
		if !ok {
			continue // an optional dependency left out by profiles
		}
		depNodes := p.bringUp[dep.Service]
		if len(depNodes) == 0 {
			if st, _ := CheckCondition(dep.Condition, depSvc, p.byService[dep.Service]); st == ConditionMet {
				continue
			}
		}
		key := dep.Service + "|" + dep.Condition
		w, ok := p.waits[key]
		if !ok {
			cause := dep.Condition + " (needed by " + s.Name + ")"
			if !dep.Required {
				cause += ", optional"
			}
			w = p.res.Plan.add(Operation{
				Type: OpWaitCondition, ResourceID: "service:" + dep.Service, Cause: cause,
				Service: dep.Service, Condition: dep.Condition, Required: dep.Required,
			}, "", depNodes...)
			p.waits[key] = w
		} else if dep.Required && !w.Op.Required {
			w.Op.Required = true
		}
		out = append(out, w)
	}
	return out
}

func (p *planner) orphans() {
	for _, c := range p.o.Containers {
		if _, ok := p.d.Services[c.Service]; ok {
			continue
		}
		if _, disabled := p.d.Project.DisabledServices[c.Service]; disabled {
			continue // left out by a profile: compose leaves it alone too
		}
		cause := "orphan container: service " + c.Service + " is not in the compose file"
		p.drift(Drift{Kind: DriftOrphan, Service: c.Service, Container: c.Name, ContainerID: c.ID, Number: c.Number, Cause: cause, Actionable: p.opts.RemoveOrphans})
		if p.opts.RemoveOrphans {
			p.res.Plan.add(Operation{
				Type: OpRemoveContainer, ResourceID: "container:" + c.Name, Cause: "orphan container",
				Service: c.Service, Container: c.Name, ContainerID: c.ID, StopTimeout: desired.DefaultStopGracePeriod,
			}, "")
		}
	}
}

// expectedNetworks lists the engine names of the networks a service's
// containers must be attached to; nil when the service does not use
// project networks (network_mode host, none, service:..., container:...).
func (p *planner) expectedNetworks(s *desired.Service) []string {
	if s.Config.NetworkMode != "" {
		return nil
	}
	var names []string
	for _, key := range slices.Sorted(maps.Keys(s.Config.Networks)) {
		if n, ok := p.d.Project.Networks[key]; ok {
			names = append(names, n.Name)
		}
	}
	return names
}

// imageID returns the ID of the local image the service runs, which compose
// records as com.docker.compose.image; empty when the image is not present.
func (p *planner) imageID(s *desired.Service) string {
	return ImageID(p.o.Images, api.GetImageNameOrDefault(s.Config, p.d.Project.Name))
}

// ImageID looks a compose image reference up in a snapshot's image index,
// normalising it as the engine does ("nginx" is "nginx:latest").
func ImageID(images map[string]string, ref string) string {
	if id, ok := images[ref]; ok {
		return id
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	// a reference pinned to a digest ("repo:tag@sha256:...", as an image
	// update pins it) is the image of that digest, whatever the tag names
	// here now: the engine indexes it as "repo@sha256:..."
	if c, ok := named.(reference.Canonical); ok {
		if byDigest, err := reference.WithDigest(reference.TrimNamed(named), c.Digest()); err == nil {
			return images[reference.FamiliarString(byDigest)]
		}
	}
	return images[reference.FamiliarString(reference.TagNameOnly(named))]
}

// ExpectedHash is the config hash compose stamps on a container of the
// service: the SDK's ServiceHash of the service after compose resolves
// references to other services' containers (volumes_from, and network, IPC
// and PID namespaces shared with a service), in compose's order.
func ExpectedHash(svc types.ServiceConfig, byService map[string][]observed.Container) string {
	resolved := svc
	resolved.VolumesFrom = slices.Clone(svc.VolumesFrom)
	resolveReferences(&resolved, byService)
	h, err := compose.ServiceHash(resolved)
	if err != nil {
		// the config came from the SDK's own loader, so it always marshals;
		// an empty hash makes every container look diverged rather than hide it
		return ""
	}
	return h
}

func resolveReferences(svc *types.ServiceConfig, byService map[string][]observed.Container) {
	first := func(service string) (string, bool) {
		cs := slices.Clone(byService[service])
		if len(cs) == 0 {
			return "", false
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
		return cs[0].ID, true
	}
	for i, vol := range svc.VolumesFrom {
		spec := strings.Split(vol, ":")
		if spec[0] == "container" && len(spec) > 1 {
			svc.VolumesFrom[i] = spec[1]
			continue
		}
		id, ok := first(spec[0])
		if !ok {
			return
		}
		svc.VolumesFrom[i] = id
	}
	for _, mode := range []*string{&svc.NetworkMode, &svc.Ipc, &svc.Pid} {
		name, ok := strings.CutPrefix(*mode, types.ServicePrefix)
		if !ok {
			continue
		}
		id, found := first(name)
		if !found {
			return
		}
		*mode = types.ContainerPrefix + id
	}
}
