package record

// Type is a record's type, as Kubernetes events have them: Normal for what
// is expected (an action done, a decision to wait), Warning for what someone
// may need to look at (drift, a failure, a spent budget).
type Type string

// The two record types.
const (
	Normal  Type = "Normal"
	Warning Type = "Warning"
)

// Reason is the CamelCase word a program matches a record on. Every reason
// the daemon records is a constant here and has one row in Catalogue, which
// gives its type: a reason never changes type from one record to the next.
type Reason string

// Drift, seen once per occurrence.
const (
	ContainerMissing    Reason = "ContainerMissing"
	ExtraReplica        Reason = "ExtraReplica"
	ConfigChanged       Reason = "ConfigChanged"
	ImageChanged        Reason = "ImageChanged"
	ContainerExited     Reason = "ContainerExited"
	ContainerNotStarted Reason = "ContainerNotStarted"
	ContainerPaused     Reason = "ContainerPaused"
	ContainerDead       Reason = "ContainerDead"
	ContainerUnhealthy  Reason = "ContainerUnhealthy"
	OrphanContainer     Reason = "OrphanContainer"
	NetworkMissing      Reason = "NetworkMissing"
	VolumeMissing       Reason = "VolumeMissing"
	UnexpectedNetwork   Reason = "UnexpectedNetwork"
	NetworkDetached     Reason = "NetworkDetached"
)

// Actions done, one per operation type, and the end of drift.
const (
	Created             Reason = "Created"
	Recreated           Reason = "Recreated"
	Started             Reason = "Started"
	Restarted           Reason = "Restarted"
	Unpaused            Reason = "Unpaused"
	Removed             Reason = "Removed"
	NetworkCreated      Reason = "NetworkCreated"
	VolumeCreated       Reason = "VolumeCreated"
	NetworkDisconnected Reason = "NetworkDisconnected"
	Stopped             Reason = "Stopped"
	DependencyReady     Reason = "DependencyReady"
	Synced              Reason = "Synced"
)

// Operations that failed, one per operation type.
const (
	FailedCreateNetwork     Reason = "FailedCreateNetwork"
	FailedCreateVolume      Reason = "FailedCreateVolume"
	FailedCreateContainer   Reason = "FailedCreateContainer"
	FailedRecreateContainer Reason = "FailedRecreateContainer"
	FailedStartContainer    Reason = "FailedStartContainer"
	FailedRestartContainer  Reason = "FailedRestartContainer"
	FailedUnpauseContainer  Reason = "FailedUnpauseContainer"
	FailedRemoveContainer   Reason = "FailedRemoveContainer"
	FailedDisconnectNetwork Reason = "FailedDisconnectNetwork"
	FailedStopContainer     Reason = "FailedStopContainer"
	FailedWaitCondition     Reason = "FailedWaitCondition"
)

// Other failures.
const (
	ImageMissing           Reason = "ImageMissing"
	ExternalMissing        Reason = "ExternalMissing"
	HookFailed             Reason = "HookFailed"
	RestartPolicySet       Reason = "RestartPolicySet"
	FailedSetRestartPolicy Reason = "FailedSetRestartPolicy"
	ReplicaAdded           Reason = "ReplicaAdded"
	FailedAddReplica       Reason = "FailedAddReplica"
	EngineRefused          Reason = "EngineRefused"
	ReconcileFailed        Reason = "ReconcileFailed"
	ReconcilePanic         Reason = "ReconcilePanic"
	EventPanic             Reason = "EventPanic"
	InvalidConfig          Reason = "InvalidConfig"
	EngineDisconnected     Reason = "EngineDisconnected"
	RestartBudgetExhausted Reason = "RestartBudgetExhausted"
	UnhealthyNotRestarted  Reason = "UnhealthyNotRestarted"
	StateNotSaved          Reason = "StateNotSaved"
	StateDiscarded         Reason = "StateDiscarded"
)

// Decisions and what the daemon learnt.
const (
	DependencyNotReady Reason = "DependencyNotReady"
	StoppedByUser      Reason = "StoppedByUser"
	RemovedByUser      Reason = "RemovedByUser"
	NotRestarted       Reason = "NotRestarted"
	BackOff            Reason = "BackOff"
	ConfigReloaded     Reason = "ConfigReloaded"
	EngineConnected    Reason = "EngineConnected"
	Reloaded           Reason = "Reloaded"
	ReloadSkipped      Reason = "ReloadSkipped"
	ConfigNotWatched   Reason = "ConfigNotWatched"
)

