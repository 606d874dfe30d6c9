package storetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

// newInvNode returns an inventory fixture named name with every field set.
func newInvNode(name string) inventory.Node {
	return inventory.Node{
		Name:           name,
		CredentialHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Facts:          json.RawMessage(`{}`),
		CreatedAt:      at(0),
	}
}

func equalInv(t *testing.T, what string, got, want inventory.Node) {
	t.Helper()
	equal(t, what, got, want, normInv)
}

func runInventory(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateAndGet", func(t *testing.T) {
		s := newStore(t)
		tests := []struct {
			name string
			node inventory.Node
		}{
			{"fresh", newInvNode("fresh.example.com")},
			{"connected", inventory.Node{
				Name:           "connected.example.com",
				CredentialHash: "abc123",
				Facts:          json.RawMessage(`{"os":{"family":"RedHat","release":{"major":"9"}},"processors":{"count":4},"ok":true}`),
				Connected:      true,
				Broker:         "pcp://broker-1/server",
				Connection:     "Zx9abcDEF=",
				ConnectedAt:    ptr(at(30)),
				CreatedAt:      at(-3600),
				Version:        12, // ignored: the store sets 1
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				created, err := s.CreateNode(t.Context(), tt.node)
				must(t, "create node", err)
				want := tt.node
				want.Version = 1
				equalInv(t, "returned node", created, want)
				got, err := s.GetNode(t.Context(), tt.node.Name)
				must(t, "get node", err)
				equalInv(t, "stored node", got, want)
			})
		}
	})

	t.Run("CreateDuplicateExists", func(t *testing.T) {
		s := newStore(t)
		first := newInvNode("a")
		_, err := s.CreateNode(t.Context(), first)
		must(t, "create node", err)
		dup := newInvNode("a")
		dup.CredentialHash = "other"
		_, err = s.CreateNode(t.Context(), dup)
		mustErrIs(t, "create duplicate", err, store.ErrExists)
		got, err := s.GetNode(t.Context(), "a")
		must(t, "get node", err)
		first.Version = 1
		equalInv(t, "node after duplicate create", got, first)
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetNode(t.Context(), "nope")
		mustErrIs(t, "get unknown node", err, store.ErrNotFound)
	})

	t.Run("UpdateIncrementsVersion", func(t *testing.T) {
		s := newStore(t)
		n, err := s.CreateNode(t.Context(), newInvNode("a"))
		must(t, "create node", err)
		steps := []func(n *inventory.Node){
			func(n *inventory.Node) {
				n.Connected, n.Broker, n.Connection, n.ConnectedAt = true, "pcp://b/server", "conn-1", ptr(at(5))
				n.Facts = json.RawMessage(`{"kernel":"Linux"}`)
			},
			func(n *inventory.Node) { n.Connected, n.Connection = false, "" },
			func(n *inventory.Node) { n.ConnectedAt = nil; n.CredentialHash = "rotated" },
		}
		for i, step := range steps {
			step(&n)
			updated, err := s.UpdateNode(t.Context(), n)
			must(t, fmt.Sprintf("update step %d", i), err)
			want := n
			want.Version++
			equalInv(t, fmt.Sprintf("step %d returned node", i), updated, want)
			got, err := s.GetNode(t.Context(), "a")
			must(t, "get node", err)
			equalInv(t, fmt.Sprintf("step %d stored node", i), got, want)
			n = updated
		}
	})

	t.Run("UpdateStaleVersionConflictsAndChangesNothing", func(t *testing.T) {
		s := newStore(t)
		n, err := s.CreateNode(t.Context(), newInvNode("a"))
		must(t, "create node", err)
		n.Connected = true
		current, err := s.UpdateNode(t.Context(), n)
		must(t, "update node", err)
		for _, stale := range []int64{n.Version, current.Version + 1, 0} {
			t.Run(fmt.Sprintf("version %d", stale), func(t *testing.T) {
				bad := current
				bad.Version = stale
				bad.Connected = false
				bad.Broker = "must not be stored"
				_, err := s.UpdateNode(t.Context(), bad)
				mustErrIs(t, "stale update", err, store.ErrConflict)
				got, err := s.GetNode(t.Context(), "a")
				must(t, "get node", err)
				equalInv(t, "node after failed update", got, current)
			})
		}
	})

	t.Run("DeleteThenGetIsNotFound", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"a", "b"} {
			_, err := s.CreateNode(t.Context(), newInvNode(name))
			must(t, "create node", err)
		}
		must(t, "delete node", s.DeleteNode(t.Context(), "a"))
		_, err := s.GetNode(t.Context(), "a")
		mustErrIs(t, "get deleted node", err, store.ErrNotFound)
		_, err = s.GetNode(t.Context(), "b")
		must(t, "get other node", err)
		// The name is free again.
		again, err := s.CreateNode(t.Context(), newInvNode("a"))
		must(t, "re-create node", err)
		if again.Version != 1 {
			t.Fatalf("re-created node version = %d, want 1", again.Version)
		}
	})

	t.Run("ListSortedByName", func(t *testing.T) {
		s := newStore(t)
		got, err := s.ListNodes(t.Context())
		must(t, "list nodes on empty store", err)
		if len(got) != 0 {
			t.Fatalf("empty store lists %d nodes", len(got))
		}
		for _, name := range []string{"web2.example.com", "db.example.com", "web10.example.com", "app.example.com"} {
			_, err := s.CreateNode(t.Context(), newInvNode(name))
			must(t, "create node", err)
		}
		got, err = s.ListNodes(t.Context())
		must(t, "list nodes", err)
		want := []string{"app.example.com", "db.example.com", "web10.example.com", "web2.example.com"}
		if len(got) != len(want) {
			t.Fatalf("listed %d nodes, want %d", len(got), len(want))
		}
		for i, n := range got {
			if n.Name != want[i] {
				t.Fatalf("node %d = %s, want %s", i, n.Name, want[i])
			}
			stored, err := s.GetNode(t.Context(), n.Name)
			must(t, "get node", err)
			equalInv(t, "listed node", n, stored)
		}
	})
}
