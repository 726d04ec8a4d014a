package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
)

// DrainRetry is how soon an operation held back for draining is looked at
// again.
const DrainRetry = 100 * time.Millisecond

// Reloader reloads a service (the load balancer) after its file changed.
type Reloader interface {
	Reload(ctx context.Context, d *desired.State, service, why string) error
}

// Upstreams keeps each `x-reconcile.upstreams` file equal to the target's
// replicas that are running and healthy, and reloads the load balancer when
// the file changes: open-source nginx resolves a service name once and has
// no health checks of its own. As a Guard on target services it holds back
// the stop, restart or removal of a replica still listed, until the file no
// longer lists it.
type Upstreams struct {
	Reloader Reloader
	Records  reconciler.Recorder
	// Enqueue asks for a service's reconcile: the load balancer's, when a
	// replica must leave its file.
	Enqueue func(service string)
	// Written is told about every file written, so that a watcher of the
	// load balancer's mounts does not take it for a user's edit.
	Written func(path string)
	Log     *slog.Logger

	mu sync.Mutex
	// listed holds the container names each file lists now.
	listed map[string][]string
	// draining holds the containers that must leave the files.
	draining map[string]bool
	// held holds the containers Drain keeps out until released.
	held map[string]bool
	// applied holds, per file, the content the load balancer has loaded.
	applied map[string]string
	starved map[string]bool
}

func (u *Upstreams) init() {
	if u.listed == nil {
		u.listed, u.draining, u.starved, u.held = map[string][]string{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
		u.applied = map[string]string{}
	}
}

// Sync writes the upstream files of a load-balancer service whose content
// changed, then reloads it (check first).
func (u *Upstreams) Sync(ctx context.Context, in reconciler.Review) (time.Duration, error) {
	lb := in.Desired.Services[in.Service]
	if lb == nil || len(lb.Policy.Upstreams) == 0 {
		return 0, nil
	}
	byService := in.Snapshot.ByService()
	u.forgetGone(in.Snapshot)
	var changed []string
	written, listing := map[string]string{}, map[string][]string{}
	var errs []error
	for _, up := range lb.Policy.Upstreams {
		target := in.Desired.Services[up.Service]
		if target == nil {
			continue
		}
		members := u.members(target, byService[up.Service])
		u.mu.Lock()
		u.init()
		if len(members) == 0 {
			if _, err := os.Stat(up.File); err != nil {
				u.mu.Unlock()
				continue // nothing written yet: the target is still starting
			}
			first := !u.starved[up.File]
			u.starved[up.File] = true
			u.mu.Unlock()
			if first && u.Records != nil {
				u.Records.Event(reconciler.Warning, "NoHealthyUpstream", in.Service, "",
					fmt.Sprintf("upstream %s: no replica of %s is running and healthy; keeping the last list (nginx rejects an empty upstream)", up.Name, up.Service))
			}
			continue
		}
		delete(u.starved, up.File)
		u.mu.Unlock()
		content := render(up, members)
		u.mu.Lock()
		applied := u.applied[up.File] == content
		u.mu.Unlock()
		if applied {
			u.setListed(up.File, members)
			continue
		}
		// written but not yet loaded (a reload failed, or the daemon
		// restarted): only the reload is owed
		if old, _ := os.ReadFile(up.File); string(old) != content {
			if err := writeUpstream(in.Desired, lb, up.File, []byte(content)); err != nil {
				errs = append(errs, err)
				continue
			}
			if u.Written != nil {
				u.Written(up.File)
			}
			if u.Log != nil {
				u.Log.Debug("upstream file written", "file", up.File, "upstream", up.Name, "members", len(members))
			}
		}
		changed = append(changed, fmt.Sprintf("%s (%s)", up.Name, strings.Join(members, ", ")))
		written[up.File] = content
		listing[up.File] = members
	}
	if len(changed) > 0 && u.Reloader != nil {
		if err := u.Reloader.Reload(ctx, in.Desired, in.Service, "upstream "+strings.Join(changed, "; ")); err != nil {
			// the load balancer still serves the old list: a replica
			// being drained is not out yet
			return 0, errors.Join(append(errs, err)...)
		}
	}
	// only now, reloaded, does the load balancer send traffic to exactly
	// these: what Drain and Review wait for
	u.mu.Lock()
	for file, content := range written {
		u.applied[file] = content
	}
	u.mu.Unlock()
	for file, members := range listing {
		u.setListed(file, members)
	}
	return 0, errors.Join(errs...)
}

// forgetGone drops draining marks of containers that no longer exist.
func (u *Upstreams) forgetGone(snap *observed.Snapshot) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.init()
	for id := range u.draining {
		if !slices.ContainsFunc(snap.Containers, func(c observed.Container) bool { return c.ID == id }) {
			delete(u.draining, id)
		}
	}
}

func (u *Upstreams) setListed(path string, members []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.init()
	u.listed[path] = members
}

// members are the replicas that may take traffic, by container name (which
// resolves on the project's networks), in replica order.
func (u *Upstreams) members(target *desired.Service, containers []observed.Container) []string {
	cs := slices.Clone(containers)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Number < cs[j].Number })
	u.mu.Lock()
	defer u.mu.Unlock()
	u.init()
	var names []string
	for _, c := range cs {
		if c.State != observed.StateRunning || u.draining[c.ID] || u.held[c.ID] {
			continue
		}
		if target.HasHealthcheck && c.Health != observed.HealthHealthy {
			continue
		}
		names = append(names, c.Name)
	}
	return names
}

