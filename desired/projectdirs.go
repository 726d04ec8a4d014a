package desired

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ComposeFileNames are the files compose looks for in a project directory,
// in its order of preference.
var ComposeFileNames = []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}

// ProjectDirs lists the project directories under root, as an agent given
// --projects sees them: each direct subdirectory holding a compose file
// (a regular file: a FIFO would hang the load) is one project, loaded as
// compose would from that directory. Hidden directories are skipped.
func ProjectDirs(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("reading the projects directory: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if slices.ContainsFunc(ComposeFileNames, func(name string) bool {
			info, err := os.Stat(filepath.Join(dir, name))
			return err == nil && info.Mode().IsRegular()
		}) {
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}
