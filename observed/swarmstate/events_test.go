package swarmstate

import (
	"testing"

	"github.com/moby/moby/api/types/events"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  events.Message
		want Event
		ok   bool
	}{
		{"a service of the stack", events.Message{Type: events.ServiceEventType, Action: "update", Actor: events.Actor{Attributes: map[string]string{"name": "shop_api"}}}, Event{Service: "api", Action: "update"}, true},
		{"a service of another stack", events.Message{Type: events.ServiceEventType, Action: "update", Actor: events.Actor{Attributes: map[string]string{"name": "blog_api"}}}, Event{}, false},
		{"a task's container", events.Message{Type: events.ContainerEventType, Action: "die", Actor: events.Actor{Attributes: map[string]string{
			"com.docker.stack.namespace": "shop", "com.docker.swarm.service.name": "shop_web"}}}, Event{Service: "web", Action: "die"}, true},
		{"a compose container", events.Message{Type: events.ContainerEventType, Action: "die", Actor: events.Actor{Attributes: map[string]string{
			"com.docker.compose.project": "shop"}}}, Event{}, false},
		{"a node", events.Message{Type: events.NodeEventType, Action: "update", Actor: events.Actor{ID: "n1"}}, Event{Node: "n1", Action: "update"}, true},
		{"a network", events.Message{Type: events.NetworkEventType, Action: "create"}, Event{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Decode(tc.msg, "shop")
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
