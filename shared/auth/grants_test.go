package auth

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// readCounter passes a Store through and counts the reads authentication makes. It hides the
// one-statement TokenGrants, so authentication takes the separate reads.
type readCounter struct {
	Store
	reads map[string]int
}

func (c *readCounter) GetToken(ctx context.Context, hash string) (store.Token, error) {
	c.reads["GetToken"]++
	return c.Store.GetToken(ctx, hash)
}

func (c *readCounter) GetUser(ctx context.Context, login string) (store.User, error) {
	c.reads["GetUser"]++
	return c.Store.GetUser(ctx, login)
}

func (c *readCounter) GetRole(ctx context.Context, name string) (store.Role, error) {
	c.reads["GetRole"]++
	return c.Store.GetRole(ctx, name)
}

// oneRead is a readCounter that also has TokenGrants.
type oneRead struct{ *readCounter }

func (c oneRead) TokenGrants(ctx context.Context, hash string) (store.Token, []store.Permission, error) {
	c.reads["TokenGrants"]++
	return c.Store.(grantsStore).TokenGrants(ctx, hash)
}

// TestAuthenticateTokenInOneRead checks that a store with TokenGrants authenticates a request
// in one read, with the principal the separate reads of token, user and roles give.
func TestAuthenticateTokenInOneRead(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	_, st := newService(t, &now)
	ctx := t.Context()
	clock := func() time.Time { return now }
	setup := New(st, clock)
	if err := setup.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutRole(ctx, store.Role{Name: "viewer", Permissions: []store.Permission{{Action: "view", Instance: "jobs"}}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutUser(ctx, store.User{Login: "ops", Roles: []string{"viewer", "admin", "missing"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, login := range []string{"admin", "ops", "nobody"} {
		tok, err := setup.IssueToken(ctx, login, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tokens[login] = tok
	}
	for login, tok := range tokens {
		sep := &readCounter{Store: st, reads: map[string]int{}}
		one := oneRead{&readCounter{Store: st, reads: map[string]int{}}}
		want, err := New(sep, clock).AuthenticateToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		got, err := New(one, clock).AuthenticateToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: one read gives %+v, separate reads %+v", login, got, want)
		}
		if !reflect.DeepEqual(one.reads, map[string]int{"TokenGrants": 1}) {
			t.Errorf("%s: reads %v, want one TokenGrants", login, one.reads)
		}
		if sep.reads["GetToken"] != 1 || sep.reads["GetUser"] != 1 {
			t.Errorf("%s: separate reads %v", login, sep.reads)
		}
	}
	now = now.Add(time.Hour)
	if _, err := New(oneRead{&readCounter{Store: st, reads: map[string]int{}}}, clock).AuthenticateToken(ctx, tokens["admin"]); err == nil {
		t.Error("an expired token was accepted through TokenGrants")
	}
}
