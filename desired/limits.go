package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"

	"github.com/reconcile-dev/reconcile/internal/secrets"
)

// Limits on one load. compose's loader decodes every file into maps with
// aliases expanded and then copies the model several times over, so its cost
// grows with the expanded document, not with the bytes on disk: a 1 KB
// "billion laughs" took 1.6 GB and ten seconds, and 10,000 services 450 MB.
// The files are checked against these limits before compose reads them.
// Real projects are far below each: the largest compose files we know of
// hold a few hundred services in a few hundred kilobytes.
const (
	// MaxFileBytes bounds each compose file, included file and env file.
	MaxFileBytes = 1 << 20
	// MaxYAMLNodes bounds the YAML nodes of all compose files together, with
	// every alias and merge key expanded as the loader will expand it.
	MaxYAMLNodes = 50_000
	// MaxServices bounds the services of one project, includes counted.
	MaxServices = 1000
	// MaxNetworks and MaxVolumes bound the top-level networks and volumes
	// of one project, includes counted (the engine's default address pools
	// hold 31 bridge networks).
	MaxNetworks = 1000
	MaxVolumes  = 1000
	// MaxYAMLDepth bounds how deeply a compose file's collections nest
	// (aliases not followed): compose's loader walks a tree 10,000 deep
	// with hundreds of MiB. A real file nests under 15 levels.
	MaxYAMLDepth = 64
	// maxRawTokens bounds the structural characters of one file (flow
	// brackets, commas, lines) before it is parsed: a file of a megabyte of
	// `[],` decodes into 350,000 nodes and 72 MiB before the node limit
	// could see it. Four times MaxYAMLNodes leaves any real file alone.
	maxRawTokens = 4 * MaxYAMLNodes
	// MaxReplicas bounds one service's replicas (deploy.replicas, scale,
	// --scale), and MaxReplicasInAll the project's: every replica is a
	// container, planned and listed.
	MaxReplicas      = 1000
	MaxReplicasInAll = 5000
	// maxIncludeDepth bounds include and extends chains (compose refuses
	// cycles itself, but only after reading every file of the chain).
	maxIncludeDepth = 32
)

// prescan checks the compose files, and the files they include or extend,
// against the limits before the SDK's loader reads any of them. It reads
// the YAML as a tree of nodes, which keeps an alias as one node however
// much it expands to, so a bomb costs no more here than its size on disk.
//
// It also returns the variables the files interpolate, true for those
// referred to anywhere but an image: their values are never printed.
//
// And it returns, for each file included or extended, where it was named:
// a missing one is reported there.
func prescan(files []string) (map[string]bool, map[string]origin, error) {
	s := &scanner{seen: map[string]bool{}, services: map[string]bool{}, networks: map[string]bool{}, volumes: map[string]bool{}, refs: map[string]bool{}, from: map[string]origin{}}
	for _, f := range files {
		if err := s.file(f, 0); err != nil {
			return s.refs, s.from, err
		}
	}
	return s.refs, s.from, nil
}

// origin is where a file was named by another: the file, line and key.
type origin struct {
	file string
	line int
	key  string
}

type scanner struct {
	seen     map[string]bool
	nodes    int
	services map[string]bool
	networks map[string]bool
	volumes  map[string]bool
	refs     map[string]bool
	from     map[string]origin
}

// references notes the variables the scalars below n refer to. An image's
// tag is printed in diffs and records and is rarely a secret, so a variable
// referred to only there is noted false; one used anywhere else, true. The
// tree is walked as written (an alias once, where it is defined), so the
// cost is the file's size.
func (s *scanner) references(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		for _, name := range secrets.Referenced(n.Value) {
			s.refs[name] = s.refs[name] || key != "image"
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			s.references(n.Content[i+1], n.Content[i].Value)
		}
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			s.references(c, key)
		}
	}
}

