package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// TestPrivateTasksAreNotListed: GET /tasks leaves out tasks with "private": true, as Bolt's
// `bolt task show` does, unless ?include_private=true; they still show and run by name.
func TestPrivateTasksAreNotListed(t *testing.T) {
	s := newStack(t, stackOptions{})
	names := func(path string) []string {
		items, _ := s.get(path).object(t)["items"].([]any)
		var out []string
		for _, it := range items {
			out = append(out, it.(map[string]any)["name"].(string))
		}
		return out
	}
	listed := names(v1 + "/tasks")
	if slices.Contains(listed, "forgelike::internal") || !slices.Contains(listed, "forgelike::ruby_greet") {
		t.Errorf("GET /tasks lists %v: want forgelike::ruby_greet and not the private forgelike::internal", listed)
	}
	all := names(v1 + "/tasks?include_private=true")
	if !slices.Contains(all, "forgelike::internal") || len(all) != len(listed)+1 {
		t.Errorf("?include_private=true lists %v (without: %v)", all, listed)
	}
	if slices.Contains(all, "ruby_task_helper") || slices.Contains(all, "python_task_helper") {
		t.Errorf("helper modules without tasks are listed: %v", all)
	}
	one := s.get(v1 + "/tasks/forgelike/internal").object(t)
	if md, _ := one["metadata"].(map[string]any); md["private"] != true {
		t.Errorf("GET /tasks/forgelike/internal = %v", one)
	}
	wantError(t, s.get(v1+"/tasks?include_private=maybe"), http.StatusBadRequest, "puppetlabs.orchestrator/validation-error")
	s.enroll("web1")
	s.submit(`{"task":"forgelike::internal","params":{},"scope":{"nodes":["web1"]}}`)
}

// TestInventoryShowsReportedFeatures: the features and Puppet version an agent reports
// (facts.baton_agent) are shown by GET /inventory/{node}.
func TestInventoryShowsReportedFeatures(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.enroll("web1", "web2")
	if err := s.orch.NodeConnected(context.Background(), "web1", "conn-1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	s.agentSays("web1", protocol.TypeFacts, protocol.Facts{Facts: map[string]any{
		"os":          map[string]any{"family": "Debian"},
		"baton_agent": map[string]any{"features": []string{"shell", "puppet-agent"}, "puppet_version": "7.23.0"},
	}})
	n := s.get(v1 + "/inventory/web1").object(t)
	if f, _ := n["features"].([]any); len(f) != 2 || f[0] != "shell" || f[1] != "puppet-agent" || n["puppet_version"] != "7.23.0" {
		t.Errorf("inventory web1 = %v", n)
	}
	// A node whose agent reported no features (not connected yet, or an older agent) shows none.
	if n := s.get(v1 + "/inventory/web2").object(t); n["features"] != nil || n["puppet_version"] != nil {
		t.Errorf("inventory web2 = %v", n)
	}
}
