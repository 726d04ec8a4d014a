package plan

import (
	"fmt"
	"strconv"

	"github.com/reconcile-dev/reconcile/internal/record"
)

// DriftKind is a kind of difference between desired and observed state.
type DriftKind int

const (
	DriftReplicaMissing    DriftKind = 1
	DriftExtraReplica      DriftKind = 2
	DriftConfigDiverged    DriftKind = 3
	DriftImageChanged      DriftKind = 4
	DriftExited            DriftKind = 5
	DriftNotStarted        DriftKind = 6
	DriftPaused            DriftKind = 7
	DriftDead              DriftKind = 8
	DriftUnhealthy         DriftKind = 9
	DriftOrphan            DriftKind = 10
	DriftNetworkMissing    DriftKind = 11
	DriftVolumeMissing     DriftKind = 12
	DriftUnexpectedNetwork DriftKind = 13
	DriftNetworkDetached   DriftKind = 14
)

var driftNames = map[DriftKind]string{
	DriftReplicaMissing:    "ReplicaMissing",
	DriftExtraReplica:      "ExtraReplica",
	DriftConfigDiverged:    "ConfigDiverged",
	DriftImageChanged:      "ImageChanged",
	DriftExited:            "Exited",
	DriftNotStarted:        "NotStarted",
	DriftPaused:            "Paused",
	DriftDead:              "Dead",
	DriftUnhealthy:         "Unhealthy",
	DriftOrphan:            "Orphan",
	DriftNetworkMissing:    "NetworkMissing",
	DriftVolumeMissing:     "VolumeMissing",
	DriftUnexpectedNetwork: "UnexpectedNetwork",
	DriftNetworkDetached:   "NetworkDetached",
}

// String is the CamelCase name used in output, event reasons and metrics.
func (k DriftKind) String() string {
	if s, ok := driftNames[k]; ok {
		return s
	}
	return "Unknown(" + strconv.Itoa(int(k)) + ")"
}

// Drift is one difference, with a short cause a person can read.
type Drift struct {
	Kind    DriftKind
	Service string
	// Container is the container's name, when the drift concerns one.
	Container   string
	ContainerID string
	Number      int
	// Resource names a network or volume, when the drift concerns one.
	Resource string
	Cause    string
	// Actionable is false for drift that is only reported (an orphan
	// without --remove-orphans, an extra replica with prune: false).
	Actionable bool
}

// Subject is what the drift is about, for one-line output.
func (d Drift) Subject() string {
	switch {
	case d.Container != "":
		return d.Container
	case d.Resource != "":
		return d.Resource
	case d.Number > 0:
		return fmt.Sprintf("%s #%d", d.Service, d.Number)
	}
	return d.Service
}

var driftReasons = map[DriftKind]record.Reason{
	DriftReplicaMissing:    record.ContainerMissing,
	DriftExtraReplica:      record.ExtraReplica,
	DriftConfigDiverged:    record.ConfigChanged,
	DriftImageChanged:      record.ImageChanged,
	DriftExited:            record.ContainerExited,
	DriftNotStarted:        record.ContainerNotStarted,
	DriftPaused:            record.ContainerPaused,
	DriftDead:              record.ContainerDead,
	DriftUnhealthy:         record.ContainerUnhealthy,
	DriftOrphan:            record.OrphanContainer,
	DriftNetworkMissing:    record.NetworkMissing,
	DriftVolumeMissing:     record.VolumeMissing,
	DriftUnexpectedNetwork: record.UnexpectedNetwork,
	DriftNetworkDetached:   record.NetworkDetached,
}

// Reason is the event-record reason for drift of this kind: it says what
// was seen, where String names the kind in diff output.
func (k DriftKind) Reason() record.Reason {
	if s, ok := driftReasons[k]; ok {
		return s
	}
	return record.Reason(k.String())
}
