// Package gitsource keeps a compose project's files as a git repository
// has them: it fetches the branch, tag or commit reconcile follows (go-git,
// no git program), checks a new commit's files out into a staging
// directory so the caller can load them before anything changes, and only
// then moves the live checkout, the project directory the daemon loads and
// watches, to it. A commit whose files do not load is refused and the live
// checkout stays on the last good one; an edit made by hand in the live
// checkout is found and put back.
//
// The repository's objects live beside the checkout (<dir>/repo.git), so
// the project directory holds the repository's files and nothing else,
// as a `git clone` followed by `docker compose up` would see them, minus
// the .git directory.
package gitsource

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Limits bound what one commit may hold: a hostile or mistaken repository
// (a dump of generated files, a huge binary) is refused rather than
// written to disk.
const (
	// MaxFiles is the most files a commit's tree may hold.
	MaxFiles = 10000
	// MaxBytes is the most bytes a commit's files may hold in all.
	MaxBytes = 256 << 20
	// FetchTimeout bounds one list-and-fetch of the remote.
	FetchTimeout = 2 * time.Minute
)

// ErrRefused says a commit's tree was refused before anything was written
// to the live checkout (over the limits, or a link leading out of it).
var ErrRefused = errors.New("commit refused")

// Options say which repository, which ref of it and where its compose
// project lives in it.
type Options struct {
	// URL is the repository: https://, http://, ssh://, git@host:path, or
	// file:// and a local path.
	URL string
	// Ref is a branch, a tag or a full commit hash; empty follows the
	// remote's HEAD (its default branch).
	Ref string
	// Path is the directory in the repository holding the compose files
	// ("" or "." for its root).
	Path string
	// Dir is where the source keeps its repository and checkouts: one
	// directory per source, under the state directory.
	Dir  string
	Auth Auth
}

// Commit is a commit reconcile has fetched.
type Commit struct {
	Hash    string
	Subject string
	Author  string
}

// Short is the hash's first 12 characters, as records and status show it.
func (c Commit) Short() string {
	if len(c.Hash) > 12 {
		return c.Hash[:12]
	}
	return c.Hash
}

// Source is one repository followed at one ref. Its methods are safe for
// concurrent use; they take turns.
type Source struct {
	opts Options
	auth transport.AuthMethod
	name string

	mu   sync.Mutex
	repo *git.Repository
	// seen remembers the live files found as their commit has them, by
	// their stat, so that looking for edits reads only what changed.
	seen stats
}

var fullHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// New checks the options and opens (or starts) the source's repository in
// opts.Dir. Nothing is fetched yet.
func New(opts Options) (*Source, error) {
	if opts.URL == "" {
		return nil, errors.New("--git: no repository URL")
	}
	if strings.HasPrefix(opts.Ref, "-") {
		return nil, fmt.Errorf("--git-ref %q: not a branch, tag or commit", opts.Ref)
	}
	p := path.Clean(filepath.ToSlash(opts.Path))
	if path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
		return nil, fmt.Errorf("--git-path %q: want a relative directory inside the repository", opts.Path)
	}
	if p == "." {
		p = ""
	}
	opts.Path = p
	auth, err := opts.Auth.method(opts.URL)
	if err != nil {
		return nil, err
	}
	s := &Source{opts: opts, auth: auth, name: RepoName(opts.URL), seen: stats{}}
	if err := os.MkdirAll(s.storeDir(), 0o700); err != nil {
		return nil, fmt.Errorf("making the git source's directory: %w", err)
	}
	st := filesystem.NewStorage(osfs.New(s.storeDir()), cache.NewObjectLRUDefault())
	repo, err := git.Open(st, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.Init(st, nil)
		if err == nil {
			_, err = repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{opts.URL}})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening the git source's repository in %s: %w", s.storeDir(), err)
	}
	if err := os.MkdirAll(s.liveDir(), 0o755); err != nil {
		return nil, fmt.Errorf("making the live checkout: %w", err)
	}
	s.repo = repo
	return s, nil
}

// RepoName is the repository's name as `git clone` names its directory:
// the URL's last element without .git.
func RepoName(rawURL string) string {
	u := strings.TrimSuffix(strings.TrimRight(rawURL, "/"), ".git")
	if i := strings.LastIndexAny(u, "/:"); i >= 0 {
		u = u[i+1:]
	}
	if u == "" || u == "." || u == ".." {
		return "repo"
	}
	return u
}

// Redacted is the URL with any password or token in it replaced, for
// every message that names the repository.
func Redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

