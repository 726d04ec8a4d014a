package filewatch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/reconcile-dev/reconcile/internal/kernelfs"
)

// Caps on what one watched path may cost to hash: a configuration mount is
// a few files, and a monitoring agent's `/:/rootfs:ro` is the whole host.
// A path over them is not watched at all (ErrTooLarge).
const (
	MaxFiles = 2000
	MaxBytes = 32 << 20
	MaxDepth = 12
)

// ErrTooLarge marks a path whose content is over the caps, or that is no
// configuration at all (a device, a FIFO, a pseudo-filesystem such as
// /proc): hashing it would never end, or cost more than a watch is worth.
var ErrTooLarge = errors.New("not watched: over the caps of a configuration mount, or not regular files")

// OverCapsError names a path HashBounded would not hash; it is
// ErrTooLarge.
type OverCapsError struct{ Path string }

func (e *OverCapsError) Error() string        { return e.Path + ": " + ErrTooLarge.Error() }
func (e *OverCapsError) Is(target error) bool { return target == ErrTooLarge }

// HashBounded is Hash within the caps: regular files only, on the path's
// own filesystem, never in /proc, /sys or /dev or on a pseudo-filesystem,
// and at most MaxFiles files, MaxBytes bytes and MaxDepth levels; over them
// it returns ErrTooLarge and reads no more. "" when the path does not exist.
func HashBounded(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", nil
	}
	if kernelfs.Is(path) {
		return "", &OverCapsError{Path: path}
	}
	h := sha256.New()
	if !st.IsDir() {
		if !st.Mode().IsRegular() || st.Size() > MaxBytes {
			return "", &OverCapsError{Path: path}
		}
		if err := hashFile(h, path, MaxBytes); err != nil {
			return "unreadable:" + err.Error(), nil
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	dev := deviceOf(st)
	var files []string
	var bytes int64
	var over error
	walkErr := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: left out
		}
		rel, _ := filepath.Rel(path, p)
		if d.IsDir() {
			if p != path && (strings.Count(rel, string(filepath.Separator))+1 > MaxDepth || kernelfs.InTree(p)) {
				over = ErrTooLarge
				return filepath.SkipAll
			}
			if info, err := d.Info(); err == nil && p != path && deviceOf(info) != dev {
				return filepath.SkipDir // another filesystem mounted inside: not this mount's content
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // devices, sockets, FIFOs, links: never read
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		files = append(files, p)
		bytes += info.Size()
		if len(files) > MaxFiles || bytes > MaxBytes {
			over = ErrTooLarge
			return filepath.SkipAll
		}
		return nil
	})
	if over != nil || walkErr != nil {
		return "", &OverCapsError{Path: path}
	}
	slices.Sort(files)
	for _, f := range files {
		rel, _ := filepath.Rel(path, f)
		fmt.Fprintf(h, "%s\x00", rel)
		_ = hashFile(h, f, MaxBytes)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func deviceOf(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

// hashFile adds at most limit bytes of a regular file, opened without
// following a link planted in its place and without blocking on a FIFO.
func hashFile(w io.Writer, path string, limit int64) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	_, err = io.Copy(w, io.LimitReader(f, limit))
	return err
}
