package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// gitRepo is a repository a test pushes to, served over git's smart HTTP
// protocol by git's own http-backend (the server GitHub Enterprise, Gitea
// and cgit run behind a web server), behind a token, as a forge serves it.
type gitRepo struct {
	t    *testing.T
	dir  string
	repo *git.Repository
	URL  string
}

const gitToken = "test-token-0123456789abcdef"

func newGitRepo(t *testing.T, dir string) *gitRepo {
	t.Helper()
	backend, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("the tests serve a repository with git http-backend: %v", err)
	}
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dir), "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass != gitToken {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &gitRepo{t: t, dir: dir, repo: repo, URL: srv.URL + "/" + filepath.Base(dir)}
}

// push commits compose.yaml with body, as a developer's push lands.
func (g *gitRepo) push(msg, body string) string {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, "compose.yaml"), []byte(body), 0o644); err != nil {
		g.t.Fatal(err)
	}
	wt, err := g.repo.Worktree()
	if err != nil {
		g.t.Fatal(err)
	}
	if _, err := wt.Add("compose.yaml"); err != nil {
		g.t.Fatal(err)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "dev", Email: "dev@example.com", When: time.Now()}})
	if err != nil {
		g.t.Fatal(err)
	}
	return h.String()[:12]
}

const gitCompose = `services:
  web:
    image: {{.Image}}
    restart: always
    environment: {VERSION: "1"}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 2}
    deploy:
      update_config: {order: start-first, failure_action: rollback, monitor: 5s}
`

// versions returns the project's compose file, as NewProject rendered
// it, with web's VERSION set to the one asked for.
func versions(t *testing.T, p *enginetest.Project) func(v string) string {
	t.Helper()
	b, err := os.ReadFile(p.File)
	if err != nil {
		t.Fatal(err)
	}
	return func(v string) string { return strings.Replace(string(b), `VERSION: "1"`, `VERSION: "`+v+`"`, 1) }
}

// envOf is the VERSION the project's web container runs with.
func envOf(p *enginetest.Project) string {
	for _, c := range p.Snapshot().Containers {
		if c.Service != "web" || c.State != "running" {
			continue
		}
		for _, e := range p.Inspect(c.ID).Config.Env {
			if v, ok := strings.CutPrefix(e, "VERSION="); ok {
				return v
			}
		}
	}
	return ""
}

func recordsWith(t *testing.T, base string, reason record.Reason) []record.Record {
	t.Helper()
	var out []record.Record
	for _, r := range records(t, base) {
		if r.Reason == reason {
			out = append(out, r)
		}
	}
	return out
}