// Reloads and upstreams.
const (
	ReloadRejected    Reason = "ReloadRejected"
	ReloadFailed      Reason = "ReloadFailed"
	NoHealthyUpstream Reason = "NoHealthyUpstream"
)

// Rolling updates (deploy.update_config).
const (
	RolloutStarted  Reason = "RolloutStarted"
	RolloutStep     Reason = "RolloutStep"
	RolloutComplete Reason = "RolloutComplete"
	RolloutPaused   Reason = "RolloutPaused"
	ReplicaFailed   Reason = "ReplicaFailed"
	RollbackStarted Reason = "RollbackStarted"
	RolledBack      Reason = "RolledBack"
)

// An agent's projects (--projects, --discover).
const (
	ProjectAdded    Reason = "ProjectAdded"
	ProjectReleased Reason = "ProjectReleased"
	ProjectDisabled Reason = "ProjectDisabled"
	ProjectSkipped  Reason = "ProjectSkipped"
	ProjectInvalid  Reason = "ProjectInvalid"
)

// Swarm mode (reconcile --swarm).
const (
	ServiceDrift   Reason = "ServiceDrift"
	DriftAdopted   Reason = "DriftAdopted"
	ServiceUpdated Reason = "ServiceUpdated"
	ObjectCreated  Reason = "ObjectCreated"
	ObjectRemoved  Reason = "ObjectRemoved"
	OrphanService  Reason = "OrphanService"
	NodeDown       Reason = "NodeDown"
	NodeUp         Reason = "NodeUp"
)

// A git source's commits (--git).
const (
	CommitApplied     Reason = "CommitApplied"
	CommitRefused     Reason = "CommitRefused"
	CommitBad         Reason = "CommitBad"
	LocalEdit         Reason = "LocalEdit"
	SourceUnreachable Reason = "SourceUnreachable"
)

// A service following its image's tag (x-reconcile.image_updates).
const (
	ImageUpdateWaiting  Reason = "ImageUpdateWaiting"
	ImageUpdateStarted  Reason = "ImageUpdateStarted"
	ImageUpdated        Reason = "ImageUpdated"
	ImageUpdateFailed   Reason = "ImageUpdateFailed"
	RegistryUnreachable Reason = "RegistryUnreachable"
)

// ReasonInfo is one row of the catalogue.
type ReasonInfo struct {
	Reason  Reason `json:"reason"`
	Type    Type   `json:"type"`
	Meaning string `json:"meaning"`
}

