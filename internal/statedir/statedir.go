// Package statedir holds what the daemon keeps on disk: the lock that makes
// it the only daemon of a project, and small state files written atomically.
package statedir

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reconcile-dev/reconcile/internal/safefile"
)

// ErrLocked marks a project already run by another daemon.
var ErrLocked = errors.New("project already has a daemon")

// Default returns $XDG_STATE_HOME/reconcile, or ~/.local/state/reconcile.
func Default() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "reconcile"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "reconcile"), nil
}

// RuntimeDir is where the locks that make a daemon the only reconciler of a
// project on an engine live, whatever its --state-dir:
// $RECONCILE_LOCK_DIR, else $XDG_RUNTIME_DIR/reconcile, else
// /run/reconcile for root, else the user's state directory's locks/. Never
// a shared /tmp, where another user could plant the directory or a link
// first. A daemon in a container shares it with the host's by a bind mount.
func RuntimeDir() string { return runtimeDir(os.Getenv, os.Geteuid()) }

func runtimeDir(getenv func(string) string, euid int) string {
	if d := getenv("RECONCILE_LOCK_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "reconcile")
	}
	if euid == 0 {
		return "/run/reconcile"
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "reconcile", "locks")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".local", "state", "reconcile", "locks")
	}
	return "" // nowhere safe: Acquire refuses
}

// ownDir makes dir (0700) and checks it is a directory of this user's that
// nobody else may write to, reached by no link: a lock or state file in a
// directory another user controls can be swapped under the daemon.
func ownDir(dir string) error {
	if dir == "" {
		return errors.New("no directory for the locks: set --lock-dir, RECONCILE_LOCK_DIR or XDG_RUNTIME_DIR")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("checking %s: %w", dir, err)
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory (a link is not followed)", dir)
	case sys != nil && int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to user %d, not to this user (%d): refusing to keep locks or state there", dir, sys.Uid, os.Geteuid())
	case st.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("%s may be written by anyone (mode %s): refusing to keep locks or state there", dir, st.Mode().Perm())
	}
	return nil
}

// EngineLockDir is the directory of one engine's project locks in dir: the
// engine's ID, so that two engines never share a lock.
func EngineLockDir(dir, engineID string) string {
	return filepath.Join(dir, strings.NewReplacer(":", "-", "/", "-").Replace(engineID))
}

// Lock is a held project lock.
type Lock struct {
	f    *os.File
	Path string
}

// Acquire takes the project's lock in dir, without waiting. The lock is an
// flock, so the kernel releases it when the process dies, however it dies;
// the file holds the holder's PID so that the refusal can name it.
func Acquire(dir, project string) (*Lock, error) {
	if err := ownDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fileName(project)+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(path)
			pid := strings.TrimSpace(string(b))
			if pid == "" {
				pid = "unknown"
			}
			return nil, fmt.Errorf("%w: project %s is reconciled by PID %s (lock %s)", ErrLocked, project, pid, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, Path: path}, nil
}

// Release gives the lock up.
func (l *Lock) Release() error {
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return l.f.Close()
}

// maxNameInFile is the longest project name a state or lock file is named
// by whole; a longer one (compose sets no limit) is cut and told apart by a
// hash of the whole, so that a file name stays under the file system's 255
// bytes with room for the suffix.
const maxNameInFile = 100

// fileName is the part of a state or lock file's name that stands for
// project.
func fileName(project string) string {
	if len(project) <= maxNameInFile {
		return project
	}
	sum := sha256.Sum256([]byte(project))
	return project[:maxNameInFile-17] + "-" + hex.EncodeToString(sum[:8])
}

// WriteAtomic replaces path with data so that a reader, or a process killed
// half-way, sees the old content or the new one, never a mix: write a
// temporary file beside it, sync it, rename it over.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	return safefile.Replace(path, data, perm)
}

// File is a state file in the state directory: missing reads as empty,
// writes are atomic.
type File struct{ Path string }

// StateFile names a project's state file in dir.
func StateFile(dir, project string) File {
	return File{Path: filepath.Join(dir, fileName(project)+".state.json")}
}

// RolloutFile is where a project's rolling updates are kept: the update
// under way and the definitions a rollback may go back to. It holds the
// services' environment as the compose files give it, so it is the user's
// only (0600, as every state file).
func RolloutFile(dir, project string) string {
	return filepath.Join(dir, fileName(project)+".rollouts.json")
}

// ImagesFile is where a project's followed image tags are kept
// (x-reconcile.image_updates): pins, last good and failed digests.
func ImagesFile(dir, project string) string {
	return filepath.Join(dir, fileName(project)+".images.json")
}

func (f File) Load() ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// MoveAside renames a state file that cannot be read to PATH.corrupt-TIME,
// kept for inspection, and returns the new path.
func (f File) MoveAside(now time.Time) (string, error) {
	to := f.Path + ".corrupt-" + now.UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(f.Path, to); err != nil {
		return "", fmt.Errorf("moving the unreadable state file %s aside: %w", f.Path, err)
	}
	return to, nil
}

// ReadOnly is a state file that is read and never written: what `status`
// uses, so that it changes nothing, not even a file it cannot read.
type ReadOnly struct{ Path string }

func (r ReadOnly) Load() ([]byte, error) { return File(r).Load() }
func (ReadOnly) Save([]byte) error       { return nil }

func (f File) Save(data []byte) error {
	if err := ownDir(filepath.Dir(f.Path)); err != nil {
		return err
	}
	return WriteAtomic(f.Path, data, 0o600)
}
