package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/store"
)

// versioned describes a record kind that follows the PutRole/PutUser version rules, so that
// roles and users share one set of tests.
type versioned[T any] struct {
	fixture    func(name string) T // a record to create (Version 0)
	name       func(T) string
	version    func(*T) *int64
	put        func(s store.Store, ctx context.Context, v T) (T, error)
	get        func(s store.Store, ctx context.Context, name string) (T, error)
	list       func(s store.Store, ctx context.Context) ([]T, error)
	del        func(s store.Store, ctx context.Context, name string) error // nil: no delete
	norm       func(T) T
	roundTrips []T        // records to create, every field set in some
	changes    []func(*T) // successive replacements
	spoil      func(*T)   // a change a failed put must not store
}

func newRole(name string) store.Role {
	return store.Role{
		Name:        name,
		Description: "role " + name,
		Permissions: []store.Permission{{Action: "jobs:view"}, {Action: "tasks:run", Instance: "package::install", Scope: "group:web"}},
		CreatedAt:   at(0),
	}
}

func normRole(r store.Role) store.Role {
	r.Permissions = normSlice(r.Permissions, func(p store.Permission) store.Permission { return p })
	r.CreatedAt = normTime(r.CreatedAt)
	return r
}

func newUser(login string) store.User {
	return store.User{Login: login, Roles: []string{"operators", "viewers"}, CreatedAt: at(0)}
}

func normUser(u store.User) store.User {
	u.Roles = normSlice(u.Roles, func(r string) string { return r })
	u.CreatedAt = normTime(u.CreatedAt)
	return u
}

var roles = versioned[store.Role]{
	fixture: newRole,
	name:    func(r store.Role) string { return r.Name },
	version: func(r *store.Role) *int64 { return &r.Version },
	put:     func(s store.Store, ctx context.Context, r store.Role) (store.Role, error) { return s.PutRole(ctx, r) },
	get:     func(s store.Store, ctx context.Context, name string) (store.Role, error) { return s.GetRole(ctx, name) },
	list:    func(s store.Store, ctx context.Context) ([]store.Role, error) { return s.ListRoles(ctx) },
	del:     func(s store.Store, ctx context.Context, name string) error { return s.DeleteRole(ctx, name) },
	norm:    normRole,
	roundTrips: []store.Role{
		{
			Name:        "operators",
			Description: "Run tasks on web nodes ✓ \"quoted\"",
			Permissions: []store.Permission{
				{Action: "tasks:run", Instance: "package::install", Scope: "group:web"},
				{Action: "jobs:view", Instance: "*", Scope: "*"},
				{Action: "plans:run", Scope: `query:facts.os.family = "RedHat"`},
				{Action: "nodes:view"},
			},
			CreatedAt: at(-3600),
		},
		{Name: "nil permissions", CreatedAt: at(5)},
		{Name: "empty permissions", Description: "none", Permissions: []store.Permission{}, CreatedAt: at(6)},
	},
	changes: []func(*store.Role){
		func(r *store.Role) {
			r.Description = "three permissions"
			r.Permissions = append(r.Permissions, store.Permission{Action: "jobs:stop", Instance: "*", Scope: "query:x"})
		},
		func(r *store.Role) { r.Permissions = nil },
		func(r *store.Role) {
			r.Permissions = []store.Permission{{Action: "z"}, {Action: "a", Instance: "i"}}
			r.CreatedAt = at(100)
		},
	},
	spoil: func(r *store.Role) {
		r.Description = "must not be stored"
		r.Permissions = []store.Permission{{Action: "must:not", Scope: "*"}}
	},
}

