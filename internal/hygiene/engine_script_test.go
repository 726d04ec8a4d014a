package hygiene

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnsureEngineOnlyExplainsOutsideCI runs scripts/ensure-engine.sh with
// no engine reachable and stand-ins for apt-get, dockerd and sudo that
// record being called: outside CI it must call none of them, say what is
// missing, and exit non-zero.
func TestEnsureEngineOnlyExplainsOutsideCI(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	script := filepath.Join(strings.TrimSpace(string(top)), "scripts", "ensure-engine.sh")
	bin := t.TempDir()
	called := filepath.Join(t.TempDir(), "called")
	for _, name := range []string{"apt-get", "dockerd", "sudo", "systemctl"} {
		stub := "#!/bin/sh\necho " + name + " >> " + called + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, ci := range []string{"", "false"} {
		cmd := exec.Command("bash", script)
		cmd.Env = []string{
			"PATH=" + bin + ":" + os.Getenv("PATH"),
			"DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "no-engine.sock"),
			"CI=" + ci,
			"HOME=" + t.TempDir(),
		}
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("CI=%q: exit 0 with no engine:\n%s", ci, out)
		}
		if !strings.Contains(string(out), "no Docker Engine answers") || !strings.Contains(string(out), "apt-get install docker.io") {
			t.Errorf("CI=%q: the message does not say what is missing and how to get it:\n%s", ci, out)
		}
		if b, err := os.ReadFile(called); err == nil {
			t.Fatalf("CI=%q: the script ran %s behind the user's back", ci, strings.Fields(string(b)))
		}
	}
}

// TestEnsureBrowserOnlyExplainsOutsideCI runs scripts/ensure-browser.sh
// where no browser can be found (PATH holds only stand-ins): outside CI it
// installs nothing, says how to get chromium, and lets the tests go on.
func TestEnsureBrowserOnlyExplainsOutsideCI(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	script := filepath.Join(strings.TrimSpace(string(top)), "scripts", "ensure-browser.sh")
	bin := t.TempDir()
	called := filepath.Join(t.TempDir(), "called")
	for _, name := range []string{"apt-get", "sudo"} {
		stub := "#!/bin/sh\necho " + name + " >> " + called + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"cat", "id"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range []string{"", "false"} {
		cmd := exec.Command(bash, script)
		cmd.Env = []string{"PATH=" + bin, "CI=" + ci, "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("CI=%q: %v: the tests must go on without a browser outside CI:\n%s", ci, err, out)
		}
		if !strings.Contains(string(out), "apt-get install chromium") {
			t.Errorf("CI=%q: the message does not say how to get chromium:\n%s", ci, out)
		}
		if b, err := os.ReadFile(called); err == nil {
			t.Fatalf("CI=%q: the script ran %s behind the user's back", ci, strings.Fields(string(b)))
		}
	}
}
