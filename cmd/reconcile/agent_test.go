package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// agentProject is a project for an agent's directory: named by its file
// (name:), so that the test's teardown finds it wherever it lives.
func agentProject(t *testing.T, root, sub, services string) *enginetest.Project {
	t.Helper()
	p := enginetest.NewProject(t, "name: {{.Name}}\n"+services)
	b, err := os.ReadFile(p.File)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// written beside, then renamed in: the agent sees a complete file
	tmp := filepath.Join(root, "."+sub+".compose.yaml")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "compose.yaml")); err != nil {
		t.Fatal(err)
	}
	p.Dir, p.File = dir, filepath.Join(dir, "compose.yaml")
	return p
}

// startAgent runs an agent over root with its own state directory and HTTP
// address.
func startAgent(t *testing.T, root string, extra ...string) (*enginetest.Proc, string) {
	t.Helper()
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	args := append([]string{"--projects", root, "--state-dir", t.TempDir(), "--listen", addr, "--log-format", "json"}, extra...)
	d := enginetest.Start(t, root, nil, args...)
	d.WaitFor(`"daemon started"`, 30*time.Second)
	return d, "http://" + addr
}

// projectRecords reads /events?project=.
func projectRecords(t *testing.T, base, project string) []record.Record {
	t.Helper()
	out := enginetest.Records(t, base+"/events?project="+project)
	if len(out) == 0 {
		t.Fatalf("/events?project=%s: no record", project)
	}
	return out
}

// dockerKill is `docker kill`: SIGKILL through the engine.
func dockerKill(t *testing.T, p *enginetest.Project, id string) {
	t.Helper()
	if _, err := p.Engine.Client.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
}

func recordOf(recs []record.Record, reason record.Reason, project string) *record.Record {
	for i := range recs {
		if recs[i].Reason == reason && recs[i].Project == project {
			return &recs[i]
		}
	}
	return nil
}

func waitRecord(t *testing.T, base string, reason record.Reason, project string) record.Record {
	t.Helper()
	var found *record.Record
	eventually(t, 60*time.Second, string(reason)+" of "+project, func() bool {
		found = recordOf(records(t, base), reason, project)
		return found != nil
	})
	return *found
}

