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

// EnsureImages makes sure every service the plan creates containers for has
// its image, before anything is touched: an image that is neither present nor
// pullable (nor buildable) is bad input, reported as a *desired.InputError
// naming the file, service and key.
func EnsureImages(ctx context.Context, d *desired.State, snap *observed.Snapshot, p *plan.Plan, images ImageProvider) error {
	seen := map[string]bool{}
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
		project, err := d.Project.WithSelectedServices([]string{svc.Name}, types.IgnoreDependencies)
		if err != nil {
			return fmt.Errorf("narrowing project to service %s: %w", svc.Name, err)
		}
		if svc.Config.Build != nil {
			if err := images.Build(ctx, project, api.BuildOptions{Services: []string{svc.Name}, Quiet: true}); err != nil {
				return d.InputError(svc.Name, "build", fmt.Errorf("image %s is not present and building it failed: %w", ref, err))
			}
			continue
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
