package auth

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// cachingStore is a oneRead store (it counts TokenGrants) with the auth generation of gen.
type cachingStore struct {
	oneRead
	gen generationStore
}

func (c cachingStore) AuthGeneration() (string, bool) { return c.gen.AuthGeneration() }

// fixedGeneration is a generation source that never changes.
type fixedGeneration struct{}

func (fixedGeneration) AuthGeneration() (string, bool) { return "fixed", true }

// noGeneration is a generation source that cannot tell.
type noGeneration struct{}

func (noGeneration) AuthGeneration() (string, bool) { return "", false }

// TestTokenCacheFollowsTheStoreGeneration checks that a token is read once and then served
// from the cache, and that a change made through another Store on the same database (as
// another process, `baton token rotate-admin`, makes it) is seen on the next request: a
// revocation, a user's roles, a role's permissions, a role removed. The cache's lifetime
// and the token's own expiry still hold for cached entries, and a store that cannot tell
// its generation is read on every request.
func TestTokenCacheFollowsTheStoreGeneration(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "auth.db")
	server, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	other, err := sqlite.Open(path) // another process on the same database
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	admin := New(other, clock)
	if err := admin.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	viewer := store.Role{Name: "viewer", Permissions: []store.Permission{{Action: "view", Instance: "jobs"}}, CreatedAt: now}
	viewer, err = other.PutRole(ctx, viewer)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := other.PutUser(ctx, store.User{Login: "ops", Roles: []string{"viewer"}, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	adminTok, err := admin.IssueToken(ctx, "admin", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opsTok, err := admin.IssueToken(ctx, "ops", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	shortTok, err := admin.IssueToken(ctx, "ops", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	counted := &readCounter{Store: server, reads: map[string]int{}}
	svc := New(cachingStore{oneRead{counted}, server}, clock)
	reads := func() int { return counted.reads["TokenGrants"] }
	auth := func(tok string) (Principal, error) { return svc.AuthenticateToken(ctx, tok) }
	mustAuth := func(step, tok string, wantReads int) Principal {
		t.Helper()
		p, err := auth(tok)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if reads() != wantReads {
			t.Fatalf("%s: %d reads of the store so far, want %d", step, reads(), wantReads)
		}
		return p
	}
	mustRefuse := func(step, tok string) {
		t.Helper()
		if _, err := auth(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("%s: got %v, want ErrUnauthenticated", step, err)
		}
	}
	canView := func(p Principal) bool { return p.Can("view") }

	mustAuth("first use", adminTok, 1)
	mustAuth("second use", adminTok, 1)
	if p := mustAuth("another token", opsTok, 2); !canView(p) {
		t.Fatalf("ops cannot view: %+v", p.Permissions)
	}
	mustAuth("another token again", opsTok, 2)

	// Changes through the other store are seen on the next request.
	if _, err := other.PutUser(ctx, store.User{Login: "ops", Roles: nil, CreatedAt: now, Version: ops.Version}); err != nil {
		t.Fatal(err)
	}
	if p := mustAuth("after the user's roles changed", opsTok, 3); canView(p) {
		t.Fatalf("ops kept a role it lost: %+v", p.Permissions)
	}
	if _, err := other.PutUser(ctx, store.User{Login: "ops", Roles: []string{"viewer"}, CreatedAt: now, Version: ops.Version + 1}); err != nil {
		t.Fatal(err)
	}
	mustAuth("after the role came back", opsTok, 4)
	viewer.Permissions = nil
	if _, err := other.PutRole(ctx, viewer); err != nil {
		t.Fatal(err)
	}
	if p := mustAuth("after the role's permissions changed", opsTok, 5); canView(p) {
		t.Fatalf("ops kept a permission its role lost: %+v", p.Permissions)
	}
	viewer.Permissions = []store.Permission{{Action: "view", Instance: "jobs"}}
	viewer.Version++
	if _, err := other.PutRole(ctx, viewer); err != nil {
		t.Fatal(err)
	}
	if p := mustAuth("after the role's permissions came back", opsTok, 6); !canView(p) {
		t.Fatalf("ops cannot view: %+v", p.Permissions)
	}
	if err := other.DeleteRole(ctx, "viewer"); err != nil {
		t.Fatal(err)
	}
	if p := mustAuth("after the role was removed", opsTok, 7); canView(p) {
		t.Fatalf("ops kept the permission of a removed role: %+v", p.Permissions)
	}
	mustAuth("a token read again since the changes", adminTok, 8)
	mustAuth("and cached", adminTok, 8)
	gen, _ := server.AuthGeneration()
	if _, err := admin.IssueToken(ctx, "ops", "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if now, _ := server.AuthGeneration(); now != gen {
		t.Error("a new token changed the generation: nobody can have kept it before it existed")
	}
	if err := other.RevokeToken(ctx, Hash(adminTok)); err != nil {
		t.Fatal(err)
	}
	mustRefuse("a token revoked by another process", adminTok)
	mustRefuse("a revoked token, again", adminTok)

	// A stamp deleted while the server runs (a restore, a clean-up): the next change makes a
	// new one, which the server reads, not the old copy it had open.
	opsAgain, err := admin.IssueToken(ctx, "ops", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := reads()
	mustAuth("a token kept before the stamp goes", opsAgain, before+1)
	mustAuth("and cached", opsAgain, before+1)
	if err := os.Remove(path + "-auth"); err != nil {
		t.Fatal(err)
	}
	if err := other.RevokeToken(ctx, Hash(opsAgain)); err != nil {
		t.Fatal(err)
	}
	mustRefuse("a token revoked after the stamp was deleted", opsAgain)

	// The lifetime, and the token's own expiry within it.
	before = reads()
	mustAuth("short-lived token", shortTok, before+1)
	mustAuth("a token read before the revocation", opsTok, before+2)
	now = now.Add(6 * time.Second)
	mustRefuse("an expired token still in the cache", shortTok)
	if reads() != before+2 {
		t.Fatalf("the expired token was read again (%d reads): the expiry is checked on the cached entry", reads()-before)
	}
	mustAuth("within the cache's lifetime", opsTok, before+2)
	now = now.Add(TokenCacheTTL)
	mustAuth("after the cache's lifetime", opsTok, before+3)

	// This Service's own changes are seen at once, whatever the generation says.
	counted.reads = map[string]int{}
	frozen := New(cachingStore{oneRead{counted}, fixedGeneration{}}, clock)
	auth = func(tok string) (Principal, error) { return frozen.AuthenticateToken(ctx, tok) }
	frozenTok, err := admin.IssueToken(ctx, "ops", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustAuth("a token kept under a generation that never changes", frozenTok, 1)
	mustAuth("and cached", frozenTok, 1)
	if err := frozen.RevokeTokenHash(ctx, Hash(frozenTok)); err != nil {
		t.Fatal(err)
	}
	mustRefuse("a token this Service revoked", frozenTok)

	// No generation, no cache.
	counted.reads = map[string]int{}
	blind := New(cachingStore{oneRead{counted}, noGeneration{}}, clock)
	for range 3 {
		if _, err := blind.AuthenticateToken(ctx, opsTok); err != nil {
			t.Fatal(err)
		}
	}
	if reads() != 3 {
		t.Fatalf("a store that cannot tell its generation was read %d times for 3 requests", reads())
	}
}
