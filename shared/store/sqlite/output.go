package sqlite

import (
	"context"
	"fmt"

	"github.com/baton-run/baton/shared/store"
)

// Statements of PutOutput and ListOutput (table job_output, schema version 8): one row per
// chunk, keyed (job_id, node, seq), so that one node's output is one range of the key.
const (
	putOutputSQL = `INSERT INTO job_output (job_id, node, seq, stream, data) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (job_id, node, seq) DO NOTHING`
	listOutputSQL = `SELECT seq, stream, data FROM job_output WHERE job_id = ? AND node = ? AND seq > ?
		ORDER BY seq LIMIT ?`
)

// PutOutput implements store.Store: one write transaction inserting each chunk unless its
// seq is stored already (the first write of a seq wins).
func (s *Store) PutOutput(ctx context.Context, jobID int64, node string, chunks []store.OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	for _, c := range chunks {
		if c.Seq < 1 {
			return fmt.Errorf("put output of job %d node %s: seq %d < 1", jobID, node, c.Seq)
		}
	}
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		stmt, err := tx.PrepareContext(ctx, putOutputSQL)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range chunks {
			if _, err := stmt.ExecContext(ctx, jobID, node, c.Seq, c.Stream, c.Data); err != nil {
				return fmt.Errorf("seq %d: %w", c.Seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put output of job %d node %s: %w", jobID, node, err)
	}
	return nil
}

// ListOutput implements store.Store: one range read of the primary key.
func (s *Store) ListOutput(ctx context.Context, jobID int64, node string, after int64, limit int) ([]store.OutputChunk, error) {
	if limit < 1 || limit > store.MaxOutputList {
		return nil, fmt.Errorf("list output: limit %d is not between 1 and %d", limit, store.MaxOutputList)
	}
	out := []store.OutputChunk{}
	err := s.read(ctx, func(tx dbtx) error {
		rows, err := tx.QueryContext(ctx, listOutputSQL, jobID, node, after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c store.OutputChunk
			if err := rows.Scan(&c.Seq, &c.Stream, &c.Data); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list output of job %d node %s: %w", jobID, node, err)
	}
	return out, nil
}
