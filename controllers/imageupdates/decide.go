// Package imageupdates follows the tags of the services that ask for it
// (x-reconcile.image_updates): when a tag points to a new digest at the
// registry, old enough (min_age), and not one that failed before, the
// service's desired image is pinned to it ("repo:tag@sha256:..."), which is
// a change of definition the rolling update carries out, monitors and, on
// failure, rolls back; then the digest is marked failed and the pin goes
// back to the last good digest. What it followed is kept in the state
// directory, so a restarted daemon pins what it pinned.
package imageupdates

import (
	"slices"
	"time"
)

// Entry is what is known of one service's tag.
type Entry struct {
	// Baseline is the digest the tag had when first followed: what the
	// service ran, unpinned, before any update.
	Baseline string `json:"baseline"`
	// Pinned is the digest the desired image is pinned to ("" unpinned).
	Pinned string `json:"pinned,omitempty"`
	// Tag is the tag Pinned is of, when the semver policy moved the
	// service off the file's tag ("" is the file's).
	Tag string `json:"tag,omitempty"`
	// Good is the last pinned digest whose rollout completed, GoodTag its
	// tag.
	Good    string `json:"good,omitempty"`
	GoodTag string `json:"good_tag,omitempty"`
	// Rolling says Pinned is being rolled out: its verdict is awaited.
	Rolling bool `json:"rolling,omitempty"`
	// Failed digests were rolled back and are not tried again.
	Failed []string `json:"failed,omitempty"`
	// FirstSeen dates a digest whose image says nothing of its age.
	FirstSeen map[string]time.Time `json:"first_seen,omitempty"`
}

// Current is the digest the service is meant to run.
func (e *Entry) Current() string {
	if e.Pinned != "" {
		return e.Pinned
	}
	return e.Baseline
}

// Action is what Decide says to do with a tag's digest.
type Action int

const (
	// Nothing: the digest runs already, or failed before.
	Nothing Action = iota
	// Wait: a new digest younger than min_age.
	Wait
	// Update: pin the new digest and roll it out.
	Update
)

// Decision is Decide's verdict; Until is when a waited-for digest is old
// enough.
type Decision struct {
	Action Action
	Until  time.Time
}

// Decide says what to do with digest (created at created, zero when the
// image does not say; then dated by when it was first seen) for a
// service whose entry is e, at now. It changes nothing.
func Decide(e *Entry, digest string, created, now time.Time, minAge time.Duration) Decision {
	if e.Rolling || digest == e.Current() || slices.Contains(e.Failed, digest) {
		return Decision{}
	}
	born := created
	if born.IsZero() {
		born = e.FirstSeen[digest]
		if born.IsZero() {
			born = now
		}
	}
	if ripe := born.Add(minAge); now.Before(ripe) {
		return Decision{Action: Wait, Until: ripe}
	}
	return Decision{Action: Update}
}
