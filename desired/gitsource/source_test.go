package gitsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// origin is a repository with a work tree that tests commit to, as a
// developer pushes.
type origin struct {
	t    *testing.T
	dir  string
	repo *git.Repository
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return &origin{t: t, dir: dir, repo: repo}
}

// commit writes files (a nil body removes the file) and commits them.
func (o *origin) commit(msg string, files map[string]*string) string {
	o.t.Helper()
	wt, err := o.repo.Worktree()
	if err != nil {
		o.t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(o.dir, name)
		if body == nil {
			if _, err := wt.Remove(name); err != nil {
				o.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			o.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(*body), 0o644); err != nil {
			o.t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			o.t.Fatal(err)
		}
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "dev", Email: "dev@example.com", When: time.Now()}})
	if err != nil {
		o.t.Fatal(err)
	}
	return h.String()
}

func str(s string) *string { return &s }

// validator refuses a compose file that says "invalid".
func validator(_ context.Context, dir string, _ Commit) error {
	b, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		return err
	}
	if strings.Contains(string(b), "invalid") {
		return errors.New(filepath.Join(dir, "compose.yaml") + ":1: invalid")
	}
	return nil
}

func live(t *testing.T, s *Source, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.ProjectDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFollowerAppliesRefusesRestoresAndGoesBack(t *testing.T) {
	o := newOrigin(t)
	c1 := o.commit("one", map[string]*string{"app/compose.yaml": str("v1"), "app/conf/nginx.conf": str("a"), "README": str("r")})
	src, err := New(Options{URL: "file://" + o.dir, Path: "app/", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(src.ProjectDir()); got != "app" {
		t.Errorf("project directory %s: want the repository's app directory's name, as a clone has it", src.ProjectDir())
	}
	f := &Follower{Source: src, Validate: validator}
	ctx := context.Background()

	st, err := f.Sync(ctx)
	if err != nil || !st.Applied || st.Commit.Hash != c1 || st.From != "" || st.Commit.Subject != "one" {
		t.Fatalf("first sync: %+v, %v; want c1 applied", st, err)
	}
	if live(t, src, "compose.yaml") != "v1" {
		t.Fatal("live checkout is not c1's")
	}
	if _, err := os.Lstat(filepath.Join(src.ProjectDir(), "..", ".git")); !os.IsNotExist(err) {
		t.Errorf("the live checkout holds a .git: %v", err)
	}

	st, err = f.Sync(ctx)
	if err != nil || st.Applied || st.Refused != nil {
		t.Fatalf("nothing new: %+v, %v", st, err)
	}

	c2 := o.commit("two", map[string]*string{"app/compose.yaml": str("v2"), "app/conf/nginx.conf": nil})
	st, err = f.Sync(ctx)
	if err != nil || !st.Applied || st.Commit.Hash != c2 || st.From != c1 {
		t.Fatalf("c2: %+v, %v", st, err)
	}
	if live(t, src, "compose.yaml") != "v2" {
		t.Fatal("live checkout is not c2's")
	}
	if _, err := os.Stat(filepath.Join(src.ProjectDir(), "conf", "nginx.conf")); !os.IsNotExist(err) {
		t.Errorf("a file c2 removed is still in the live checkout: %v", err)
	}

	c3 := o.commit("three", map[string]*string{"app/compose.yaml": str("invalid")})
	st, err = f.Sync(ctx)
	if err != nil || st.Applied || st.Refused == nil || st.Commit.Hash != c3 {
		t.Fatalf("c3: %+v, %v; want refused", st, err)
	}
	if msg := f.Unstage(st.Refused.Error(), st.Commit); msg != st.Commit.Short()+":app/compose.yaml:1: invalid" {
		t.Errorf("refusal %q: want it to name the commit's file", msg)
	}
	if live(t, src, "compose.yaml") != "v2" || src.Applied() != c2 {
		t.Fatal("a refused commit moved the live checkout")
	}
	if st, err = f.Sync(ctx); err != nil || st.Refused != nil || st.Applied {
		t.Fatalf("c3 again: %+v, %v; want it neither refused again nor applied", st, err)
	}

	// a hand edit and a hand removal are put back; a new file is left
	if err := os.WriteFile(filepath.Join(src.ProjectDir(), "compose.yaml"), []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src.ProjectDir(), "..", "README")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src.ProjectDir(), "data.db"), []byte("rows"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = f.Sync(ctx)
	if err != nil || !slices.Equal(st.Edited, []string{"README", "app/compose.yaml"}) {
		t.Fatalf("edits: %+v, %v; want README and app/compose.yaml", st, err)
	}
	if live(t, src, "compose.yaml") != "v2" || live(t, src, "../README") != "r" || live(t, src, "data.db") != "rows" {
		t.Fatal("edits not put back, or an untracked file touched")
	}

	back, ok, err := f.MarkBad(c2)
	if err != nil || !ok || back.Hash != c1 {
		t.Fatalf("mark c2 bad: %+v %v %v; want back to c1", back, ok, err)
	}
	if live(t, src, "compose.yaml") != "v1" {
		t.Fatal("live checkout did not go back to c1")
	}
	if st, err = f.Sync(ctx); err != nil || st.Applied {
		t.Fatalf("after going back: %+v, %v; want c3 still refused and nothing applied", st, err)
	}

	c4 := o.commit("four", map[string]*string{"app/compose.yaml": str("v4")})
	if st, err = f.Sync(ctx); err != nil || !st.Applied || st.Commit.Hash != c4 || st.From != c1 {
		t.Fatalf("c4: %+v, %v; want applied from c1", st, err)
	}

	// a daemon restarted on the same directory starts from the live checkout
	again, err := New(Options{URL: "file://" + o.dir, Path: "app", Dir: filepath.Dir(filepath.Dir(filepath.Dir(src.ProjectDir())))})
	if err != nil {
		t.Fatal(err)
	}
	if again.Applied() != c4 {
		t.Errorf("reopened source is on %q, want c4", again.Applied())
	}
}

func TestRefsAndPins(t *testing.T) {
	o := newOrigin(t)
	c1 := o.commit("one", map[string]*string{"compose.yaml": str("v1")})
	head, err := o.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.repo.CreateTag("v1.0", head.Hash(), &git.CreateTagOptions{Message: "release", Tagger: &object.Signature{Name: "dev", When: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	c2 := o.commit("two", map[string]*string{"compose.yaml": str("v2")})
	branch := head.Name().Short()
	for _, tc := range []struct{ ref, want string }{
		{"", c2},
		{branch, c2},
		{"v1.0", c1}, // an annotated tag, peeled to its commit
		{c1, c1},     // a pinned commit
	} {
		src, err := New(Options{URL: o.dir, Ref: tc.ref, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		c, err := src.Fetch(context.Background())
		if err != nil || c.Hash != tc.want {
			t.Errorf("ref %q: %s, %v; want %s", tc.ref, c.Hash, err, tc.want)
		}
	}
	src, err := New(Options{URL: o.dir, Ref: "nosuch", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), `no branch or tag "nosuch"`) {
		t.Errorf("unknown ref: %v", err)
	}
}

func TestTreesOverTheLimitsAreRefused(t *testing.T) {
	o := newOrigin(t)
	o.commit("ok", map[string]*string{"compose.yaml": str("v1")})
	wt, _ := o.repo.Worktree()
	for _, tc := range []struct{ name, target string }{
		{"shadow", "/etc/shadow"},
		{"up", "../../outside"},
	} {
		if err := os.Symlink(tc.target, filepath.Join(o.dir, tc.name)); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(tc.name); err != nil {
			t.Fatal(err)
		}
		bad, err := wt.Commit("link "+tc.name, &git.CommitOptions{Author: &object.Signature{Name: "dev", When: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		src, err := New(Options{URL: o.dir, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		f := &Follower{Source: src, Validate: validator}
		st, err := f.Sync(context.Background())
		if err != nil || !errors.Is(st.Refused, ErrRefused) || st.Commit.Hash != bad.String() {
			t.Errorf("link %s -> %s: %+v, %v; want refused", tc.name, tc.target, st, err)
		}
		if src.Applied() != "" {
			t.Errorf("link %s: a refused first commit was checked out", tc.name)
		}
		if _, err := wt.Remove(tc.name); err != nil {
			t.Fatal(err)
		}
	}
	if !escapes("a/b", "../../c") || escapes("a/b", "../c") || escapes("a", "b/c") {
		t.Error("escapes misjudges relative links")
	}
}

func TestOptionsAreChecked(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	two := filepath.Join(dir, "two")
	if err := os.WriteFile(tok, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(two, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no url", Options{}, "no repository URL"},
		{"path out", Options{URL: "https://example.com/r.git", Path: "../x"}, "--git-path"},
		{"abs path", Options{URL: "https://example.com/r.git", Path: "/etc"}, "--git-path"},
		{"ref flag", Options{URL: "https://example.com/r.git", Ref: "--upload-pack=x"}, "--git-ref"},
		{"ssh without key", Options{URL: "git@example.com:o/r.git"}, "--git-ssh-key-file"},
		{"ssh without known hosts", Options{URL: "ssh://git@example.com/o/r.git", Auth: Auth{SSHKeyFile: tok}}, "--git-known-hosts"},
		{"token over ssh", Options{URL: "ssh://git@example.com/o/r.git", Auth: Auth{TokenFile: tok}}, "a token is for https"},
		{"key over https", Options{URL: "https://example.com/r.git", Auth: Auth{SSHKeyFile: tok}}, "for ssh URLs"},
		{"token of two lines", Options{URL: "https://example.com/r.git", Auth: Auth{TokenFile: two}}, "want one line"},
		{"token a directory", Options{URL: "https://example.com/r.git", Auth: Auth{TokenFile: dir}}, "not a regular file"},
		{"bad key", Options{URL: "ssh://git@example.com/o/r.git", Auth: Auth{SSHKeyFile: tok, KnownHostsFile: tok}}, "not a private key"},
	} {
		tc.opts.Dir = t.TempDir()
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the token is printed: %v", tc.name, err)
		}
	}
	if _, err := New(Options{URL: "https://example.com/r.git", Auth: Auth{TokenFile: tok}, Dir: t.TempDir()}); err != nil {
		t.Errorf("a token over https: %v", err)
	}
	if got := (Auth{TokenFile: tok}).Secrets(); !slices.Equal(got, []string{"s3cret-token"}) {
		t.Errorf("secrets %q", got)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ url, name, redacted string }{
		{"https://github.com/acme/stack.git", "stack", "https://github.com/acme/stack.git"},
		{"https://bot:tok3n@git.example.com/acme/stack", "stack", "https://bot:xxxxx@git.example.com/acme/stack"},
		{"git@github.com:acme/ops.git", "ops", "git@github.com:acme/ops.git"},
		{"/srv/git/site/", "site", "/srv/git/site/"},
		{"file:///", "repo", "file:///"},
	} {
		if got := RepoName(tc.url); got != tc.name {
			t.Errorf("RepoName(%s) = %s, want %s", tc.url, got, tc.name)
		}
		if got := Redacted(tc.url); got != tc.redacted {
			t.Errorf("Redacted(%s) = %s, want %s", tc.url, got, tc.redacted)
		}
	}
}
