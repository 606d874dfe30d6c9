package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

var jobNodeFields = []string{
	"job_id", "name", "state", "transaction_id", "ready_at", "started_at", "finished_at",
	"result", "message", "latest_event_id", "version",
}

// jobNodeColumns returns the job_nodes columns in scanJobNode order, each prefixed by prefix.
func jobNodeColumns(prefix string) string {
	return prefix + strings.Join(jobNodeFields, ", "+prefix)
}

// jobNodeValues returns the columns state through latest_event_id of n.
func jobNodeValues(n jobs.Node) ([]any, error) {
	var enc encoder
	vals := []any{
		string(n.State), n.TransactionID, enc.timePtr(n.ReadyAt), enc.timePtr(n.StartedAt),
		enc.timePtr(n.FinishedAt), blob(n.Result), n.Message, n.LatestEventID,
	}
	if enc.err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, enc.err)
	}
	return vals, nil
}

func scanJobNode(sc scanner) (jobs.Node, error) {
	var (
		n                        jobs.Node
		ready, started, finished sql.NullString
		result                   []byte
	)
	if err := sc.Scan(&n.JobID, &n.Name, &n.State, &n.TransactionID, &ready, &started, &finished,
		&result, &n.Message, &n.LatestEventID, &n.Version); err != nil {
		return jobs.Node{}, err
	}
	var dec decoder
	n.ReadyAt, n.StartedAt, n.FinishedAt = dec.timePtr(ready), dec.timePtr(started), dec.timePtr(finished)
	n.Result = bytesOrNil(result)
	if dec.err != nil {
		return jobs.Node{}, fmt.Errorf("job %d node %s: %w", n.JobID, n.Name, dec.err)
	}
	return n, nil
}

// insertJobNodes inserts the nodes of a new job at version 1, keeping their order.
func insertJobNodes(ctx context.Context, tx *sql.Tx, jobID int64, nodes []jobs.Node) error {
	if len(nodes) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO job_nodes (job_id, seq, name, state, transaction_id,
		ready_at, started_at, finished_at, result, message, latest_event_id, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`)
	if err != nil {
		return fmt.Errorf("insert job nodes: %w", err)
	}
	defer stmt.Close()
	for i, n := range nodes {
		vals, err := jobNodeValues(n)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, append([]any{jobID, i, n.Name}, vals...)...); err != nil {
			if isUnique(err) {
				return fmt.Errorf("insert job node %s: %w", n.Name, store.ErrExists)
			}
			return fmt.Errorf("insert job node %s: %w", n.Name, err)
		}
	}
	return nil
}

// appendEvents appends events to job jobID, numbering them from the job's counter, and
// returns the id of the last one (0 when there are none). It does not touch the job's version.
func appendEvents(ctx context.Context, tx *sql.Tx, jobID int64, events []jobs.Event) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	var last int64
	err := tx.QueryRowContext(ctx, `UPDATE jobs SET last_event_id = last_event_id + ? WHERE id = ?
		RETURNING last_event_id`, len(events), jobID).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("append events to job %d: %w", jobID, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("append events to job %d: %w", jobID, err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (job_id, id, type, timestamp, node, detail, message)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("append events to job %d: %w", jobID, err)
	}
	defer stmt.Close()
	first := last - int64(len(events)) + 1
	for i, e := range events {
		var enc encoder
		ts := enc.time(e.Timestamp)
		if enc.err != nil {
			return 0, fmt.Errorf("append events to job %d: %w", jobID, enc.err)
		}
		if _, err := stmt.ExecContext(ctx, jobID, first+int64(i), e.Type, ts, e.Node, blob(e.Detail), e.Message); err != nil {
			return 0, fmt.Errorf("append event %d to job %d: %w", first+int64(i), jobID, err)
		}
	}
	return last, nil
}

// GetJobNode implements store.Store.
func (s *Store) GetJobNode(ctx context.Context, jobID int64, name string) (jobs.Node, error) {
	n, err := scanJobNode(s.r.QueryRowContext(ctx, `SELECT `+jobNodeColumns("")+` FROM job_nodes
		WHERE job_id = ? AND name = ?`, jobID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Node{}, fmt.Errorf("get job %d node %s: %w", jobID, name, store.ErrNotFound)
	}
	if err != nil {
		return jobs.Node{}, fmt.Errorf("get job %d node %s: %w", jobID, name, err)
	}
	return n, nil
}

// ListJobNodes implements store.Store. An unknown job has no nodes.
func (s *Store) ListJobNodes(ctx context.Context, jobID int64) ([]jobs.Node, error) {
	out, err := listRows(ctx, s.r, `SELECT `+jobNodeColumns("")+` FROM job_nodes WHERE job_id = ? ORDER BY seq`, scanJobNode, jobID)
	if err != nil {
		return nil, fmt.Errorf("list job %d nodes: %w", jobID, err)
	}
	return out, nil
}

// ListJobNodesByName implements store.Store. With no states given, every state matches.
func (s *Store) ListJobNodesByName(ctx context.Context, name string, states ...jobs.NodeState) ([]jobs.Node, error) {
	query := `SELECT ` + jobNodeColumns("n.") + ` FROM job_nodes n JOIN jobs j ON j.id = n.job_id
		WHERE n.name = ? AND j.state NOT IN (` + placeholders(len(terminalStates)) + `)`
	args := append([]any{name}, terminalStates...)
	if len(states) > 0 {
		query += ` AND n.state IN (` + placeholders(len(states)) + `)`
		for _, st := range states {
			args = append(args, string(st))
		}
	}
	out, err := listRows(ctx, s.r, query+` ORDER BY j.created_at, j.id`, scanJobNode, args...)
	if err != nil {
		return nil, fmt.Errorf("list job nodes named %s: %w", name, err)
	}
	return out, nil
}

// FindJobNodeByTransaction implements store.Store. The empty transaction id matches nothing.
func (s *Store) FindJobNodeByTransaction(ctx context.Context, txn string) (jobs.Node, error) {
	if txn == "" {
		return jobs.Node{}, fmt.Errorf("find job node by empty transaction: %w", store.ErrNotFound)
	}
	// The repeated "transaction_id <> ''" lets SQLite use the partial index.
	n, err := scanJobNode(s.r.QueryRowContext(ctx, `SELECT `+jobNodeColumns("")+` FROM job_nodes
		WHERE transaction_id = ? AND transaction_id <> '' ORDER BY job_id LIMIT 1`, txn))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Node{}, fmt.Errorf("find job node by transaction %s: %w", txn, store.ErrNotFound)
	}
	if err != nil {
		return jobs.Node{}, fmt.Errorf("find job node by transaction %s: %w", txn, err)
	}
	return n, nil
}

// UpdateJobNode implements store.Store. Without events, LatestEventID is stored as given.
func (s *Store) UpdateJobNode(ctx context.Context, n jobs.Node, events ...jobs.Event) (jobs.Node, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if len(events) > 0 {
			last, err := appendEvents(ctx, tx, n.JobID, events)
			if err != nil {
				return err
			}
			n.LatestEventID = last
		}
		vals, err := jobNodeValues(n)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE job_nodes SET state = ?, transaction_id = ?, ready_at = ?,
			started_at = ?, finished_at = ?, result = ?, message = ?, latest_event_id = ?, version = version + 1
			WHERE job_id = ? AND name = ? AND version = ?`, append(vals, n.JobID, n.Name, n.Version)...)
		if err != nil {
			return err
		}
		rows, err := affected(res)
		if err != nil {
			return err
		}
		if rows == 0 {
			return versionMiss(ctx, tx, `SELECT 1 FROM job_nodes WHERE job_id = ? AND name = ?`, n.JobID, n.Name)
		}
		return nil
	})
	if err != nil {
		return jobs.Node{}, fmt.Errorf("update job %d node %s at version %d: %w", n.JobID, n.Name, n.Version, err)
	}
	n.Version++
	return n, nil
}

