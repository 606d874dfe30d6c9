package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

const nodeColumns = `name, credential_hash, facts, connected, broker, connection, connected_at, created_at, version`

// nodeValues returns the columns credential_hash through created_at of n.
func nodeValues(n inventory.Node) ([]any, error) {
	var enc encoder
	vals := []any{n.CredentialHash, blob(n.Facts), n.Connected, n.Broker, n.Connection,
		enc.timePtr(n.ConnectedAt), enc.time(n.CreatedAt)}
	if enc.err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, enc.err)
	}
	return vals, nil
}

func scanNode(sc scanner) (inventory.Node, error) {
	var (
		n           inventory.Node
		facts       []byte
		connectedAt sql.NullString
		createdAt   string
	)
	if err := sc.Scan(&n.Name, &n.CredentialHash, &facts, &n.Connected, &n.Broker, &n.Connection,
		&connectedAt, &createdAt, &n.Version); err != nil {
		return inventory.Node{}, err
	}
	var dec decoder
	n.Facts = bytesOrNil(facts)
	n.ConnectedAt, n.CreatedAt = dec.timePtr(connectedAt), dec.time(createdAt)
	if dec.err != nil {
		return inventory.Node{}, fmt.Errorf("node %s: %w", n.Name, dec.err)
	}
	return n, nil
}

// CreateNode implements store.Store.
func (s *Store) CreateNode(ctx context.Context, n inventory.Node) (inventory.Node, error) {
	vals, err := nodeValues(n)
	if err != nil {
		return inventory.Node{}, fmt.Errorf("create node %s: %w", n.Name, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (`+nodeColumns+`) VALUES (?, `+placeholders(len(vals))+`, 1)`,
			append([]any{n.Name}, vals...)...)
		if isUnique(err) {
			return store.ErrExists
		}
		return err
	})
	if err != nil {
		return inventory.Node{}, fmt.Errorf("create node %s: %w", n.Name, err)
	}
	n.Version = 1
	return n, nil
}

// GetNode implements store.Store; an unknown name is ErrNotFound.
func (s *Store) GetNode(ctx context.Context, name string) (inventory.Node, error) {
	n, err := scanNode(s.r.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return inventory.Node{}, fmt.Errorf("get node %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return inventory.Node{}, fmt.Errorf("get node %s: %w", name, err)
	}
	return n, nil
}

// ListNodes implements store.Store; names are ordered bytewise.
func (s *Store) ListNodes(ctx context.Context) ([]inventory.Node, error) {
	out, err := listRows(ctx, s.r, `SELECT `+nodeColumns+` FROM nodes ORDER BY name`, scanNode)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// UpdateNode implements store.Store; an unknown name is ErrNotFound.
func (s *Store) UpdateNode(ctx context.Context, n inventory.Node) (inventory.Node, error) {
	vals, err := nodeValues(n)
	if err != nil {
		return inventory.Node{}, fmt.Errorf("update node %s: %w", n.Name, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET credential_hash = ?, facts = ?, connected = ?, broker = ?,
			connection = ?, connected_at = ?, created_at = ?, version = version + 1 WHERE name = ? AND version = ?`,
			append(vals, n.Name, n.Version)...)
		if err != nil {
			return err
		}
		rows, err := affected(res)
		if err != nil {
			return err
		}
		if rows == 0 {
			return versionMiss(ctx, tx, `SELECT 1 FROM nodes WHERE name = ?`, n.Name)
		}
		return nil
	})
	if err != nil {
		return inventory.Node{}, fmt.Errorf("update node %s at version %d: %w", n.Name, n.Version, err)
	}
	n.Version++
	return n, nil
}

// DeleteNode implements store.Store; an unknown name is ErrNotFound.
func (s *Store) DeleteNode(ctx context.Context, name string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE name = ?`, name)
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
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	return nil
}
