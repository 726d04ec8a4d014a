package gitsource

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/reconcile-dev/reconcile/internal/safefile"
)

// go-git's own checkout is not used for the live checkout: its hard reset
// removes untracked files (a service's data beside its compose file), it
// replaces a changed file by a new one (a bind mount of it keeps showing
// the old), and its status walks every untracked directory. The commit's
// files are written here instead, and only they are compared.

// stat is what a live file looked like when last found as its commit has
// it: while its stat is the same, it is not read again.
type stat struct {
	size  int64
	mtime time.Time
	ino   uint64
	mode  fs.FileMode
	hash  plumbing.Hash
}

// stats are the live files' stats by their path in the repository.
type stats map[string]stat

func statOf(fi fs.FileInfo, h plumbing.Hash) stat {
	st := stat{size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode(), hash: h}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

func perm(m filemode.FileMode) fs.FileMode {
	if m == filemode.Executable {
		return 0o755
	}
	return 0o644
}

// same says whether the file at p is f as its commit has it; seen (may be
// nil) spares reading a file whose stat has not changed.
func same(p string, f *object.File, seen stats) (bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if f.Mode == filemode.Symlink {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return false, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return false, err
		}
		want, err := f.Contents()
		return err == nil && target == want, err
	}
	if !fi.Mode().IsRegular() || fi.Size() != f.Size || fi.Mode().Perm()&0o100 != perm(f.Mode)&0o100 {
		return false, nil
	}
	if seen != nil {
		if st, ok := seen[f.Name]; ok && st == statOf(fi, f.Hash) {
			return true, nil
		}
	}
	body, err := os.ReadFile(p)
	if err != nil {
		return false, err
	}
	if plumbing.ComputeHash(plumbing.BlobObject, body) != f.Hash {
		return false, nil
	}
	if seen != nil {
		seen[f.Name] = statOf(fi, f.Hash)
	}
	return true, nil
}

// writeTree makes the files under root what tree has: a file that differs
// is written (in place when a regular file is there), a file old tracked
// and tree does not is removed, and nothing else under root is touched.
func writeTree(root string, tree, old *object.Tree, seen stats) error {
	want := map[string]bool{}
	err := tree.Files().ForEach(func(f *object.File) error {
		want[f.Name] = true
		p := filepath.Join(root, filepath.FromSlash(f.Name))
		if ok, err := same(p, f, seen); err != nil || ok {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		body, err := f.Contents()
		if err != nil {
			return fmt.Errorf("reading %s: %w", f.Name, err)
		}
		fi, err := os.Lstat(p)
		switch {
		case f.Mode == filemode.Symlink:
			if err == nil {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
			}
			return os.Symlink(body, p)
		case err == nil && fi.Mode().IsRegular():
			if err := safefile.Overwrite(p, []byte(body)); err != nil {
				return err
			}
			if fi.Mode().Perm() != perm(f.Mode) {
				if err := os.Chmod(p, perm(f.Mode)); err != nil {
					return err
				}
			}
		case err == nil:
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			fallthrough
		default:
			if err := safefile.Replace(p, []byte(body), perm(f.Mode)); err != nil {
				return err
			}
		}
		if seen != nil {
			if fi, err := os.Lstat(p); err == nil {
				seen[f.Name] = statOf(fi, f.Hash)
			}
		}
		return nil
	})
	if err != nil || old == nil {
		return err
	}
	return old.Files().ForEach(func(f *object.File) error {
		if want[f.Name] {
			return nil
		}
		delete(seen, f.Name)
		p := filepath.Join(root, filepath.FromSlash(f.Name))
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// the directories it leaves empty go too, up to root
		for dir := filepath.Dir(p); dir != root && len(dir) > len(root); dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
		return nil
	})
}

// edits lists tree's files that are not as tree has them under root.
func edits(root string, tree *object.Tree, seen stats) ([]string, error) {
	var out []string
	err := tree.Files().ForEach(func(f *object.File) error {
		ok, err := same(filepath.Join(root, filepath.FromSlash(f.Name)), f, seen)
		if err != nil && !errors.Is(err, fs.ErrPermission) {
			return err
		}
		if !ok {
			out = append(out, f.Name)
		}
		return nil
	})
	return out, err
}
