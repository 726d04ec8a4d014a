// Package hygiene holds checks on the repository itself: no built binaries
// and no large files in git.
package hygiene

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MaxTrackedSize is the largest file git may track.
const MaxTrackedSize = 1 << 20

// binaryMagic are the first bytes of executable formats.
var binaryMagic = [][]byte{
	[]byte("\x7fELF"),        // Linux
	{0xcf, 0xfa, 0xed, 0xfe}, // Mach-O 64
	{0xfe, 0xed, 0xfa, 0xcf}, // Mach-O 64, big-endian
	[]byte("MZ"),             // Windows PE
	[]byte("!<arch>\n"),      // static archives, Go build caches
	{0x00, 0x61, 0x73, 0x6d}, // WebAssembly
}

func TestNoBuiltBinariesOrLargeFilesAreTracked(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git rev-parse: %v (CI runs on a clone)", err)
		}
		t.Skip("not in a git checkout")
	}
	root := strings.TrimSpace(string(top))
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatal(err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 10 {
		t.Fatalf("git lists %d files: the check would check nothing", len(files))
	}
	for _, f := range files {
		path := filepath.Join(root, f)
		info, err := os.Lstat(path)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		if info.Size() > MaxTrackedSize {
			t.Errorf("%s is %d bytes: files over %d bytes do not belong in git", f, info.Size(), MaxTrackedSize)
		}
		head := make([]byte, 8)
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := fh.Read(head)
		fh.Close()
		for _, magic := range binaryMagic {
			if bytes.HasPrefix(head[:n], magic) {
				t.Errorf("%s is a built binary: build outputs are ignored, not committed", f)
			}
		}
	}
}
