package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/reconcile-dev/reconcile/desired/gitsource"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// GitSource is a daemon's git source (--git): the project's files are the
// live checkout of the followed ref, which this daemon moves to each new
// commit that loads, as polled every Interval or poked by a webhook.
type GitSource struct {
	Follower *gitsource.Follower
	Interval time.Duration
	// WebhookSecret is the forge's webhook secret; empty refuses webhooks.
	WebhookSecret []byte
	// First and FirstErr are what the command line's Sync at start did,
	// before the project was loaded: recorded once the project runs.
	First    gitsource.Step
	FirstErr error
}

// maxEditsNamed bounds the files one LocalEdit record names.
const maxEditsNamed = 10

// followGit keeps the live checkout on the followed ref until ctx ends:
// a Sync every Interval or when poked (never on the events reader), each
// outcome recorded on p. A commit in force whose rollout is rolled back is
// marked bad and the checkout goes back to the last good one. The project
// reloads from what the checkout's new files say through its file watch,
// as it would after an edit by hand.
func (h *host) followGit(ctx context.Context, p *Project) {
	gs := h.opts.Git
	recs, stop := h.records.Subscribe()
	defer stop()
	unreachable := false
	report := func(st gitsource.Step, err error) {
		src := gs.Follower.Source
		h.revision()
		if err != nil {
			if !unreachable {
				p.records.Event(record.SourceUnreachable, "", "", fmt.Sprintf("git source %s: %v; commit %s stays in force, fetched again in %s or on a webhook", src.Describe(), err, short(src.Applied()), gs.Interval))
			}
			unreachable = true
			return
		}
		if unreachable {
			p.log.Info("git source reachable again", "source", src.Describe())
		}
		unreachable = false
		h.met.GitFetched(time.Now())
		h.reportEdits(p, st.Edited)
		switch {
		case st.Refused != nil:
			p.records.Event(record.CommitRefused, "", "", fmt.Sprintf("commit %s (%s) refused: %v; commit %s stays in force", st.Commit.Short(), st.Commit.Subject, st.Refused, short(src.Applied())))
		case st.Applied && st.From == "":
			p.records.Event(record.CommitApplied, "", "", fmt.Sprintf("commit %s (%s, by %s) checked out", st.Commit.Short(), st.Commit.Subject, st.Commit.Author))
		case st.Applied:
			p.records.Event(record.CommitApplied, "", "", fmt.Sprintf("commit %s (%s, by %s) applied, replacing %s", st.Commit.Short(), st.Commit.Subject, st.Commit.Author, short(st.From)))
		}
	}
	report(gs.First, gs.FirstErr)
	tick := time.NewTicker(gs.Interval)
	defer tick.Stop()
	var cause rolloutCauses
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.gitPoke:
		case rec, ok := <-recs:
			if !ok {
				return
			}
			if rec.Project == p.Name() && cause.see(rec) {
				h.markBad(p)
			}
			continue
		}
		report(gs.Follower.Sync(ctx))
	}
}

// rolloutCauses tells a rollout a commit started from one an image update
// started (x-reconcile.image_updates): only the former's rollback makes the
// commit bad. A service's rollout is the commit's when a commit was applied
// after the service's last image update began.
type rolloutCauses struct {
	seq      int
	commit   int
	image    map[string]int
	ofCommit map[string]bool
}

// see learns from one record of the project, and says whether it is the
// rollback of a rollout the commit in force started.
func (c *rolloutCauses) see(rec record.Record) bool {
	if c.image == nil {
		c.image, c.ofCommit = map[string]int{}, map[string]bool{}
	}
	c.seq++
	switch rec.Reason {
	case record.CommitApplied:
		c.commit = c.seq
	case record.ImageUpdateStarted:
		c.image[rec.Service] = c.seq
	case record.RolloutStarted:
		c.ofCommit[rec.Service] = c.commit > c.image[rec.Service]
	case record.RolloutComplete:
		delete(c.ofCommit, rec.Service)
	case record.RolledBack:
		of := c.ofCommit[rec.Service]
		delete(c.ofCommit, rec.Service)
		return of
	}
	return false
}

// handEdited puts back what was edited by hand in the live checkout, at
// once when a watched file changes: the edit is never loaded, nor a
// configuration file it changed reloaded. True when it found any.
func (h *host) handEdited(p *Project) bool {
	src := h.opts.Git.Follower.Source
	edited, err := src.LocalEdits()
	if err != nil {
		p.log.Warn("comparing the git checkout with its commit", "error", err)
		return false
	}
	if len(edited) == 0 {
		return false
	}
	if err := src.Restore(); err != nil {
		p.log.Warn("putting the git checkout back", "error", err)
		return false
	}
	h.reportEdits(p, edited)
	return true
}

// reportEdits records the hand edits put back.
func (h *host) reportEdits(p *Project, edited []string) {
	if len(edited) == 0 {
		return
	}
	named := edited
	if len(named) > maxEditsNamed {
		named = append(named[:maxEditsNamed:maxEditsNamed], fmt.Sprintf("and %d more", len(edited)-maxEditsNamed))
	}
	p.records.Event(record.LocalEdit, "", "", fmt.Sprintf("%s of the live checkout edited by hand: put back as commit %s has them", strings.Join(named, ", "), short(h.opts.Git.Follower.Source.Applied())))
}

// markBad marks the commit in force bad after its rollout was rolled
// back, and goes back to the commit applied before it.
func (h *host) markBad(p *Project) {
	f := h.opts.Git.Follower
	bad := f.Source.Applied()
	if bad == "" || f.Bad(bad) {
		return
	}
	back, ok, err := f.MarkBad(bad)
	switch {
	case err != nil:
		p.records.Event(record.CommitBad, "", "", fmt.Sprintf("commit %s rolled back: marked bad, but going back failed: %v", short(bad), err))
	case ok:
		p.records.Event(record.CommitBad, "", "", fmt.Sprintf("commit %s rolled back: marked bad, back to commit %s (%s) until a newer commit arrives", short(bad), back.Short(), back.Subject))
	default:
		p.records.Event(record.CommitBad, "", "", fmt.Sprintf("commit %s rolled back: marked bad; no earlier commit was applied by this daemon to go back to, its files stay until a newer commit arrives", short(bad)))
	}
	h.revision()
}

// revision stamps the commit in force on records and metrics.
func (h *host) revision() {
	if h.opts.Git == nil {
		return
	}
	rev := short(h.opts.Git.Follower.Source.Applied())
	h.records.SetRevision(rev)
	for _, p := range h.list() {
		h.met.GitCommit(p.Name(), rev)
	}
}

// pokeGit asks for a fetch now (a webhook); a fetch already asked for
// covers it.
func (h *host) pokeGit() {
	select {
	case h.gitPoke <- struct{}{}:
	default:
	}
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
