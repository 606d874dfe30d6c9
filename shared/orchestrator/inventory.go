package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

type inventoryNode = inventory.Node

// updateInventory applies change to node name's inventory record, retrying on conflicts.
func (s *Service) updateInventory(ctx context.Context, name string, change func(*inventory.Node)) error {
	for attempt := 0; ; attempt++ {
		n, err := s.store.GetNode(ctx, name)
		if err != nil {
			return fmt.Errorf("inventory %s: %w", name, err)
		}
		change(&n)
		_, err = s.store.UpdateNode(ctx, n)
		if errors.Is(err, store.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return fmt.Errorf("inventory %s: %w", name, err)
		}
		return nil
	}
}

// Disconnector is implemented by senders that can close a node's live connection.
type Disconnector interface {
	Disconnect(ctx context.Context, node string) error
}

// DisconnectNode closes node's live connection, if the sender can (after its credential was
// revoked, so that it cannot come back) and records it offline.
func (s *Service) DisconnectNode(ctx context.Context, node string) error {
	if d, ok := s.sender.(Disconnector); ok {
		if err := d.Disconnect(ctx, node); err != nil {
			return fmt.Errorf("disconnect %s: %w", node, err)
		}
	}
	return s.updateInventory(ctx, node, func(n *inventory.Node) { n.Connected = false })
}
