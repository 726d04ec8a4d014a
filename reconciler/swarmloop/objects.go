package swarmloop

import (
	"crypto/sha256"
	"fmt"

	"github.com/moby/moby/api/types/swarm"

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

// Place decides where o's data lives in snap.
func Place(o Object, snap *swarmstate.Snapshot) Placement {
	versioned := o.Name + "-" + o.Hash()
	switch o.Kind {
	case "config":
		if c, ok := snap.Configs[o.Name]; !ok {
			return Placement{Name: o.Name, Create: true}
		} else if string(c.Spec.Data) == string(o.Data) {
			return Placement{Name: o.Name}
		}
		_, ok := snap.Configs[versioned]
		return Placement{Name: versioned, Create: !ok}
	default:
		s, ok := snap.Secrets[o.Name]
		if !ok {
			return Placement{Name: o.Name, Create: true}
		}
		// a secret created without the label (by docker stack deploy)
		// cannot be compared: it is taken to hold the file's data
		if h, labelled := s.Spec.Labels[LabelDataHash]; !labelled || h == o.Hash() {
			return Placement{Name: o.Name}
		}
		_, ok = snap.Secrets[versioned]
		return Placement{Name: versioned, Create: !ok}
	}
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
