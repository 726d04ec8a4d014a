package desired

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Patterns of the compose loader's errors. The loader reports a problem in the
// merged model; these recover which service and key it concerns, so that the
// locator can name the file and line to edit.
var (
	reUndefinedDep = regexp.MustCompile(`service "([^"]+)" depends on undefined service "([^"]+)"`)
	reCycle        = regexp.MustCompile(`dependency cycle detected: ([^ ]+) -> (.*)$`)
	reValidating   = regexp.MustCompile(`validating (.+?): ([^ ]+) (.*)$`)
	reNoImage      = regexp.MustCompile(`service "([^"]+)" has neither an image nor a build context specified`)
	reYAML         = regexp.MustCompile(`go-yaml load error .*? at L(\d+)\S*: (.*)$`)
	reEnvFile      = regexp.MustCompile(`env file (.+?) not found`)
	// an env file's parser quotes the line it could not read: a file that
	// is not an env file (a key, a certificate) would be printed in part
	reEnvLineName  = regexp.MustCompile(`(unexpected character "(?:[^"\\]|\\.)*" in variable name) "(?:[^"\\]|\\.)*"`)
	reEnvLineQuote = regexp.MustCompile(`(unterminated quoted value) [^\n]*`)
	reInterpolate  = regexp.MustCompile(`error while interpolating ([^:]+): (.*)$`)
	reMissingFile  = regexp.MustCompile(`compose file "([^"]+)" is invalid: (.*)$`)
	reServicePath  = regexp.MustCompile(`^services\.([^.]+)\.?(.*)$`)

	// Fallbacks, tried when the patterns above found no line: a dotted path
	// in the message (compose spells them in several ways), a YAML line
	// number, a reference to an undefined resource, a volume spec.
	reDottedPath   = regexp.MustCompile(`(?:^|[\s'"])((?:services|networks|volumes|configs|secrets|x-[\w-]+|name|include|models)(?:\[[^\]]*\]|\.[^\s'";:]*)*)`)
	reYAMLKeyLine  = regexp.MustCompile(`line (\d+): mapping key`)
	reOpenMissing  = regexp.MustCompile(`open (/\S+): no such file or directory`)
	reCircular     = regexp.MustCompile(`Circular reference:[\s;]*(\S+) in ([^\s;]+)((?:[\s;]*extends \S+ in [^\s;]+)+)`)
	reCircularStep = regexp.MustCompile(`extends (\S+) in ([^\s;]+)`)
	reBadPort      = regexp.MustCompile(`invalid (?:hostPort|containerPort|port|proto)s?:? (\S+)`)
	reYAMLLine     = regexp.MustCompile(`line (\d+)`)
	reUndefinedRef = regexp.MustCompile(`service "([^"]+)" refers to undefined (network|volume|config|secret) "?([^":]+)"?`)
	reVolumeSpec   = regexp.MustCompile(`invalid spec: (.+): [^:]+$`)
	reExtraProps   = regexp.MustCompile(`validating (.+?): (\S*) ?additional properties? '([^']+)'`)
)

// classifyLoadError turns an error of the compose loader into an InputError
// that names the file, service and key. serviceEnvFiles maps services to the
// env files they declare, to tell which service a missing env file belongs to.
// withoutFileContent cuts what a parser quoted of a file's content from its
// message, keeping the line number it gives.
func withoutFileContent(msg string) string {
	msg = reEnvLineName.ReplaceAllString(msg, "$1")
	return reEnvLineQuote.ReplaceAllString(msg, "$1")
}

