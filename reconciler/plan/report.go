package plan

// ReportSchema names the shape of a Report; it changes when a field changes
// meaning or goes away (adding a field does not change it).
const ReportSchema = "reconcile.dev/report/v1"

// Report is what `reconcile diff -o json` and `reconcile --once -o json`
// print: the drift found, the plan that would put it right, and, for
// --once, how the run ended. CI steps and pull-request bots read it, so its
// fields are documented in docs/commands.md and only ever added to.
type Report struct {
	Schema  string `json:"schema"`
	Command string `json:"command"` // "diff" or "once"
	Project string `json:"project"`
	// InSync is true when no drift was found (diff), or none was left (once).
	InSync bool          `json:"inSync"`
	Drift  []DriftReport `json:"drift"`
	Plan   []StepReport  `json:"plan"`
	// Outcome is set by --once only.
	Outcome *OutcomeReport `json:"outcome,omitempty"`
}

// DriftReport is one difference between the compose files and the engine.
type DriftReport struct {
	Kind      string `json:"kind"`
	Service   string `json:"service,omitempty"`
	Container string `json:"container,omitempty"`
	Resource  string `json:"resource,omitempty"`
	Subject   string `json:"subject"`
	Cause     string `json:"cause"`
	// Actionable is false for drift only reported (orphans without
	// --remove-orphans, extra replicas with prune: false).
	Actionable bool `json:"actionable"`
	// Details lists what differs in a diverged container's configuration,
	// environment values masked.
	Details []string `json:"details,omitempty"`
}

// StepReport is one operation of the plan.
type StepReport struct {
	ID        int    `json:"id"`
	Op        string `json:"op"`
	Resource  string `json:"resource"`
	Service   string `json:"service,omitempty"`
	Container string `json:"container,omitempty"`
	Cause     string `json:"cause"`
	// After lists the IDs of the steps this one waits for.
	After []int `json:"after"`
	// Group names steps that one compose `up` carries out together.
	Group string `json:"group,omitempty"`
}

// OutcomeReport is how a --once run ended.
type OutcomeReport struct {
	Converged    bool          `json:"converged"`
	ExitCode     int           `json:"exitCode"`
	PlansApplied int           `json:"plansApplied"`
	DurationMS   int64         `json:"durationMs"`
	Errors       []string      `json:"errors"`
	Status       ProjectStatus `json:"status"`
}

// NewReport describes res for command; details maps container IDs to what
// differs in them (Explain's lines).
func NewReport(command, project string, res *Result, details map[string][]string) Report {
	r := Report{Schema: ReportSchema, Command: command, Project: project, InSync: res.InSync(),
		Drift: []DriftReport{}, Plan: []StepReport{}}
	for _, d := range res.Drift {
		r.Drift = append(r.Drift, DriftReport{
			Kind: d.Kind.String(), Service: d.Service, Container: d.Container, Resource: d.Resource,
			Subject: d.Subject(), Cause: d.Cause, Actionable: d.Actionable, Details: details[d.ContainerID],
		})
	}
	for _, n := range res.Plan.Nodes {
		s := StepReport{ID: n.ID, Op: n.Op.Type.String(), Resource: n.Op.ResourceID, Service: n.Op.Service,
			Container: n.Op.Container, Cause: n.Op.Cause, After: []int{}, Group: n.Group}
		for _, d := range n.DependsOn {
			s.After = append(s.After, d.ID)
		}
		r.Plan = append(r.Plan, s)
	}
	return r
}
