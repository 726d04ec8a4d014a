package safefile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// victim is a file outside the written directory that a planted link
// points at: it must never change.
func victim(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(p, []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplace(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir, target string) // plants what a container could
		wantErr bool
	}{
		{"a new file", func(*testing.T, string, string) {}, false},
		{"an existing file", func(t *testing.T, dir, _ string) {
			must(t, os.WriteFile(filepath.Join(dir, "up.conf"), []byte("old"), 0o666))
		}, false},
		{"a link planted at the name is replaced, not followed", func(t *testing.T, dir, target string) {
			must(t, os.Symlink(target, filepath.Join(dir, "up.conf")))
		}, false},
		{"a directory replaced by a link is refused", func(t *testing.T, dir, target string) {
			must(t, os.RemoveAll(dir))
			must(t, os.Symlink(filepath.Dir(target), dir))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "conf.d")
			must(t, os.Mkdir(dir, 0o755))
			target := victim(t)
			tt.prepare(t, dir, target)
			path := filepath.Join(dir, "up.conf")
			err := Replace(path, []byte("upstream {}\n"), 0o644)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Replace: %v, want error %v", err, tt.wantErr)
			}
			if b, _ := os.ReadFile(target); string(b) != "untouched" {
				t.Fatalf("the link's target was written: %q", b)
			}
			if tt.wantErr {
				return
			}
			info, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Mode().IsRegular() || info.Mode().Perm() != 0o644 {
				t.Errorf("the file is %s, want a regular file of mode 0644", info.Mode())
			}
			if b, _ := os.ReadFile(path); string(b) != "upstream {}\n" {
				t.Errorf("content %q", b)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".up.conf.*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestOverwrite(t *testing.T) {
	dir := t.TempDir()
	target := victim(t)
	file := filepath.Join(dir, "bound.conf")
	must(t, os.WriteFile(file, []byte("a much longer old content"), 0o644))
	before, _ := os.Stat(file)
	if err := Overwrite(file, []byte("new")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(file)
	if b, _ := os.ReadFile(file); string(b) != "new" || !os.SameFile(before, after) {
		t.Errorf("content %q, same inode %v: want the file written in place", b, os.SameFile(before, after))
	}

	link := filepath.Join(dir, "link.conf")
	must(t, os.Symlink(target, link))
	if err := Overwrite(link, []byte("x")); err == nil {
		t.Error("a link was written through")
	}
	fifo := filepath.Join(dir, "fifo.conf")
	must(t, syscall.Mkfifo(fifo, 0o600))
	if err := Overwrite(fifo, []byte("x")); err == nil {
		t.Error("a FIFO was written")
	}
	if b, _ := os.ReadFile(target); string(b) != "untouched" {
		t.Fatalf("the link's target was written: %q", b)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
