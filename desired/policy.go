package desired

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reconcile-dev/reconcile/internal/secrets"
)

// ExtensionKey is the compose extension that carries reconcile's policy, on a
// service and, as project-wide defaults, at the top level. Compose leaves every
// x- extension out of a service's config hash, so editing policy never
// recreates a container.
const ExtensionKey = "x-reconcile"

// Defaults for the restart budget and backoff. ResetAfter mirrors the engine's
// own restart manager, which forgets a container's failures once it has run
// for 10 s.
const (
	DefaultRestartDelay    = time.Second
	DefaultRestartMaxDelay = 60 * time.Second
	DefaultResetAfter      = 10 * time.Second
	DefaultReloadTimeout   = 30 * time.Second
	// DefaultStopGracePeriod is compose's and the engine's own default.
	DefaultStopGracePeriod = 10 * time.Second
)

// RestartMode is the restart policy of a service, as compose and the engine
// name it.
type RestartMode string

const (
	RestartNo            RestartMode = "no"
	RestartAlways        RestartMode = "always"
	RestartOnFailure     RestartMode = "on-failure"
	RestartUnlessStopped RestartMode = "unless-stopped"
)

// RestartPolicy is the effective restart behaviour of a service: the mode and
// budget from `restart:` or `deploy.restart_policy`, refined by
// `x-reconcile.restart`.
type RestartPolicy struct {
	Mode RestartMode
	// EngineRetries is the count compose gives the engine's on-failure
	// policy (on-failure:N), whatever budget x-reconcile sets: what the
	// container's own restart policy is restored to.
	EngineRetries int
	// MaxAttempts is the restart budget; 0 means unlimited.
	MaxAttempts int
	// Window, when set, counts restarts in a sliding window of this length;
	// when zero the count resets once a container has run (and been healthy,
	// if it has a check) for ResetAfter.
	Window     time.Duration
	ResetAfter time.Duration
	// Delay is the first backoff between the reconciler's restarts; it doubles
	// up to MaxDelay.
	Delay    time.Duration
	MaxDelay time.Duration
	// OnUnhealthy restarts containers whose health turns unhealthy.
	OnUnhealthy bool
}

// ReplicaPolicy says what to do with replicas beyond the desired count.
type ReplicaPolicy struct {
	// Prune removes extra replicas; when false they are only reported.
	Prune bool
}

// ReloadAction is how a service takes a changed configuration file.
// Exactly one of Exec, Signal or Restart applies; Restart is the default.
type ReloadAction struct {
	Check   []string      // run first inside each replica; a failure rejects the reload
	Exec    []string      // run inside each replica
	Signal  string        // sent to the main process without the engine's kill API
	Restart bool          // rolling restart, one healthy replica at a time
	Timeout time.Duration // bound for Check and Exec
	// checkShown and execShown are the commands as the file spells them,
	// every variable reference masked: a token interpolated into a command
	// must not reach a log, a record or a page.
	checkShown, execShown string
	// secrets masks what the commands print: the project's Set.
	secrets *secrets.Set
}

// CheckShown is the check command as records show it: values interpolated
// from the environment masked.
func (r *ReloadAction) CheckShown() string { return shown(r.checkShown, r.Check) }

// ExecShown is the exec command as records show it.
func (r *ReloadAction) ExecShown() string { return shown(r.execShown, r.Exec) }

func shown(masked string, cmd []string) string {
	if masked != "" {
		return masked
	}
	return strings.Join(cmd, " ")
}

// Mask hides the project's secret values in text a command printed.
func (r *ReloadAction) Mask(text string) string { return r.secrets.Mask(text) }

// maskCommands fills the shown forms of the reload commands from their raw
// text in the compose file: each variable reference shows as Masked.
func (r *ReloadAction) maskCommands(raw func(key string, i int) (string, bool)) {
	mask := func(key string, cmd []string) string {
		parts := make([]string, len(cmd))
		changed := false
		for i, arg := range cmd {
			parts[i] = arg
			text, ok := raw(key, i)
			if !ok || !strings.Contains(text, "$") {
				continue
			}
			parts[i] = secrets.MaskReferences(text)
			changed = true
		}
		if !changed {
			return ""
		}
		return strings.Join(parts, " ")
	}
	r.checkShown = mask("check", r.Check)
	r.execShown = mask("exec", r.Exec)
}

