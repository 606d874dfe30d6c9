package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/query"
	"github.com/baton-run/baton/shared/store"
)

// KindUnknownGroup is the error kind for a node group that does not exist.
const KindUnknownGroup = "puppetlabs.orchestrator/unknown-node-group"

var groupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$`)

// CreateGroup records a named node group: a fixed list of nodes, or a query resolved each
// time a job targets the group.
func (s *Service) CreateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error) {
	if !groupNameRE.MatchString(g.Name) {
		return g, newError(KindValidation, map[string]any{"name": g.Name}, "invalid group name %q: use letters, digits, '.', '-' and '_'", g.Name)
	}
	if (len(g.Nodes) > 0) == (g.Query != "") {
		return g, newError(KindValidation, map[string]any{"name": g.Name}, "a group has either nodes or a query")
	}
	var nodes []string
	for _, n := range g.Nodes {
		if !auth.ValidNodeName(n) {
			return g, newError(KindValidation, map[string]any{"node": n}, "invalid node name %q", n)
		}
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	g.Nodes = nodes
	if g.Query != "" && s.queries == nil { // a QueryResolver checks its queries when they run
		if _, err := query.Parse(g.Query); err != nil {
			return g, queryError(g.Query, err)
		}
	}
	g.CreatedAt = s.clock()
	created, err := s.store.CreateGroup(ctx, g)
	if errors.Is(err, store.ErrExists) {
		return g, newError(KindConflict, map[string]any{"name": g.Name}, "group %s already exists", g.Name)
	}
	if err != nil {
		return g, fmt.Errorf("create group %s: %w", g.Name, err)
	}
	return created, nil
}

// Groups lists the node groups.
func (s *Service) Groups(ctx context.Context) ([]inventory.Group, error) {
	return s.store.ListGroups(ctx)
}

// Group returns one node group.
func (s *Service) Group(ctx context.Context, name string) (inventory.Group, error) {
	g, err := s.store.GetGroup(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return g, &Error{Kind: KindUnknownGroup, Msg: fmt.Sprintf("Unknown node group %s", name), Details: map[string]any{"node_group": name}, Err: err}
	}
	return g, err
}

// DeleteGroup removes a node group.
func (s *Service) DeleteGroup(ctx context.Context, name string) error {
	err := s.store.DeleteGroup(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Kind: KindUnknownGroup, Msg: fmt.Sprintf("Unknown node group %s", name), Details: map[string]any{"node_group": name}, Err: err}
	}
	return err
}

func queryError(q string, err error) error {
	details := map[string]any{"query": q}
	var qe *query.Error
	if errors.As(err, &qe) {
		details["position"] = qe.Pos
	}
	return &Error{Kind: KindQueryError, Msg: err.Error(), Details: details}
}
