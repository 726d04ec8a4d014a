package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/filewatch"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/observed"
)

// agent finds the projects of a host and hands each to a project of its
// own: the subdirectories of --projects, and with --discover the compose
// projects found on the engine by compose's labels. It rescans when the
// directory changes, at every relist, and on SIGHUP. Sources that cannot
// run (invalid, opted out, held elsewhere) are reported once per change and
// tried again: an invalid or opted-out one when its files change, a held
// one at every rescan.
type agent struct {
	h        *host
	dir      string
	discover bool
	entries  *filewatch.Entries
	// engineKick asks for a relist: a container of a project not yet
	// known was created.
	engineKick chan struct{}
	dirKick    chan struct{}

	mu      sync.Mutex
	sources map[string]*source
}

// source is one place a project comes from.
type source struct {
	key string
	// from says where, for records: "directory <path>", "the engine", or
	// "-f".
	from string
	opts desired.Options
	// explicit is the -f project: it runs whatever x-reconcile.enabled says.
	explicit bool
	p        *Project
	// problem is why it does not run ("" when it runs), said once.
	problem *ProjectProblem
	// filesHash is the hash of its compose files when it last failed to
	// load or opted out: it is tried again when they change.
	filesHash string
	// absent counts the listings in a row that showed a discovered
	// project without a container.
	absent int
}

// releaseAfterListings is how many listings in a row must show a
// discovered project without a container before it is let go: one is not
// enough, since a stop-first update of a project's only replica removes it
// one pass before it adds its successor.
const releaseAfterListings = 2

// ProjectProblem is a project an agent found and does not reconcile.
type ProjectProblem struct {
	Project string        `json:"project,omitempty"`
	Source  string        `json:"source"`
	Reason  record.Reason `json:"reason"`
	Message string        `json:"message"`
}

