// Package systemd holds reconcile's systemd unit; its test holds the unit to
// the exposure its comment and docs/security.md promise.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the most `systemd-analyze security` may rate the unit:
// "OK" ends at 4.9; the target is 4.0.
const maxExposure = 4.0

var reExposure = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+) (\w+)`)

// TestTheUnitIsHardened rates the unit offline, as an instance for
// /srv/myapp, and checks the figure is within target and the one the unit's
// comment and docs/security.md print.
func TestTheUnitIsHardened(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and systemd-analyze is missing (Debian's systemd package): %v", err)
		}
		t.Skip("systemd-analyze is missing (Debian's systemd package)")
	}
	unit, err := os.ReadFile("reconcile@.service")
	if err != nil {
		t.Fatal(err)
	}
	instance := filepath.Join(t.TempDir(), "reconcile@srv-myapp.service")
	if err := os.WriteFile(instance, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", instance).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := reExposure.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no overall exposure in:\n%s", out)
	}
	got, _ := strconv.ParseFloat(m[1], 64)
	if got > maxExposure {
		t.Errorf("exposure %.1f %s, want at most %.1f:\n%s", got, m[2], maxExposure, out)
	}
	promise := "rates it " + m[1] + " (" + m[2] + ")"
	if !strings.Contains(string(unit), promise) {
		t.Errorf("the unit's comment does not say %q", promise)
	}
	for file, says := range map[string]string{
		"../../docs/security.md": "exposure " + m[1] + " " + m[2],
		"../../README.md":        "exposure " + m[1] + ` ("` + m[2] + `")`,
	} {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), says) {
			t.Errorf("%s does not say %q", file, says)
		}
	}
}
