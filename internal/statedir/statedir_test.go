package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLockIsExclusiveAndNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "shop")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "shop")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "PID "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v; want ErrLocked naming PID %d", err, os.Getpid())
	}
	other, err := Acquire(dir, "other")
	if err != nil {
		t.Fatalf("another project is independent: %v", err)
	}
	other.Release()
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir, "shop")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}

func TestWriteAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	for _, content := range []string{"one", "two"} {
		if err := WriteAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestDefaultHonoursXDG(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/x/state")
	if d, _ := Default(); d != "/x/state/reconcile" {
		t.Fatalf("Default() = %s", d)
	}
}

// TestLocksLiveWhereNoOtherUserCanPlantThem: the lock directory is never a
// shared /tmp; a directory that is a link, anyone's to write, or another
// user's is refused; a lock file that is a link is not followed.
func TestLocksLiveWhereNoOtherUserCanPlantThem(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tt := range []struct {
		name string
		get  func(string) string
		euid int
		want string
	}{
		{"explicit", env("RECONCILE_LOCK_DIR", "/srv/locks", "XDG_RUNTIME_DIR", "/run/user/1000"), 1000, "/srv/locks"},
		{"the user's runtime directory", env("XDG_RUNTIME_DIR", "/run/user/1000"), 1000, "/run/user/1000/reconcile"},
		{"root", env(), 0, "/run/reconcile"},
		{"a user without a runtime directory: the state directory, not /tmp", env("HOME", "/home/ann"), 1000, "/home/ann/.local/state/reconcile/locks"},
		{"nowhere safe", env(), 1000, ""},
	} {
		if got := runtimeDir(tt.get, tt.euid); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}

	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o1777); err != nil { // as /tmp
		t.Fatal(err)
	}
	others := filepath.Join(base, "others")
	if err := os.Mkdir(others, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(others, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(base, "planted")
	if err := os.Mkdir(planted, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(planted, "shop.lock")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		dir  string
		ok   bool
	}{
		{"its own directory", real, true},
		{"a link to a directory", link, false},
		{"a directory anyone may write (/tmp)", open, false},
		{"another user's directory", others, false},
		{"a lock file planted as a link", planted, false},
		{"no directory at all", "", false},
	} {
		l, err := Acquire(tt.dir, "shop")
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok %v", tt.name, err, tt.ok)
		}
		if l != nil {
			_ = l.Release()
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
		t.Errorf("the file a planted link points at was written: %q", b)
	}
}

// TestStateIsTheUsersOnly: the state files hold what a rollback needs (a
// previous definition, its environment included, as Docker's own
// container configs do): 0600 in a 0700 directory, never in a directory
// another user may write.
func TestStateIsTheUsersOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	f := File{Path: RolloutFile(dir, "shop")}
	if err := f.Save([]byte(`{"definitions": {"api": {"environment": {"TOKEN": "canary"}}}}`)); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, f.Path: 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %s, want %s", path, st.Mode().Perm(), want)
		}
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := (File{Path: RolloutFile(open, "shop")}).Save([]byte("{}")); err == nil {
		t.Error("saved state in a directory anyone may write")
	}
}

// TestALongProjectNameHasBoundedFiles: compose sets no limit on a project's
// name, the file system does (255 bytes): a long name is cut and hashed,
// two long names that share their start stay apart, and the files work.
func TestALongProjectNameHasBoundedFiles(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("p", 300)
	other := long[:299] + "q"
	for _, name := range []string{long, other} {
		for _, path := range []string{StateFile(dir, name).Path, RolloutFile(dir, name)} {
			if len(filepath.Base(path)) > 255 {
				t.Errorf("%s: a file name of %d bytes", path, len(filepath.Base(path)))
			}
		}
		l, err := Acquire(dir, name)
		if err != nil {
			t.Fatalf("locking a project of a %d-character name: %v", len(name), err)
		}
		defer l.Release()
		if err := StateFile(dir, name).Save([]byte("{}")); err != nil {
			t.Fatalf("saving its state: %v", err)
		}
	}
	if StateFile(dir, long).Path == StateFile(dir, other).Path {
		t.Error("two long names share a state file")
	}
	if got := StateFile(dir, "short").Path; filepath.Base(got) != "short.state.json" {
		t.Errorf("a short name's file is %s", got)
	}
}