// newAgent starts watching the projects directory; first is the -f
// project, already running, if any.
func newAgent(h *host, first *desired.State) (*agent, error) {
	a := &agent{h: h, dir: h.opts.ProjectsDir, discover: h.opts.Discover, sources: map[string]*source{},
		engineKick: make(chan struct{}, 1), dirKick: make(chan struct{}, 1)}
	if first != nil {
		a.sources["-f"] = &source{key: "-f", from: "-f", explicit: true, p: h.lookup(first.Project.Name)}
	}
	if a.dir != "" {
		abs, err := filepath.Abs(a.dir)
		if err != nil {
			return nil, fmt.Errorf("--projects %s: %w", a.dir, err)
		}
		a.dir = abs
		if a.entries, err = filewatch.WatchEntries(a.dir, desired.ComposeFileNames, clock.Real{}, h.log); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *agent) close() {
	if a.entries != nil {
		a.entries.Close()
	}
}

// run rescans on the directory's changes and relists on the engine's hints
// until ctx ends.
func (a *agent) run(ctx context.Context) {
	if a.entries != nil {
		go a.entries.Run(ctx, func() {
			select {
			case a.dirKick <- struct{}{}:
			default:
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.dirKick:
			a.scan(ctx, nil)
		case <-a.engineKick:
			if a.h.connected.Load() {
				if err := a.h.relist(ctx); err != nil && ctx.Err() == nil {
					a.h.log.Warn("relisting for a new project failed", "error", err)
				}
			}
		}
	}
}

// kickEngine asks for a relist (from the events reader: never blocks).
func (a *agent) kickEngine() {
	if !a.discover {
		return
	}
	select {
	case a.engineKick <- struct{}{}:
	default:
	}
}

// listed is told of every listing of the engine: discovered projects come
// and go with it.
func (a *agent) listed(all *observed.Listing) {
	if !a.discover {
		go a.scan(a.h.run, nil) // a held project may be free now
		return
	}
	go a.scan(a.h.run, all.Origins())
}

// retryAll forgets why sources failed and rescans (SIGHUP).
func (a *agent) retryAll() {
	a.mu.Lock()
	for _, s := range a.sources {
		s.filesHash = ""
	}
	a.mu.Unlock()
	a.scan(a.h.run, nil)
}

// wanted is every source the agent should have now; origins nil keeps the
// discovered ones as they are (a directory change says nothing of them).
func (a *agent) wanted(origins []observed.Origin) map[string]*source {
	want := map[string]*source{}
	if s, ok := a.sources["-f"]; ok {
		want["-f"] = s
	}
	if a.dir != "" {
		dirs, err := desired.ProjectDirs(a.dir)
		if err != nil {
			a.h.log.Warn("reading the projects directory", "error", err)
			for k, s := range a.sources { // keep what runs: the directory may be back
				if strings.HasPrefix(k, "dir:") {
					want[k] = s
				}
			}
		}
		for _, d := range dirs {
			want["dir:"+d] = &source{key: "dir:" + d, from: "directory " + d, opts: desired.Options{ProjectDir: d}}
		}
	}
	if a.discover {
		if origins == nil {
			for k, s := range a.sources {
				if strings.HasPrefix(k, "engine:") {
					want[k] = s
				}
			}
		}
		for _, o := range origins {
			if a.elsewhere(o) || !a.matches(o.Project) {
				continue
			}
			want["engine:"+o.Project] = &source{key: "engine:" + o.Project, from: "the engine (" + strings.Join(o.ConfigFiles, ",") + ")",
				opts: desired.Options{ProjectName: o.Project, Files: o.ConfigFiles, ProjectDir: o.WorkingDir, EnvFiles: o.EnvFiles}}
		}
		if origins != nil {
			a.keepAbsent(want)
		}
	}
	return want
}

// keepAbsent keeps in want the running discovered projects that this
// listing showed without a container for the first time in a row.
func (a *agent) keepAbsent(want map[string]*source) {
	for k, s := range a.sources {
		if !strings.HasPrefix(k, "engine:") {
			continue
		}
		if _, ok := want[k]; ok {
			s.absent = 0
			continue
		}
		if s.p != nil && s.absent+1 < releaseAfterListings {
			s.absent++
			want[k] = s
		}
	}
}

// matches says whether --discover-match lets a discovered project in.
func (a *agent) matches(project string) bool {
	ok, err := path.Match(a.h.opts.DiscoverMatch, project)
	return err == nil && ok
}

// elsewhere says whether a project found on the engine already has a
// source: -f, or a directory of --projects (running or not; its problem is
// reported under the directory).
func (a *agent) elsewhere(o observed.Origin) bool {
	if a.dir != "" && filepath.Dir(filepath.Clean(o.WorkingDir)) == a.dir {
		return true
	}
	if p := a.h.lookup(o.Project); p != nil {
		s, ok := a.sources["engine:"+o.Project]
		return !ok || s.p != p
	}
	return false
}

// scan brings the running projects in line with the sources: new ones
// start, gone ones are let go, failed ones are tried again when their
// files changed. Scans run one at a time.
func (a *agent) scan(ctx context.Context, origins []observed.Origin) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	want := a.wanted(origins)
	for _, k := range slices.Sorted(maps.Keys(a.sources)) {
		if _, ok := want[k]; ok {
			continue
		}
		s := a.sources[k]
		delete(a.sources, k)
		if s.p != nil {
			why := "its directory is gone"
			if strings.HasPrefix(k, "engine:") {
				why = "it has no container left on the engine (taken down)"
			}
			a.h.release(s.p, why)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		s, ok := a.sources[k]
		if !ok {
			s = want[k]
			a.sources[k] = s
		}
		if s.p != nil || s.explicit {
			continue
		}
		a.try(ctx, s)
	}
}

// try starts a source's project, or says once why it cannot.
func (a *agent) try(ctx context.Context, s *source) {
	hash := filesHash(s.opts)
	if s.problem != nil && s.filesHash != "" && s.filesHash == hash {
		switch s.problem.Reason {
		case record.ProjectInvalid, record.ProjectDisabled:
			return // unchanged since it failed
		}
	}
	fail := func(name string, reason record.Reason, msg string) {
		pr := &ProjectProblem{Project: name, Source: s.from, Reason: reason, Message: msg}
		if s.problem == nil || *s.problem != *pr {
			a.h.records.For(name, nil).Event(reason, "", "", msg)
		}
		s.problem, s.filesHash = pr, hash
	}
	if strings.HasPrefix(s.key, "engine:") {
		if err := checkOrigin(s.opts); err != nil {
			fail(guessName(s), record.ProjectInvalid, fmt.Sprintf("%s: %v; not reconciled", s.from, err))
			return
		}
	}
	d, err := desired.Load(ctx, a.h.loader, s.opts)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		fail(guessName(s), record.ProjectInvalid, fmt.Sprintf("%s: %s; not reconciled until its files change", s.from, desired.OneLine(err.Error())))
		return
	}
	name := d.Project.Name
	switch {
	case d.Disabled:
		fail(name, record.ProjectDisabled, s.from+": x-reconcile.enabled is false; not reconciled")
		return
	case a.h.lookup(name) != nil:
		fail(name, record.ProjectSkipped, fmt.Sprintf("%s: project %s is already reconciled by this agent from %s", s.from, name, a.fromOf(name)))
		return
	}
	if err := LocalOnly(d, a.h.eng); err != nil {
		fail(name, record.ProjectInvalid, s.from+": "+desired.OneLine(err.Error()))
		return
	}
	locks, err := LockProject(a.h.stateDir, a.h.opts.LockDir, a.h.engineID, name)
	if err != nil {
		reason := record.ProjectInvalid
		if errors.Is(err, statedir.ErrLocked) {
			reason = record.ProjectSkipped
		}
		fail(name, reason, s.from+": "+err.Error())
		return
	}
	p, err := a.h.newProject(d, s.opts, locks)
	if err != nil {
		for _, l := range locks {
			_ = l.Release()
		}
		fail(name, record.ProjectInvalid, s.from+": "+err.Error())
		return
	}
	s.p, s.problem, s.filesHash = p, nil, ""
	a.h.start(p)
	p.Records().Event(record.ProjectAdded, "", "", fmt.Sprintf("reconciling project %s from %s (%d service(s))", name, s.from, len(d.Order)))
}

// checkOrigin vets the files a discovered project's labels name before
// anything reads them: any container may carry compose's labels, and the
// daemon reads as root. Its working directory must be absolute, and its
// compose and env files absolute regular files (not links) inside it.
func checkOrigin(opts desired.Options) error {
	dir := opts.ProjectDir
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("its working directory label %q is not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	for _, f := range append(slices.Clone(opts.Files), opts.EnvFiles...) {
		clean := filepath.Clean(f)
		rel, err := filepath.Rel(dir, clean)
		switch {
		case !filepath.IsAbs(f):
			return fmt.Errorf("its labels name %q, not an absolute path", f)
		case err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)):
			return fmt.Errorf("its labels name %s, outside its working directory %s", clean, dir)
		}
		st, err := os.Lstat(clean)
		if err != nil {
			return fmt.Errorf("its labels name %s: %w", clean, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("its labels name %s, which is not a regular file (%s)", clean, st.Mode().Type())
		}
	}
	return nil
}

// optedOut lets a running project go once its files opt out.
func (a *agent) optedOut(p *Project) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.sources {
		if s.p != p || s.explicit {
			continue
		}
		a.h.release(p, "its files now say x-reconcile.enabled: false")
		s.p = nil
		s.problem = &ProjectProblem{Project: p.Name(), Source: s.from, Reason: record.ProjectDisabled, Message: s.from + ": x-reconcile.enabled is false; not reconciled"}
		s.filesHash = filesHash(s.opts)
	}
}

