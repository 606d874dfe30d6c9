package sqlite

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// TestTokenGrantsMatchesSeparateReads checks that the one statement of TokenGrants answers
// what GetToken, GetUser and GetRole (one per role, in the user's order, missing roles
// skipped) answer together.
func TestTokenGrantsMatchesSeparateReads(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := at.Add(time.Hour)
	read := store.Permission{Action: "view", Instance: "jobs"}
	run := store.Permission{Action: "run", Instance: "tasks", Scope: "demo::hello"}
	puppet := store.Permission{Action: "run", Instance: "puppet"}
	for _, r := range []store.Role{
		{Name: "viewer", Description: "v", Permissions: []store.Permission{read}, CreatedAt: at},
		{Name: "runner", Description: "r", Permissions: []store.Permission{run, puppet}, CreatedAt: at},
		{Name: "empty", Description: "e", CreatedAt: at},
	} {
		if _, err := s.PutRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []store.User{
		{Login: "both", Roles: []string{"runner", "gone", "viewer"}, CreatedAt: at},
		{Login: "viewer", Roles: []string{"viewer"}, CreatedAt: at},
		{Login: "none", CreatedAt: at},
		{Login: "emptyrole", Roles: []string{"empty"}, CreatedAt: at},
	} {
		if _, err := s.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tokens := []store.Token{
		{Hash: "h-both", Login: "both", Label: "two roles and a missing one", CreatedAt: at, ExpiresAt: &exp},
		{Hash: "h-viewer", Login: "viewer", CreatedAt: at},
		{Hash: "h-none", Login: "none", CreatedAt: at},
		{Hash: "h-norecord", Login: "nobody", CreatedAt: at},
		{Hash: "h-emptyrole", Login: "emptyrole", CreatedAt: at},
		{Hash: "h-revoked", Login: "viewer", CreatedAt: at, Revoked: true},
	}
	for _, tok := range tokens {
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]store.Permission{
		"h-both": {run, puppet, read}, "h-viewer": {read}, "h-revoked": {read},
		"h-none": nil, "h-norecord": nil, "h-emptyrole": nil,
	}
	for _, tok := range tokens {
		t.Run(tok.Hash, func(t *testing.T) {
			got, perms, err := s.TokenGrants(ctx, tok.Hash)
			if err != nil {
				t.Fatal(err)
			}
			sep, err := s.GetToken(ctx, tok.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, sep) {
				t.Errorf("token %+v, GetToken says %+v", got, sep)
			}
			var composed []store.Permission
			if u, err := s.GetUser(ctx, tok.Login); err == nil {
				for _, name := range u.Roles {
					if r, err := s.GetRole(ctx, name); err == nil {
						composed = append(composed, r.Permissions...)
					}
				}
			}
			if !reflect.DeepEqual(perms, composed) || !reflect.DeepEqual(perms, want[tok.Hash]) {
				t.Errorf("permissions %+v; separate reads give %+v; want %+v", perms, composed, want[tok.Hash])
			}
		})
	}
	if _, _, err := s.TokenGrants(ctx, "h-unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown token: %v, want ErrNotFound", err)
	}
	// A role changed or removed is seen at once: nothing is cached.
	if err := s.DeleteRole(ctx, "runner"); err != nil {
		t.Fatal(err)
	}
	if _, perms, err := s.TokenGrants(ctx, "h-both"); err != nil || !reflect.DeepEqual(perms, []store.Permission{read}) {
		t.Errorf("after the role's removal: %+v, %v; want only %+v", perms, err, read)
	}
}
