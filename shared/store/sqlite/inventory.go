package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (`+nodeColumns+`, facts_sha256) VALUES (?, `+placeholders(len(vals))+`, 1, ?)`,
			append(append([]any{n.Name}, vals...), factsHash(n.Facts))...)
		if isUnique(err) {
			return store.ErrExists
		}
		if err != nil {
			return err
		}
		return indexFacts(ctx, tx, n.Name, n.Facts)
	})
	if err != nil {
		return inventory.Node{}, fmt.Errorf("create node %s: %w", n.Name, err)
	}
	n.Version = 1
	return n, nil
}

// CreateNodes implements store.Store in one write.
func (s *Store) CreateNodes(ctx context.Context, nodes []inventory.Node) error {
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO nodes (`+nodeColumns+`, facts_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, n := range nodes {
			vals, err := nodeValues(n)
			if err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			_, err = stmt.ExecContext(ctx, append(append([]any{n.Name}, vals...), factsHash(n.Facts))...)
			if isUnique(err) {
				return fmt.Errorf("node %s: %w", n.Name, store.ErrExists)
			}
			if err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			if err := indexFacts(ctx, tx, n.Name, n.Facts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create %d nodes: %w", len(nodes), err)
	}
	return nil
}

// GetNode implements store.Store; an unknown name is ErrNotFound.
func (s *Store) GetNode(ctx context.Context, name string) (inventory.Node, error) {
	n, err := scanNode(s.rq.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = ?`, name))
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
	out, err := listRows(ctx, s.rq, `SELECT `+nodeColumns+` FROM nodes ORDER BY name`, scanNode)
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
	sum := factsHash(n.Facts)
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT facts_sha256 FROM nodes WHERE name = ? AND version = ?`, n.Name, n.Version).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return versionMiss(ctx, tx, `SELECT 1 FROM nodes WHERE name = ?`, n.Name)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE nodes SET credential_hash = ?, facts = ?, connected = ?, broker = ?,
			connection = ?, connected_at = ?, created_at = ?, facts_sha256 = ?, version = version + 1 WHERE name = ?`,
			append(vals, sum, n.Name)...); err != nil {
			return err
		}
		if old == sum {
			return nil
		}
		return indexFacts(ctx, tx, n.Name, n.Facts)
	})
	if err != nil {
		return inventory.Node{}, fmt.Errorf("update node %s at version %d: %w", n.Name, n.Version, err)
	}
	n.Version++
	return n, nil
}

// DeleteNode implements store.Store; an unknown name is ErrNotFound.
func (s *Store) DeleteNode(ctx context.Context, name string) error {
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
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

// factsHash is the hex SHA-256 of a node's facts as stored ("" for none).
func factsHash(facts []byte) string {
	if len(facts) == 0 {
		return ""
	}
	sum := sha256.Sum256(facts)
	return hex.EncodeToString(sum[:])
}

// maxFactPaths caps the fact paths indexed; a query on a path beyond them decodes every
// node's facts instead (correct, slower).
const maxFactPaths = 256

// indexFacts rewrites node name's rows of node_facts for every indexed path from facts.
func indexFacts(ctx context.Context, tx dbtx, name string, facts []byte) error {
	paths, err := listRows(ctx, tx, `SELECT path FROM fact_paths`, scanString)
	if err != nil {
		return fmt.Errorf("index facts of %s: %w", name, err)
	}
	if len(paths) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM node_facts WHERE name = ?`, name); err != nil {
		return fmt.Errorf("index facts of %s: %w", name, err)
	}
	m, err := inventory.DecodeFacts(facts)
	if err != nil {
		return nil // unreadable facts match nothing; the node keeps no index rows
	}
	for _, key := range paths {
		var path []string
		if err := json.Unmarshal([]byte(key), &path); err != nil {
			return fmt.Errorf("index facts: stored path %q: %w", key, err)
		}
		if err := insertFact(ctx, tx, key, name, m, path); err != nil {
			return err
		}
	}
	return nil
}

func insertFact(ctx context.Context, tx dbtx, key, name string, facts map[string]any, path []string) error {
	v, ok := inventory.FactAt(facts, path)
	if !ok {
		return nil
	}
	enc, err := inventory.EncodeFactValue(v)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO node_facts (path, name, value) VALUES (?, ?, ?)`, key, name, enc); err != nil {
		return fmt.Errorf("index fact %s of %s: %w", key, name, err)
	}
	return nil
}

func scanString(sc scanner) (string, error) {
	var v string
	err := sc.Scan(&v)
	return v, err
}

// EnrolledNodes implements store.Store: primary-key look-ups, 500 names per statement.
func (s *Store) EnrolledNodes(ctx context.Context, names []string) (map[string]bool, error) {
	out := make(map[string]bool, len(names))
	const chunk = 500
	for i := 0; i < len(names); i += chunk {
		part := names[i:min(i+chunk, len(names))]
		args := make([]any, len(part))
		for k, n := range part {
			args[k] = n
		}
		found, err := listRows(ctx, s.rq, `SELECT name FROM nodes WHERE name IN (`+placeholders(len(part))+`)`, scanString, args...)
		if err != nil {
			return nil, fmt.Errorf("look up nodes: %w", err)
		}
		for _, n := range found {
			out[n] = true
		}
	}
	return out, nil
}

// NodeNames implements store.Store.
func (s *Store) NodeNames(ctx context.Context) ([]string, error) {
	out, err := listRows(ctx, s.rq, `SELECT name FROM nodes ORDER BY name`, scanString)
	if err != nil {
		return nil, fmt.Errorf("list node names: %w", err)
	}
	return out, nil
}

