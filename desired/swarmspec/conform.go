package swarmspec

import (
	"reflect"
	"strconv"
	"strings"

	composetypes "github.com/docker/cli/cli/compose/types"
)

var (
	serviceType  = reflect.TypeFor[composetypes.ServiceConfig]()
	sectionTypes = map[string]reflect.Type{
		"networks": reflect.TypeFor[composetypes.NetworkConfig](),
		"volumes":  reflect.TypeFor[composetypes.VolumeConfig](),
		"secrets":  reflect.TypeFor[composetypes.SecretConfig](),
		"configs":  reflect.TypeFor[composetypes.ConfigObjConfig](),
	}
)

// conform shapes v, a part of the Compose SDK's model as YAML decodes it,
// for docker/cli's type t: keys t has no field for are dropped (and
// returned, as paths under at), and a number the SDK writes as a string
// (a published port) becomes a number. Everything else is left to
// docker/cli's own transforms, which accept every form the compose
// specification does.
func conform(v any, t reflect.Type, at []string) (any, [][]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var dropped [][]string
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		fields := fieldsOf(t)
		for key, val := range m {
			f, ok := fields[key]
			if !ok {
				if strings.HasPrefix(key, "x-") {
					continue
				}
				delete(m, key)
				dropped = append(dropped, appendPath(at, key))
				continue
			}
			conformed, d := conform(val, f, appendPath(at, key))
			m[key] = conformed
			dropped = append(dropped, d...)
			if emptyOptions(val, f) {
				// the SDK writes bind: {} and volume: {} (or a bind's
				// create_host_path, dropped) for a short form: options
				// stack deploy leaves unset
				delete(m, key)
			}
		}
		return m, dropped
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return v, nil
		}
		for i, val := range list {
			conformed, d := conform(val, t.Elem(), appendPath(at, strconv.Itoa(i)))
			list[i] = conformed
			dropped = append(dropped, d...)
		}
		return list, dropped
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		for key, val := range m {
			conformed, d := conform(val, t.Elem(), appendPath(at, key))
			m[key] = conformed
			dropped = append(dropped, d...)
		}
		return m, dropped
	case reflect.String:
		// cpus: the SDK holds a number, docker/cli a string
		switch n := v.(type) {
		case float64:
			return strconv.FormatFloat(n, 'f', -1, 64), nil
		case int:
			return strconv.Itoa(n), nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// an int, as YAML decodes a number: docker/cli's transforms (a
		// size's) take that and nothing wider
		// (base 0: a file mode the SDK writes as "0440" is octal, as YAML
		// reads 0440)
		if s, ok := v.(string); ok {
			if n, err := strconv.ParseInt(s, 0, 64); err == nil {
				return int(n), nil
			}
		}
	}
	return v, nil
}

// emptyOptions reports whether v is an empty mapping for a pointer to a
// struct: options that are all unset.
func emptyOptions(v any, t reflect.Type) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0 && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct
}

// fieldsOf maps each key docker/cli decodes into t to its field's type:
// the mapstructure tag where there is one (that is what its decoder reads),
// else the json name.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := tagName(f.Tag.Get("mapstructure"))
		if name == "" {
			name = tagName(f.Tag.Get("json"))
		}
		if name == "" || name == "-" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func tagName(tag string) string {
	name, _, _ := strings.Cut(tag, ",")
	return name
}

func appendPath(at []string, key string) []string {
	out := make([]string, len(at), len(at)+1)
	copy(out, at)
	return append(out, key)
}
