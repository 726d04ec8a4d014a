package swarmloop

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/observed/swarmstate"
)

// LabelDataHash marks a config or secret reconcile created with the hash
// of its data: the engine never returns a secret's data, and a rotated
// object has to be told from its predecessor.
const LabelDataHash = "dev.reconcile.data-hash"

// Object is a config or secret of the stack as the file gives it.
type Object struct {
	Kind   string // "config" or "secret"
	Name   string // as stack deploy names it: stack_name
	Data   []byte
	Labels map[string]string
}

// Hash is the object's data hash, as LabelDataHash carries it.
func (o Object) Hash() string { return fmt.Sprintf("%x", sha256.Sum256(o.Data))[:12] }

// Placement is where an object's current data lives: the name of the
// engine object a service should refer to, and whether it must be created
// first. The first version of an object has stack deploy's name; a changed
// one gets the name with its data hash, since Swarm's configs and secrets
// cannot change (docker stack deploy fails on a changed config).
type Placement struct {
	Name   string
	Create bool
}

// Place decides where o's data lives in snap: the object of stack deploy's
// name when it holds that data, else the versioned one when it exists, else
// a new one (stack deploy's name when that is free). A version in use is
// kept while its data is the file's: once the first version is removed as
// unused, its free name must not draw the services onto a copy of the same
// data (a second rollout for nothing).
func Place(o Object, snap *swarmstate.Snapshot) Placement {
	versioned := o.Name + "-" + o.Hash()
	var base, has bool // the base name holds o's data; the versioned exists
	var free bool      // no object has the base name
	switch o.Kind {
	case "config":
		c, ok := snap.Configs[o.Name]
		free, base = !ok, ok && string(c.Spec.Data) == string(o.Data)
		_, has = snap.Configs[versioned]
	default:
		sec, ok := snap.Secrets[o.Name]
		// a secret created without the label (by docker stack deploy)
		// cannot be compared: it is taken to hold the file's data
		h, labelled := sec.Spec.Labels[LabelDataHash]
		free, base = !ok, ok && (!labelled || h == o.Hash())
		_, has = snap.Secrets[versioned]
	}
	switch {
	case base:
		return Placement{Name: o.Name}
	case has:
		return Placement{Name: versioned}
	case free:
		return Placement{Name: o.Name, Create: true}
	}
	return Placement{Name: versioned, Create: true}
}

// Objects are the stack's configs and secrets as Objects.
func Objects(configs []swarm.ConfigSpec, secrets []swarm.SecretSpec) []Object {
	var out []Object
	for _, c := range configs {
		out = append(out, Object{Kind: "config", Name: c.Name, Data: c.Data, Labels: c.Labels})
	}
	for _, s := range secrets {
		out = append(out, Object{Kind: "secret", Name: s.Name, Data: s.Data, Labels: s.Labels})
	}
	return out
}

// Repoint makes spec refer to each object where it is placed, by name and
// ID: docker/cli's conversion names them as the file does.
func Repoint(spec *swarm.ServiceSpec, placed map[string]Placement, snap *swarmstate.Snapshot) {
	cs := spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return
	}
	for _, ref := range cs.Configs {
		if p, ok := placed["config/"+ref.ConfigName]; ok && p.Name != ref.ConfigName {
			ref.ConfigName, ref.ConfigID = p.Name, snap.Configs[p.Name].ID
		}
	}
	for _, ref := range cs.Secrets {
		if p, ok := placed["secret/"+ref.SecretName]; ok && p.Name != ref.SecretName {
			ref.SecretName, ref.SecretID = p.Name, snap.Secrets[p.Name].ID
		}
	}
}

// placedObjects answers docker/cli's conversion, which looks the file's
// configs and secrets up by the names stack deploy gives them, with where
// each one's data is placed: after a rotation the first version may be gone
// (removed once unused) and only a versioned one hold the data. Everything
// else goes to the engine.
type placedObjects struct {
	client.APIClient
	placed map[string]Placement
	snap   *swarmstate.Snapshot
}

func (p placedObjects) ConfigList(ctx context.Context, opts client.ConfigListOptions) (client.ConfigListResult, error) {
	var out client.ConfigListResult
	for name := range opts.Filters["name"] {
		pl, ok := p.placed["config/"+name]
		c, exists := p.snap.Configs[pl.Name]
		if !ok || !exists {
			return p.APIClient.ConfigList(ctx, opts)
		}
		c.Spec.Name = name
		out.Items = append(out.Items, c)
	}
	return out, nil
}

func (p placedObjects) SecretList(ctx context.Context, opts client.SecretListOptions) (client.SecretListResult, error) {
	var out client.SecretListResult
	for name := range opts.Filters["name"] {
		pl, ok := p.placed["secret/"+name]
		sec, exists := p.snap.Secrets[pl.Name]
		if !ok || !exists {
			return p.APIClient.SecretList(ctx, opts)
		}
		sec.Spec.Name = name
		out.Items = append(out.Items, sec)
	}
	return out, nil
}
