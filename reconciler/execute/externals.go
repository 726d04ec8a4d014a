package execute

import (
	"errors"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// CheckExternals refuses a plan that would create containers on an external
// network or volume that does not exist: compose creates neither, so no
// retry can succeed until someone creates it. The error names the file,
// line and key that declare it, before anything is touched.
func CheckExternals(d *desired.State, snap *observed.Snapshot, p *plan.Plan) error {
	var services []string
	for _, n := range p.Nodes {
		if n.Group != "" && !slices.Contains(services, n.Op.Service) {
			services = append(services, n.Op.Service)
		}
	}
	for _, name := range services {
		svc := d.Services[name].Config
		for key := range svc.Networks {
			if n, ok := d.Project.Networks[key]; ok && bool(n.External) {
				if _, found := snap.NetworkByName(n.Name); !found {
					return d.TopLevelError("networks."+key+".external", errors.New("external network "+n.Name+" does not exist: create it, or let compose create it (drop external)"))
				}
			}
		}
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeVolume || v.Source == "" {
				continue
			}
			if vol, ok := d.Project.Volumes[v.Source]; ok && bool(vol.External) && !snap.HasVolume(vol.Name) {
				return d.TopLevelError("volumes."+v.Source+".external", errors.New("external volume "+vol.Name+" does not exist: create it, or let compose create it (drop external)"))
			}
		}
	}
	return nil
}