// Upstream is a load-balancer upstream that reconcile keeps equal to the
// healthy replicas of a target service.
type Upstream struct {
	Name    string // upstream block name in the generated file
	Service string // target service
	Port    int    // target port
	File    string // host path of the generated file, absolute after loading
	Format  string // file format; "nginx"
}

// ImageUpdates is how a service follows its image's tag at the registry
// (x-reconcile.image_updates): a new digest of the tag (policy digest), or
// the highest version tag above the current one (policy semver), is rolled
// out once it is MinAge old, through the service's rolling update, and
// rolled back to the last good one when the update fails.
type ImageUpdates struct {
	Policy string
	// MinAge is how old (the image's created time) an update must be
	// before it is taken: a broken tag pushed an hour ago is not.
	MinAge time.Duration
	// Interval is how often the registry is asked.
	Interval time.Duration
}

// The image update policies, and how often the registry is asked unless
// the block says otherwise.
const (
	ImagePolicyDigest      = "digest"
	ImagePolicySemver      = "semver"
	DefaultImageInterval   = time.Hour
	MinImageUpdateInterval = time.Second
)

// Policy is a service's effective x-reconcile policy: its own block over the
// project defaults over built-in defaults.
type Policy struct {
	Restart   RestartPolicy
	Replicas  ReplicaPolicy
	Reload    ReloadAction
	Upstreams []Upstream
	// Images, when set, follows the image's tag (service scope only).
	Images *ImageUpdates
	// Adopt are the fields of the service's Swarm spec a hand change to
	// is kept rather than reverted (x-reconcile.swarm.adopt, service scope,
	// --swarm), as spec paths ("Mode.Replicated.Replicas").
	Adopt []string
}

// adoptAliases are the names x-reconcile.swarm.adopt takes for the fields
// people change by hand, beside the spec paths `diff --swarm` prints.
var adoptAliases = map[string]string{
	"replicas":  "Mode.Replicated.Replicas",
	"image":     "TaskTemplate.ContainerSpec.Image",
	"env":       "TaskTemplate.ContainerSpec.Env",
	"labels":    "Labels",
	"resources": "TaskTemplate.Resources",
	"placement": "TaskTemplate.Placement",
}

// adoptRoots are the top-level fields of a Swarm service spec a path may
// start with.
var adoptRoots = []string{"Labels", "Mode", "TaskTemplate", "UpdateConfig", "RollbackConfig", "EndpointSpec"}

