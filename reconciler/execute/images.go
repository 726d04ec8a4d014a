package execute

import (
	"context"
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"

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

// EnsureImages makes sure every service the plan creates containers for has
// its image, before anything is touched: an image that is neither present nor
// pullable (nor buildable) is bad input, reported as a *desired.InputError
// naming the file, service and key.
func EnsureImages(ctx context.Context, d *desired.State, snap *observed.Snapshot, p *plan.Plan, images ImageProvider) error {
	seen, built := map[string]bool{}, map[string]bool{}
	for _, n := range p.Nodes {
		if n.Group == "" || seen[n.Op.Service] {
			continue
		}
		seen[n.Op.Service] = true
		svc := d.Services[n.Op.Service]
		ref := api.GetImageNameOrDefault(svc.Config, d.Project.Name)
		if plan.ImageID(snap.Images, ref) != "" {
			continue
		}
		if builder := builderOf(d, svc, ref); builder != nil {
			if built[builder.Name] {
				continue
			}
			project, err := d.Project.WithSelectedServices([]string{builder.Name}, types.IgnoreDependencies)
			if err != nil {
				return fmt.Errorf("narrowing project to service %s: %w", builder.Name, err)
			}
			if err := images.Build(ctx, project, api.BuildOptions{Services: []string{builder.Name}, Quiet: true}); err != nil {
				return d.InputError(builder.Name, "build", fmt.Errorf("image %s is not present and building it failed: %w", ref, err))
			}
			built[builder.Name] = true
			continue
		}
		project, err := d.Project.WithSelectedServices([]string{svc.Name}, types.IgnoreDependencies)
		if err != nil {
			return fmt.Errorf("narrowing project to service %s: %w", svc.Name, err)
		}
		if svc.Config.PullPolicy == types.PullPolicyNever {
			return d.InputError(svc.Name, "image", fmt.Errorf("image %s is not present locally and pull_policy is never", ref))
		}
		if err := images.Pull(ctx, project, api.PullOptions{Quiet: true}); err != nil {
			return d.InputError(svc.Name, "image", fmt.Errorf("image %s is not present locally and cannot be pulled: %w", ref, err))
		}
	}
	return nil
}
