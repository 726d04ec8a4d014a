// Package upstreams keeps load balancers' upstream files equal to the
// replicas that may take traffic, and drains a replica before it stops.
package upstreams

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
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// DrainRetry is how soon an operation held back for draining is looked at
// again.
const DrainRetry = 100 * time.Millisecond

// Reloader reloads a service (the load balancer) after its file changed,
// through act.
type Reloader interface {
	Reload(ctx context.Context, act reconciler.Actor, d *desired.State, service, why string) error
}

// Upstreams keeps each `x-reconcile.upstreams` file equal to the target's
// replicas that are running and healthy, and reloads the load balancer when
// the file changes: open-source nginx resolves a service name once and has
// no health checks of its own. As a Guard on target services it holds back
// the stop, restart or removal of a replica still listed, until the file no
// longer lists it; as a Syncer on the load balancer it writes the file
// without the replicas whose stop is pending.
type Upstreams struct {
	Reloader Reloader
	Records  reconciler.Recorder
	// Pending returns a service's operations held back or under way (the
	// controller's Pending): a replica with a stop, restart or removal
	// pending is left out of the files.
	Pending func(service string) []plan.Operation
	// Enqueue asks for a service's reconcile: the load balancer's, when a
	// replica is drained for a reload's rolling restart.
	Enqueue func(service string)
	// Clock paces Drain; the real clock when nil.
	Clock clock.Clock
	// Written is told about every file written, so that a watcher of the
	// load balancer's mounts does not take it for a user's edit.
	Written func(path string)
	Log     *slog.Logger

	mu sync.Mutex
	// listed holds the container names each file lists now.
	listed map[string][]string
	// held holds the containers Drain keeps out until released.
	held map[string]bool
	// applied holds, per file, the content the load balancer has loaded.
	applied map[string]string
	starved map[string]bool
}

func (u *Upstreams) init() {
	if u.listed == nil {
		u.listed, u.starved, u.held = map[string][]string{}, map[string]bool{}, map[string]bool{}
		u.applied = map[string]string{}
	}
}