// parseSwarm reads x-reconcile.swarm: adopt, a list of aliases or spec paths.
func parseSwarm(v any, key string) ([]string, *fieldError) {
	m, err := asMap(v, key)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "adopt" {
			return nil, unknownKey(key+"."+k, "adopt")
		}
		list, ok := m[k].([]any)
		if !ok {
			return nil, fieldErr(key+".adopt", "expected a list of fields (replicas, image, env, labels, resources, placement, or a spec path such as Mode.Replicated.Replicas), got %s", describe(m[k]))
		}
		for i, item := range list {
			sub := fmt.Sprintf("%s.adopt.%d", key, i)
			name, err := asString(item, sub)
			if err != nil {
				return nil, err
			}
			if path, ok := adoptAliases[name]; ok {
				name = path
			}
			root, _, _ := strings.Cut(name, ".")
			if !slices.Contains(adoptRoots, root) || strings.Contains(name, "..") || strings.HasSuffix(name, ".") {
				return nil, fieldErr(sub, "%q is neither replicas, image, env, labels, resources, placement nor a spec path under %s", name, strings.Join(adoptRoots, ", "))
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out, nil
}

// rawPolicy is one parsed x-reconcile block: pointers tell "not given" from
// zero values so blocks can be layered.
type rawPolicy struct {
	MaxAttempts *int
	Window      *time.Duration
	ResetAfter  *time.Duration
	Delay       *time.Duration
	MaxDelay    *time.Duration
	OnUnhealthy *bool
	Prune       *bool
	Reload      *ReloadAction
	Upstreams   []Upstream
	Images      *ImageUpdates
	Adopt       []string
	// Enabled, at the top level only, opts a project out of an agent
	// (--projects, --discover) when false.
	Enabled *bool
}

// fieldError is a schema violation at a dotted key below x-reconcile.
type fieldError struct {
	key string
	msg string
}

func (e *fieldError) Error() string { return e.msg }

func fieldErr(key, format string, args ...any) *fieldError {
	return &fieldError{key: key, msg: fmt.Sprintf(format, args...)}
}

// parseBlock validates one x-reconcile block. scope is "project" or
// "service": reload and upstreams only make sense on a service.
func parseBlock(v any, scope string) (*rawPolicy, *fieldError) {
	m, err := asMap(v, ExtensionKey)
	if err != nil {
		return nil, err
	}
	p := &rawPolicy{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val := m[k]
		key := ExtensionKey + "." + k
		switch k {
		case "restart":
			if err := parseRestart(val, key, p); err != nil {
				return nil, err
			}
		case "replicas":
			rm, err := asMap(val, key)
			if err != nil {
				return nil, err
			}
			for _, rk := range slices.Sorted(maps.Keys(rm)) {
				switch rk {
				case "prune":
					b, err := asBool(rm[rk], key+".prune")
					if err != nil {
						return nil, err
					}
					p.Prune = &b
				default:
					return nil, unknownKey(key+"."+rk, "prune")
				}
			}
		case "reload":
			if scope != "service" {
				return nil, fieldErr(key, "only allowed on a service")
			}
			r, err := parseReload(val, key)
			if err != nil {
				return nil, err
			}
			p.Reload = r
		case "upstreams":
			if scope != "service" {
				return nil, fieldErr(key, "only allowed on a service")
			}
			ups, err := parseUpstreams(val, key)
			if err != nil {
				return nil, err
			}
			p.Upstreams = ups
		case "image_updates":
			if scope != "service" {
				return nil, fieldErr(key, "only allowed on a service")
			}
			iu, err := parseImageUpdates(val, key)
			if err != nil {
				return nil, err
			}
			p.Images = iu
		case "swarm":
			if scope != "service" {
				return nil, fieldErr(key, "only allowed on a service")
			}
			adopt, err := parseSwarm(val, key)
			if err != nil {
				return nil, err
			}
			p.Adopt = adopt
		case "enabled":
			if scope == "service" {
				return nil, fieldErr(key, "only allowed at the top level (it opts the whole project out of an agent)")
			}
			b, err := asBool(val, key)
			if err != nil {
				return nil, err
			}
			p.Enabled = &b
		default:
			if scope == "service" {
				return nil, unknownKey(key, "restart", "replicas", "reload", "upstreams", "image_updates", "swarm")
			}
			return nil, unknownKey(key, "enabled", "restart", "replicas")
		}
	}
	return p, nil
}

func parseImageUpdates(v any, key string) (*ImageUpdates, *fieldError) {
	m, err := asMap(v, key)
	if err != nil {
		return nil, err
	}
	iu := &ImageUpdates{Policy: ImagePolicyDigest, Interval: DefaultImageInterval}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val, sub := m[k], key+"."+k
		switch k {
		case "policy":
			s, err := asString(val, sub)
			if err != nil {
				return nil, err
			}
			if s != ImagePolicyDigest && s != ImagePolicySemver {
				return nil, fieldErr(sub, "unknown policy %q (digest: a new digest of the same tag; semver: the highest version tag above the current one, of its variant)", s)
			}
			iu.Policy = s
		case "min_age":
			if iu.MinAge, err = asDuration(val, sub); err != nil {
				return nil, err
			}
		case "interval":
			if iu.Interval, err = asDuration(val, sub); err != nil {
				return nil, err
			}
			if iu.Interval < MinImageUpdateInterval {
				return nil, fieldErr(sub, "at least %s", MinImageUpdateInterval)
			}
		default:
			return nil, unknownKey(sub, "policy", "min_age", "interval")
		}
	}
	return iu, nil
}

func parseRestart(v any, key string, p *rawPolicy) *fieldError {
	m, err := asMap(v, key)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val, sub := m[k], key+"."+k
		switch k {
		case "max_attempts":
			n, err := asInt(val, sub, 0, math.MaxInt32)
			if err != nil {
				return err
			}
			p.MaxAttempts = &n
		case "window", "reset_after", "delay", "max_delay":
			d, err := asDuration(val, sub)
			if err != nil {
				return err
			}
			switch k {
			case "window":
				p.Window = &d
			case "reset_after":
				p.ResetAfter = &d
			case "delay":
				p.Delay = &d
			case "max_delay":
				p.MaxDelay = &d
			}
		case "on_unhealthy":
			b, err := asBool(val, sub)
			if err != nil {
				return err
			}
			p.OnUnhealthy = &b
		default:
			return unknownKey(sub, "max_attempts", "window", "reset_after", "delay", "max_delay", "on_unhealthy")
		}
	}
	if p.Delay != nil && p.MaxDelay != nil && *p.MaxDelay < *p.Delay {
		return fieldErr(key+".max_delay", "must not be shorter than delay (%s < %s)", *p.MaxDelay, *p.Delay)
	}
	return nil
}