// Catalogue is every reason with its type and a one-line meaning, in the
// order docs/records.md's table lists them; a test holds the two together.
var Catalogue = []ReasonInfo{
	{ContainerMissing, Warning, "a desired replica has no container"},
	{ExtraReplica, Warning, "more replicas run than desired"},
	{ConfigChanged, Warning, "a container's config hash differs from the compose file's"},
	{ImageChanged, Warning, "the service's image now names another image than the container runs"},
	{ContainerExited, Warning, "a container is exited"},
	{ContainerNotStarted, Warning, "a container was created and never started"},
	{ContainerPaused, Warning, "a container is paused"},
	{ContainerDead, Warning, "a container is dead"},
	{ContainerUnhealthy, Warning, "a running container's healthcheck fails"},
	{OrphanContainer, Warning, "a container of a service no longer in the compose files"},
	{NetworkMissing, Warning, "a network the project declares does not exist"},
	{VolumeMissing, Warning, "a volume the project declares does not exist"},
	{UnexpectedNetwork, Warning, "a container is on a network its service does not name"},
	{NetworkDetached, Warning, "a container is off a network its service names"},

	{Created, Normal, "a missing replica was created"},
	{Recreated, Normal, "a diverged replica was recreated"},
	{Started, Normal, "a stopped container was started"},
	{Restarted, Normal, "a container was restarted (unhealthy, or its restart: true dependency restarted)"},
	{Unpaused, Normal, "a paused container was unpaused"},
	{Removed, Normal, "an extra replica or an orphan was removed"},
	{NetworkCreated, Normal, "a missing network was created"},
	{VolumeCreated, Normal, "a missing volume was created"},
	{NetworkDisconnected, Normal, "a container was taken off a network its service does not name"},
	{Stopped, Normal, "a replica whose restart budget is spent was stopped, ending the engine's own restart loop"},
	{ReplicaAdded, Normal, "a rolling update (or its rollback) added a replica"},
	{RestartPolicySet, Normal, "a replica's own restart policy was set: off while it runs the last restart its budget allows, the compose file's once the budget frees"},
	{DependencyReady, Normal, "a dependency met its depends_on condition"},
	{Synced, Normal, "the service matches its desired state again"},

	{FailedCreateNetwork, Warning, "creating a network failed"},
	{FailedCreateVolume, Warning, "creating a volume failed"},
	{FailedCreateContainer, Warning, "creating a replica failed"},
	{FailedRecreateContainer, Warning, "recreating a replica failed"},
	{FailedStartContainer, Warning, "starting a container failed"},
	{FailedRestartContainer, Warning, "restarting a container failed"},
	{FailedUnpauseContainer, Warning, "unpausing a container failed"},
	{FailedRemoveContainer, Warning, "removing a container failed"},
	{FailedDisconnectNetwork, Warning, "taking a container off a network failed"},
	{FailedStopContainer, Warning, "stopping a replica whose budget is spent failed"},
	{FailedSetRestartPolicy, Warning, "setting a replica's own restart policy failed"},
	{FailedAddReplica, Warning, "adding a replica in a rolling update or rollback failed"},
	{FailedWaitCondition, Warning, "a dependency failed its depends_on condition"},

	{ImageMissing, Warning, "an image is neither present nor pullable nor buildable: waits for the next change"},
	{HookFailed, Warning, "a pre_start or post_start hook failed: after pre_start the replica stays created, after post_start it runs, as with compose's up; waits for the next change"},
	{EngineRefused, Warning, "the engine refused a container's definition in a way waiting cannot fix (a missing ipc/network_mode container, an option it does not support): waits for the next change"},
	{ExternalMissing, Warning, "an external network or volume a service needs does not exist: waits for the next change"},
	{ReconcileFailed, Warning, "a reconcile failed on bad input: not retried until something changes"},
	{ReconcilePanic, Warning, "a reconcile panicked; it is retried with backoff"},
	{EventPanic, Warning, "handling an engine event panicked; the event was dropped, the next relist repairs it"},
	{InvalidConfig, Warning, "an edited compose file is invalid; the last good configuration stays in force"},
	{EngineDisconnected, Warning, "the engine's event stream was lost; reconnecting"},
	{RestartBudgetExhausted, Warning, "a replica used its restart budget and is left down"},
	{UnhealthyNotRestarted, Warning, "a container is unhealthy and restart on unhealthy is off"},
	{StateNotSaved, Warning, "the restart state could not be written; retried"},
	{StateDiscarded, Warning, "the restart state file could not be read: moved aside for inspection, counts start anew"},

	{DependencyNotReady, Normal, "a service waits for a dependency's depends_on condition"},
	{StoppedByUser, Normal, "a graceful stop is taken as the user's intent: left down"},
	{RemovedByUser, Normal, "a replica stopped and then removed (docker compose down) is left absent until created again or redefined"},
	{NotRestarted, Normal, "the restart policy does not restart this exit"},
	{BackOff, Normal, "a restart waits for its backoff"},
	{ConfigReloaded, Normal, "the compose files were read again; names the services that changed"},
	{EngineConnected, Normal, "connected to the engine and relisted the project"},
	{Reloaded, Normal, "a service's reload action ran after its configuration changed"},
	{ReloadSkipped, Normal, "dry run: a reload that would have run"},
	{ConfigNotWatched, Warning, "a read-only mount too large to follow as configuration (over the caps), or no configuration at all (/proc, /sys, /dev, a device): not watched, its edits reload nothing"},

	{ReloadRejected, Warning, "a reload's check failed; nothing was reloaded"},
	{ReloadFailed, Warning, "a reload action failed"},
	{NoHealthyUpstream, Warning, "no replica of an upstream is running and healthy; the last list is kept"},

	{RolloutStarted, Normal, "a service's definition changed and its replicas are replaced in batches (deploy.update_config)"},
	{RolloutStep, Normal, "a rolling update (or its rollback) replaces the next batch of replicas"},
	{RolloutComplete, Normal, "every replica runs the new definition, healthy"},
	{RolloutPaused, Warning, "a rolling update stopped on failed replicas (failure_action: pause): the rest keep the old definition until the failed ones turn healthy or the file changes"},
	{ReplicaFailed, Warning, "a new replica of a rolling update exited or was not healthy within monitor"},
	{RollbackStarted, Warning, "a rolling update failed (failure_action: rollback): the replaced replicas go back to the previous definition"},
	{RolledBack, Warning, "a rolling update was rolled back: the service runs the previous definition, the new one stays reported as drift and is not tried again until the file changes"},

	{ProjectAdded, Normal, "an agent took a project on (a new directory, a project found on the engine)"},
	{ProjectReleased, Normal, "an agent let a project go (its directory removed, its containers gone, or it opted out); its containers are left as they are"},
	{ProjectDisabled, Normal, "a project opts out of agents with x-reconcile.enabled: false; looked at again when its files change"},
	{ProjectSkipped, Warning, "a project is already reconciled by another reconcile (or under another directory): left to it; tried again at each rescan"},
	{ProjectInvalid, Warning, "a project's compose files cannot be loaded at all: reported, the other projects go on; tried again when its files change"},
	{ServiceDrift, Warning, "swarm: a service's spec differs from the compose file (changed by hand with docker service update or scale, or the file changed); it is updated back"},
	{DriftAdopted, Normal, "swarm: a hand change to a field the service's x-reconcile.swarm.adopt names is kept, not reverted; the file's other fields still apply"},
	{ServiceUpdated, Normal, "swarm: a service was updated to the compose file's spec, through its own update_config"},
	{ObjectCreated, Normal, "swarm: a config or secret was created; a changed one as a new versioned object"},
	{ObjectRemoved, Normal, "swarm: a config or secret replaced by a newer version was removed once no service used it"},
	{OrphanService, Warning, "swarm: the stack runs a service the compose files no longer have (--remove-orphans removes it)"},
	{NodeDown, Warning, "swarm: a node went down or was drained; names the tasks Swarm moved"},
	{NodeUp, Normal, "swarm: a node is ready and active again"},
	{CommitApplied, Normal, "git: the live checkout moved to a new commit of the followed ref, whose files loaded; the project reloads from it"},
	{CommitRefused, Warning, "git: a new commit's files do not load (or break the source's limits): refused with its file:line, the last good commit keeps running; not tried again until a newer commit"},
	{CommitBad, Warning, "git: a rollout of the commit in force was rolled back: the commit is marked bad and the live checkout goes back to the last good one until a newer commit arrives"},
	{LocalEdit, Warning, "git: a file of the live checkout was changed or removed by hand: put back as the commit has it"},
	{SourceUnreachable, Warning, "git: the repository could not be listed or fetched; the last good commit keeps running and the fetch is retried at the next poll or webhook"},
	{ImageUpdateWaiting, Normal, "image_updates: the tag points to a new digest younger than min_age: taken once it is old enough"},
	{ImageUpdateStarted, Normal, "image_updates: the service's image is pinned to the tag's new digest and rolled out by its update_config"},
	{ImageUpdated, Normal, "image_updates: the new digest runs healthy on every replica: the last good digest"},
	{ImageUpdateFailed, Warning, "image_updates: the new digest's rollout was rolled back (or paused): it is not tried again, and the image goes back to the last good digest"},
	{RegistryUnreachable, Warning, "image_updates: the registry could not be asked about the tag; asked again at the next interval"},
}

var types = func() map[Reason]Type {
	m := make(map[Reason]Type, len(Catalogue))
	for _, r := range Catalogue {
		m[r.Reason] = r.Type
	}
	return m
}()

// Known reports whether the reason is in the catalogue.
func (r Reason) Known() bool {
	_, ok := types[r]
	return ok
}

// Type is the reason's type from the catalogue; a reason missing from it
// is a Warning, so that it is not overlooked.
func (r Reason) Type() Type {
	if t, ok := types[r]; ok {
		return t
	}
	return Warning
}
