package storetest

import (
	"fmt"
	"testing"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

// newGroup returns a static group fixture named name holding nodes.
func newGroup(name string, nodes ...string) inventory.Group {
	return inventory.Group{
		Name:        name,
		Description: "group " + name,
		Nodes:       nodes,
		CreatedAt:   at(0),
	}
}

func equalGroup(t *testing.T, what string, got, want inventory.Group) {
	t.Helper()
	equal(t, what, got, want, normGroup)
}

func runGroups(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateAndGet", func(t *testing.T) {
		s := newStore(t)
		tests := []struct {
			name  string
			group inventory.Group
		}{
			{"static", newGroup("web", "web2.example.com", "web1.example.com", "web10.example.com")},
			{"query", inventory.Group{
				Name:        "redhat",
				Description: "Red Hat ✓ \"nine\"",
				Query:       `inventory[certname] { facts.os.family = "RedHat" and facts.os.release.major = "9" }`,
				CreatedAt:   at(-3600),
				Version:     12, // ignored: the store sets 1
			}},
			{"empty", inventory.Group{Name: "empty", CreatedAt: at(5)}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				created, err := s.CreateGroup(t.Context(), tt.group)
				must(t, "create group", err)
				want := tt.group
				want.Version = 1
				equalGroup(t, "returned group", created, want)
				got, err := s.GetGroup(t.Context(), tt.group.Name)
				must(t, "get group", err)
				equalGroup(t, "stored group", got, want)
			})
		}
	})

	t.Run("CreateDuplicateExists", func(t *testing.T) {
		s := newStore(t)
		first, err := s.CreateGroup(t.Context(), newGroup("web", "a", "b"))
		must(t, "create group", err)
		dup := newGroup("web")
		dup.Query = "facts.kernel = Linux"
		_, err = s.CreateGroup(t.Context(), dup)
		mustErrIs(t, "create duplicate group", err, store.ErrExists)
		got, err := s.GetGroup(t.Context(), "web")
		must(t, "get group", err)
		equalGroup(t, "group after duplicate create", got, first)
		list, err := s.ListGroups(t.Context())
		must(t, "list groups", err)
		if len(list) != 1 {
			t.Fatalf("listed %d groups after duplicate create, want 1", len(list))
		}
	})

	t.Run("UnknownIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetGroup(t.Context(), "nope")
		mustErrIs(t, "get unknown group", err, store.ErrNotFound)
		g := newGroup("nope", "a")
		g.Version = 1
		_, err = s.UpdateGroup(t.Context(), g)
		mustErrIs(t, "update unknown group", err, store.ErrNotFound)
		mustErrIs(t, "delete unknown group", s.DeleteGroup(t.Context(), "nope"), store.ErrNotFound)
		list, err := s.ListGroups(t.Context())
		must(t, "list groups", err)
		if len(list) != 0 {
			t.Fatalf("update of an unknown group created %+v", list)
		}
	})

	t.Run("UpdateIncrementsVersion", func(t *testing.T) {
		s := newStore(t)
		g, err := s.CreateGroup(t.Context(), newGroup("web", "a", "b"))
		must(t, "create group", err)
		steps := []func(g *inventory.Group){
			func(g *inventory.Group) { g.Nodes = append(g.Nodes, "c"); g.Description = "three nodes" },
			func(g *inventory.Group) { g.Nodes, g.Query = nil, `facts.role = "web"` },
			func(g *inventory.Group) { g.Nodes, g.Query = []string{"z", "a"}, "" },
		}
		for i, step := range steps {
			step(&g)
			updated, err := s.UpdateGroup(t.Context(), g)
			must(t, fmt.Sprintf("update step %d", i), err)
			want := g
			want.Version++
			equalGroup(t, fmt.Sprintf("step %d returned group", i), updated, want)
			got, err := s.GetGroup(t.Context(), "web")
			must(t, "get group", err)
			equalGroup(t, fmt.Sprintf("step %d stored group", i), got, want)
			g = updated
		}
	})

	t.Run("UpdateStaleVersionConflictsAndChangesNothing", func(t *testing.T) {
		s := newStore(t)
		g, err := s.CreateGroup(t.Context(), newGroup("web", "a"))
		must(t, "create group", err)
		g.Nodes = []string{"a", "b"}
		current, err := s.UpdateGroup(t.Context(), g)
		must(t, "update group", err)
		for _, stale := range []int64{g.Version, current.Version + 1, 0} {
			t.Run(fmt.Sprintf("version %d", stale), func(t *testing.T) {
				bad := current
				bad.Version = stale
				bad.Nodes = []string{"must-not-be-stored"}
				bad.Description = "must not be stored"
				_, err := s.UpdateGroup(t.Context(), bad)
				mustErrIs(t, "stale update", err, store.ErrConflict)
				got, err := s.GetGroup(t.Context(), "web")
				must(t, "get group", err)
				equalGroup(t, "group after failed update", got, current)
			})
		}
	})

	t.Run("DeleteThenGetIsNotFound", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"a", "b"} {
			_, err := s.CreateGroup(t.Context(), newGroup(name, "n1"))
			must(t, "create group", err)
		}
		must(t, "delete group", s.DeleteGroup(t.Context(), "a"))
		_, err := s.GetGroup(t.Context(), "a")
		mustErrIs(t, "get deleted group", err, store.ErrNotFound)
		mustErrIs(t, "delete deleted group", s.DeleteGroup(t.Context(), "a"), store.ErrNotFound)
		_, err = s.GetGroup(t.Context(), "b")
		must(t, "get other group", err)
		again, err := s.CreateGroup(t.Context(), newGroup("a", "n2"))
		must(t, "re-create group", err)
		if again.Version != 1 {
			t.Fatalf("re-created group version = %d, want 1", again.Version)
		}
		got, err := s.GetGroup(t.Context(), "a")
		must(t, "get re-created group", err)
		equalGroup(t, "re-created group", got, again)
	})

	t.Run("ListSortedByName", func(t *testing.T) {
		s := newStore(t)
		got, err := s.ListGroups(t.Context())
		must(t, "list groups on empty store", err)
		if len(got) != 0 {
			t.Fatalf("empty store lists %d groups", len(got))
		}
		for _, name := range []string{"web2", "db", "web10", "App", "app"} {
			_, err := s.CreateGroup(t.Context(), newGroup(name, name+".example.com"))
			must(t, "create group", err)
		}
		got, err = s.ListGroups(t.Context())
		must(t, "list groups", err)
		want := []string{"App", "app", "db", "web10", "web2"}
		if len(got) != len(want) {
			t.Fatalf("listed %d groups, want %d", len(got), len(want))
		}
		for i, g := range got {
			if g.Name != want[i] {
				t.Fatalf("group %d = %s, want %s", i, g.Name, want[i])
			}
			stored, err := s.GetGroup(t.Context(), g.Name)
			must(t, "get group", err)
			equalGroup(t, "listed group", g, stored)
		}
	})
}
