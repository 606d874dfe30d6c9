package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

const groupColumns = `name, description, nodes, query, created_at, version`

// groupValues returns the columns description through created_at of g. Nodes is stored as a
// JSON array of names.
func groupValues(g inventory.Group) ([]any, error) {
	nodes := g.Nodes
	if nodes == nil {
		nodes = []string{}
	}
	nodesJSON, err := json.Marshal(nodes)
	if err != nil {
		return nil, fmt.Errorf("encode nodes: %w", err)
	}
	var enc encoder
	vals := []any{g.Description, string(nodesJSON), g.Query, enc.time(g.CreatedAt)}
	if enc.err != nil {
		return nil, enc.err
	}
	return vals, nil
}

func scanGroup(sc scanner) (inventory.Group, error) {
	var (
		g                inventory.Group
		nodes, createdAt string
	)
	if err := sc.Scan(&g.Name, &g.Description, &nodes, &g.Query, &createdAt, &g.Version); err != nil {
		return inventory.Group{}, err
	}
	if err := json.Unmarshal([]byte(nodes), &g.Nodes); err != nil {
		return inventory.Group{}, fmt.Errorf("group %s: decode nodes: %w", g.Name, err)
	}
	if len(g.Nodes) == 0 {
		g.Nodes = nil
	}
	var dec decoder
	g.CreatedAt = dec.time(createdAt)
	if dec.err != nil {
		return inventory.Group{}, fmt.Errorf("group %s: %w", g.Name, dec.err)
	}
	return g, nil
}

// CreateGroup implements store.Store.
func (s *Store) CreateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error) {
	vals, err := groupValues(g)
	if err != nil {
		return inventory.Group{}, fmt.Errorf("create group %s: %w", g.Name, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO node_groups (`+groupColumns+`) VALUES (?, `+
			placeholders(len(vals))+`, 1)`, append([]any{g.Name}, vals...)...)
		if isUnique(err) {
			return store.ErrExists
		}
		return err
	})
	if err != nil {
		return inventory.Group{}, fmt.Errorf("create group %s: %w", g.Name, err)
	}
	g.Version = 1
	return g, nil
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, name string) (inventory.Group, error) {
	g, err := scanGroup(s.rq.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM node_groups WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return inventory.Group{}, fmt.Errorf("get group %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return inventory.Group{}, fmt.Errorf("get group %s: %w", name, err)
	}
	return g, nil
}

// ListGroups implements store.Store; names are ordered bytewise.
func (s *Store) ListGroups(ctx context.Context) ([]inventory.Group, error) {
	out, err := listRows(ctx, s.rq, `SELECT `+groupColumns+` FROM node_groups ORDER BY name`, scanGroup)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error) {
	vals, err := groupValues(g)
	if err != nil {
		return inventory.Group{}, fmt.Errorf("update group %s: %w", g.Name, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE node_groups SET description = ?, nodes = ?, query = ?, created_at = ?,
			version = version + 1 WHERE name = ? AND version = ?`, append(vals, g.Name, g.Version)...)
		if err != nil {
			return err
		}
		rows, err := affected(res)
		if err != nil {
			return err
		}
		if rows == 0 {
			return versionMiss(ctx, tx, `SELECT 1 FROM node_groups WHERE name = ?`, g.Name)
		}
		return nil
	})
	if err != nil {
		return inventory.Group{}, fmt.Errorf("update group %s at version %d: %w", g.Name, g.Version, err)
	}
	g.Version++
	return g, nil
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM node_groups WHERE name = ?`, name)
		if err != nil {
			return err
		}
		rows, err := affected(res)
		if err != nil {
			return err
		}
		if rows == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete group %s: %w", name, err)
	}
	return nil
}
