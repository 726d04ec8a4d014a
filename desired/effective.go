package desired

import (
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// composeRestart reads the restart mode and attempt budget the way compose
// hands them to the engine: deploy.restart_policy, when present, wins over
// `restart:`. Delay and window are read too, although the engine ignores
// them outside Swarm: reconcile is what makes them mean something.
func composeRestart(svc types.ServiceConfig) (mode RestartMode, attempts *int, delay, window *time.Duration) {
	mode = RestartNo
	if svc.Restart != "" {
		name, num, hasNum := strings.Cut(svc.Restart, ":")
		mode = mapCondition(name)
		if hasNum {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				attempts = &n
			}
		}
	}
	if svc.Deploy != nil && svc.Deploy.RestartPolicy != nil {
		rp := svc.Deploy.RestartPolicy
		mode = mapCondition(rp.Condition)
		attempts = nil
		if rp.MaxAttempts != nil && *rp.MaxAttempts > 0 {
			n := int(*rp.MaxAttempts)
			attempts = &n
		}
		if rp.Delay != nil {
			d := time.Duration(*rp.Delay)
			delay = &d
		}
		if rp.Window != nil {
			w := time.Duration(*rp.Window)
			window = &w
		}
	}
	return mode, attempts, delay, window
}

func mapCondition(c string) RestartMode {
	switch c {
	case "always", "any":
		return RestartAlways
	case "on-failure":
		return RestartOnFailure
	case "unless-stopped":
		return RestartUnlessStopped
	default: // "", "no", "none"
		return RestartNo
	}
}

// effectivePolicy layers, from weakest to strongest: built-in defaults, the
// project's x-reconcile block, the service's compose restart settings, and
// the service's own x-reconcile block.
func effectivePolicy(svc types.ServiceConfig, project, service *rawPolicy) Policy {
	mode, attempts, delay, window := composeRestart(svc)
	engineRetries := 0 // what compose gives the engine's on-failure policy
	if attempts != nil {
		engineRetries = *attempts
	}
	p := Policy{
		Restart: RestartPolicy{
			Mode:          mode,
			EngineRetries: engineRetries,
			ResetAfter:    DefaultResetAfter,
			Delay:         DefaultRestartDelay,
			MaxDelay:      DefaultRestartMaxDelay,
			// restart: "no" means never restart, unless on_unhealthy says
			// otherwise in so many words
			OnUnhealthy: hasHealthcheck(svc) && mode != RestartNo,
		},
		Replicas: ReplicaPolicy{Prune: true},
		Reload:   ReloadAction{Restart: true, Timeout: DefaultReloadTimeout},
	}
	for i, layer := range []*rawPolicy{project, {MaxAttempts: attempts, Delay: delay, Window: window}, service} {
		if layer == nil {
			continue
		}
		setInt(&p.Restart.MaxAttempts, layer.MaxAttempts)
		setDur(&p.Restart.Window, layer.Window)
		setDur(&p.Restart.ResetAfter, layer.ResetAfter)
		setDur(&p.Restart.Delay, layer.Delay)
		setDur(&p.Restart.MaxDelay, layer.MaxDelay)
		if layer.OnUnhealthy != nil {
			p.Restart.OnUnhealthy = *layer.OnUnhealthy
		}
		if layer.Prune != nil {
			p.Replicas.Prune = *layer.Prune
		}
		if i == 2 { // service scope only
			if layer.Reload != nil {
				p.Reload = *layer.Reload
			}
			p.Upstreams = layer.Upstreams
			p.Images = layer.Images
			p.Adopt = layer.Adopt
		}
	}
	if p.Restart.MaxDelay < p.Restart.Delay {
		p.Restart.MaxDelay = p.Restart.Delay
	}
	return p
}

// hasHealthcheck reports whether the compose file gives the service a check.
// A check that only the image defines shows up later as a health status.
func hasHealthcheck(svc types.ServiceConfig) bool {
	return svc.HealthCheck != nil && !svc.HealthCheck.Disable && len(svc.HealthCheck.Test) > 0 &&
		svc.HealthCheck.Test[0] != "NONE"
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func setDur(dst *time.Duration, v *time.Duration) {
	if v != nil {
		*dst = *v
	}
}
