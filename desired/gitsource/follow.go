package gitsource

import (
	"context"
	"fmt"
	"strings"
)

// Validator loads the project staged at dir (a candidate commit's) and
// says why it cannot be applied; nil when it loads.
type Validator func(ctx context.Context, dir string, c Commit) error

// Follower keeps the live checkout on the newest good commit of the
// followed ref: what Sync finds is staged and validated before the live
// checkout moves, a refused commit is not tried again, and a commit marked
// bad (its rollout rolled back) is left for the last good one until a
// newer commit arrives. It remembers the commits it applied in memory: a
// restarted daemon starts from what the live checkout holds.
type Follower struct {
	Source   *Source
	Validate Validator

	refused string
	bad     map[string]bool
	// applied are the commits this follower moved the live checkout to,
	// oldest first: MarkBad goes back along them.
	applied []Commit
}

// Step is what one Sync did.
type Step struct {
	// Commit is the followed ref's commit, as fetched.
	Commit Commit
	// Applied says the live checkout moved to Commit, from From ("" on the
	// first checkout).
	Applied bool
	From    string
	// Refused is why Commit was not applied (its files do not load, or are
	// over the limits); nil otherwise. Reported once per commit.
	Refused error
	// Edited are the live checkout's files found edited by hand and put
	// back.
	Edited []string
}

// Sync puts hand edits of the live checkout back, fetches the followed
// ref, and applies its commit when it is new, loads and is not marked bad.
// Its error is the source's (unreachable, unreadable): the live checkout
// is left as it was.
func (f *Follower) Sync(ctx context.Context) (Step, error) {
	var st Step
	edited, err := f.Source.LocalEdits()
	if err != nil {
		return st, err
	}
	if len(edited) > 0 {
		if err := f.Source.Restore(); err != nil {
			return st, err
		}
		st.Edited = edited
	}
	c, err := f.Source.Fetch(ctx)
	if err != nil {
		return st, err
	}
	st.Commit = c
	live := f.Source.Applied()
	if c.Hash == live || c.Hash == f.refused || f.bad[c.Hash] {
		return st, nil
	}
	if err := f.Source.Stage(c); err != nil {
		f.refused, st.Refused = c.Hash, err
		return st, nil
	}
	if err := f.Validate(ctx, f.Source.StagingProjectDir(), c); err != nil {
		f.refused, st.Refused = c.Hash, err
		return st, nil
	}
	if err := f.Source.Checkout(c); err != nil {
		return st, err
	}
	f.applied = append(f.applied, c)
	st.Applied, st.From = true, live
	return st, nil
}

// MarkBad marks hash bad, so that Sync does not apply it again; when the
// live checkout is on it, the checkout goes back to the commit applied
// before it, which is returned (ok false when there is none to go back to).
func (f *Follower) MarkBad(hash string) (back Commit, ok bool, err error) {
	if f.bad == nil {
		f.bad = map[string]bool{}
	}
	f.bad[hash] = true
	if f.Source.Applied() != hash {
		return Commit{}, false, nil
	}
	for i := len(f.applied) - 1; i >= 0; i-- {
		c := f.applied[i]
		if c.Hash == hash || f.bad[c.Hash] {
			continue
		}
		if err := f.Source.Checkout(c); err != nil {
			return Commit{}, false, fmt.Errorf("going back to commit %s: %w", c.Short(), err)
		}
		f.applied = append(f.applied, c)
		return c, true, nil
	}
	return Commit{}, false, nil
}

// Bad says whether hash was marked bad.
func (f *Follower) Bad(hash string) bool { return f.bad[hash] }

// Unstage rewrites the staging directory's path in text (a load error
// naming a staged file) as the commit's: "<commit12>:path/in/repo".
func (f *Follower) Unstage(text string, c Commit) string {
	return strings.ReplaceAll(text, f.Source.stagingDir()+"/", c.Short()+":")
}
