package reconciler

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTheDocWalkNamesRealFiles: every file doc.go's walk names exists, so
// the walk cannot drift from the tree unnoticed. A name with a folder is the
// repository's (or this package's, for its own subfolders); one without is
// this package's, or, in the table of where things are, the restart
// policy's.
func TestTheDocWalkNamesRealFiles(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(doc), "/\n//     ", "/") // a path broken over two lines
	names := regexp.MustCompile(`[A-Za-z0-9_/]+\.go\b`).FindAllString(text, -1)
	if len(names) < 10 {
		t.Fatalf("the walk names %d files; it should walk the tree", len(names))
	}
	for _, name := range names {
		found := false
		for _, dir := range []string{".", "..", "../controllers/restarts"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				found = true
			}
		}
		if !found {
			t.Errorf("doc.go names %s, which does not exist", name)
		}
	}
}