// SetNodeFacts implements store.Store: unchanged facts (by hash) are not written.
func (s *Store) SetNodeFacts(ctx context.Context, name string, facts []byte) error {
	sum := factsHash(facts)
	// Agents send their facts on every connect, mostly unchanged: a read on the pool tells,
	// and spares the committer (every write waits in its line) a write that would change
	// nothing — a reconnect storm of 10,000 agents is 10,000 of them.
	var stored string
	err := s.rq.QueryRowContext(ctx, `SELECT facts_sha256 FROM nodes WHERE name = ?`, name).Scan(&stored)
	if err == nil && stored == sum {
		return nil
	}
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT facts_sha256 FROM nodes WHERE name = ?`, name).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if old == sum {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE nodes SET facts = ?, facts_sha256 = ?, version = version + 1 WHERE name = ?`,
			blob(facts), sum, name); err != nil {
			return err
		}
		return indexFacts(ctx, tx, name, facts)
	})
	if err != nil {
		return fmt.Errorf("set facts of node %s: %w", name, err)
	}
	return nil
}

// FactValues implements store.Store. The first query of a path indexes it (decoding every
// node's facts once); later ones read the index, which every facts write keeps current.
func (s *Store) FactValues(ctx context.Context, path []string) (map[string]any, error) {
	key := inventory.FactPathKey(path)
	fail := func(err error) (map[string]any, error) { return nil, fmt.Errorf("fact values at %s: %w", key, err) }
	var indexed bool
	err := s.read(ctx, func(tx dbtx) error {
		var err error
		indexed, err = exists(ctx, tx, `SELECT 1 FROM fact_paths WHERE path = ?`, key)
		return err
	})
	if err != nil {
		return fail(err)
	}
	if !indexed {
		if indexed, err = s.indexFactPath(ctx, key, path); err != nil {
			return fail(err)
		}
	}
	if !indexed {
		return s.scanFactValues(ctx, path)
	}
	type row struct{ name, value string }
	rows, err := listRows(ctx, s.rq, `SELECT name, value FROM node_facts WHERE path = ?`, func(sc scanner) (row, error) {
		var r row
		err := sc.Scan(&r.name, &r.value)
		return r, err
	}, key)
	if err != nil {
		return fail(err)
	}
	out := make(map[string]any, len(rows))
	for _, r := range rows {
		v, err := inventory.DecodeFactValue(r.value)
		if err != nil {
			return fail(err)
		}
		out[r.name] = v
	}
	return out, nil
}

// indexFactPath adds path to the indexed paths, unless maxFactPaths are indexed already.
func (s *Store) indexFactPath(ctx context.Context, key string, path []string) (bool, error) {
	indexed := false
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		indexed = false // set afresh: a write may run twice
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM fact_paths`).Scan(&n); err != nil {
			return err
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM fact_paths WHERE path = ?`, key); err != nil || ok {
			indexed = ok
			return err
		}
		if n >= maxFactPaths {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO fact_paths (path) VALUES (?)`, key); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT name, facts FROM nodes`)
		if err != nil {
			return err
		}
		type nf struct {
			name  string
			facts []byte
		}
		var all []nf
		for rows.Next() {
			var r nf
			if err := rows.Scan(&r.name, &r.facts); err != nil {
				rows.Close()
				return err
			}
			all = append(all, r)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		for _, r := range all {
			m, err := inventory.DecodeFacts(r.facts)
			if err != nil {
				continue
			}
			if err := insertFact(ctx, tx, key, r.name, m, path); err != nil {
				return err
			}
		}
		indexed = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("index fact path: %w", err)
	}
	return indexed, nil
}

// scanFactValues decodes every node's facts: the answer for a path beyond maxFactPaths.
func (s *Store) scanFactValues(ctx context.Context, path []string) (map[string]any, error) {
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, n := range nodes {
		m, err := inventory.DecodeFacts(n.Facts)
		if err != nil {
			continue
		}
		if v, ok := inventory.FactAt(m, path); ok {
			out[n.Name] = v
		}
	}
	return out, nil
}

// MarkNodeConnected implements store.Store.
func (s *Store) MarkNodeConnected(ctx context.Context, name, broker, conn string, at time.Time) error {
	var enc encoder
	ts := enc.time(at)
	if enc.err != nil {
		return fmt.Errorf("mark node %s connected: %w", name, enc.err)
	}
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		// A connection made before the recorded one changes nothing (a late connect): the
		// time layout is fixed-width, so the strings compare as the times do.
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET connected = 1, broker = ?, connection = ?, connected_at = ?,
			version = version + 1 WHERE name = ? AND (connected_at IS NULL OR connected_at <= ?)`, broker, conn, ts, name, ts)
		if err != nil {
			return err
		}
		n, err := affected(res)
		if err != nil || n > 0 {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM nodes WHERE name = ?`, name).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			return err
		}
		return nil // a newer connection is recorded
	})
	if err != nil {
		return fmt.Errorf("mark node %s connected: %w", name, err)
	}
	return nil
}

// MarkNodeDisconnected implements store.Store.
func (s *Store) MarkNodeDisconnected(ctx context.Context, name, conn string) error {
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET connected = 0, version = version + 1
			WHERE name = ? AND connected <> 0 AND (? = '' OR connection = ?)`, name, conn, conn)
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil || n > 0 {
			return err
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM nodes WHERE name = ?`, name)
		if err == nil && !ok {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("mark node %s disconnected: %w", name, err)
	}
	return nil
}

// MarkAllNodesDisconnected implements store.Store, through the partial index of connected nodes.
func (s *Store) MarkAllNodesDisconnected(ctx context.Context) error {
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE nodes SET connected = 0, version = version + 1 WHERE connected <> 0`)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark all nodes disconnected: %w", err)
	}
	return nil
}
