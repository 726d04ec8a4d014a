package swarmloop

import (
	"context"
	"fmt"
	"maps"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed/swarmstate"
)

// defaultNetworkDriver is stack deploy's for a network that names none.
const defaultNetworkDriver = "overlay"

// execute carries a Create or an Update out, and records it.
func (c *Controller) execute(ctx context.Context, step Step) error {
	switch step.Action {
	case Create:
		res, err := c.Engine.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: step.Spec})
		if err != nil {
			return fmt.Errorf("creating service %s: %w", step.Spec.Name, err)
		}
		c.record(record.Created, step.Service, fmt.Sprintf("service %s created (%s)", step.Spec.Name, res.ID))
	case Update:
		if _, err := c.Engine.ServiceUpdate(ctx, step.ID, client.ServiceUpdateOptions{Version: step.Version, Spec: step.Spec}); err != nil {
			return fmt.Errorf("updating service %s: %w", step.Spec.Name, err)
		}
		c.record(record.ServiceUpdated, step.Service, fmt.Sprintf("service %s updated through its update_config (%s)", step.Spec.Name, step.Why))
	}
	return nil
}

func (c *Controller) createNetwork(ctx context.Context, name string, opts client.NetworkCreateOptions) error {
	if opts.Driver == "" {
		opts.Driver = defaultNetworkDriver
	}
	_, err := c.Engine.NetworkCreate(ctx, name, opts)
	return err
}

func (c *Controller) createObject(ctx context.Context, o Object, name string) error {
	labels := maps.Clone(o.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelDataHash] = o.Hash()
	ann := swarm.Annotations{Name: name, Labels: labels}
	if o.Kind == "config" {
		_, err := c.Engine.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{Annotations: ann, Data: o.Data}})
		return err
	}
	_, err := c.Engine.SecretCreate(ctx, client.SecretCreateOptions{Spec: swarm.SecretSpec{Annotations: ann, Data: o.Data}})
	return err
}

func (c *Controller) removeObject(ctx context.Context, kind, name string, snap *swarmstate.Snapshot) error {
	if kind == "config" {
		_, err := c.Engine.ConfigRemove(ctx, snap.Configs[name].ID, client.ConfigRemoveOptions{})
		return err
	}
	_, err := c.Engine.SecretRemove(ctx, snap.Secrets[name].ID, client.SecretRemoveOptions{})
	return err
}

func (c *Controller) removeService(ctx context.Context, id string) error {
	_, err := c.Engine.ServiceRemove(ctx, id, client.ServiceRemoveOptions{})
	return err
}