// TestGitSourceFollowsPushes: the daemon applies a push within its poll
// interval, refuses a commit whose files do not load (the last good keeps
// running), puts a hand edit of its checkout back, and a restarted daemon
// with a long interval applies a push at once on a signed webhook; the
// commit in force is on records, /status and /metrics; the token never
// printed.
func TestGitSourceFollowsPushes(t *testing.T) {
	p := enginetest.NewProject(t, gitCompose)
	version := versions(t, p)
	repo := newGitRepo(t, p.Dir)
	c1 := repo.push("first", version("1"))
	secrets := t.TempDir()
	tokenFile, hookFile := filepath.Join(secrets, "token"), filepath.Join(secrets, "hook")
	const hookSecret = "hook-secret-0123456789"
	for f, v := range map[string]string{tokenFile: gitToken, hookFile: hookSecret} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	start := func(interval string) (*enginetest.Proc, string) {
		addr := "127.0.0.1:" + enginetest.FreePort(t)
		d := enginetest.Start(t, t.TempDir(), nil, "--git", repo.URL, "--git-token-file", tokenFile, "--git-interval", interval,
			"--git-webhook-secret-file", hookFile, "-p", p.Name, "--state-dir", state, "--listen", addr, "--log-format", "json")
		d.WaitFor(`"daemon started"`, 30*time.Second)
		return d, "http://" + addr
	}

	d, base := start("1s")
	eventually(t, 60*time.Second, "web runs commit 1", func() bool { return envOf(p) == "1" })
	if st := statusJSON(t, base); st.Revision != c1 {
		t.Errorf("/status revision %q, want %s", st.Revision, c1)
	}
	if got := recordsWith(t, base, record.Created); len(got) == 0 || got[0].Revision != c1 {
		t.Errorf("Created records %+v: want them stamped with %s", got, c1)
	}

	c2 := repo.push("second", version("2"))
	took := eventually(t, 60*time.Second, "web runs commit 2", func() bool { return envOf(p) == "2" })
	t.Logf("push to running, by polling every 1s: %s", took.Round(time.Millisecond))
	applied := recordsWith(t, base, record.CommitApplied)
	if len(applied) == 0 || !strings.Contains(applied[len(applied)-1].Message, c2) || !strings.Contains(applied[len(applied)-1].Message, "replacing "+c1) {
		t.Errorf("CommitApplied records %+v: want one naming %s replacing %s", applied, c2, c1)
	}
	if m := metricValue(t, base, `reconcile_git_commit_info{commit="`+c2+`",project="`+p.Name+`"}`); m != 1 {
		t.Errorf("reconcile_git_commit_info for %s = %v, want 1", c2, m)
	}

	// an invalid commit: refused with its file and line, commit 2 runs on
	c3 := repo.push("typo", strings.Replace(version("3"), "environment:", "enviroment:", 1))
	eventually(t, 30*time.Second, "commit 3 refused", func() bool { return len(recordsWith(t, base, record.CommitRefused)) > 0 })
	ref := recordsWith(t, base, record.CommitRefused)[0]
	t.Logf("%s: %s", ref.Reason, ref.Message)
	if !strings.Contains(ref.Message, c3+":compose.yaml:5") || !strings.Contains(ref.Message, "enviroment") || !strings.Contains(ref.Message, c2+" stays in force") {
		t.Errorf("refusal %q: want the commit's file:line, the key and the commit kept", ref.Message)
	}
	if envOf(p) != "2" || statusJSON(t, base).Revision != c2 {
		t.Error("an invalid commit changed what runs")
	}

	// a hand edit of the checkout is drift, put back
	var live string
	_ = filepath.WalkDir(filepath.Join(state, "git"), func(path string, e os.DirEntry, err error) error {
		if err == nil && e.Name() == "compose.yaml" && strings.Contains(path, string(filepath.Separator)+"live"+string(filepath.Separator)) {
			live = path
		}
		return nil
	})
	if live == "" {
		t.Fatal("no live checkout under the state directory")
	}
	reloads := len(recordsWith(t, base, record.ConfigReloaded))
	if err := os.WriteFile(live, []byte(version("hand")), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the hand edit put back", func() bool { return len(recordsWith(t, base, record.LocalEdit)) > 0 })
	t.Logf("%s: %s", record.LocalEdit, recordsWith(t, base, record.LocalEdit)[0].Message)
	// the putting back is the change the daemon reloads: the edit itself
	// is never loaded (web not recreated with VERSION=hand, and back)
	eventually(t, 30*time.Second, "the reload after the putting back", func() bool {
		return len(recordsWith(t, base, record.ConfigReloaded)) > reloads
	})
	for _, r := range recordsWith(t, base, record.ConfigReloaded)[reloads:] {
		if !strings.Contains(r.Message, "no service definition changed") {
			t.Errorf("a reload after the hand edit: %s", r.Message)
		}
	}
	if n := len(recordsWith(t, base, record.RolloutStarted)); n != 1 {
		t.Errorf("%d RolloutStarted records, want 1 (commit 2's)", n)
	}
	if b, _ := os.ReadFile(live); !strings.Contains(string(b), `VERSION: "2"`) {
		t.Errorf("live compose file after the edit was put back:\n%s", b)
	}
	d.Signal(os.Interrupt)
	d.Wait(30 * time.Second)

	// restarted with an hour's interval: a push lands at once on a webhook
	d, base = start("1h")
	c4 := repo.push("fourth", version("4"))
	body := `{"ref":"refs/heads/master","after":"` + c4 + `"}`
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(body))
	for _, tc := range []struct {
		sig  string
		code int
	}{
		{"sha256=" + strings.Repeat("0", 64), http.StatusUnauthorized},
		{"sha256=" + hex.EncodeToString(mac.Sum(nil)), http.StatusAccepted},
	} {
		req, _ := http.NewRequest("POST", base+"/hooks/git", strings.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", tc.sig)
		req.Header.Set("X-GitHub-Event", "push")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("webhook signed %s: %d, want %d", tc.sig[:12], resp.StatusCode, tc.code)
		}
	}
	took = eventually(t, 60*time.Second, "web runs commit 4 after the webhook", func() bool { return envOf(p) == "4" })
	t.Logf("push to running, by webhook: %s", took.Round(time.Millisecond))

	// a commit whose replica never turns healthy: rolled back, marked bad,
	// the checkout back on commit 4; the next commit is applied
	hook := func() {
		t.Helper()
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest("POST", base+"/hooks/git", strings.NewReader(body))
		req.Header.Set("X-Gitea-Signature", hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	c5 := repo.push("never healthy", strings.Replace(version("5"), `"5"}`, `"5", START_DELAY: "1h"}`, 1))
	hook()
	eventually(t, 90*time.Second, "commit 5 marked bad", func() bool { return len(recordsWith(t, base, record.CommitBad)) > 0 })
	bad := recordsWith(t, base, record.CommitBad)[0]
	if !strings.Contains(bad.Message, c5+" rolled back") || !strings.Contains(bad.Message, "back to commit "+c4) || bad.Revision != c5 {
		t.Errorf("CommitBad %+v: want commit 5 marked bad, back to commit 4", bad)
	}
	eventually(t, 30*time.Second, "the status back on commit 4", func() bool { return statusJSON(t, base).Revision == c4 })
	if envOf(p) != "4" {
		t.Errorf("web runs VERSION %q after the rollback, want 4", envOf(p))
	}
	repo.push("fixed", version("6"))
	hook()
	eventually(t, 60*time.Second, "web runs commit 6", func() bool { return envOf(p) == "6" })
	d.Signal(os.Interrupt)
	d.Wait(30 * time.Second)
	for _, out := range []string{d.Output()} {
		if strings.Contains(out, gitToken) || strings.Contains(out, hookSecret) {
			t.Error("a credential was printed")
		}
	}
	if slices.Contains([]string{c1, c2, c3}, c4) {
		t.Fatal("commits collide")
	}
}

// TestOnceGitPinsACommit: CI runs `--once --git URL --git-ref SHA`: that
// commit's files are applied and waited for; a pinned commit whose files
// do not load is exit 2 naming the commit's file and line, touching
// nothing; an unreachable repository is exit 3.
func TestOnceGitPinsACommit(t *testing.T) {
	p := enginetest.NewProject(t, gitCompose)
	version := versions(t, p)
	repo := newGitRepo(t, p.Dir)
	repo.push("first", version("1"))
	head, err := repo.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	pinned := head.Hash().String()
	bad := repo.push("typo", strings.Replace(version("2"), "image:", "imgae:", 1))
	repo.push("third", version("3"))
	state := "--state-dir=" + t.TempDir()
	src := "file://" + p.Dir // go-git's own upload-pack, in process
	r := reconcile(t, t.TempDir(), nil, "--once", "--git", src, "--git-ref", pinned, "-p", p.Name, state)
	if r.Code != 0 || envOf(p) != "1" {
		t.Fatalf("--once pinned to commit 1: %s; web runs %q", r, envOf(p))
	}
	if !strings.Contains(r.Stderr, pinned[:12]) {
		t.Errorf("--once does not say which commit it applied:\n%s", r.Stderr)
	}
	ids := p.IDs()
	full, err := repo.repo.ResolveRevision("HEAD~1")
	if err != nil || !strings.HasPrefix(full.String(), bad) {
		t.Fatalf("resolving the bad commit: %v", err)
	}
	r = reconcile(t, t.TempDir(), nil, "--once", "--git", src, "--git-ref", full.String(), "-p", p.Name, state)
	if r.Code != 2 || !strings.Contains(r.Stderr, bad+":compose.yaml:") || !strings.Contains(r.Stderr, "imgae") {
		t.Errorf("--once pinned to an invalid commit: %s; want exit 2 naming %s:compose.yaml:LINE", r, bad)
	}
	r = reconcile(t, t.TempDir(), nil, "--once", "--git", "http://127.0.0.1:1/nothing.git", "-p", p.Name, state)
	if r.Code != 3 {
		t.Errorf("--once with an unreachable repository: %s; want exit 3", r)
	}
	for name, id := range p.IDs() {
		if ids[name] != id {
			t.Errorf("%s was replaced by a refused run", name)
		}
	}
	// status says which commit it looked at (the branch's newest)
	third, err := repo.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if st := reconcile(t, t.TempDir(), nil, "status", "--git", src, "-p", p.Name, state); st.Code != 0 || !strings.Contains(st.Stdout, "commit "+third.Hash().String()[:12]) {
		t.Errorf("status --git: %s; want its commit line", st)
	}
	// the branch's newest commit, as diff sees it, would change web
	if d := reconcile(t, t.TempDir(), nil, "diff", "--git", src, "-p", p.Name, state); d.Code != 1 || !strings.Contains(d.Stdout, "web") {
		t.Errorf("diff --git of the branch's head: %s; want exit 1 naming web", d)
	}
}
