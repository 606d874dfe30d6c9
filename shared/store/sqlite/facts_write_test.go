package sqlite

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

// TestUnchangedFactsAreNotWritten: an agent's facts, sent again unchanged on every connect,
// cost a read and no write; changed facts are written; an unknown node is still not found.
func TestUnchangedFactsAreNotWritten(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if _, err := s.CreateNode(ctx, inventory.Node{Name: "web1", Facts: json.RawMessage(`{}`), CreatedAt: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	facts := []byte(`{"os":{"family":"Debian"}}`)
	steps := []struct {
		name   string
		node   string
		facts  []byte
		writes int64
		err    error
	}{
		{"new facts are written", "web1", facts, 1, nil},
		{"the same facts again are not", "web1", facts, 0, nil},
		{"changed facts are", "web1", []byte(`{"os":{"family":"RedHat"}}`), 1, nil},
		{"an unknown node is not found", "nope", facts, 0, store.ErrNotFound},
	}
	for _, st := range steps {
		before := s.Stats().Writes
		err := s.SetNodeFacts(ctx, st.node, st.facts)
		if !errors.Is(err, st.err) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.err)
		}
		if got := s.Stats().Writes - before; got != st.writes {
			t.Fatalf("%s: %d writes, want %d", st.name, got, st.writes)
		}
	}
	n, err := s.GetNode(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if string(n.Facts) != `{"os":{"family":"RedHat"}}` {
		t.Fatalf("facts %s, want the last ones written", n.Facts)
	}
}
