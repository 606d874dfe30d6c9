package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/query"
)

// resolveExtendedScope resolves a PQL-subset query over the inventory's facts.
func (s *Service) resolveExtendedScope(ctx context.Context, sc Scope) ([]string, error) {
	if sc.NodeGroup != "" {
		return nil, newError(KindValidation, map[string]any{"node_group": sc.NodeGroup}, "node_group scopes are not available on this server yet; use nodes or query")
	}
	q, err := query.Parse(sc.Query)
	if err != nil {
		var qe *query.Error
		details := map[string]any{"query": sc.Query}
		if errors.As(err, &qe) {
			details["position"] = qe.Pos
		}
		return nil, &Error{Kind: KindQueryError, Msg: err.Error(), Details: details}
	}
	all, err := s.store.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolve query: %w", err)
	}
	cands := make([]query.Candidate, 0, len(all))
	for _, n := range all {
		var facts map[string]any
		if len(n.Facts) > 0 {
			if err := json.Unmarshal(n.Facts, &facts); err != nil {
				s.log.Warn("unreadable facts", "node", n.Name, "err", err)
			}
		}
		cands = append(cands, query.Candidate{Name: n.Name, Facts: facts})
	}
	names := query.Select(q, cands)
	if len(names) == 0 {
		return nil, newError(KindEmptyTarget, map[string]any{"query": sc.Query}, "The query matches no nodes")
	}
	return names, nil
}
