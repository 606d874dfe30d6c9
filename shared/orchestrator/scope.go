package orchestrator

import (
	"context"
	"fmt"
	"slices"

	"github.com/baton-run/baton/shared/auth"
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

// QueryResolver runs a scope query on a database of nodes other than Baton's inventory
// (PuppetDB: package puppetdb) and returns the certnames it selects. Errors that are *Error
// (query-error, puppetdb-error, ...) reach the caller as they are.
type QueryResolver interface {
	Certnames(ctx context.Context, pql string) ([]string, error)
}

// WithQueryResolver sends scope queries (scope.query, node groups' queries and query:
// permissions) to r as written, instead of evaluating Baton's PQL subset over the
// inventory's facts. The certnames r returns are kept when enrolled here, as the built-in
// path selects only enrolled nodes.
func WithQueryResolver(r QueryResolver) Option { return func(s *Service) { s.queries = r } }

func (s *Service) resolveQuery(ctx context.Context, q string) ([]string, error) {
	if s.queries != nil {
		return s.resolveExternalQuery(ctx, q)
	}
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

// resolveExternalQuery resolves q with the QueryResolver and keeps the enrolled nodes among
// the certnames it returns, sorted as the built-in path returns them.
func (s *Service) resolveExternalQuery(ctx context.Context, q string) ([]string, error) {
	found, err := s.queries.Certnames(ctx, q)
	if _, ok := AsError(err); ok {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("resolve query: %w", err)
	}
	if len(found) == 0 {
		return nil, newError(KindEmptyTarget, map[string]any{"query": q}, "The query matches no nodes")
	}
	if len(found) > MaxScopeNodes {
		return nil, scopeTooLarge(len(found), "resolves to")
	}
	valid := make([]string, 0, len(found))
	var invalid []string
	for _, n := range found {
		if auth.ValidNodeName(n) {
			valid = append(valid, n)
		} else {
			invalid = append(invalid, n)
		}
	}
	enrolled, err := s.store.EnrolledNodes(ctx, valid)
	if err != nil {
		return nil, fmt.Errorf("look up nodes: %w", err)
	}
	names := make([]string, 0, len(enrolled))
	dropped := invalid
	for _, n := range valid {
		if enrolled[n] {
			names = append(names, n)
		} else {
			dropped = append(dropped, n)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	slices.Sort(dropped)
	dropped = slices.Compact(dropped)
	if len(dropped) > 0 {
		um := UnenrolledMatches{Count: len(dropped), Sample: slices.Clone(dropped[:min(len(dropped), unenrolledSample)])}
		// Info, not debug: a PQL query that selects nodes Baton does not hold is most often a
		// fleet not (yet) enrolled, which the operator should see.
		s.log.Info("query matched nodes that are not enrolled here: the job leaves them out", "query", q,
			"matched", len(found), "enrolled", len(names), "not_enrolled", um.Count, "sample", um.Sample)
		if c, ok := ctx.Value(unenrolledKey{}).(*UnenrolledMatches); ok {
			*c = um
		}
	}
	if len(names) == 0 {
		return nil, newError(KindEmptyTarget, map[string]any{"query": q, "matched": len(found)},
			"The query matches %d nodes, none of them enrolled with this orchestrator", len(found))
	}
	return names, nil
}

// UnenrolledMatches is what a scope query sent to the QueryResolver (PuppetDB) matched that
// a job cannot target: certnames not enrolled here (or not valid node names). A job records it
// in its options as "unenrolled_matches" (a Baton extension PE clients ignore) and the service
// logs it at info.
type UnenrolledMatches struct {
	// Count is the number of distinct certnames left out.
	Count int `json:"count"`
	// Sample names the first few of them, sorted.
	Sample []string `json:"sample"`
}

// unenrolledSample is how many left-out certnames UnenrolledMatches names.
const unenrolledSample = 10

type unenrolledKey struct{}

// resolveTargets is resolveScope for a new job: it also returns what the scope's query
// matched outside the enrolled nodes (nil when nothing was left out, or for a list of nodes).
func (s *Service) resolveTargets(ctx context.Context, sc Scope) ([]string, *UnenrolledMatches, error) {
	var um UnenrolledMatches
	names, err := s.resolveScope(context.WithValue(ctx, unenrolledKey{}, &um), sc)
	if err != nil || um.Count == 0 {
		return names, nil, err
	}
	return names, &um, nil
}