var users = versioned[store.User]{
	fixture: newUser,
	name:    func(u store.User) string { return u.Login },
	version: func(u *store.User) *int64 { return &u.Version },
	put:     func(s store.Store, ctx context.Context, u store.User) (store.User, error) { return s.PutUser(ctx, u) },
	get: func(s store.Store, ctx context.Context, login string) (store.User, error) {
		return s.GetUser(ctx, login)
	},
	list: func(s store.Store, ctx context.Context) ([]store.User, error) { return s.ListUsers(ctx) },
	norm: normUser,
	roundTrips: []store.User{
		{Login: "alice", Roles: []string{"viewers", "operators", "Admins ✓"}, CreatedAt: at(-3600)},
		{Login: "nil roles", CreatedAt: at(5)},
		{Login: "empty roles", Roles: []string{}, CreatedAt: at(6)},
	},
	changes: []func(*store.User){
		func(u *store.User) { u.Roles = append(u.Roles, "deployers") },
		func(u *store.User) { u.Roles = nil },
		func(u *store.User) { u.Roles = []string{"z", "a"}; u.CreatedAt = at(100) },
	},
	spoil: func(u *store.User) { u.Roles = []string{"must-not-be-stored"} },
}

func runRoles(t *testing.T, newStore func(t *testing.T) store.Store) {
	runVersioned(t, newStore, roles)
}

func runUsers(t *testing.T, newStore func(t *testing.T) store.Store) {
	runVersioned(t, newStore, users)
}