func (s *scanner) file(path string, depth int) error {
	if s.seen[path] {
		return nil
	}
	s.seen[path] = true
	if depth > maxIncludeDepth {
		return &InputError{File: path, Key: "include", Err: fmt.Errorf("include or extends chain deeper than %d files", maxIncludeDepth)}
	}
	data, err := readLimited(path)
	if err != nil || data == nil {
		return err
	}
	if line, col, why := unreadable(data); why != "" {
		return &InputError{File: path, Line: line, Err: fmt.Errorf("column %d: %s", col, why)}
	}
	if line, over := rawTokens(data); over {
		return &InputError{File: path, Line: line, Err: fmt.Errorf(
			"more than %d brackets, commas and lines: not a compose file a loader should parse", maxRawTokens)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if m := reMaxDepth.FindStringSubmatch(err.Error()); m != nil {
				line, _ := strconv.Atoi(m[1])
				return &InputError{File: path, Line: line, Err: fmt.Errorf("collections nested more than %d deep", MaxYAMLDepth)}
			}
			// syntax errors are compose's to report, with their line; what
			// the file refers to is taken from its text
			for _, name := range secrets.Referenced(string(data)) {
				s.refs[name] = true
			}
			return nil
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Tag == "!reset" || root.Tag == "!override" {
			// compose's loader dereferences a nil node on it
			return &InputError{File: path, Line: root.Line, Err: fmt.Errorf("%s applies to a key's value, not to a whole document", root.Tag)}
		}
		if line, over := s.count(root); over {
			return &InputError{File: path, Line: line, Err: fmt.Errorf(
				"the YAML expands to more than %d nodes once its aliases and merge keys are resolved (the limit of one project)", MaxYAMLNodes)}
		}
		if line, over := nestedBeyond(root, 0); over {
			return &InputError{File: path, Line: line, Err: fmt.Errorf("collections nested more than %d deep", MaxYAMLDepth)}
		}
		s.references(root, "")
		if err := s.countServices(path, root); err != nil {
			return err
		}
		if err := s.follow(path, root, depth); err != nil {
			return err
		}
	}
}

// boundedFile refuses what is not a regular file, and a file larger than
// MaxFileBytes, without reading it. A missing file passes: compose reports
// it in its own words.
func boundedFile(path string) error {
	if err := regularFile(path); err != nil {
		return &InputError{File: path, Err: err}
	}
	if info, err := os.Stat(path); err == nil && info.Size() > MaxFileBytes {
		return &InputError{File: path, Err: fmt.Errorf("file of %d bytes, more than the limit of %d", info.Size(), MaxFileBytes)}
	}
	return nil
}

// readLimited reads a bounded file (nil when it is missing).
func readLimited(path string) ([]byte, error) {
	if err := boundedFile(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, &InputError{File: path, Err: fmt.Errorf("reading: %w", err)}
	}
	if len(data) > MaxFileBytes {
		return nil, &InputError{File: path, Err: fmt.Errorf("file larger than the limit of %d bytes", MaxFileBytes)}
	}
	return data, nil
}

// count adds root's expanded size to the project's total and reports the
// line where the total first passed MaxYAMLNodes. Sizes are memoised per
// node, so counting is linear in the tree however deep aliases nest.
func (s *scanner) count(root *yaml.Node) (line int, over bool) {
	memo := map[*yaml.Node]int{}
	var size func(n *yaml.Node) int
	size = func(n *yaml.Node) int {
		if v, ok := memo[n]; ok {
			return v
		}
		memo[n] = MaxYAMLNodes + 1 // a node that contains itself expands for ever
		total := 1
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			total = size(n.Alias)
		}
		for _, c := range n.Content {
			total += size(c)
			if total > MaxYAMLNodes {
				if line == 0 {
					line = c.Line
				}
				total = MaxYAMLNodes + 1
				break
			}
		}
		memo[n] = total
		return total
	}
	s.nodes += size(root)
	return line, s.nodes > MaxYAMLNodes
}

func (s *scanner) countServices(path string, root *yaml.Node) error {
	for _, c := range []struct {
		key   string
		seen  map[string]bool
		limit int
	}{{"services", s.services, MaxServices}, {"networks", s.networks, MaxNetworks}, {"volumes", s.volumes, MaxVolumes}} {
		m := mappingValue(root, c.key)
		if m == nil || m.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			c.seen[m.Content[i].Value] = true
			if len(c.seen) > c.limit {
				return &InputError{File: path, Line: m.Content[i].Line, Key: c.key,
					Err: fmt.Errorf("more than %d %s (the limit of one project)", c.limit, c.key)}
			}
		}
	}
	return nil
}

