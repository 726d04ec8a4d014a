package desired

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// locator finds where a key was written, so that an error about a merged
// project can name the file and line the user has to edit. It reads the raw
// YAML trees only to point at positions; the project itself always comes
// from the Compose SDK's loader.
type locator struct {
	files []string
	trees map[string]*yaml.Node
	// from says where each included or extended file was named.
	from map[string]origin
}

func newLocator(files []string) *locator {
	return &locator{files: files, trees: map[string]*yaml.Node{}}
}

func (l *locator) tree(file string) *yaml.Node {
	if n, ok := l.trees[file]; ok {
		return n
	}
	var root *yaml.Node
	if data, err := os.ReadFile(file); err == nil {
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 {
			root = doc.Content[0]
		}
	}
	l.trees[file] = root
	return root
}

// find returns the last file (compose merges later files over earlier ones)
// that spells out path, and the line of the deepest element of path found
// there. When no file holds the whole path, the file holding its longest
// prefix is returned, so an error still points close to its cause.
func (l *locator) find(path ...string) (file string, line int) {
	bestDepth := -1
	for i := len(l.files) - 1; i >= 0; i-- {
		f := l.files[i]
		depth, ln := descend(l.tree(f), path)
		if depth == len(path) {
			return f, ln
		}
		if depth > bestDepth {
			bestDepth, file, line = depth, f, ln
		}
	}
	if bestDepth <= 0 && len(l.files) > 0 {
		return l.files[0], 0
	}
	return file, line
}

// scalar returns the raw text of the scalar at path, as written in the last
// file that spells it out (before interpolation).
func (l *locator) scalar(path ...string) (string, bool) {
	for i := len(l.files) - 1; i >= 0; i-- {
		node := l.tree(l.files[i])
		for _, key := range path {
			if node == nil {
				break
			}
			next := child(node, key)
			if next == nil {
				node = nil
				break
			}
			node = next.value
		}
		if node != nil && node.Kind == yaml.ScalarNode {
			return node.Value, true
		}
	}
	return "", false
}

// findScalar returns the first file and line holding a scalar whose value
// is exactly value: for errors that quote a value but not its key.
func (l *locator) findScalar(value string) (file string, line int) {
	var walk func(n *yaml.Node) int
	walk = func(n *yaml.Node) int {
		if n == nil {
			return 0
		}
		if n.Kind == yaml.ScalarNode && n.Value == value {
			return n.Line
		}
		for _, c := range n.Content {
			if ln := walk(c); ln > 0 {
				return ln
			}
		}
		return 0
	}
	for _, f := range l.files {
		if ln := walk(l.tree(f)); ln > 0 {
			return f, ln
		}
	}
	return "", 0
}

// chain is where file was named, and where that file was, up to a file
// given on the command line: ["sub/a.yaml:3 (include)", "compose.yaml:1
// (include)"].
func (l *locator) chain(file string) (first origin, steps []string) {
	var parts []string
	seen := map[string]bool{}
	for o, ok := l.from[file]; ok && !seen[file] && len(parts) < maxIncludeDepth; o, ok = l.from[file] {
		if len(parts) == 0 {
			first = o
		}
		parts = append(parts, fmt.Sprintf("%s:%d (%s)", DisplayPath(o.file), o.line, o.key))
		seen[file] = true
		file = o.file
	}
	return first, parts
}

// findPort returns where a service's ports entry names value: a part of a
// short "host:container/proto" spelling, or a long form's published or
// target; failing that, the first ports entry that interpolates a variable
// (the value came from it).
func (l *locator) findPort(value string) (file string, line int, service string) {
	var fallback struct {
		file, service string
		line          int
	}
	for _, f := range l.files {
		services := mappingValue(l.tree(f), "services")
		if services == nil || services.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(services.Content); i += 2 {
			name := services.Content[i].Value
			ports := mappingValue(services.Content[i+1], "ports")
			if ports == nil || ports.Kind != yaml.SequenceNode {
				continue
			}
			for _, p := range ports.Content {
				var parts []*yaml.Node
				switch p.Kind {
				case yaml.ScalarNode:
					parts = []*yaml.Node{p}
				case yaml.MappingNode:
					parts = []*yaml.Node{mappingValue(p, "published"), mappingValue(p, "target")}
				}
				for _, n := range parts {
					if n == nil || n.Kind != yaml.ScalarNode {
						continue
					}
					fields := strings.FieldsFunc(n.Value, func(r rune) bool { return r == ':' || r == '/' || r == '-' })
					if slices.Contains(fields, value) {
						return f, n.Line, name
					}
					if strings.Contains(n.Value, "$") && fallback.line == 0 {
						fallback.file, fallback.line, fallback.service = f, n.Line, name
					}
				}
			}
		}
	}
	return fallback.file, fallback.line, fallback.service
}

// descend walks path from node and reports how many elements matched and
// the line of the last one matched.
func descend(node *yaml.Node, path []string) (depth, line int) {
	for _, key := range path {
		if node == nil {
			return depth, line
		}
		next := child(node, key)
		if next == nil {
			return depth, line
		}
		depth++
		line = next.line
		node = next.value
	}
	return depth, line
}

type located struct {
	value *yaml.Node
	line  int
}

func child(node *yaml.Node, key string) *located {
	for node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	switch node.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				return &located{value: node.Content[i+1], line: node.Content[i].Line}
			}
		}
	case yaml.SequenceNode:
		idx, err := strconv.Atoi(key)
		if err == nil && idx >= 0 && idx < len(node.Content) {
			return &located{value: node.Content[idx], line: node.Content[idx].Line}
		}
	}
	return nil
}

// parseError reports the first file that is not valid YAML, with the error,
// so a syntax error is attributed to the file that holds it.
func (l *locator) parseError() (string, error) {
	for _, f := range l.files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return f, err
		}
	}
	return "", nil
}

// Spot is where a key is written.
type Spot struct {
	File string
	Line int
	// Scalar is true when the value is written as one scalar: a short form
	// ("127.0.0.1:8080:80") that implies the keys under it.
	Scalar bool
}

// Written reports whether a compose file spells out path (services, web,
// ports, 0, host_ip), and where: a key the Compose SDK filled in itself (a
// network's default name, a bind's create_host_path) is in no file.
func (s *State) Written(path ...string) (Spot, bool) {
	if s.loc == nil {
		return Spot{}, false
	}
	for i := len(s.loc.files) - 1; i >= 0; i-- {
		f := s.loc.files[i]
		node := s.loc.tree(f)
		var at *located
		for _, key := range path {
			if node == nil {
				break
			}
			if at = child(node, key); at == nil {
				break
			}
			node = at.value
		}
		if at != nil && node == at.value {
			for node.Kind == yaml.AliasNode && node.Alias != nil {
				node = node.Alias
			}
			return Spot{File: f, Line: at.line, Scalar: node.Kind == yaml.ScalarNode}, true
		}
	}
	return Spot{}, false
}