// render is the nginx include for an upstream.
func render(up desired.Upstream, members []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by reconcile: the running, healthy replicas of %s. Edits are overwritten.\n", up.Service)
	fmt.Fprintf(&b, "upstream %s {\n", up.Name)
	for _, m := range members {
		fmt.Fprintf(&b, "    server %s:%d;\n", m, up.Port)
	}
	b.WriteString("}\n")
	return b.String()
}

// writeUpstream replaces the file atomically (temporary file, rename),
// except where the file is itself the source of a bind mount: a rename
// would leave the container with the old file, so it is written in place.
func writeUpstream(d *desired.State, lb *desired.Service, path string, data []byte) error {
	for _, v := range lb.Config.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == filepath.Clean(path) {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return fmt.Errorf("writing upstream file %s: %w", path, err)
			}
			return nil
		}
	}
	if err := statedir.WriteAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("writing upstream file: %w", err)
	}
	return nil
}

// Review holds back stopping, restarting, recreating or removing a replica
// that an upstream file still lists: it is marked draining, the load
// balancer is asked to rewrite its file, and the operation goes ahead once
// the file no longer lists the replica.
func (u *Upstreams) Review(in reconciler.Review) (*reconciler.Plan, time.Duration) {
	var balancers []string
	for _, name := range in.Desired.Order {
		for _, up := range in.Desired.Services[name].Policy.Upstreams {
			if up.Service == in.Service && !slices.Contains(balancers, name) {
				balancers = append(balancers, name)
			}
		}
	}
	if len(balancers) == 0 {
		return in.Plan, 0
	}
	u.mu.Lock()
	u.init()
	held := false
	wanted := map[string]bool{} // containers with a stop, restart or removal planned
	plan := in.Plan.Without(func(n *reconciler.Node) bool {
		switch n.Op.Type {
		case reconciler.OpRemoveContainer, reconciler.OpRestartContainer:
			// (a recreate is compose's `up` of the whole service, which
			// recreates every diverged replica at once: it is not held)
		default:
			return false
		}
		if n.Op.ContainerID == "" {
			return false
		}
		wanted[n.Op.ContainerID] = true
		if !u.isListed(n.Op.Container) {
			return false
		}
		u.draining[n.Op.ContainerID] = true
		held = true
		return true
	})
	// a replica whose stop is no longer planned (it turned healthy again,
	// or the restart was not allowed) may take traffic again
	released := false
	for _, c := range in.Snapshot.ByService()[in.Service] {
		if u.draining[c.ID] && !wanted[c.ID] {
			delete(u.draining, c.ID)
			released = true
		}
	}
	u.mu.Unlock()
	if !held && !released {
		return in.Plan, 0
	}
	if u.Enqueue != nil {
		for _, lb := range balancers {
			u.Enqueue(lb)
		}
	}
	if !held {
		return plan, 0
	}
	return plan, DrainRetry
}

// DrainTimeout bounds how long Drain waits for the load balancer to
// rewrite its file.
const DrainTimeout = 10 * time.Second

// Drain takes a replica out of every upstream file that lists it, before
// someone else (a rolling restart for a reload) stops it: it holds it out,
// asks the load balancers to rewrite their files, and waits until no file
// lists it. release lets it back in (once healthy) and must be called.
func (u *Upstreams) Drain(ctx context.Context, d *desired.State, service string, c observed.Container) (release func(), err error) {
	var balancers []string
	for _, name := range d.Order {
		for _, up := range d.Services[name].Policy.Upstreams {
			if up.Service == service && !slices.Contains(balancers, name) {
				balancers = append(balancers, name)
			}
		}
	}
	enqueue := func() {
		if u.Enqueue != nil {
			for _, lb := range balancers {
				u.Enqueue(lb)
			}
		}
	}
	u.mu.Lock()
	u.init()
	u.held[c.ID] = true
	u.mu.Unlock()
	release = func() {
		u.mu.Lock()
		delete(u.held, c.ID)
		u.mu.Unlock()
		enqueue()
	}
	enqueue()
	deadline := time.Now().Add(DrainTimeout)
	for {
		u.mu.Lock()
		listed := u.isListed(c.Name)
		u.mu.Unlock()
		if !listed {
			return release, nil
		}
		if time.Now().After(deadline) {
			return release, fmt.Errorf("%s still listed after %s", c.Name, DrainTimeout)
		}
		select {
		case <-ctx.Done():
			return release, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// isListed is called with mu held.
func (u *Upstreams) isListed(name string) bool {
	for _, names := range u.listed {
		if slices.Contains(names, name) {
			return true
		}
	}
	return false
}

// Annotate reports a load balancer with no healthy upstream member
// Degraded.
func (u *Upstreams) Annotate(st *reconciler.ProjectStatus, d *desired.State, _ time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.init()
	for i := range st.Services {
		ss := &st.Services[i]
		svc := d.Services[ss.Service]
		if svc == nil {
			continue
		}
		for _, up := range svc.Policy.Upstreams {
			if u.starved[up.File] {
				ss.Health, ss.Reason = reconciler.Degraded, "NoHealthyUpstream "+up.Name
				if st.Health != reconciler.Missing {
					st.Health = reconciler.Degraded
				}
			}
		}
	}
}