// TestAgentReconcilesADirectoryOfProjects: one agent over a directory of
// projects, one of them invalid and one opted out: the good ones converge
// and recover kills while the bad one is reported; a directory added live
// is reconciled, one removed is let go with its containers running.
func TestAgentReconcilesADirectoryOfProjects(t *testing.T) {
	root := t.TempDir()
	shop := agentProject(t, root, "shop", "services:\n  api:\n    image: {{.Image}}\n    restart: always\n    deploy: {replicas: 2}\n")
	blog := agentProject(t, root, "blog", "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	optout := agentProject(t, root, "optout", "x-reconcile: {enabled: false}\nservices:\n  web:\n    image: {{.Image}}\n")
	if err := os.MkdirAll(filepath.Join(root, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "broken", "compose.yaml"), []byte("services:\n  web:\n    image: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base := startAgent(t, root)

	eventually(t, 60*time.Second, "shop and blog converged", func() bool {
		return converged(shop, map[string]int{"api": 2})() && converged(blog, map[string]int{"web": 1})()
	})
	bad := waitRecord(t, base, record.ProjectInvalid, "broken")
	if !strings.Contains(bad.Message, filepath.Join("broken", "compose.yaml")+":") {
		t.Errorf("the invalid project's record does not name file and line: %q", bad.Message)
	}
	waitRecord(t, base, record.ProjectDisabled, optout.Name)
	if n := len(optout.Snapshot().Containers); n != 0 {
		t.Errorf("the opted-out project got %d containers", n)
	}

	// kills in two projects: both come back
	for _, c := range []struct {
		p    *enginetest.Project
		name string
	}{{shop, shop.Name + "-api-1"}, {blog, blog.Name + "-web-1"}} {
		dockerKill(t, c.p, c.p.IDs()[c.name])
	}
	eventually(t, 30*time.Second, "killed replicas back", func() bool {
		return running(shop)["api"] == 2 && running(blog)["web"] == 1
	})

	// /status: every project and what is not reconciled; ?project= one
	var all daemon.AgentStatus
	if err := json.Unmarshal([]byte(httpGet(t, base+"/status")), &all); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ps := range all.Projects {
		names = append(names, ps.Project)
	}
	slices.Sort(names)
	want := []string{blog.Name, shop.Name}
	slices.Sort(want)
	if !slices.Equal(names, want) || len(all.Problems) != 2 {
		t.Errorf("/status: projects %v (want %v), problems %+v (want broken and optout)", names, want, all.Problems)
	}
	var one plan.ProjectStatus
	if err := json.Unmarshal([]byte(httpGet(t, base+"/status?project="+shop.Name)), &one); err != nil || one.Project != shop.Name {
		t.Errorf("/status?project=%s: %+v %v", shop.Name, one.Project, err)
	}
	for _, r := range projectRecords(t, base, shop.Name) {
		if r.Project != shop.Name {
			t.Errorf("/events?project=%s gave a record of %q", shop.Name, r.Project)
		}
	}
	if m := httpGet(t, base+"/metrics"); !strings.Contains(m, `reconcile_total{project="`+shop.Name+`",result="success"}`) || !strings.Contains(m, `project="`+blog.Name+`"`) {
		t.Error("/metrics does not carry the projects")
	}

	// `status --projects` shows the same, without a daemon
	r := enginetest.Run(t, root, nil, "status", "--projects", root, "-o", "json")
	var cli daemon.AgentStatus
	if err := json.Unmarshal([]byte(r.Stdout), &cli); r.Code != 0 || err != nil {
		t.Fatalf("status --projects: %s (%v)", r, err)
	}
	if len(cli.Projects) != 2 || len(cli.Problems) != 2 {
		t.Errorf("status --projects: %d projects, problems %+v; want shop and blog, broken and optout", len(cli.Projects), cli.Problems)
	}
	if r := enginetest.Run(t, root, nil, "status", "--projects", root); !strings.Contains(r.Stdout, "PROJECT "+shop.Name) || !strings.Contains(r.Stdout, "NOT RECONCILED broken") {
		t.Errorf("status --projects as a table:\n%s", r)
	}

	// a directory added live is reconciled
	notes := agentProject(t, root, "notes", "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	eventually(t, 60*time.Second, "the new project converged", converged(notes, map[string]int{"web": 1}))
	waitRecord(t, base, record.ProjectAdded, notes.Name)

	// a directory removed is let go, its containers left running
	if err := os.RemoveAll(blog.Dir); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, base, record.ProjectReleased, blog.Name)
	if running(blog)["web"] != 1 {
		t.Error("letting a project go stopped its containers")
	}
	// and it is no longer reconciled: a removed replica stays removed,
	// while a project still held is repaired (a witness the agent acts)
	blog.RemoveForce(blog.IDs()[blog.Name+"-web-1"])
	shop.RemoveForce(shop.IDs()[shop.Name+"-api-2"])
	eventually(t, 30*time.Second, "shop repaired", func() bool { return running(shop)["api"] == 2 })
	if n := len(blog.Snapshot().Containers); n != 0 {
		t.Errorf("a released project was reconciled: %d containers", n)
	}
}

// TestAgentSkipsAProjectHeldByAnotherReconcile: a project already reconciled
// by a per-project daemon is skipped and reported; once that daemon stops,
// the agent takes it at its next rescan.
func TestAgentSkipsAProjectHeldByAnotherReconcile(t *testing.T) {
	root := t.TempDir()
	shop := agentProject(t, root, "shop", "services:\n  api:\n    image: {{.Image}}\n    restart: always\n")
	blog := agentProject(t, root, "blog", "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	own := enginetest.Start(t, shop.Dir, nil, "-f", shop.File, "--state-dir", t.TempDir())
	own.WaitFor("daemon started", 30*time.Second)

	_, base := startAgent(t, root, "--resync", "2s")
	skipped := waitRecord(t, base, record.ProjectSkipped, shop.Name)
	if !strings.Contains(skipped.Message, "PID "+itoa(own.PID())) {
		t.Errorf("the skip does not name the holder: %q", skipped.Message)
	}
	eventually(t, 60*time.Second, "blog converged", converged(blog, map[string]int{"web": 1}))

	own.Signal(syscall.SIGTERM)
	if code := own.Wait(30 * time.Second); code != 0 {
		t.Fatalf("per-project daemon: exit %d", code)
	}
	waitRecord(t, base, record.ProjectAdded, shop.Name)
	id := shop.IDs()[shop.Name+"-api-1"]
	dockerKill(t, shop, id)
	eventually(t, 30*time.Second, "the agent recovers the project it took over", func() bool {
		for _, c := range shop.Snapshot().Containers {
			if c.ID == id {
				return c.State == observed.StateRunning
			}
		}
		return false
	})
}

// TestAgentDiscoversProjectsOnTheEngine: with --discover, a project brought
// up by compose's labels' owner (here reconcile --once, which labels as
// compose does) is found and reconciled; taken down, it is let go and
// stays down.
func TestAgentDiscoversProjectsOnTheEngine(t *testing.T) {
	p := enginetest.NewProject(t, "services:\n  web:\n    image: {{.Image}}\n    restart: always\n")
	once(t, p)
	addr := "127.0.0.1:" + enginetest.FreePort(t)
	d := enginetest.Start(t, t.TempDir(), nil, "--discover", "--discover-match", p.Name, "--state-dir", t.TempDir(), "--listen", addr, "--log-format", "json", "--resync", "2s")
	d.WaitFor(`"daemon started"`, 30*time.Second)
	base := "http://" + addr
	added := waitRecord(t, base, record.ProjectAdded, p.Name)
	if !strings.Contains(added.Message, "the engine") {
		t.Errorf("ProjectAdded says %q, want where it was found", added.Message)
	}
	id := p.IDs()[p.Name+"-web-1"]
	dockerKill(t, p, id)
	eventually(t, 30*time.Second, "the killed replica back", func() bool { return p.Inspect(id).State.Running })

	// taken down with compose: let go, not brought back
	if r := p.Compose("down"); r.Code != 0 {
		t.Fatalf("docker compose down: %s", r)
	}
	waitRecord(t, base, record.ProjectReleased, p.Name)
	if n := len(p.Snapshot().Containers); n != 0 {
		t.Errorf("%d containers after down and the release, want none", n)
	}
}