func (s *Source) storeDir() string   { return filepath.Join(s.opts.Dir, "repo.git") }
func (s *Source) liveDir() string    { return filepath.Join(s.opts.Dir, "live", s.name) }
func (s *Source) stagingDir() string { return filepath.Join(s.opts.Dir, "staging", s.name) }

// ProjectDir is the live checkout's directory holding the compose files:
// the project directory the daemon loads and watches.
func (s *Source) ProjectDir() string {
	return filepath.Join(s.liveDir(), filepath.FromSlash(s.opts.Path))
}

// StagingProjectDir is where Stage put a candidate commit's project.
func (s *Source) StagingProjectDir() string {
	return filepath.Join(s.stagingDir(), filepath.FromSlash(s.opts.Path))
}

// Describe names the source in messages: URL (redacted), ref and path.
func (s *Source) Describe() string {
	d := Redacted(s.opts.URL)
	if s.opts.Ref != "" {
		d += " " + s.opts.Ref
	}
	if s.opts.Path != "" {
		d += " (" + s.opts.Path + ")"
	}
	return d
}

// Fetch asks the remote where the followed ref is and fetches that commit
// when it is not here yet. A pinned commit hash is fetched once.
func (s *Source) Fetch(ctx context.Context) (Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if fullHash.MatchString(s.opts.Ref) {
		if c, err := s.commit(plumbing.NewHash(s.opts.Ref)); err == nil {
			return c, nil
		}
		if err := s.fetch(ctx, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return Commit{}, err
		}
		return s.commit(plumbing.NewHash(s.opts.Ref))
	}
	name, hash, err := s.resolve(ctx)
	if err != nil {
		return Commit{}, err
	}
	if c, err := s.commit(s.peel(hash)); err == nil {
		return c, nil
	}
	if err := s.fetch(ctx, "+"+name.String()+":refs/reconcile/followed"); err != nil {
		return Commit{}, err
	}
	return s.commit(s.peel(hash))
}

// peel is the commit an annotated tag object points to; any other hash is
// returned as it is.
func (s *Source) peel(h plumbing.Hash) plumbing.Hash {
	if tag, err := s.repo.TagObject(h); err == nil {
		if c, err := tag.Commit(); err == nil {
			return c.Hash
		}
	}
	return h
}

// resolve lists the remote's refs and finds the followed one, peeled to
// its commit.
func (s *Source) resolve(ctx context.Context) (plumbing.ReferenceName, plumbing.Hash, error) {
	remote, err := s.repo.Remote(git.DefaultRemoteName)
	if err != nil {
		return "", plumbing.ZeroHash, fmt.Errorf("reading the remote: %w", err)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: s.auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return "", plumbing.ZeroHash, fmt.Errorf("listing %s: %w", Redacted(s.opts.URL), err)
	}
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	var want []plumbing.ReferenceName
	if s.opts.Ref == "" {
		head, ok := byName[plumbing.HEAD]
		if !ok {
			return "", plumbing.ZeroHash, fmt.Errorf("%s has no HEAD: name a branch with --git-ref", Redacted(s.opts.URL))
		}
		if head.Type() == plumbing.SymbolicReference {
			want = []plumbing.ReferenceName{head.Target()}
		} else {
			// a server that does not say which branch HEAD is: the
			// branch at the same commit, or HEAD itself
			want = []plumbing.ReferenceName{plumbing.HEAD}
			for _, r := range refs {
				if r.Name().IsBranch() && r.Hash() == head.Hash() {
					want = []plumbing.ReferenceName{r.Name()}
					break
				}
			}
		}
	} else {
		want = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(s.opts.Ref), plumbing.NewTagReferenceName(s.opts.Ref), plumbing.ReferenceName(s.opts.Ref)}
	}
	for _, n := range want {
		r, ok := byName[n]
		if !ok || r.Type() != plumbing.HashReference {
			continue
		}
		hash := r.Hash()
		if peeled, ok := byName[plumbing.ReferenceName(n.String()+"^{}")]; ok {
			hash = peeled.Hash() // an annotated tag's commit
		}
		return n, hash, nil
	}
	return "", plumbing.ZeroHash, fmt.Errorf("%s has no branch or tag %q", Redacted(s.opts.URL), s.opts.Ref)
}