func classifyLoadError(err error, loc *locator, serviceEnvFiles map[string][]string) error {
	msg := withoutFileContent(err.Error())
	ie := &InputError{Err: errors.New(msg)}
	if len(loc.files) > 0 {
		ie.File = loc.files[0]
	}
	at := func(service string, path ...string) {
		full := path
		if service != "" {
			full = append([]string{"services", service}, path...)
		}
		ie.File, ie.Line = loc.find(full...)
	}
	switch {
	case reUndefinedDep.MatchString(msg):
		m := reUndefinedDep.FindStringSubmatch(msg)
		ie.Service, ie.Key = m[1], "depends_on"
		ie.Err = errors.New("depends on undefined service " + strconv.Quote(m[2]))
		at(m[1], "depends_on")
	case reCycle.MatchString(msg):
		m := reCycle.FindStringSubmatch(msg)
		ie.Service, ie.Key = m[1], "depends_on"
		ie.Err = errors.New("dependency cycle: " + m[1] + " -> " + m[2])
		at(m[1], "depends_on")
	case reNoImage.MatchString(msg):
		m := reNoImage.FindStringSubmatch(msg)
		ie.Service, ie.Key = m[1], "image"
		ie.Err = errors.New("neither an image nor a build context is given")
		at(m[1])
	case reYAML.MatchString(msg):
		m := reYAML.FindStringSubmatch(msg)
		if f, _ := loc.parseError(); f != "" {
			ie.File = f
		}
		ie.Line, _ = strconv.Atoi(m[1])
		ie.Err = errors.New("invalid YAML: " + m[2])
	case reEnvFile.MatchString(msg):
		m := reEnvFile.FindStringSubmatch(msg)
		ie.Err = errors.New("env file " + m[1] + " not found")
		ie.Key = "env_file"
		for _, svc := range slices.Sorted(maps.Keys(serviceEnvFiles)) {
			for _, f := range serviceEnvFiles[svc] {
				if f == m[1] {
					ie.Service = svc
				}
			}
		}
		if ie.Service != "" {
			at(ie.Service, "env_file")
		}
	case reInterpolate.MatchString(msg):
		m := reInterpolate.FindStringSubmatch(msg)
		ie.Err = errors.New(m[2])
		ie.Service, ie.Key = splitServicePath(m[1])
		at(ie.Service, strings.Split(ie.Key, ".")...)
		if ie.Service == "" {
			ie.Key = m[1]
		}
	case reValidating.MatchString(msg):
		m := reValidating.FindStringSubmatch(msg)
		reason := m[3]
		if reason == "false schema" {
			reason = "unknown key"
		}
		ie.Err = errors.New(reason)
		ie.Service, ie.Key = splitServicePath(m[2])
		if ie.Service == "" {
			ie.Key = m[2]
			ie.File, ie.Line = loc.find(strings.Split(m[2], ".")...)
		} else {
			at(ie.Service, strings.Split(ie.Key, ".")...)
		}
		if ie.File == "" {
			ie.File = m[1]
		}
	case reCircular.MatchString(msg):
		m := reCircular.FindStringSubmatch(msg)
		steps := []string{m[1]}
		for _, st := range reCircularStep.FindAllStringSubmatch(m[3], -1) {
			steps = append(steps, st[1])
		}
		ie.Service, ie.Key = m[1], "extends"
		ie.Err = errors.New("extends cycle: " + strings.Join(steps, " -> "))
		// compose names the file of the step after; the extends key is in
		// one of the cycle's files
		files := []string{m[2]}
		for _, st := range reCircularStep.FindAllStringSubmatch(m[3], -1) {
			files = append(files, st[2])
		}
		slices.Reverse(files) // find prefers the last
		ie.File, ie.Line = newLocator(append(files, loc.files...)).find("services", m[1], "extends")
	case reOpenMissing.MatchString(msg) && loc.from[reOpenMissing.FindStringSubmatch(msg)[1]].file != "":
		missing := reOpenMissing.FindStringSubmatch(msg)[1]
		o, chain := loc.chain(missing)
		ie.File, ie.Line, ie.Key = o.file, o.line, o.key
		if svc, key, ok := strings.Cut(strings.TrimPrefix(o.key, "services."), "."); ok && strings.HasPrefix(o.key, "services.") {
			ie.Service, ie.Key = svc, key
		}
		ie.Err = fmt.Errorf("%s not found", DisplayPath(missing))
		if len(chain) > 1 {
			ie.Err = fmt.Errorf("%s not found (%s is named at %s)", DisplayPath(missing), DisplayPath(o.file), strings.Join(chain[1:], ", from "))
		}
	case reMissingFile.MatchString(msg):
		m := reMissingFile.FindStringSubmatch(msg)
		ie.File = m[1]
		ie.Err = errors.New("cannot read compose file: " + strings.TrimPrefix(m[2], "open "+m[1]+": "))
	case strings.Contains(msg, "no configuration file provided"):
		ie.File = ""
		ie.Err = errors.New("no compose file found: give one with -f, COMPOSE_FILE, or create compose.yaml")
		return ie
	}
	if ie.Line == 0 {
		locateFallback(ie, msg, loc)
	}
	return ie
}

// locateFallback finds a line for an error the patterns above did not
// place, from whatever the message says about where the problem is.
func locateFallback(ie *InputError, msg string, loc *locator) {
	point := func(path []string) bool {
		file, line := loc.find(path...)
		if line == 0 {
			return false
		}
		ie.File, ie.Line = file, line
		if len(path) > 1 && path[0] == "services" && ie.Service == "" {
			ie.Service = path[1]
			if ie.Key == "" && len(path) > 2 {
				ie.Key = strings.Join(path[2:], ".")
			}
		}
		return true
	}
	if m := reExtraProps.FindStringSubmatch(msg); m != nil {
		path := splitPath(m[2])
		if point(append(path, strings.Split(m[3], "', '")[0])) || point(path) {
			return
		}
	}
	if m := reUndefinedRef.FindStringSubmatch(msg); m != nil {
		if point([]string{"services", m[1], m[2] + "s", m[3]}) || point([]string{"services", m[1], m[2] + "s"}) {
			return
		}
	}
	if m := reBadPort.FindStringSubmatch(msg); m != nil {
		if file, line, svc := loc.findPort(m[1]); line > 0 {
			ie.File, ie.Line, ie.Service, ie.Key = file, line, svc, "ports"
			return
		}
	}
	if m := reVolumeSpec.FindStringSubmatch(msg); m != nil {
		for _, spec := range append([]string{m[1]}, strings.Split(m[1], " - ")...) {
			if file, line := loc.findScalar(spec); line > 0 {
				ie.File, ie.Line = file, line
				return
			}
		}
	}
	for _, m := range reDottedPath.FindAllStringSubmatch(msg, -1) {
		if point(splitPath(m[1])) {
			return
		}
	}
	m := reYAMLKeyLine.FindStringSubmatch(msg)
	if m == nil {
		m = reYAMLLine.FindStringSubmatch(msg)
	}
	if m != nil {
		ie.Line, _ = strconv.Atoi(m[1])
		if f, _ := loc.parseError(); f != "" {
			ie.File = f
		}
	}
}

// splitPath turns compose's spellings of a path ("services[api].volumes.[0]",
// "services.lb.volumes.[]./src.") into keys, stopping where an element is
// not named ("[]").
func splitPath(p string) []string {
	p = strings.NewReplacer("[", ".", "]", "").Replace(p)
	var out []string
	for _, k := range strings.Split(p, ".") {
		if k == "" {
			if len(out) > 0 && strings.Contains(p, "..") {
				break // "[]" became "..": the element is unnamed
			}
			continue
		}
		out = append(out, k)
	}
	return out
}

// splitServicePath splits "services.api.healthcheck.test" into "api" and
// "healthcheck.test".
func splitServicePath(path string) (service, key string) {
	if m := reServicePath.FindStringSubmatch(path); m != nil {
		return m[1], m[2]
	}
	return "", path
}