func runVersioned[T any](t *testing.T, newStore func(t *testing.T) store.Store, k versioned[T]) {
	eq := func(t *testing.T, what string, got, want T) {
		t.Helper()
		equal(t, what, got, want, k.norm)
	}
	withVersion := func(v T, version int64) T {
		*k.version(&v) = version
		return v
	}
	create := func(t *testing.T, s store.Store, v T) T {
		t.Helper()
		created, err := k.put(s, t.Context(), v)
		must(t, "create "+k.name(v), err)
		return created
	}
	listNames := func(t *testing.T, s store.Store) []string {
		t.Helper()
		list, err := k.list(s, t.Context())
		must(t, "list", err)
		names := []string{}
		for _, v := range list {
			names = append(names, k.name(v))
		}
		return names
	}

	t.Run("CreateAndGet", func(t *testing.T) {
		s := newStore(t)
		for _, v := range k.roundTrips {
			t.Run(k.name(v), func(t *testing.T) {
				created := create(t, s, v)
				want := withVersion(v, 1)
				eq(t, "returned record", created, want)
				got, err := k.get(s, t.Context(), k.name(v))
				must(t, "get", err)
				eq(t, "stored record", got, want)
			})
		}
	})

	t.Run("CreateTakenExists", func(t *testing.T) {
		s := newStore(t)
		first := create(t, s, k.fixture("a"))
		dup := k.fixture("a")
		k.spoil(&dup)
		_, err := k.put(s, t.Context(), dup)
		mustErrIs(t, "create taken name", err, store.ErrExists)
		got, err := k.get(s, t.Context(), "a")
		must(t, "get", err)
		eq(t, "record after duplicate create", got, first)
	})

	t.Run("UnknownIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := k.get(s, t.Context(), "nope")
		mustErrIs(t, "get unknown", err, store.ErrNotFound)
		_, err = k.put(s, t.Context(), withVersion(k.fixture("nope"), 1))
		mustErrIs(t, "replace unknown", err, store.ErrNotFound)
		_, err = k.get(s, t.Context(), "nope")
		mustErrIs(t, "get after replace of unknown", err, store.ErrNotFound)
		if k.del != nil {
			mustErrIs(t, "delete unknown", k.del(s, t.Context(), "nope"), store.ErrNotFound)
		}
		if names := listNames(t, s); len(names) != 0 {
			t.Fatalf("replace of an unknown record created %v", names)
		}
	})

	t.Run("ReplaceIncrementsVersion", func(t *testing.T) {
		s := newStore(t)
		v := create(t, s, k.fixture("a"))
		for i, change := range k.changes {
			change(&v)
			updated, err := k.put(s, t.Context(), v)
			must(t, fmt.Sprintf("replace step %d", i), err)
			want := withVersion(v, *k.version(&v)+1)
			eq(t, fmt.Sprintf("step %d returned record", i), updated, want)
			got, err := k.get(s, t.Context(), "a")
			must(t, "get", err)
			eq(t, fmt.Sprintf("step %d stored record", i), got, want)
			v = updated
		}
		if got := *k.version(&v); got != int64(len(k.changes))+1 {
			t.Fatalf("version after %d replacements = %d", len(k.changes), got)
		}
	})

	t.Run("StaleVersionConflictsAndChangesNothing", func(t *testing.T) {
		s := newStore(t)
		first := create(t, s, k.fixture("a"))
		next := first
		k.changes[0](&next)
		current, err := k.put(s, t.Context(), next)
		must(t, "replace", err)
		tests := []struct {
			version int64
			want    error
		}{
			{*k.version(&first), store.ErrConflict},
			{*k.version(&current) + 1, store.ErrConflict},
			{0, store.ErrExists},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("version %d", tt.version), func(t *testing.T) {
				bad := withVersion(current, tt.version)
				k.spoil(&bad)
				_, err := k.put(s, t.Context(), bad)
				mustErrIs(t, "stale put", err, tt.want)
				got, err := k.get(s, t.Context(), "a")
				must(t, "get", err)
				eq(t, "record after failed put", got, current)
			})
		}
	})

	if k.del != nil {
		t.Run("DeleteThenGetIsNotFound", func(t *testing.T) {
			s := newStore(t)
			for _, name := range []string{"a", "b"} {
				create(t, s, k.fixture(name))
			}
			must(t, "delete", k.del(s, t.Context(), "a"))
			_, err := k.get(s, t.Context(), "a")
			mustErrIs(t, "get deleted", err, store.ErrNotFound)
			mustErrIs(t, "delete deleted", k.del(s, t.Context(), "a"), store.ErrNotFound)
			_, err = k.put(s, t.Context(), withVersion(k.fixture("a"), 1))
			mustErrIs(t, "replace deleted", err, store.ErrNotFound)
			_, err = k.get(s, t.Context(), "b")
			must(t, "get other", err)
			again := create(t, s, k.fixture("a"))
			if v := *k.version(&again); v != 1 {
				t.Fatalf("re-created version = %d, want 1", v)
			}
			got, err := k.get(s, t.Context(), "a")
			must(t, "get re-created", err)
			eq(t, "re-created record", got, again)
		})
	}

	t.Run("ListSortedByName", func(t *testing.T) {
		s := newStore(t)
		if names := listNames(t, s); len(names) != 0 {
			t.Fatalf("empty store lists %v", names)
		}
		for _, name := range []string{"web2", "db", "web10", "App", "app"} {
			create(t, s, k.fixture(name))
		}
		list, err := k.list(s, t.Context())
		must(t, "list", err)
		want := []string{"App", "app", "db", "web10", "web2"}
		if len(list) != len(want) {
			t.Fatalf("listed %d records, want %d", len(list), len(want))
		}
		for i, v := range list {
			if k.name(v) != want[i] {
				t.Fatalf("record %d = %s, want %s", i, k.name(v), want[i])
			}
			stored, err := k.get(s, t.Context(), k.name(v))
			must(t, "get", err)
			eq(t, "listed record", v, stored)
		}
	})

	// race has racers put a change of base at once; exactly one must succeed, the others
	// failing with want.
	race := func(t *testing.T, s store.Store, base T, want error) {
		t.Helper()
		results := make([]T, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				v := base
				k.changes[i%len(k.changes)](&v)
				<-start
				results[i], errs[i] = k.put(s, t.Context(), v)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("racers %d and %d both succeeded", winner, i)
				}
				winner = i
			case !errors.Is(err, want):
				t.Fatalf("racer %d: error = %v, want nil or %v", i, err, want)
			}
		}
		if winner < 0 {
			t.Fatalf("no racer succeeded: %v", errs)
		}
		got, err := k.get(s, t.Context(), k.name(base))
		must(t, "get", err)
		eq(t, "stored record", got, results[winner])
	}

	t.Run("ConcurrentCreatesOneWins", func(t *testing.T) {
		race(t, newStore(t), k.fixture("raced"), store.ErrExists)
	})

	t.Run("ConcurrentReplacesOneWins", func(t *testing.T) {
		s := newStore(t)
		race(t, s, create(t, s, k.fixture("raced")), store.ErrConflict)
	})
}
