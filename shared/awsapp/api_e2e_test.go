package awsapp_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/client"
)

// TestAWSAPIRoutes calls every HTTP API route once through the API Gateway stand-in, so that
// the AWS actions the api function needs on each (listing jobs and tokens through the
// indexes, deleting roles and groups, revoking tokens, enrolling in bulk, stopping a job,
// targeting by query and by group) are in the recorded function actions that infra/stack
// checks the api function's policy against.
func TestAWSAPIRoutes(t *testing.T) {
	c := newCloud(t)
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := c.api.EnrollNode(ctx, "tour1")
	check("enrol with a secret", err)
	_, err = c.api.EnrollNodeToken(ctx, "tour2", "1h")
	check("enrol with a token", err)
	_, err = c.api.EnrollNodes(ctx, []string{"tour3", "tour4"}, "1h")
	check("bulk enrolment", err)
	_, err = c.api.Inventory(ctx)
	check("inventory", err)
	_, err = c.api.InventoryNode(ctx, "tour1")
	check("inventory node", err)
	check("revoke node", c.api.RevokeNode(ctx, "tour4"))

	_, err = c.api.CreateGroup(ctx, client.Group{Name: "tourgroup", Nodes: []string{"tour1", "tour2"}})
	check("create group", err)
	_, err = c.api.Groups(ctx)
	check("groups", err)
	_, err = c.api.Group(ctx, "tourgroup")
	check("group", err)

	_, err = c.api.Tasks(ctx, "production")
	check("tasks", err)
	_, err = c.api.Task(ctx, "production", "demo::hello")
	check("task", err)

	// Jobs on nodes without agents: they wait for a connection, so they can be stopped.
	byGroup, err := c.api.RunTask(ctx, client.TaskRequest{Task: "demo::hello", Scope: client.Scope{NodeGroup: "tourgroup"}})
	check("task on a group", err)
	byQuery, err := c.api.RunTask(ctx, client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Query: `inventory[certname] { certname = "tour3" }`}})
	check("task on a query", err)
	_, err = c.api.Stop(ctx, byGroup.Name, true)
	check("stop", err)
	_, err = c.api.Jobs(ctx, url.Values{"limit": {"10"}})
	check("jobs", err)
	_, err = c.api.Job(ctx, byGroup.Name)
	check("job", err)
	_, err = c.api.JobNodes(ctx, byGroup.Name)
	check("job nodes", err)
	_, _, err = c.api.Events(ctx, byGroup.Name, 0)
	check("job events", err)
	check("delete group", c.api.DeleteGroup(ctx, "tourgroup"))

	check("create role", c.api.CreateRole(ctx, client.Role{Name: "tourviewers", Permissions: []string{"jobs:view"}}))
	_, err = c.api.Roles(ctx)
	check("roles", err)
	check("set user roles", c.api.SetUserRoles(ctx, "touralice", []string{"tourviewers"}))
	_, err = c.api.Users(ctx)
	check("users", err)
	_, info, err := c.api.IssueToken(ctx, "touralice", "tour", "30m")
	check("issue token", err)
	_, err = c.api.Tokens(ctx)
	check("tokens", err)
	check("revoke token", c.api.RevokeToken(ctx, info.ID))
	check("delete role", c.api.DeleteRole(ctx, "tourviewers"))

	// The sweep ends a node whose agent never connected once the connect timeout passes.
	if _, nodes := c.waitJob(byQuery.Name); len(nodes) != 1 || nodes[0].State != "errored" {
		t.Errorf("a job on a node that never connects: nodes %+v", nodes)
	}

	// The token in the query instead of X-Authentication: the stack's HTTP authorizer has no
	// identity source, so API Gateway hands such a request to the authorizer too.
	tok, err := c.app.Auth.IssueToken(ctx, "admin", "query", time.Hour)
	check("issue a token for the query", err)
	for token, want := range map[string]int{tok: http.StatusOK, "not-a-token": http.StatusForbidden} {
		resp, err := http.Get(c.http.URL() + "/orchestrator/v1/jobs?token=" + url.QueryEscape(token))
		check("GET /jobs?token=", err)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /jobs?token=%.8s…: %d, want %d", token, resp.StatusCode, want)
		}
	}
}
