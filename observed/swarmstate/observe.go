// Package swarmstate is what a swarm runs of one stack, from lists: its
// services (with the engine's task counts), their tasks, the nodes, and the
// stack's networks, secrets and configs. As on one host, lists are the
// truth and events only say when to look again.
package swarmstate

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Lister is what a snapshot needs of the engine (a manager's).
type Lister interface {
	ServiceList(ctx context.Context, options client.ServiceListOptions) (client.ServiceListResult, error)
	TaskList(ctx context.Context, options client.TaskListOptions) (client.TaskListResult, error)
	NodeList(ctx context.Context, options client.NodeListOptions) (client.NodeListResult, error)
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	SecretList(ctx context.Context, options client.SecretListOptions) (client.SecretListResult, error)
	ConfigList(ctx context.Context, options client.ConfigListOptions) (client.ConfigListResult, error)
}

// Snapshot is one look at a stack.
type Snapshot struct {
	Taken time.Time
	// Services and Tasks are by service name as the compose file spells it
	// (web, not stack_web).
	Services map[string]swarm.Service
	Tasks    map[string][]swarm.Task
	// Nodes are every node of the swarm, by ID.
	Nodes map[string]swarm.Node
	// Networks, Secrets and Configs are the stack's, by their full name.
	Networks map[string]network.Summary
	Secrets  map[string]swarm.Secret
	Configs  map[string]swarm.Config
}

// Observe lists the stack named namespace.
func Observe(ctx context.Context, c Lister, namespace string, now time.Time) (*Snapshot, error) {
	f := make(client.Filters).Add("label", convert.LabelNamespace+"="+namespace)
	ns := convert.NewNamespace(namespace)
	snap := &Snapshot{
		Taken:    now,
		Services: map[string]swarm.Service{},
		Tasks:    map[string][]swarm.Task{},
		Nodes:    map[string]swarm.Node{},
		Networks: map[string]network.Summary{},
		Secrets:  map[string]swarm.Secret{},
		Configs:  map[string]swarm.Config{},
	}
	services, err := c.ServiceList(ctx, client.ServiceListOptions{Filters: f, Status: true})
	if err != nil {
		return nil, fmt.Errorf("listing the stack's services: %w", err)
	}
	byID := map[string]string{}
	for _, s := range services.Items {
		name := ns.Descope(s.Spec.Name)
		snap.Services[name] = s
		byID[s.ID] = name
	}
	tasks, err := c.TaskList(ctx, client.TaskListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing the stack's tasks: %w", err)
	}
	for _, t := range tasks.Items {
		if name, ok := byID[t.ServiceID]; ok {
			snap.Tasks[name] = append(snap.Tasks[name], t)
		}
	}
	nodes, err := c.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the swarm's nodes: %w", err)
	}
	for _, n := range nodes.Items {
		snap.Nodes[n.ID] = n
	}
	networks, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing the stack's networks: %w", err)
	}
	for _, n := range networks.Items {
		snap.Networks[n.Name] = n
	}
	secrets, err := c.SecretList(ctx, client.SecretListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing the stack's secrets: %w", err)
	}
	for _, s := range secrets.Items {
		snap.Secrets[s.Spec.Name] = s
	}
	configs, err := c.ConfigList(ctx, client.ConfigListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing the stack's configs: %w", err)
	}
	for _, c := range configs.Items {
		snap.Configs[c.Spec.Name] = c
	}
	return snap, nil
}

// Placement says where a service's current tasks run: node name (the
// hostname a node reports) to the number of running tasks, for status and
// records.
func (s *Snapshot) Placement(service string) map[string]int {
	out := map[string]int{}
	for _, t := range s.Tasks[service] {
		if t.DesiredState != swarm.TaskStateRunning || t.Status.State != swarm.TaskStateRunning {
			continue
		}
		out[s.NodeName(t.NodeID)]++
	}
	return out
}

// NodeName is the hostname node id reports, or its ID.
func (s *Snapshot) NodeName(id string) string {
	if n, ok := s.Nodes[id]; ok && n.Description.Hostname != "" {
		return n.Description.Hostname
	}
	return id
}
