package reconciler

import (
	"sync"

	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// pending holds, per service, the operations the guards held back in its
// last reconcile and those being carried out now: a replica with a stop
// pending must stay out of a load balancer's file until it is gone.
type pending struct {
	mu      sync.Mutex
	held    map[string][]plan.Operation
	running map[string]plan.Operation
}

func opKey(op plan.Operation) string { return op.Type.String() + "|" + op.ResourceID }

func (p *pending) hold(service string, ops []plan.Operation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[string][]plan.Operation{}
	}
	if len(ops) == 0 {
		delete(p.held, service)
		return
	}
	p.held[service] = ops
}

func (p *pending) begin(op plan.Operation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running == nil {
		p.running = map[string]plan.Operation{}
	}
	p.running[opKey(op)] = op
}

func (p *pending) done(op plan.Operation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, opKey(op))
}

// Pending returns the service's operations held back by a guard in its
// last reconcile, and those being carried out.
func (c *Controller) Pending(service string) []plan.Operation {
	p := &c.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]plan.Operation(nil), p.held[service]...)
	for _, op := range p.running {
		if op.Service == service {
			out = append(out, op)
		}
	}
	return out
}