func parseReload(v any, key string) (*ReloadAction, *fieldError) {
	m, err := asMap(v, key)
	if err != nil {
		return nil, err
	}
	r := &ReloadAction{Timeout: DefaultReloadTimeout}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val, sub := m[k], key+"."+k
		switch k {
		case "check":
			if r.Check, err = asCommand(val, sub); err != nil {
				return nil, err
			}
		case "exec":
			if r.Exec, err = asCommand(val, sub); err != nil {
				return nil, err
			}
		case "signal":
			s, err := asString(val, sub)
			if err != nil {
				return nil, err
			}
			name, ok := normalizeSignal(s)
			if !ok {
				return nil, fieldErr(sub, "unknown signal %q (use a name such as SIGHUP or SIGUSR1)", s)
			}
			r.Signal = name
		case "restart":
			if r.Restart, err = asBool(val, sub); err != nil {
				return nil, err
			}
		case "timeout":
			d, err := asDuration(val, sub)
			if err != nil {
				return nil, err
			}
			if d <= 0 {
				return nil, fieldErr(sub, "must be positive")
			}
			r.Timeout = d
		default:
			return nil, unknownKey(sub, "check", "exec", "signal", "restart", "timeout")
		}
	}
	actions := 0
	for _, set := range []bool{len(r.Exec) > 0, r.Signal != "", r.Restart} {
		if set {
			actions++
		}
	}
	if actions > 1 {
		return nil, fieldErr(key, "give only one of exec, signal and restart")
	}
	if len(r.Check) > 0 && len(r.Exec) == 0 && r.Signal == "" {
		return nil, fieldErr(key+".check", "needs exec or signal: a restart does not keep the old config serving when the check fails")
	}
	if actions == 0 {
		r.Restart = true
	}
	return r, nil
}

var upstreamName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

func parseUpstreams(v any, key string) ([]Upstream, *fieldError) {
	list, ok := v.([]any)
	if !ok {
		return nil, fieldErr(key, "expected a list of upstreams, got %s", describe(v))
	}
	var ups []Upstream
	seen := map[string]bool{}
	for i, item := range list {
		ik := fmt.Sprintf("%s.%d", key, i)
		m, err := asMap(item, ik)
		if err != nil {
			return nil, err
		}
		u := Upstream{Format: "nginx"}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			val, sub := m[k], ik+"."+k
			switch k {
			case "name":
				if u.Name, err = asString(val, sub); err != nil {
					return nil, err
				}
				if !upstreamName.MatchString(u.Name) {
					return nil, fieldErr(sub, "%q is not a valid upstream name (letters, digits, _ . -)", u.Name)
				}
			case "service":
				if u.Service, err = asString(val, sub); err != nil {
					return nil, err
				}
			case "port":
				if u.Port, err = asInt(val, sub, 1, 65535); err != nil {
					return nil, err
				}
			case "file":
				if u.File, err = asString(val, sub); err != nil {
					return nil, err
				}
			case "format":
				if u.Format, err = asString(val, sub); err != nil {
					return nil, err
				}
				if u.Format != "nginx" {
					return nil, fieldErr(sub, "unsupported format %q (supported: nginx)", u.Format)
				}
			default:
				return nil, unknownKey(sub, "name", "service", "port", "file", "format")
			}
		}
		for _, req := range []struct {
			k   string
			set bool
		}{{"name", u.Name != ""}, {"service", u.Service != ""}, {"port", u.Port != 0}, {"file", u.File != ""}} {
			if !req.set {
				return nil, fieldErr(ik+"."+req.k, "is required")
			}
		}
		if seen[u.Name] {
			return nil, fieldErr(ik+".name", "upstream %q is defined twice", u.Name)
		}
		seen[u.Name] = true
		ups = append(ups, u)
	}
	return ups, nil
}