func (s *Source) fetch(ctx context.Context, specs ...string) error {
	rs := make([]config.RefSpec, len(specs))
	for i, sp := range specs {
		rs[i] = config.RefSpec(sp)
	}
	err := s.repo.FetchContext(ctx, &git.FetchOptions{RemoteName: git.DefaultRemoteName, RefSpecs: rs, Auth: s.auth, Force: true, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetching from %s: %w", Redacted(s.opts.URL), err)
	}
	return nil
}

func (s *Source) commit(h plumbing.Hash) (Commit, error) {
	c, err := s.repo.CommitObject(h)
	if err != nil {
		return Commit{}, fmt.Errorf("reading commit %s: %w", h, err)
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return Commit{Hash: h.String(), Subject: subject, Author: c.Author.Name}, nil
}

// Stage writes commit's files into the staging directory (emptied first),
// within the limits, so the caller can load them as they would be live.
// A tree over the limits, or with a link leading out of the checkout, is
// ErrRefused.
func (s *Source) Stage(c Commit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tree, err := s.tree(c)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(s.stagingDir()); err != nil {
		return fmt.Errorf("emptying the staging checkout: %w", err)
	}
	return writeTree(s.stagingDir(), tree, nil, nil)
}

// tree returns the commit's tree once it is known to be within the limits
// and to hold no link leading out of it.
func (s *Source) tree(c Commit) (*object.Tree, error) {
	commit, err := s.repo.CommitObject(plumbing.NewHash(c.Hash))
	if err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", c.Short(), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading the tree of commit %s: %w", c.Short(), err)
	}
	files, size := 0, int64(0)
	err = tree.Files().ForEach(func(f *object.File) error {
		files++
		size += f.Size
		switch {
		case files > MaxFiles:
			return fmt.Errorf("%w: commit %s holds more than %d files", ErrRefused, c.Short(), MaxFiles)
		case size > MaxBytes:
			return fmt.Errorf("%w: commit %s holds more than %d MiB", ErrRefused, c.Short(), MaxBytes>>20)
		case f.Mode == filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("reading link %s of commit %s: %w", f.Name, c.Short(), err)
			}
			if escapes(f.Name, target) {
				return fmt.Errorf("%w: %s of commit %s links out of the repository (%s)", ErrRefused, f.Name, c.Short(), target)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// escapes says a link at name pointing to target leads out of the tree.
func escapes(name, target string) bool {
	if path.IsAbs(target) {
		return true
	}
	p := path.Join(path.Dir(name), target)
	return p == ".." || strings.HasPrefix(p, "../")
}

// appliedRef is where the source keeps the commit the live checkout is on.
const appliedRef = plumbing.ReferenceName("refs/reconcile/applied")

// Checkout moves the live checkout to commit: files the commit changed are
// written (in place when the file exists, so that a bind mount of it sees
// the new content), files it no longer tracks are removed, and untracked
// ones (a service's data written beside its files) are left alone.
func (s *Source) Checkout(c Commit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tree, err := s.tree(c)
	if err != nil {
		return err
	}
	old, _ := s.appliedTree()
	if err := writeTree(s.liveDir(), tree, old, s.seen); err != nil {
		return fmt.Errorf("checking out commit %s: %w", c.Short(), err)
	}
	if err := s.repo.Storer.SetReference(plumbing.NewHashReference(appliedRef, plumbing.NewHash(c.Hash))); err != nil {
		return fmt.Errorf("recording commit %s as applied: %w", c.Short(), err)
	}
	return nil
}

// Applied is the commit the live checkout is on ("" before the first).
func (s *Source) Applied() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, err := s.repo.Reference(appliedRef, false)
	if err != nil {
		return ""
	}
	return ref.Hash().String()
}

// appliedTree is the live checkout's commit's tree (nil before the first).
func (s *Source) appliedTree() (*object.Tree, error) {
	ref, err := s.repo.Reference(appliedRef, false)
	if err != nil {
		return nil, err
	}
	commit, err := s.repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("reading the applied commit: %w", err)
	}
	return commit.Tree()
}

// LocalEdits lists the files of the live checkout that differ from its
// commit (changed, replaced or removed by hand). Only the commit's files
// are looked at: a service's data written beside them is not an edit, and
// a large data directory is never walked.
func (s *Source) LocalEdits() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tree, err := s.appliedTree()
	if err != nil || tree == nil {
		return nil, nil // nothing checked out yet
	}
	return edits(s.liveDir(), tree, s.seen)
}

// Restore puts the live checkout's files back as its commit has them.
func (s *Source) Restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tree, err := s.appliedTree()
	if err != nil {
		return fmt.Errorf("reading the live checkout's commit: %w", err)
	}
	if err := writeTree(s.liveDir(), tree, tree, s.seen); err != nil {
		return fmt.Errorf("putting the live checkout back: %w", err)
	}
	return nil
}
