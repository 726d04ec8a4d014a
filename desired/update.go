package desired

import (
	"fmt"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// Update orders, as compose and Swarm name them.
const (
	StopFirst  = "stop-first"
	StartFirst = "start-first"
)

// Failure actions, as compose and Swarm name them.
const (
	FailurePause    = "pause"
	FailureContinue = "continue"
	FailureRollback = "rollback"
)

// DefaultMonitor is the least time a new replica is given to become healthy
// (Swarm's monitor default is 5 s); a healthcheck that needs longer gets
// its start period and retries' worth.
const DefaultMonitor = 5 * time.Second

// Docker's healthcheck defaults, for the time a check needs to say healthy.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthRetries  = 3
)

// UpdatePolicy is how a service whose definition changed replaces its
// replicas: deploy.update_config (and rollback_config for going back),
// which compose itself ignores.
type UpdatePolicy struct {
	// Rolling replaces replicas in batches; false keeps compose's
	// behaviour, every replica recreated at once by one `up`.
	Rolling bool
	// Parallelism is how many replicas are replaced at once (at least 1).
	Parallelism int
	// Delay is the wait between two batches.
	Delay time.Duration
	// Order is StopFirst or StartFirst.
	Order string
	// Monitor is how long a new replica has to become healthy (or, without
	// a healthcheck, to keep running) before it counts as failed.
	Monitor time.Duration
	// FailureAction is FailurePause, FailureContinue or FailureRollback.
	FailureAction string
	// MaxFailureRatio is the share of failed replicas tolerated (0..1).
	MaxFailureRatio float64
}

// updatePolicies reads a service's update_config and rollback_config.
// Without update_config, a service of two or more replicas with a
// healthcheck rolls one replica at a time, stop-first; others keep
// compose's all-at-once recreate. Defaults are Swarm's, but for the
// monitor (long enough for the healthcheck to say healthy) and the
// rollback's failure action (a failed rollback goes on: there is nothing
// older to go back to).
func updatePolicies(svc types.ServiceConfig, replicas int, healthcheck bool, loc *locator) (update, rollback UpdatePolicy, err error) {
	monitor := max(DefaultMonitor, healthTime(svc))
	var uc, rc *types.UpdateConfig
	if svc.Deploy != nil {
		uc, rc = svc.Deploy.UpdateConfig, svc.Deploy.RollbackConfig
	}
	update = UpdatePolicy{Rolling: uc != nil || (replicas >= 2 && healthcheck), Parallelism: 1, Order: StopFirst, Monitor: monitor, FailureAction: FailurePause}
	if update, err = apply(update, uc, svc.Name, "update_config", loc); err != nil {
		return update, rollback, err
	}
	rollback = UpdatePolicy{Rolling: true, Parallelism: 1, Order: StopFirst, Monitor: monitor, FailureAction: FailureContinue}
	if rollback, err = apply(rollback, rc, svc.Name, "rollback_config", loc); err != nil {
		return update, rollback, err
	}
	return update, rollback, nil
}

// apply sets what c says over p, checking each value.
func apply(p UpdatePolicy, c *types.UpdateConfig, service, key string, loc *locator) (UpdatePolicy, error) {
	if c == nil {
		return p, nil
	}
	fail := func(sub string, format string, args ...any) error {
		k := "deploy." + key + "." + sub
		file, line := loc.find("services", service, "deploy", key, sub)
		return &InputError{File: file, Line: line, Service: service, Key: k, Err: fmt.Errorf(format, args...)}
	}
	if c.Parallelism != nil {
		// Swarm's 0 is "all at once"
		p.Parallelism = int(*c.Parallelism)
	}
	p.Delay = time.Duration(c.Delay)
	switch c.Order {
	case "":
	case StopFirst, StartFirst:
		p.Order = c.Order
	default:
		return p, fail("order", "%q: want %s or %s", c.Order, StopFirst, StartFirst)
	}
	if c.Monitor > 0 {
		p.Monitor = time.Duration(c.Monitor)
	}
	switch c.FailureAction {
	case "":
	case FailurePause, FailureContinue, FailureRollback:
		p.FailureAction = c.FailureAction
	default:
		return p, fail("failure_action", "%q: want %s, %s or %s", c.FailureAction, FailurePause, FailureContinue, FailureRollback)
	}
	if c.MaxFailureRatio < 0 || c.MaxFailureRatio > 1 {
		return p, fail("max_failure_ratio", "%v: want a share between 0 and 1", c.MaxFailureRatio)
	}
	p.MaxFailureRatio = float64(c.MaxFailureRatio)
	return p, nil
}

// healthTime is how long the service's healthcheck takes at most to say
// healthy after a start: its start period and retries probes.
func healthTime(svc types.ServiceConfig) time.Duration {
	h := svc.HealthCheck
	if h == nil || h.Disable {
		return 0
	}
	interval, retries := defaultHealthInterval, defaultHealthRetries
	if h.Interval != nil {
		interval = time.Duration(*h.Interval)
	}
	if h.Retries != nil {
		retries = int(*h.Retries)
	}
	var start time.Duration
	if h.StartPeriod != nil {
		start = time.Duration(*h.StartPeriod)
	}
	return start + interval*time.Duration(retries+1)
}
