package orchestrator_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
)

// TestFactsAreCapped: facts larger than MaxFactsBytes are refused as an invalid message and
// the node keeps its previous facts; facts within the cap are stored.
func TestFactsAreCapped(t *testing.T) {
	orch, st := newScopeService(t)
	ctx := t.Context()
	if _, err := st.CreateNode(ctx, inventory.Node{Name: "web1", Facts: json.RawMessage(`{}`), CreatedAt: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	facts := func(pad int) protocol.Envelope {
		t.Helper()
		e, err := protocol.New(protocol.TypeFacts, protocol.AgentURI("web1"), protocol.Facts{Facts: map[string]any{"role": "web", "pad": strings.Repeat("x", pad)}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if err := orch.HandleAgentMessage(ctx, "web1", facts(1000)); err != nil {
		t.Fatalf("small facts: %v", err)
	}
	before, err := st.GetNode(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	err = orch.HandleAgentMessage(ctx, "web1", facts(orchestrator.MaxFactsBytes))
	if !errors.Is(err, protocol.ErrInvalid) || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("facts over %d bytes: %v, want an invalid-message error", orchestrator.MaxFactsBytes, err)
	}
	after, err := st.GetNode(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if string(after.Facts) != string(before.Facts) {
		t.Errorf("refused facts were stored (%d bytes)", len(after.Facts))
	}
	if err := orch.HandleAgentMessage(ctx, "web1", facts(orchestrator.MaxFactsBytes-1000)); err != nil {
		t.Errorf("facts just within the cap: %v", err)
	}
}