func unknownKey(key string, known ...string) *fieldError {
	return fieldErr(key, "unknown key (known: %s)", strings.Join(known, ", "))
}

func asMap(v any, key string) (map[string]any, *fieldError) {
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return map[string]any{}, nil
	}
	return nil, fieldErr(key, "expected a mapping, got %s", describe(v))
}

// asInt accepts integers and, because compose interpolation turns
// `${N:-3}` into a string, strings that hold one.
func asInt(v any, key string, lo, hi int) (int, *fieldError) {
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case uint64:
		if x > math.MaxInt32 {
			return 0, fieldErr(key, "%d is out of range (%d to %d)", x, lo, hi)
		}
		n = int(x)
	case float64:
		if x != math.Trunc(x) {
			return 0, fieldErr(key, "expected an integer, got %v", x)
		}
		n = int(x)
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fieldErr(key, "expected an integer, got %q", x)
		}
		n = i
	default:
		return 0, fieldErr(key, "expected an integer, got %s", describe(v))
	}
	if n < lo || n > hi {
		return 0, fieldErr(key, "%d is out of range (%d to %d)", n, lo, hi)
	}
	return n, nil
}

func asBool(v any, key string) (bool, *fieldError) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, nil
		}
		return false, fieldErr(key, "expected true or false, got %q", x)
	}
	return false, fieldErr(key, "expected true or false, got %s", describe(v))
}

func asDuration(v any, key string) (time.Duration, *fieldError) {
	s, ok := v.(string)
	if !ok {
		return 0, fieldErr(key, "expected a duration such as \"10s\" or \"1m30s\", got %s", describe(v))
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fieldErr(key, "expected a duration such as \"10s\" or \"1m30s\", got %q", s)
	}
	if d < 0 {
		return 0, fieldErr(key, "must not be negative, got %q", s)
	}
	return d, nil
}

func asString(v any, key string) (string, *fieldError) {
	s, ok := v.(string)
	if !ok || strings.TrimSpace(s) == "" {
		return "", fieldErr(key, "expected a non-empty string, got %s", describe(v))
	}
	return s, nil
}

// asCommand takes the exec form only: images such as a FROM scratch one have
// no shell to split a string command.
func asCommand(v any, key string) ([]string, *fieldError) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fieldErr(key, "expected a non-empty list of strings (exec form, e.g. [\"nginx\", \"-t\"]), got %s", describe(v))
	}
	out := make([]string, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fieldErr(fmt.Sprintf("%s.%d", key, i), "expected a string, got %s", describe(item))
		}
		out[i] = s
	}
	return out, nil
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("%q", x)
	case bool:
		return fmt.Sprintf("%t", x)
	case int, int64, uint64, float64:
		return fmt.Sprintf("%v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2, "SIGTERM": syscall.SIGTERM,
	"SIGWINCH": syscall.SIGWINCH, "SIGCONT": syscall.SIGCONT,
}

// normalizeSignal accepts "HUP", "sighup" or "SIGHUP" and returns "SIGHUP".
func normalizeSignal(s string) (string, bool) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	_, ok := signals[name]
	return name, ok
}

// SignalNumber returns the number of a signal name accepted in reload.signal.
func SignalNumber(name string) (syscall.Signal, bool) {
	n, ok := signals[name]
	return n, ok
}