// ListEvents implements store.Store.
func (s *Store) ListEvents(ctx context.Context, jobID int64, start int64, limit int) ([]jobs.Event, error) {
	if limit < 0 {
		return nil, fmt.Errorf("list job %d events: negative limit %d", jobID, limit)
	}
	lim := int64(-1)
	if limit > 0 {
		lim = int64(limit)
	}
	var out []jobs.Event
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT job_id, id, type, timestamp, node, detail, message FROM events
			WHERE job_id = ? AND id >= ? ORDER BY id LIMIT ?`, jobID, start, lim)
		if err != nil {
			return err
		}
		defer rows.Close()
		var dec decoder
		for rows.Next() {
			var (
				e      jobs.Event
				ts     string
				detail []byte
			)
			if err := rows.Scan(&e.JobID, &e.ID, &e.Type, &ts, &e.Node, &detail, &e.Message); err != nil {
				return err
			}
			e.Timestamp, e.Detail = dec.time(ts), bytesOrNil(detail)
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if dec.err != nil {
			return dec.err
		}
		if len(out) > 0 {
			return nil
		}
		ok, err := exists(ctx, tx, `SELECT 1 FROM jobs WHERE id = ?`, jobID)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list job %d events: %w", jobID, err)
	}
	return out, nil
}

// countActiveSQL counts the active records (jobs.NodeState.Active) of unfinished jobs. Its
// state term is the condition of the partial index job_nodes_active, written identically so
// that SQLite uses that index, which holds only active records; each one's job is then looked
// up by id.
var countActiveSQL = `SELECT COUNT(*) FROM job_nodes JOIN jobs ON jobs.id = job_nodes.job_id
	WHERE job_nodes.state IN ('ready', 'running') AND jobs.state NOT IN (` + placeholders(len(terminalStates)) + `)`

// CountActiveNodes implements store.Store. Its cost follows the number of active records,
// not the number of jobs.
func (s *Store) CountActiveNodes(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, countActiveSQL, terminalStates...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count active job nodes: %w", err)
	}
	return n, nil
}
