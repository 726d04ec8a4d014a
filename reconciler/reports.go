package reconciler

import (
	"sync"

	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// reports makes each record once per occurrence. Per service it keeps the
// drift it has reported and, per reason and container, the occurrence last
// reported: a crash loop replaces its entry instead of adding one per exit.
// Everything but the drift is forgotten once the service is in sync, so
// that it is told again the next time.
type reports struct {
	mu       sync.Mutex
	services map[string]*serviceReports
}

type serviceReports struct {
	drift map[string]bool
	// last holds the occurrence last reported, by reason and container;
	// lasting the same for Lasting reports, which a sync does not clear.
	last, lasting map[string]string
}

func (r *reports) of(service string) *serviceReports {
	if r.services == nil {
		r.services = map[string]*serviceReports{}
	}
	s := r.services[service]
	if s == nil {
		s = &serviceReports{drift: map[string]bool{}, last: map[string]string{}, lasting: map[string]string{}}
		r.services[service] = s
	}
	return s
}

// drift records each drift item of the service once, when it is first seen,
// and a Synced record when the last of it is gone.
func (r *reports) drift(c *Controller, key string, res *plan.Result) {
	var fresh []plan.Drift
	r.mu.Lock()
	s := r.of(key)
	now := map[string]bool{}
	for _, dr := range res.Drift {
		if dr.Service != key {
			continue
		}
		sig := dr.Kind.String() + "|" + dr.Subject() + "|" + dr.Cause
		now[sig] = true
		if !s.drift[sig] {
			fresh = append(fresh, dr)
		}
	}
	synced := len(s.drift) > 0 && len(now) == 0
	s.drift = now
	if len(now) == 0 {
		clear(s.last)
	}
	r.mu.Unlock()

	for _, dr := range fresh {
		container := dr.Container
		if container == "" {
			container = dr.Resource
		}
		msg := dr.Cause
		if !dr.Actionable {
			msg += " (reported only)"
		}
		if c.DryRun {
			msg += " (dry run: not acting)"
		}
		c.record(dr.Kind.Reason(), key, container, msg)
	}
	if synced {
		c.record(record.Synced, key, "", "service matches its desired state")
	}
}

// once records rep unless the same occurrence of its reason and container
// was recorded since the service was last in sync.
func (r *reports) once(c *Controller, key string, rep Report) {
	r.mu.Lock()
	s := r.of(key)
	k := string(rep.Reason) + "|" + rep.Container
	seenBy := s.last
	if rep.Lasting {
		seenBy = s.lasting
	}
	prev, seen := seenBy[k]
	seenBy[k] = rep.Occurrence
	r.mu.Unlock()
	if !seen || prev != rep.Occurrence {
		c.record(rep.Reason, key, rep.Container, rep.Message)
	}
}

// driftMetrics sets the drift gauges from a diff.
func (c *Controller) driftMetrics(res *plan.Result) {
	counts := map[[2]string]int{}
	for _, dr := range res.Drift {
		counts[[2]string{dr.Service, dr.Kind.String()}]++
	}
	c.metric(func(m Metrics) { m.Drift(counts) })
}
