package orchestrator

import (
	"context"
	"fmt"

	"github.com/baton-run/baton/shared/query"
)

// resolveExtendedScope resolves a node group, or a PQL-subset query over the inventory's facts.
func (s *Service) resolveExtendedScope(ctx context.Context, sc Scope) ([]string, error) {
	if sc.NodeGroup != "" {
		g, err := s.Group(ctx, sc.NodeGroup)
		if err != nil {
			return nil, err
		}
		if g.Query == "" {
			if len(g.Nodes) == 0 {
				return nil, newError(KindEmptyTarget, map[string]any{"node_group": g.Name}, "Node group %s has no nodes", g.Name)
			}
			return g.Nodes, nil
		}
		names, err := s.resolveQuery(ctx, g.Query)
		if e, ok := AsError(err); ok && e.Kind == KindEmptyTarget {
			e.Msg = fmt.Sprintf("Node group %s matches no nodes", g.Name)
			e.Details["node_group"] = g.Name
		}
		return names, err
	}
	return s.resolveQuery(ctx, sc.Query)
}

func (s *Service) resolveQuery(ctx context.Context, q string) ([]string, error) {
	parsed, err := query.Parse(q)
	if err != nil {
		return nil, queryError(q, err)
	}
	names, err := parsed.Eval(ctx, s.store)
	if err != nil {
		return nil, fmt.Errorf("resolve query: %w", err)
	}
	if len(names) == 0 {
		return nil, newError(KindEmptyTarget, map[string]any{"query": q}, "The query matches no nodes")
	}
	return names, nil
}
