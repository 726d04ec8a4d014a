// Package kernelfs tells the kernel's files from content: what lies in
// /proc, /sys or /dev, or on a pseudo-filesystem. Such a file may look
// regular and still block on read, never end, fail with an I/O error
// (/proc/self/mem) or change at every read, so reconcile never reads one as
// configuration: not as an env file, not to hash a mount.
package kernelfs

import (
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// pseudoFS are filesystems whose files are the kernel's, not content.
var pseudoFS = map[int64]string{
	unix.PROC_SUPER_MAGIC: "proc", unix.SYSFS_MAGIC: "sysfs", unix.DEVPTS_SUPER_MAGIC: "devpts",
	unix.CGROUP_SUPER_MAGIC: "cgroup", unix.CGROUP2_SUPER_MAGIC: "cgroup2", unix.DEBUGFS_MAGIC: "debugfs",
	unix.TRACEFS_MAGIC: "tracefs", unix.SECURITYFS_MAGIC: "securityfs", unix.BPF_FS_MAGIC: "bpf",
	unix.PSTOREFS_MAGIC: "pstore",
}

// trees are never entered, whatever filesystem they are.
var trees = []string{"/proc", "/sys", "/dev"}

// InTree reports whether path is in /proc, /sys or /dev (or cannot be made
// absolute).
func InTree(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return true
	}
	for _, t := range trees {
		if abs == t || strings.HasPrefix(abs, t+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// Pseudo names the pseudo-filesystem path lies on, or "".
func Pseudo(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return ""
	}
	return pseudoFS[int64(st.Type)]
}

// Is reports whether path is the kernel's: in /proc, /sys or /dev, or on a
// pseudo-filesystem.
func Is(path string) bool {
	return InTree(path) || Pseudo(path) != ""
}
