package desired

import (
	"errors"
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
	reInterpolate  = regexp.MustCompile(`error while interpolating ([^:]+): (.*)$`)
	reMissingFile  = regexp.MustCompile(`compose file "([^"]+)" is invalid: (.*)$`)
	reServicePath  = regexp.MustCompile(`^services\.([^.]+)\.?(.*)$`)
)

// classifyLoadError turns an error of the compose loader into an InputError
// that names the file, service and key. serviceEnvFiles maps services to the
// env files they declare, to tell which service a missing env file belongs to.
func classifyLoadError(err error, loc *locator, serviceEnvFiles map[string][]string) error {
	msg := err.Error()
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
	case reMissingFile.MatchString(msg):
		m := reMissingFile.FindStringSubmatch(msg)
		ie.File = m[1]
		ie.Err = errors.New("cannot read compose file: " + strings.TrimPrefix(m[2], "open "+m[1]+": "))
	case strings.Contains(msg, "no configuration file provided"):
		ie.File = ""
		ie.Err = errors.New("no compose file found: give one with -f, COMPOSE_FILE, or create compose.yaml")
	}
	return ie
}

// splitServicePath splits "services.api.healthcheck.test" into "api" and
// "healthcheck.test".
func splitServicePath(path string) (service, key string) {
	if m := reServicePath.FindStringSubmatch(path); m != nil {
		return m[1], m[2]
	}
	return "", path
}
