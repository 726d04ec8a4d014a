package execute

import (
	"context"
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// ImageProvider makes a missing image present, through compose's own pull
// and build so that pull_policy and build settings mean what they do there.
type ImageProvider interface {
	Pull(ctx context.Context, project *types.Project, options api.PullOptions) error
	Build(ctx context.Context, project *types.Project, options api.BuildOptions) error
}

// Registry answers whether an image can be pulled, without pulling it: what
// `diff` asks, so that it gives --once's verdict without acting.
type Registry interface {
	DistributionInspect(ctx context.Context, image string, options client.DistributionInspectOptions) (client.DistributionInspectResult, error)
}

// missingImage is a service the plan brings up whose image is not present.
type missingImage struct {
	svc *desired.Service
	ref string
	// builder is the service that builds ref, when one does.
	builder *desired.Service
}

// missingImages are the services the plan creates containers for whose
// image is not present, in plan order.
func missingImages(d *desired.State, snap *observed.Snapshot, p *plan.Plan) []missingImage {
	var out []missingImage
	seen := map[string]bool{}
	for _, n := range p.Nodes {
		if n.Group == "" || seen[n.Op.Service] {
			continue
		}
		seen[n.Op.Service] = true
		svc := d.Services[n.Op.Service]
		ref := api.GetImageNameOrDefault(svc.Config, d.Project.Name)
		if plan.ImageID(snap.Images, ref) == "" {
			out = append(out, missingImage{svc: svc, ref: ref, builder: builderOf(d, svc, ref)})
		}
	}
	return out
}

// builderOf is the service that builds ref: svc itself when it has a build
// section, else another service of the project that builds an image of that
// name (compose builds first, then looks for images, so `image: x` on one
// service may be the image another one builds).
func builderOf(d *desired.State, svc *desired.Service, ref string) *desired.Service {
	if svc.Config.Build != nil {
		return svc
	}
	for _, name := range d.Order {
		other := d.Services[name]
		if other.Config.Build != nil && api.GetImageNameOrDefault(other.Config, d.Project.Name) == ref {
			return other
		}
	}
	return nil
}

// notPullable is the verdict on an image that must be pulled and cannot be,
// worded alike for diff and --once: bad input naming the file, service and
// key.
func notPullable(d *desired.State, m missingImage, err error) error {
	if err == nil && m.svc.Config.PullPolicy == types.PullPolicyNever {
		return d.InputError(m.svc.Name, "image", fmt.Errorf("image %s is not present locally and pull_policy is never", m.ref))
	}
	if err == nil {
		return nil
	}
	return d.InputError(m.svc.Name, "image", fmt.Errorf("image %s is not present locally and cannot be pulled: %w", m.ref, err))
}

// EnsureImages makes sure every service the plan creates containers for has
// its image, before anything is touched: an image that is neither present nor
// pullable (nor buildable) is bad input, reported as a *desired.InputError
// naming the file, service and key.
func EnsureImages(ctx context.Context, d *desired.State, snap *observed.Snapshot, p *plan.Plan, images ImageProvider) error {
	built := map[string]bool{}
	for _, m := range missingImages(d, snap, p) {
		target := m.svc
		if m.builder != nil {
			target = m.builder
		}
		if built[target.Name] {
			continue
		}
		project, err := d.Project.WithSelectedServices([]string{target.Name}, types.IgnoreDependencies)
		if err != nil {
			return fmt.Errorf("narrowing project to service %s: %w", target.Name, err)
		}
		if m.builder != nil {
			if err := images.Build(ctx, project, api.BuildOptions{Services: []string{target.Name}, Quiet: true}); err != nil {
				return d.InputError(target.Name, "build", fmt.Errorf("image %s is not present and building it failed: %w", m.ref, err))
			}
			built[target.Name] = true
			continue
		}
		if err := notPullable(d, m, nil); err != nil {
			return err
		}
		if err := notPullable(d, m, images.Pull(ctx, project, api.PullOptions{Quiet: true})); err != nil {
			return err
		}
	}
	return nil
}

// CheckImages gives EnsureImages' verdict without acting: an image that
// must be pulled is asked of its registry (through the engine), not pulled.
// An image a service builds is taken as buildable: only a build can tell.
func CheckImages(ctx context.Context, d *desired.State, snap *observed.Snapshot, p *plan.Plan, reg Registry) error {
	for _, m := range missingImages(d, snap, p) {
		if m.builder != nil {
			continue
		}
		if err := notPullable(d, m, nil); err != nil {
			return err
		}
		_, err := reg.DistributionInspect(ctx, m.ref, client.DistributionInspectOptions{})
		if err := notPullable(d, m, err); err != nil {
			return err
		}
	}
	return nil
}
