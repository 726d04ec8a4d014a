package imageupdates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/internal/safefile"
	"github.com/reconcile-dev/reconcile/observed/registry"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Registry says where a tag points now, and which tags a repository has.
type Registry interface {
	Resolve(ctx context.Context, image string) (registry.Tag, error)
	Tags(ctx context.Context, image string) ([]string, error)
}

// Local says which digest of image's repository the engine holds for the
// tag ("" when it holds none, or the image was built here).
type Local interface {
	LocalDigest(ctx context.Context, image string) (string, error)
}

// Recorder is where the updater's records go.
type Recorder interface {
	Event(reason record.Reason, service, container, message string)
}

// Updater follows the tags of one project's services.
type Updater struct {
	Registry Registry
	Local    Local
	Records  Recorder
	Clock    clock.Clock
	Log      *slog.Logger
	// File keeps the entries across runs (the state directory's).
	File string
	// Apply makes the desired state be derived again (a reload: the files
	// read and Override applied), after a pin changed.
	Apply func(why string)

	mu      sync.Mutex
	entries map[string]*Entry
	checked map[string]time.Time
	said    map[string]string // what was last recorded of a service's tag, not to repeat it
}

// Load reads the entries the file keeps; a missing file is none.
func (u *Updater) Load() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.entries, u.checked, u.said = map[string]*Entry{}, map[string]time.Time{}, map[string]string{}
	b, err := os.ReadFile(u.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the image update state: %w", err)
	}
	if err := json.Unmarshal(b, &u.entries); err != nil {
		return fmt.Errorf("reading the image update state %s: %w", u.File, err)
	}
	return nil
}

func (u *Updater) save() {
	b, err := json.MarshalIndent(u.entries, "", "  ")
	if err == nil {
		err = safefile.Replace(u.File, b, 0o600)
	}
	if err != nil {
		u.Log.Warn("writing the image update state", "error", err)
	}
}

// unpinned is image without a digest ("repo:tag@sha256:..." -> "repo:tag").
func unpinned(image string) string {
	if i := strings.Index(image, "@"); i > 0 {
		return image[:i]
	}
	return image
}

// split is image's repository and tag, as the file spells them ("latest"
// when it names none).
func split(image string) (repo, tag string) {
	image = unpinned(image)
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, "latest"
}

// pinnedImage is the image a pinned entry runs: its tag (a semver policy's
// may be another than the file's) at its digest.
func pinnedImage(file string, e *Entry) string {
	repo, tag := split(file)
	if e.Tag != "" {
		tag = e.Tag
	}
	return repo + ":" + tag + "@" + e.Pinned
}

// Override pins the desired image of each service whose entry pins one:
// called on every load of the files, so a pin outlives reloads.
func (u *Updater) Override(d *desired.State) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, s := range d.Services {
		e := u.entries[name]
		if s.Policy.Images == nil || e == nil || e.Pinned == "" {
			continue
		}
		s.Config.Image = pinnedImage(s.Config.Image, e)
		// the Compose SDK creates from the project's own copy
		if d.Project != nil {
			if ps, ok := d.Project.Services[name]; ok {
				ps.Image = s.Config.Image
				d.Project.Services[name] = ps
			}
		}
	}
}

// Annotate marks, in st, the services whose new digest is being rolled out.
func (u *Updater) Annotate(st *plan.ProjectStatus) {
	pending := u.Pending()
	for i := range st.Services {
		st.Services[i].ImageUpdate = pending[st.Services[i].Service]
	}
}

// Pending is each followed service's digest being rolled out, for status.
func (u *Updater) Pending() map[string]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]string{}
	for name, e := range u.entries {
		if e.Rolling {
			out[name] = e.Pinned
		}
	}
	return out
}

// Check asks the registry about each followed service of d whose interval
// has passed, and pins a new digest Decide takes.
func (u *Updater) Check(ctx context.Context, d *desired.State) {
	now := u.Clock.Now()
	for _, name := range d.Order {
		s := d.Services[name]
		iu := s.Policy.Images
		if iu == nil {
			continue
		}
		u.mu.Lock()
		due := now.Sub(u.checked[name]) >= iu.Interval
		if due {
			u.checked[name] = now
		}
		u.mu.Unlock()
		if due {
			u.check(ctx, name, unpinned(s.Config.Image), iu)
		}
	}
}

