package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/internal/verify"
)

// TestVerifyOutputsAndExitCodes runs `reconcile verify` on the production
// example (all pass: 0), on it with the development override (some fail:
// 1, in JSON and JUnit), and on a file that does not load (2). It needs no
// engine.
func TestVerifyOutputsAndExitCodes(t *testing.T) {
	dir, err := filepath.Abs("../../examples/production")
	if err != nil {
		t.Fatal(err)
	}
	args := func(override string, extra ...string) []string {
		return append([]string{"verify", "-p", "verify", "-f", filepath.Join(dir, "docker-compose.yml"), "-f", filepath.Join(dir, override),
			"--env-file", filepath.Join(dir, "local-images.env")}, extra...)
	}
	runCLI := func(a []string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), a, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	if code, out, stderr := runCLI(args("docker-compose.prod.yml")); code != 0 || strings.Contains(out, "fail") {
		t.Errorf("production: exit %d\n%s%s", code, out, stderr)
	}

	code, out, _ := runCLI(args("docker-compose.dev.yml", "-o", "json"))
	var rep struct {
		Passed bool          `json:"passed"`
		Items  []verify.Item `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitNotConverged || rep.Passed || len(rep.Items) != len(verify.IDs()) {
		t.Errorf("development, -o json: exit %d, %v, %+v", code, err, rep)
	}

	code, out, _ = runCLI(args("docker-compose.dev.yml", "-o", "junit"))
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &suites); err != nil || code != exitNotConverged || len(suites.Suites) != 1 {
		t.Fatalf("development, -o junit: exit %d, %v\n%s", code, err, out)
	}
	s := suites.Suites[0]
	failures := 0
	for _, c := range s.Cases {
		if c.Failure != nil {
			failures++
		}
	}
	if s.Tests != len(verify.IDs()) || s.Failures == 0 || s.Failures != failures {
		t.Errorf("junit suite: %d tests, %d failures (%d failure elements)", s.Tests, s.Failures, failures)
	}

	if code, _, stderr := runCLI(args("no-such-override.yml")); code != exitInput || !strings.Contains(stderr, "no-such-override.yml") {
		t.Errorf("a missing file: exit %d, %s; want 2 naming it", code, stderr)
	}
}