// Sync writes the upstream files of a load-balancer service whose content
// changed, then reloads it (check first).
func (u *Upstreams) Sync(ctx context.Context, in reconciler.Review, act reconciler.Actor) (reconciler.Result, error) {
	lb := in.Desired.Services[in.Service]
	if lb == nil || len(lb.Policy.Upstreams) == 0 {
		return reconciler.Result{}, nil
	}
	byService := in.Snapshot.ByService()
	var changed []string
	written, listing := map[string]string{}, map[string][]string{}
	var errs []error
	for _, up := range lb.Policy.Upstreams {
		target := in.Desired.Services[up.Service]
		if target == nil {
			continue
		}
		members := u.members(target, byService[up.Service], u.stopping(up.Service))
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
				u.Records.Event(record.NoHealthyUpstream, in.Service, "",
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
			if err := act.Act(ctx, writeUpstream(in.Service, lb, up, []byte(content))); err != nil {
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
		if err := u.Reloader.Reload(ctx, act, in.Desired, in.Service, "upstream "+strings.Join(changed, "; ")); err != nil {
			// the load balancer still serves the old list: a replica
			// being drained is not out yet
			return reconciler.Result{}, errors.Join(append(errs, err)...)
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
	return reconciler.Result{}, errors.Join(errs...)
}

// stopping are the service's containers with a stop, restart or removal
// pending, held back or under way.
func (u *Upstreams) stopping(service string) map[string]bool {
	out := map[string]bool{}
	if u.Pending == nil {
		return out
	}
	for _, op := range u.Pending(service) {
		if stops(op) {
			out[op.ContainerID] = true
		}
	}
	return out
}

// stops reports whether an operation takes a running replica out of
// service. (A recreate is compose's `up` of the whole service, which
// recreates every diverged replica at once: it is not drained.)
func stops(op plan.Operation) bool {
	switch op.Type {
	case plan.OpRemoveContainer, plan.OpRestartContainer, plan.OpStopContainer:
		return op.ContainerID != ""
	}
	return false
}

func (u *Upstreams) setListed(path string, members []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.init()
	u.listed[path] = members
}

// members are the replicas that may take traffic, by container name (which
// resolves on the project's networks), in replica order.
func (u *Upstreams) members(target *desired.Service, containers []observed.Container, stopping map[string]bool) []string {
	cs := slices.Clone(containers)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Number < cs[j].Number })
	u.mu.Lock()
	defer u.mu.Unlock()
	u.init()
	var names []string
	for _, c := range cs {
		if c.State != observed.StateRunning || stopping[c.ID] || u.held[c.ID] {
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

// writeUpstream is the operation that writes an upstream file: replaced
// atomically (temporary file, rename), except where the file is itself the
// source of a bind mount: a rename would leave the container with the old
// file, so it is written in place.
func writeUpstream(service string, lb *desired.Service, up desired.Upstream, data []byte) plan.Operation {
	inPlace := false
	for _, v := range lb.Config.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == filepath.Clean(up.File) {
			inPlace = true
		}
	}
	return plan.Operation{Type: plan.OpWriteFile, ResourceID: "file:" + up.File, Cause: "upstream " + up.Name + " changed",
		Service: service, File: up.File, Content: data, InPlace: inPlace}
}

// Review holds back stopping, restarting or removing a replica that an
// upstream file still lists, and wakes the load balancers: their next sync
// leaves the replica out (it is pending), and the operation goes ahead once
// no file lists it. It changes nothing itself.
func (u *Upstreams) Review(in reconciler.Review) reconciler.Decision {
	var dec reconciler.Decision
	balancers := balancersOf(in.Desired, in.Service)
	if len(balancers) == 0 {
		return dec
	}
	u.mu.Lock()
	for _, n := range in.Plan.Nodes {
		if stops(n.Op) && u.isListed(n.Op.Container) {
			dec.Hold = append(dec.Hold, n)
		}
	}
	u.mu.Unlock()
	if len(dec.Hold) > 0 {
		dec.RequeueAfter = DrainRetry
	}
	// a replica whose stop is no longer planned may take traffic again:
	// the balancers look again whenever the target is reviewed with
	// replicas out of their files
	if len(dec.Hold) > 0 || u.anyOut(in) {
		dec.Wake = balancers
	}
	return dec
}

// anyOut reports whether a running replica of the service is missing from a
// file that lists its service: one whose stop was pending may be back.
func (u *Upstreams) anyOut(in reconciler.Review) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range in.Snapshot.ByService()[in.Service] {
		if c.State == observed.StateRunning && !u.held[c.ID] && !u.isListed(c.Name) {
			return true
		}
	}
	return false
}

// balancersOf are the services whose upstream files list service's replicas.
func balancersOf(d *desired.State, service string) []string {
	var out []string
	for _, name := range d.Order {
		for _, up := range d.Services[name].Policy.Upstreams {
			if up.Service == service && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// DrainTimeout bounds how long Drain waits for the load balancer to
// rewrite its file; drainPoll paces its look.
const (
	DrainTimeout = 10 * time.Second
	drainPoll    = 50 * time.Millisecond
)

func (u *Upstreams) clock() clock.Clock { return clock.Or(u.Clock) }

// Drain takes a replica out of every upstream file that lists it, before
// someone else (a rolling restart for a reload) stops it: it holds it out,
// asks the load balancers to rewrite their files, and waits until no file
// lists it. release lets it back in (once healthy) and must be called.
func (u *Upstreams) Drain(ctx context.Context, d *desired.State, service string, c observed.Container) (release func(), err error) {
	balancers := balancersOf(d, service)
	clk := u.clock()
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
	deadline := clk.Now().Add(DrainTimeout)
	for {
		u.mu.Lock()
		listed := u.isListed(c.Name)
		u.mu.Unlock()
		if !listed {
			return release, nil
		}
		if clk.Now().After(deadline) {
			return release, fmt.Errorf("%s still listed after %s", c.Name, DrainTimeout)
		}
		select {
		case <-ctx.Done():
			return release, ctx.Err()
		case <-clk.After(drainPoll):
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
// Degraded, and marks each container with the upstreams that list it.
func (u *Upstreams) Annotate(st *plan.ProjectStatus, d *desired.State, _ time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.init()
	for i := range st.Services {
		ss := &st.Services[i]
		svc := d.Services[ss.Service]
		if svc == nil {
			continue
		}
		for _, name := range d.Order {
			for _, up := range d.Services[name].Policy.Upstreams {
				if up.Service != ss.Service {
					continue
				}
				for j := range ss.Containers {
					if c := &ss.Containers[j]; slices.Contains(u.listed[up.File], c.Name) {
						c.Upstreams = append(c.Upstreams, up.Name)
					}
				}
			}
		}
		for _, up := range svc.Policy.Upstreams {
			if u.starved[up.File] {
				ss.Health, ss.Reason = plan.Degraded, string(record.NoHealthyUpstream)+" "+up.Name
				if st.Health != plan.Missing {
					st.Health = plan.Degraded
				}
			}
		}
	}
}