func (u *Updater) check(ctx context.Context, service, image string, iu *desired.ImageUpdates) {
	u.mu.Lock()
	e := u.entries[service]
	u.mu.Unlock()
	// semver: the highest version tag above the one running
	target, newTag := image, ""
	if iu.Policy == desired.ImagePolicySemver {
		repo, tag := split(image)
		if e != nil && e.Tag != "" {
			tag = e.Tag
		}
		tags, err := u.Registry.Tags(ctx, image)
		if err != nil {
			u.say(service, record.RegistryUnreachable, "unreachable", fmt.Sprintf("image %s: %v; asked again at the next interval", image, err))
			return
		}
		if newTag = NewestVersion(tag, tags); newTag == "" {
			newTag = tag // none higher: the running tag may still move
		}
		target = repo + ":" + newTag
	}
	tag, err := u.Registry.Resolve(ctx, target)
	if err != nil {
		u.say(service, record.RegistryUnreachable, "unreachable", fmt.Sprintf("image %s: %v; asked again at the next interval", target, err))
		return
	}
	if e == nil {
		// the first look: what runs is the start (the engine's digest of
		// the file's tag, else the registry's), never an update
		e = &Entry{}
		if u.Local != nil {
			e.Baseline, _ = u.Local.LocalDigest(ctx, image)
		}
		if e.Baseline == "" && target != image {
			if first, err := u.Registry.Resolve(ctx, image); err == nil {
				e.Baseline = first.Digest
			}
		}
		if e.Baseline == "" {
			e.Baseline = tag.Digest
		}
	}
	now := u.Clock.Now()
	u.mu.Lock()
	if u.entries[service] == nil {
		u.entries[service] = e
		u.save()
	}
	e = u.entries[service]
	if e.FirstSeen == nil {
		e.FirstSeen = map[string]time.Time{}
	}
	if _, ok := e.FirstSeen[tag.Digest]; !ok && tag.Digest != e.Current() {
		e.FirstSeen[tag.Digest] = now
		u.save()
	}
	dec := Decide(e, tag.Digest, tag.Created, now, iu.MinAge)
	from := e.Current()
	if dec.Action == Update {
		e.Pinned, e.Rolling = tag.Digest, true
		if newTag != "" {
			e.Tag = newTag
		}
		u.save()
	}
	u.mu.Unlock()
	switch dec.Action {
	case Wait:
		u.say(service, record.ImageUpdateWaiting, "wait "+tag.Digest, fmt.Sprintf("image %s: new digest %s, younger than min_age %s: taken at %s", target, short(tag.Digest), iu.MinAge, dec.Until.UTC().Format(time.RFC3339)))
	case Update:
		u.say(service, record.ImageUpdateStarted, "update "+tag.Digest, fmt.Sprintf("image %s: digest %s replaces %s; rolled out by the service's update_config", target, short(tag.Digest), short(from)))
		u.Apply("image update of " + service)
	default:
		u.mu.Lock()
		if u.said[service] == "unreachable" {
			delete(u.said, service)
		}
		u.mu.Unlock()
	}
}

// say records once per distinct what for a service.
func (u *Updater) say(service string, reason record.Reason, what, message string) {
	u.mu.Lock()
	repeat := u.said[service] == what
	u.said[service] = what
	u.mu.Unlock()
	if !repeat {
		u.Records.Event(reason, service, "", message)
	}
}

// Observe learns a rollout's verdict from the records: a pinned digest
// whose rollout completed (or, without update_config, whose service is in
// sync again) is the last good one; one rolled back is failed and never
// tried again, and the pin goes back to the last good digest.
func (u *Updater) Observe(rec record.Record) {
	u.mu.Lock()
	e := u.entries[rec.Service]
	if e == nil || !e.Rolling {
		u.mu.Unlock()
		return
	}
	var reason record.Reason
	var message string
	switch rec.Reason {
	case record.RolloutComplete, record.Synced:
		e.Good, e.GoodTag, e.Rolling = e.Pinned, e.Tag, false
		reason, message = record.ImageUpdated, fmt.Sprintf("digest %s runs healthy on every replica", short(e.Pinned))
	case record.RolledBack, record.RolloutPaused:
		bad := e.Pinned
		if !slices.Contains(e.Failed, bad) {
			e.Failed = append(e.Failed, bad)
		}
		e.Pinned, e.Tag, e.Rolling = e.Good, e.GoodTag, false
		reason, message = record.ImageUpdateFailed, fmt.Sprintf("digest %s failed its rollout (%s): not tried again; back to %s", short(bad), rec.Reason, short(e.Current()))
	default:
		u.mu.Unlock()
		return
	}
	u.save()
	u.mu.Unlock()
	u.Records.Event(reason, rec.Service, "", message)
	if reason == record.ImageUpdateFailed {
		u.Apply("image update of " + rec.Service + " failed")
	}
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// LocalDigestOf finds, among an image's repo digests (as the engine
// inspects them), the one of image's repository.
func LocalDigestOf(image string, repoDigests []string) string {
	ref, err := name.NewTag(image, name.WeakValidation)
	if err != nil {
		return ""
	}
	for _, rd := range repoDigests {
		d, err := name.NewDigest(rd, name.WeakValidation)
		if err == nil && d.Context().Name() == ref.Context().Name() {
			return d.DigestStr()
		}
	}
	return ""
}
