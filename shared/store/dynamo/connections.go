package dynamo

import (
	"context"
	"fmt"
)

// Connections returns the live connection id of each of names whose agent is connected
// (names not connected, or not enrolled, are missing): one consistent BatchGetItem of their
// connection items per 100 names (a read unit per item: the items are about 250 bytes). It
// is what a sender needs — never the facts, which GetNode reads too (a Query of both items,
// several read units when the facts are large) — and what the AWS deployment looks up
// before it sends.
func (s *Store) Connections(ctx context.Context, names []string) (map[string]string, error) {
	got, err := s.connItems(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("look up connections: %w", err)
	}
	out := make(map[string]string, len(got))
	for _, it := range got {
		r := reader{it: it}
		name, connected, conn := r.s(attrName), r.b(attrConnected), r.optS(attrConnection)
		if r.err != nil {
			return nil, fmt.Errorf("look up connections: %w", r.err)
		}
		if connected && conn != "" {
			out[name] = conn
		}
	}
	return out, nil
}
