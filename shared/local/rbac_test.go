package local

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/client"
)

func wantAPIError(t *testing.T, what string, err error, status int, kind string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != status || ae.Kind != kind {
		t.Errorf("%s: got %v, want %d %s", what, err, status, kind)
	}
}

func TestRBAC(t *testing.T) {
	h := newHarness(t)
	h.fleet([]string{"web1", "web2", "db1"})
	ctx := context.Background()
	admin := h.api

	if _, err := admin.CreateGroup(ctx, client.Group{Name: "webs", Nodes: []string{"web1", "web2"}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateRole(ctx, client.Role{Name: "web-hello", Permissions: []string{"jobs:view", "tasks:run=demo::hello@group:webs"}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.SetUserRoles(ctx, "alice", []string{"web-hello"}); err != nil {
		t.Fatal(err)
	}
	aliceToken, info, err := admin.IssueToken(ctx, "alice", "laptop", "8h")
	if err != nil {
		t.Fatal(err)
	}
	if info.Login != "alice" || info.ExpiresAt == nil || info.ExpiresAt.Sub(info.CreatedAt) != 8*time.Hour {
		t.Errorf("token info %+v", info)
	}
	alice := client.New(h.srv.URL(), aliceToken)

	jobCount := func() int {
		l, err := admin.Jobs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return l.Pagination["total"]
	}

	t.Run("nodes outside the permission's scope are left out", func(t *testing.T) {
		ref, err := alice.RunTask(ctx, client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"web1", "db1"}}})
		if err != nil {
			t.Fatal(err)
		}
		job, nodes := h.waitJob(ref.Name, 20*time.Second)
		if len(nodes) != 1 || nodes[0].Name != "web1" || job.Owner["login"] != "alice" {
			t.Errorf("job %+v nodes %+v", job.Owner, nodes)
		}
	})

	before := jobCount()
	refused := []struct {
		name   string
		call   func() error
		status int
		kind   string
	}{
		{"task on nodes all outside the scope", func() error {
			_, err := alice.RunTask(ctx, client.TaskRequest{Task: "demo::hello", Scope: client.Scope{Nodes: []string{"db1"}}})
			return err
		}, 403, "puppetlabs.orchestrator/not-permitted"},
		{"a task the role does not name", func() error {
			_, err := alice.RunTask(ctx, client.TaskRequest{Task: "demo::fail", Scope: client.Scope{Nodes: []string{"web1"}}})
			return err
		}, 403, "puppetlabs.orchestrator/not-permitted"},
		{"a puppet run", func() error {
			_, err := alice.Deploy(ctx, client.DeployRequest{Environment: "production", Scope: client.Scope{Nodes: []string{"web1"}}})
			return err
		}, 403, "puppetlabs.orchestrator/not-permitted"},
		{"stopping a job", func() error { _, err := alice.Stop(ctx, "1", false); return err }, 403, "puppetlabs.orchestrator/not-permitted"},
		{"enrolling a node", func() error { _, err := alice.EnrollNode(ctx, "evil"); return err }, 403, "puppetlabs.orchestrator/not-permitted"},
		{"creating a group", func() error {
			_, err := alice.CreateGroup(ctx, client.Group{Name: "mine", Nodes: []string{"db1"}})
			return err
		}, 403, "puppetlabs.orchestrator/not-permitted"},
		{"creating a role", func() error {
			return alice.CreateRole(ctx, client.Role{Name: "root", Permissions: []string{"tasks:run"}})
		}, 403, "puppetlabs.orchestrator/not-permitted"},
		{"granting herself roles", func() error { return alice.SetUserRoles(ctx, "alice", []string{"admin"}) }, 403, "puppetlabs.orchestrator/not-permitted"},
		{"a token for someone else", func() error { _, _, err := alice.IssueToken(ctx, "bob", "", "1h"); return err }, 403, "puppetlabs.orchestrator/not-permitted"},
		{"a token beyond the maximum lifetime", func() error { _, _, err := alice.IssueToken(ctx, "", "", "20y"); return err }, 400, "puppetlabs.orchestrator/validation-error"},
		{"a lifetime that overflows", func() error { _, _, err := alice.IssueToken(ctx, "", "", "585y"); return err }, 400, "puppetlabs.orchestrator/validation-error"},
		{"a label with a comma", func() error { _, _, err := alice.IssueToken(ctx, "", "a,b", "1h"); return err }, 400, "puppetlabs.orchestrator/validation-error"},
		{"a role with an unknown action", func() error {
			return admin.CreateRole(ctx, client.Role{Name: "bad", Permissions: []string{"tasks:explode"}})
		}, 400, "puppetlabs.orchestrator/validation-error"},
		{"a user with an unknown role", func() error { return admin.SetUserRoles(ctx, "carol", []string{"nope"}) }, 400, "puppetlabs.orchestrator/validation-error"},
	}
	for _, c := range refused {
		wantAPIError(t, c.name, c.call(), c.status, c.kind)
	}
	if after := jobCount(); after != before {
		t.Errorf("refused requests created %d jobs", after-before)
	}
	if roles, _ := admin.Roles(ctx); len(roles) != 2 {
		t.Errorf("roles after refused requests: %+v", roles)
	}

	t.Run("viewing is allowed", func(t *testing.T) {
		if _, err := alice.Jobs(ctx, nil); err != nil {
			t.Error(err)
		}
	})
	t.Run("own tokens: issue, list, revoke", func(t *testing.T) {
		second, info, err := alice.IssueToken(ctx, "", "ci", "")
		if err != nil {
			t.Fatal(err)
		}
		if info.ExpiresAt == nil || info.ExpiresAt.Sub(info.CreatedAt) != time.Hour {
			t.Errorf("default lifetime: %+v", info)
		}
		list, err := alice.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var logins []string
		for _, tk := range list {
			logins = append(logins, tk.Login)
		}
		sort.Strings(logins)
		if strings.Join(logins, ",") != "alice,alice" {
			t.Errorf("alice sees tokens of %v", logins)
		}
		all, _ := admin.Tokens(ctx)
		if len(all) < 3 {
			t.Errorf("admin sees %d tokens", len(all))
		}
		ci := client.New(h.srv.URL(), second)
		if _, err := ci.Jobs(ctx, nil); err != nil {
			t.Fatalf("new token: %v", err)
		}
		if err := alice.RevokeToken(ctx, info.ID); err != nil {
			t.Fatal(err)
		}
		_, err = ci.Jobs(ctx, nil)
		wantAPIError(t, "revoked token", err, 401, "puppetlabs.rbac/user-unauthenticated")
		adminTokens, _ := admin.Tokens(ctx)
		for _, tk := range adminTokens {
			if tk.Login == "admin" {
				wantAPIError(t, "revoking another user's token", alice.RevokeToken(ctx, tk.ID), 404, "puppetlabs.orchestrator/not-found")
			}
		}
	})
	t.Run("taking the role away takes the permissions away", func(t *testing.T) {
		if err := admin.SetUserRoles(ctx, "alice", nil); err != nil {
			t.Fatal(err)
		}
		_, err := alice.Jobs(ctx, nil)
		wantAPIError(t, "viewing without roles", err, 403, "puppetlabs.orchestrator/not-permitted")
	})
}

func TestMaxTokenLifetimeIsConfigurable(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxTokenLifetime = 2 * time.Hour })
	ctx := context.Background()
	if _, _, err := h.api.IssueToken(ctx, "", "", "2h"); err != nil {
		t.Fatalf("2h token: %v", err)
	}
	_, _, err := h.api.IssueToken(ctx, "", "", "3h")
	wantAPIError(t, "a token over the configured maximum", err, 400, "puppetlabs.orchestrator/validation-error")
}
