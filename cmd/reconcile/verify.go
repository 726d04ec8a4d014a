package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/verify"
)

func newVerifyCommand(g *globals) *cobra.Command {
	output := "table"
	var live bool
	var daemonAddr string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Grade the project against the course's production checklist",
		Long: `verify checks the project, as loaded from its compose files, against the
verification checklist of the course's exercise 07: each item passes, fails
or does not apply, with why and the tasks behind it. It reads the files only:
the engine is not needed and nothing is touched.

With --live it also proves behaviour on the running stack, after saying what
it will touch: isolation by connection attempts between the services'
containers, by address, from inside their network namespaces; the memory
limits as the kernel enforces them (the containers' cgroups); a graceful stop
(one replica of a scaled service stopped and started again); a killed
replica coming back (through the daemon at --listen); the load balancer
spreading requests over the replicas, as the replicas count them; an
unhealthy replica getting no request until it is healthy again. It leaves
the stack as it found it, and needs root on the engine's machine.

Exit code: 0 every item passes (or does not apply), 1 some fail, 2 bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" && output != "junit" {
				return withCode(exitInput, fmt.Errorf("-o %q: want table, json or junit", output))
			}
			opts, err := g.options()
			if err != nil {
				return err
			}
			loader, err := engine.Loader()
			if err != nil {
				return withCode(exitInternal, err)
			}
			d, err := desired.Load(cmd.Context(), loader, opts)
			if err != nil {
				return err
			}
			items := verify.Check(d)
			if live {
				eng, err := g.connect(cmd.Context())
				if err != nil {
					return err
				}
				if eng.Remote() {
					return withCode(exitInput, fmt.Errorf("--live: the engine at %s is remote; --live enters containers' namespaces and cgroups on the engine's machine", eng.Host))
				}
				l := &verify.Live{Engine: eng.Client, Daemon: daemonAddr, Timeout: wait, Say: func(line string) { fmt.Fprintln(g.stderr, line) }}
				more, err := l.Check(cmd.Context(), d)
				if err != nil {
					return withCode(exitEngine, err)
				}
				items = append(items, more...)
			}
			switch output {
			case "json":
				err = writeJSON(g.stdout, struct {
					Project string        `json:"project"`
					Passed  bool          `json:"passed"`
					Items   []verify.Item `json:"items"`
				}{d.Project.Name, verify.Failed(items) == 0, items})
			case "junit":
				err = writeJUnit(g.stdout, d.Project.Name, items)
			default:
				printChecklist(g.stdout, items)
			}
			if err != nil {
				return withCode(exitInternal, err)
			}
			if n := verify.Failed(items); n > 0 {
				return withCode(exitNotConverged, fmt.Errorf("%d of %d checklist items fail", n, len(items)))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json, or junit (for CI)")
	cmd.Flags().BoolVar(&live, "live", false, "also prove behaviour on the running stack (says what it touches first)")
	cmd.Flags().StringVar(&daemonAddr, "listen", "", "with --live: the address of the project's daemon (its --listen), for the recovery item")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "with --live: how long to wait for a replica to come back or turn healthy")
	return cmd
}

func printChecklist(w io.Writer, items []verify.Item) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tITEM\tTASKS\tWHY")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Result, it.Title, tasks(it.Tasks), it.Why)
	}
	_ = tw.Flush()
}

func tasks(ts []int) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.Itoa(t)
	}
	return strings.Join(parts, ",")
}

// junit is the JUnit XML that CI systems read: one test case per item.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
}

func writeJUnit(w io.Writer, project string, items []verify.Item) error {
	s := junitSuite{Name: "reconcile verify " + project, Tests: len(items)}
	for _, it := range items {
		c := junitCase{Name: fmt.Sprintf("%s: %s (tasks %s)", it.ID, it.Title, tasks(it.Tasks)), Classname: "exercise07." + project}
		switch it.Result {
		case verify.Fail:
			c.Failure = &junitMessage{Message: it.Why}
			s.Failures++
		case verify.NotApplicable:
			c.Skipped = &junitMessage{Message: it.Why}
			s.Skipped++
		default:
			c.SystemOut = it.Why
		}
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return fmt.Errorf("writing JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