// fromOf says where the running project name comes from.
func (a *agent) fromOf(name string) string {
	for _, s := range a.sources {
		if s.p != nil && s.p.Name() == name {
			return s.from
		}
	}
	return "elsewhere"
}

// problems lists the sources that do not run, for /status.
func (a *agent) problems() []ProjectProblem {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []ProjectProblem
	for _, k := range slices.Sorted(maps.Keys(a.sources)) {
		if s := a.sources[k]; s.p == nil && s.problem != nil {
			out = append(out, *s.problem)
		}
	}
	return out
}

// filesHash hashes the compose files a source loads (or would): a failed
// source is tried again once it differs.
func filesHash(opts desired.Options) string {
	files := opts.Files
	if len(files) == 0 {
		for _, n := range desired.ComposeFileNames {
			files = append(files, filepath.Join(opts.ProjectDir, n))
		}
	}
	var b strings.Builder
	for _, f := range files {
		b.WriteString(filewatch.Hash(f))
		b.WriteByte(',')
	}
	return b.String()
}

// guessName names a project that cannot be loaded, for its records: the
// name it was found under, or its directory's.
func guessName(s *source) string {
	if s.opts.ProjectName != "" {
		return s.opts.ProjectName
	}
	return filepath.Base(s.opts.ProjectDir)
}