// reMaxDepth is the YAML parser's refusal of a nesting deeper than its own
// limit, with where it stopped.
var reMaxDepth = regexp.MustCompile(`at L(\d+)\S*: exceeded max depth`)

// nestedBeyond reports the line of the first node nested deeper than MaxYAMLDepth
// below n (at level d); aliases are not followed (the node limit counts
// what they expand to).
func nestedBeyond(n *yaml.Node, d int) (line int, over bool) {
	if d > MaxYAMLDepth {
		return n.Line, true
	}
	for _, c := range n.Content {
		if line, over := nestedBeyond(c, d+1); over {
			return line, true
		}
	}
	return 0, false
}

// unreadable finds what YAML's reader refuses, with its place: a byte that
// is not UTF-8, or a control character (YAML allows tab, LF, CR, DEL and
// C1 controls, and the Unicode ranges below). The parser reports these "at
// <unknown position>". A file in UTF-16, with its byte-order mark, is left
// to the parser.
func unreadable(data []byte) (line, col int, why string) {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return 0, 0, ""
	}
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, col, fmt.Sprintf("byte 0x%02X is not UTF-8", data[i])
		case r == '\t' || r == '\n' || r == '\r',
			r >= 0x20 && r <= 0x9F,
			r >= 0xA0 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD,
			r >= 0x10000 && r <= 0x10FFFF:
		default:
			return line, col, fmt.Sprintf("control character %U is not allowed in YAML", r)
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return 0, 0, ""
}

// rawTokens counts the characters that make YAML nodes (flow brackets and
// commas, and lines) and reports the line where there were more than
// maxRawTokens, before anything is parsed.
func rawTokens(data []byte) (line int, over bool) {
	n, line := 0, 1
	for _, b := range data {
		switch b {
		case '\n':
			line++
			n++
		case '[', '{', ',':
			n++
		default:
			continue
		}
		if n > maxRawTokens {
			return line, true
		}
	}
	return 0, false
}

// follow scans the files that root includes (include: paths and their env
// files) and extends, relative to the file that names them, as compose
// resolves them.
func (s *scanner) follow(path string, root *yaml.Node, depth int) error {
	dir := filepath.Dir(path)
	var next []string
	name := func(n *yaml.Node, key string) {
		if n == nil || n.Kind != yaml.ScalarNode {
			return
		}
		next = append(next, n.Value)
		if r := resolve(dir, n.Value); s.from[r].file == "" {
			s.from[r] = origin{file: path, line: n.Line, key: key}
		}
	}
	if inc := mappingValue(root, "include"); inc != nil && inc.Kind == yaml.SequenceNode {
		for _, item := range inc.Content {
			switch item.Kind {
			case yaml.ScalarNode:
				name(item, "include")
			case yaml.MappingNode:
				if p := mappingValue(item, "path"); p != nil && p.Kind == yaml.SequenceNode {
					for _, c := range p.Content {
						name(c, "include.path")
					}
				} else {
					name(p, "include.path")
				}
				for _, env := range scalars(mappingValue(item, "env_file")) {
					if err := boundedFile(resolve(dir, env)); err != nil {
						return err
					}
				}
			}
		}
	}
	if services := mappingValue(root, "services"); services != nil && services.Kind == yaml.MappingNode {
		for i := 1; i < len(services.Content); i += 2 {
			if ext := mappingValue(services.Content[i], "extends"); ext != nil {
				name(mappingValue(ext, "file"), "services."+services.Content[i-1].Value+".extends.file")
			}
		}
	}
	for _, f := range next {
		if err := s.file(resolve(dir, f), depth+1); err != nil {
			return err
		}
	}
	return nil
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// mappingValue returns the value of key in a mapping node, through aliases.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	if c := child(n, key); c != nil {
		v := c.value
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		return v
	}
	return nil
}

// scalars reads a scalar or a sequence of scalars.
func scalars(n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	var out []string
	for _, c := range n.Content {
		if c.Kind == yaml.ScalarNode {
			out = append(out, c.Value)
		}
	}
	return out
}
