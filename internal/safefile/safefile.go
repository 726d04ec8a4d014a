// Package safefile writes files in directories that someone else may also
// write: a bind-mounted directory a container can change under reconcile
// (where it writes load-balancer upstream files as root), or a state
// directory. A link planted at the file's name, or at the temporary name, is
// never followed: every open is relative to a descriptor of the directory,
// with openat2's RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS (openat with
// O_NOFOLLOW where the kernel predates openat2, which for one name in a
// directory is the same), and the mode is set on the descriptor before the
// file takes its name.
package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Replace gives path the content data with mode perm atomically: a new file
// beside it, written, synced and chmod-ed through its descriptor, then
// renamed over path (a link at path is replaced, not followed).
func Replace(path string, data []byte, perm os.FileMode) error {
	dir, name, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	tmp, fd, err := createTemp(dir, name)
	if err != nil {
		return fmt.Errorf("creating a file beside %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(path), tmp))
	committed := false
	defer func() {
		if !committed {
			_ = unix.Unlinkat(dir, tmp, 0)
		}
	}()
	if err := writeAll(f, data, perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := unix.Renameat(dir, tmp, dir, name); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	committed = true
	return nil
}

// Overwrite writes data into the regular file at path in place, for a file
// that is itself the source of a bind mount (a rename would leave the
// container with the old one). A link, a FIFO or a device at path is
// refused, never opened for writing through.
func Overwrite(path string, data []byte) error {
	dir, name, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	fd, err := openBeneath(dir, name, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): not written", path, info.Mode().Type())
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// openDir opens path's directory (its last component not followed if a
// link) and returns it with path's base name.
func openDir(path string) (int, string, error) {
	// Dir, not Split: a trailing slash would make O_NOFOLLOW follow
	dirPath, name := filepath.Dir(filepath.Clean(path)), filepath.Base(path)
	if name == "" || name == "/" || name == "." || name == ".." {
		return -1, "", fmt.Errorf("%s: not a file name", path)
	}
	fd, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("opening the directory of %s: %w", path, err)
	}
	return fd, name, nil
}

// createTemp creates a new file beside name in dir, exclusively.
func createTemp(dir int, name string) (string, int, error) {
	for range 10 {
		var b [6]byte
		_, _ = rand.Read(b[:])
		tmp := "." + name + "." + hex.EncodeToString(b[:])
		fd, err := openBeneath(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return tmp, fd, err
	}
	return "", -1, errors.New("no free temporary name")
}

// openBeneath opens name in dir without following a link anywhere and
// without leaving dir.
func openBeneath(dir int, name string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(dir, name, &how)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// no openat2 (before Linux 5.6, or a seccomp filter refusing it):
		// one name with O_NOFOLLOW resolves the same
		fd, err = unix.Openat(dir, name, flags|unix.O_NOFOLLOW, mode)
	}
	return fd, err
}

// writeAll writes data, sets perm on the descriptor and syncs, then
// closes f.
func writeAll(f *os.File, data []byte, perm os.FileMode) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
