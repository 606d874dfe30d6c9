package orchestrator

import (
	"context"
	"fmt"
)

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
	if err := s.store.MarkNodeDisconnected(ctx, node, ""); err != nil {
		return fmt.Errorf("inventory %s: %w", node, err)
	}
	return nil
}
