package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/desired/gitsource"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/httpapi"
	"github.com/reconcile-dev/reconcile/internal/secrets"
	"github.com/reconcile-dev/reconcile/internal/statedir"
)

// gitFlags are --git's: where the project's files come from when they
// live in a repository rather than on this disk.
type gitFlags struct {
	url, ref, path    string
	tokenFile, user   string
	sshKey, knownHost string
	interval          time.Duration
	webhookSecretFile string

	// follower is the source once opened (before the project is loaded);
	// first is what opening it did.
	follower *gitsource.Follower
	first    gitsource.Step
	firstErr error
	// lock keeps a second reconcile off the live checkout for as long as
	// this process runs.
	lock *statedir.Lock
}

// DefaultGitInterval is how often a daemon polls its git source when no
// webhook pokes it.
const DefaultGitInterval = time.Minute

func (gf *gitFlags) register(pf *pflag.FlagSet) {
	pf.StringVar(&gf.url, "git", "", "take the compose files from this git repository (https://, ssh://, git@host:path, file://): fetched into the state directory, the project directory is its checkout; the daemon follows --git-ref (docs/sources.md)")
	pf.StringVar(&gf.ref, "git-ref", "", "with --git: the branch, tag or full commit hash to follow (default: the remote's default branch); a commit hash pins it")
	pf.StringVar(&gf.path, "git-path", "", "with --git: the directory in the repository holding the compose files")
	pf.StringVar(&gf.tokenFile, "git-token-file", "", "with an https --git: file holding a token (GitHub, Gitea: a personal access token), sent as --git-username's password; never printed")
	pf.StringVar(&gf.user, "git-username", "git", "with --git-token-file: the user name sent with the token")
	pf.StringVar(&gf.sshKey, "git-ssh-key-file", "", "with an ssh --git: the private key (no passphrase)")
	pf.StringVar(&gf.knownHost, "git-known-hosts", "", "with an ssh --git: known_hosts file holding the server's host key (required)")
	pf.DurationVar(&gf.interval, "git-interval", DefaultGitInterval, "daemon with --git: how often the remote is polled (a webhook fetches at once)")
	pf.StringVar(&gf.webhookSecretFile, "git-webhook-secret-file", "", "daemon with --git and --listen: file holding the secret of the forge's push webhook (POST /hooks/git, signed as GitHub and Gitea sign); without it the hook is refused")
}

// openGit opens the git source, fetches the followed ref and, when its
// commit is new and loads, moves the live checkout to it; the project is
// then loaded from the live checkout. A source that cannot be reached
// (exit 3), or whose newest commit is refused (exit 2), ends the command;
// only a daemon with a checkout from an earlier run goes on with that
// checkout, reporting and retrying.
func (g *globals) openGit(ctx context.Context, acting, keepsRunning bool) error {
	gf := &g.git
	if gf.url == "" {
		return nil
	}
	if g.swarm {
		return withCode(exitInput, errors.New("--git is not yet taken with --swarm"))
	}
	if g.projectsDir != "" || g.discover {
		return withCode(exitInput, errors.New("--git takes one project: --projects and --discover are not yet taken with it"))
	}
	if g.projectDir != "" {
		return withCode(exitInput, errors.New("--git: the project directory is the checkout's --git-path; --project-directory is not taken with it"))
	}
	if gf.interval <= 0 {
		return withCode(exitInput, fmt.Errorf("--git-interval %s: want a positive duration", gf.interval))
	}
	stateDir, err := g.stateDirectory()
	if err != nil {
		return withCode(exitInput, err)
	}
	// The live checkout is the daemon's (or --once's) alone, under the
	// source's lock; diff, status and verify look at the ref's commit in a
	// checkout of their own and never move the live one.
	dir := filepath.Join(stateDir, "git", sourceID(gf.url, gf.ref, gf.path))
	if !acting {
		dir = filepath.Join(dir, "view")
	} else {
		if gf.lock, err = statedir.Acquire(dir, "source"); err != nil {
			return withCode(exitInput, fmt.Errorf("git source %s: %w", gitsource.Redacted(gf.url), err))
		}
	}
	auth := gitsource.Auth{TokenFile: gf.tokenFile, Username: gf.user, SSHKeyFile: gf.sshKey, KnownHostsFile: gf.knownHost}
	src, err := gitsource.New(gitsource.Options{URL: gf.url, Ref: gf.ref, Path: gf.path, Dir: dir, Auth: auth})
	if err != nil {
		return withCode(exitInput, err)
	}
	g.secrets.Include(secrets.New(auth.Secrets()...))
	loader, err := engine.Loader()
	if err != nil {
		return err
	}
	f := &gitsource.Follower{Source: src}
	f.Validate = func(ctx context.Context, dir string, c gitsource.Commit) error {
		opts, err := g.optionsIn(dir)
		if err != nil {
			return err
		}
		if _, err := desired.Load(ctx, loader, opts); err != nil {
			return errors.New(f.Unstage(desired.OneLine(err.Error()), c))
		}
		return nil
	}
	gf.follower = f
	gf.first, gf.firstErr = f.Sync(ctx)
	live := src.Applied()
	tolerated := keepsRunning && live != ""
	switch {
	case gf.firstErr != nil && !tolerated:
		return withCode(exitEngine, fmt.Errorf("git source %s: %w", src.Describe(), gf.firstErr))
	case gf.first.Refused != nil && !tolerated:
		return withCode(exitInput, fmt.Errorf("git source %s: commit %s refused: %w", src.Describe(), gf.first.Commit.Short(), gf.first.Refused))
	}
	g.log.Info("git source", "source", src.Describe(), "commit", g.revision(), "dir", src.ProjectDir())
	return nil
}

// sourceID names a source's directory in the state directory: one per
// repository, ref and path, so that two sources never share a checkout.
func sourceID(url, ref, path string) string {
	sum := sha256.Sum256([]byte(url + "\x00" + ref + "\x00" + path))
	return gitsource.RepoName(url) + "-" + hex.EncodeToString(sum[:6])
}

// gitDaemon is what the daemon follows the source with.
func (g *globals) gitDaemon() (*daemon.GitSource, error) {
	gf := &g.git
	if gf.follower == nil {
		return nil, nil
	}
	gs := &daemon.GitSource{Follower: gf.follower, Interval: gf.interval, First: gf.first, FirstErr: gf.firstErr}
	if gf.webhookSecretFile != "" {
		secret, err := httpapi.ReadToken(gf.webhookSecretFile)
		if err != nil {
			return nil, withCode(exitInput, fmt.Errorf("--git-webhook-secret-file: %w", err))
		}
		gs.WebhookSecret = []byte(secret)
		g.secrets.Include(secrets.New(secret))
	}
	return gs, nil
}

// revision is the git source's commit in force ("" without --git).
func (g *globals) revision() string {
	if g.git.follower == nil {
		return ""
	}
	if h := g.git.follower.Source.Applied(); len(h) >= 12 {
		return h[:12]
	}
	return ""
}
