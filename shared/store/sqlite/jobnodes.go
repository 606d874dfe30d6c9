package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

var jobNodeFields = []string{
	"job_id", "name", "state", "transaction_id", "ready_at", "started_at", "finished_at",
	"result", "message", "latest_event_id", "due_at", "version",
}

// jobNodeColumns returns the job_nodes columns in scanJobNode order, each prefixed by prefix.
func jobNodeColumns(prefix string) string {
	return prefix + strings.Join(jobNodeFields, ", "+prefix)
}

// jobNodeValues returns the columns state through due_at of n.
func jobNodeValues(n jobs.Node) ([]any, error) {
	var enc encoder
	vals := []any{
		string(n.State), n.TransactionID, enc.timePtr(n.ReadyAt), enc.timePtr(n.StartedAt),
		enc.timePtr(n.FinishedAt), blob(n.Result), n.Message, n.LatestEventID, enc.timePtr(n.DueAt),
	}
	if enc.err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, enc.err)
	}
	return vals, nil
}

func scanJobNode(sc scanner) (jobs.Node, error) {
	var (
		n                             jobs.Node
		ready, started, finished, due sql.NullString
		result                        []byte
	)
	if err := sc.Scan(&n.JobID, &n.Name, &n.State, &n.TransactionID, &ready, &started, &finished,
		&result, &n.Message, &n.LatestEventID, &due, &n.Version); err != nil {
		return jobs.Node{}, err
	}
	var dec decoder
	n.ReadyAt, n.StartedAt, n.FinishedAt = dec.timePtr(ready), dec.timePtr(started), dec.timePtr(finished)
	n.DueAt = dec.timePtr(due)
	n.Result = bytesOrNil(result)
	if dec.err != nil {
		return jobs.Node{}, fmt.Errorf("job %d node %s: %w", n.JobID, n.Name, dec.err)
	}
	return n, nil
}

// insertJobNodes inserts the nodes of a new job at version 1, keeping their order.
func insertJobNodes(ctx context.Context, tx dbtx, jobID int64, nodes []jobs.Node) error {
	if len(nodes) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO job_nodes (job_id, seq, name, state, transaction_id,
		ready_at, started_at, finished_at, result, message, latest_event_id, due_at, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`)
	if err != nil {
		return fmt.Errorf("insert job nodes: %w", err)
	}
	defer stmt.Close()
	counts := jobs.StateCounts{}
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
		counts[n.State]++
	}
	// The counts of the records inserted, once per state (triggers keep them from here on).
	for st, n := range counts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO job_node_counts (job_id, state, n) VALUES (?, ?, ?)
			ON CONFLICT (job_id, state) DO UPDATE SET n = n + excluded.n`, jobID, string(st), n); err != nil {
			return fmt.Errorf("count job %d nodes: %w", jobID, err)
		}
	}
	return nil
}

// appendEvents appends events to job jobID's, numbered on from its last event id, and
// returns the last one's id (0 when there are none). It does not touch the job's version.
func appendEvents(ctx context.Context, tx dbtx, jobID int64, events []jobs.Event) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	last, err := lastEventID(ctx, tx, jobID)
	if err != nil {
		return 0, err
	}
	return writeEvents(ctx, tx, jobID, last, events)
}

// lastEventID reads job jobID's last event id, after which its next events are numbered.
// It only reads: a write that fails after it has nothing to undo.
func lastEventID(ctx context.Context, tx dbtx, jobID int64) (int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT last FROM job_event_ids WHERE job_id = ?`, jobID).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("append events to job %d: %w", jobID, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("append events to job %d: %w", jobID, err)
	}
	return last, nil
}

// writeEvents inserts events numbered after last (read by lastEventID in this transaction)
// and moves the job's last event id past them, which it returns.
func writeEvents(ctx context.Context, tx dbtx, jobID, last int64, events []jobs.Event) (int64, error) {
	if len(events) == 0 {
		return last, nil
	}
	next := last + int64(len(events))
	res, err := tx.ExecContext(ctx, `UPDATE job_event_ids SET last = ? WHERE job_id = ? AND last = ?`, next, jobID, last)
	if err != nil {
		return 0, fmt.Errorf("append events to job %d: %w", jobID, err)
	}
	if rows, err := affected(res); err != nil || rows != 1 {
		return 0, fmt.Errorf("append events to job %d: its last event id moved from %d (%d rows, %v)", jobID, last, rows, err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (job_id, id, type, timestamp, node, detail, message)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("append events to job %d: %w", jobID, err)
	}
	defer stmt.Close()
	for i, e := range events {
		var enc encoder
		ts := enc.time(e.Timestamp)
		if enc.err != nil {
			return 0, fmt.Errorf("append events to job %d: %w", jobID, enc.err)
		}
		if _, err := stmt.ExecContext(ctx, jobID, last+1+int64(i), e.Type, ts, e.Node, blob(e.Detail), e.Message); err != nil {
			return 0, fmt.Errorf("append event %d to job %d: %w", last+1+int64(i), jobID, err)
		}
	}
	return next, nil
}

// GetJobNode implements store.Store.
func (s *Store) GetJobNode(ctx context.Context, jobID int64, name string) (jobs.Node, error) {
	n, err := scanJobNode(s.rq.QueryRowContext(ctx, `SELECT `+jobNodeColumns("")+` FROM job_nodes
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
	out, err := listRows(ctx, s.rq, `SELECT `+jobNodeColumns("")+` FROM job_nodes WHERE job_id = ? ORDER BY seq`, scanJobNode, jobID)
	if err != nil {
		return nil, fmt.Errorf("list job %d nodes: %w", jobID, err)
	}
	return out, nil
}

// ListJobNodesByName implements store.Store. With no states given, every state matches.
// Asked only for active states (ready, running: a connecting node's pending work), it reads the
// partial index of active records by name, which holds each node's few active records however
// many jobs the store has kept; asked for other states, it looks the name up in each
// unfinished job (by primary key), so its work grows with the unfinished jobs, not with the
// history.
func (s *Store) ListJobNodesByName(ctx context.Context, name string, states ...jobs.NodeState) ([]jobs.Node, error) {
	query, args := jobNodesByNameQuery(name, states)
	out, err := listRows(ctx, s.rq, query, scanJobNode, args...)
	if err != nil {
		return nil, fmt.Errorf("list job nodes named %s: %w", name, err)
	}
	return out, nil
}

// jobNodesByNameQuery returns ListJobNodesByName's query and its arguments.
func jobNodesByNameQuery(name string, states []jobs.NodeState) (string, []any) {
	var query string
	if len(states) > 0 && onlyActive(states) {
		// The index's own predicate, repeated, lets SQLite use it.
		query = `SELECT ` + jobNodeColumns("n.") + ` FROM job_nodes n JOIN jobs j ON j.id = n.job_id
			WHERE n.name = ? AND n.state IN ('ready', 'running') AND j.state IN (` + placeholders(len(unfinishedStates)) + `)`
	} else {
		query = `SELECT ` + jobNodeColumns("n.") + ` FROM jobs j CROSS JOIN job_nodes n ON n.job_id = j.id AND n.name = ?
			WHERE j.state IN (` + placeholders(len(unfinishedStates)) + `)`
	}
	args := append([]any{name}, unfinishedStates...)
	if len(states) > 0 {
		query += ` AND n.state IN (` + placeholders(len(states)) + `)`
		for _, st := range states {
			args = append(args, string(st))
		}
	}
	return query + ` ORDER BY j.created_at, j.id`, args
}

// onlyActive reports whether every state of states is active (ready or running), the
// records of the partial index job_nodes_active_name.
func onlyActive(states []jobs.NodeState) bool {
	for _, st := range states {
		if !st.Active() {
			return false
		}
	}
	return true
}

// foreignTransactionSQL is the predicate of the partial index job_nodes_foreign_transaction:
// a transaction id that does not name its record's job (jobs.TransactionID).
const foreignTransactionSQL = `transaction_id <> '' AND substr(transaction_id, 1, length(job_id) + 1) <> job_id || '_'`

// findByTransactionSQL finds a transaction id among the records whose ids do not name their
// job (through the partial index, whose predicate it repeats) and among the records of the job
// the id names (?2; 0 for an id that names none): every record holding the id is in one of the
// two.
var findByTransactionSQL = `SELECT ` + jobNodeColumns("") + ` FROM (
	SELECT ` + jobNodeColumns("") + ` FROM job_nodes WHERE transaction_id = ?1 AND ` + foreignTransactionSQL + `
	UNION ALL
	SELECT ` + jobNodeColumns("") + ` FROM job_nodes WHERE job_id = ?2 AND transaction_id = ?1
) ORDER BY job_id LIMIT 1`

// FindJobNodeByTransaction implements store.Store. The empty transaction id matches nothing. An
// id that names its job (jobs.TransactionID) is looked for among that job's records, a scan of
// one job: callers that know the node read its record (GetJobNode) instead.
func (s *Store) FindJobNodeByTransaction(ctx context.Context, txn string) (jobs.Node, error) {
	if txn == "" {
		return jobs.Node{}, fmt.Errorf("find job node by empty transaction: %w", store.ErrNotFound)
	}
	jobID, _ := jobs.TransactionJob(txn)
	n, err := scanJobNode(s.rq.QueryRowContext(ctx, findByTransactionSQL, txn, jobID))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Node{}, fmt.Errorf("find job node by transaction %s: %w", txn, store.ErrNotFound)
	}
	if err != nil {
		return jobs.Node{}, fmt.Errorf("find job node by transaction %s: %w", txn, err)
	}
	return n, nil
}

const updateJobNodeSQL = `UPDATE job_nodes SET state = ?, transaction_id = ?, ready_at = ?,
	started_at = ?, finished_at = ?, result = ?, message = ?, latest_event_id = ?, due_at = ?,
	version = version + 1 WHERE job_id = ? AND name = ? AND version = ?`

// updateJobNode writes n over the record at n.Version, then appends events, and returns the
// record as stored.
func updateJobNode(ctx context.Context, tx dbtx, n jobs.Node, events []jobs.Event) (jobs.Node, error) {
	// The record is written before its events, numbered from the id read first: a stale
	// version fails the write having changed nothing (see Store.runGroup).
	var last int64
	if len(events) > 0 {
		var err error
		if last, err = lastEventID(ctx, tx, n.JobID); err != nil {
			return n, err
		}
		n.LatestEventID = last + int64(len(events))
	}
	vals, err := jobNodeValues(n)
	if err != nil {
		return n, err
	}
	res, err := tx.ExecContext(ctx, updateJobNodeSQL, append(vals, n.JobID, n.Name, n.Version)...)
	if err != nil {
		return n, err
	}
	rows, err := affected(res)
	if err != nil {
		return n, err
	}
	if rows == 0 {
		return n, versionMiss(ctx, tx, `SELECT 1 FROM job_nodes WHERE job_id = ? AND name = ?`, n.JobID, n.Name)
	}
	if _, err := writeEvents(ctx, tx, n.JobID, last, events); err != nil {
		return n, err
	}
	n.Version++
	return n, nil
}

// UpdateJobNode implements store.Store. Without events, LatestEventID is stored as given.
func (s *Store) UpdateJobNode(ctx context.Context, n jobs.Node, events ...jobs.Event) (jobs.Node, error) {
	var out jobs.Node
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		var err error
		out, err = updateJobNode(ctx, tx, n, events)
		return err
	})
	if err != nil {
		return jobs.Node{}, fmt.Errorf("update job %d node %s at version %d: %w", n.JobID, n.Name, n.Version, err)
	}
	return out, nil
}

// UpdateJobNodes implements store.Store: one write, each update an item of its own (see
// inSavepoint).
func (s *Store) UpdateJobNodes(ctx context.Context, ups []store.NodeUpdate) ([]jobs.Node, []error) {
	out := make([]jobs.Node, len(ups))
	errs := make([]error, len(ups))
	if len(ups) == 0 {
		return out, errs
	}
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		for i, u := range ups {
			errs[i] = inSavepoint(ctx, tx, func() error {
				var err error
				out[i], err = updateJobNode(ctx, tx, u.Node, u.Events)
				return err
			})
		}
		return nil
	})
	for i, u := range ups {
		if err != nil {
			errs[i] = err
		}
		if errs[i] != nil {
			out[i] = jobs.Node{}
			errs[i] = fmt.Errorf("update job %d node %s at version %d: %w", u.Node.JobID, u.Node.Name, u.Node.Version, errs[i])
		}
	}
	return out, errs
}

// inSavepoint runs fn as an item of a write that goes on when fn fails: fn's changes are
// undone and the enclosing operation goes on. In a careful transaction fn runs in a nested
// savepoint; otherwise a failure that changed nothing needs nothing undone, and one that
// did fails the whole operation (txn.undo), for the group to run again carefully.
func inSavepoint(ctx context.Context, tx dbtx, fn func() error) error {
	if t, ok := tx.(*txn); ok && !t.careful {
		before := t.changed
		t.changed = false
		defer func() { t.changed = t.changed || before }() // also when fn panics
		err := fn()
		if err != nil && (t.changed || sqliteFailure(err)) && t.undo == nil {
			t.undo = err
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT item`); err != nil {
		return err
	}
	err := fn()
	if err != nil {
		if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO item`); rbErr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
	}
	if _, relErr := tx.ExecContext(ctx, `RELEASE item`); relErr != nil && err == nil {
		return relErr
	}
	return err
}

// JobCounts implements store.Store: the job's rows of job_node_counts, which triggers keep
// in the transaction of every write of a record. (A job without rows is looked up to tell an
// unknown job from one without nodes.)
func (s *Store) JobCounts(ctx context.Context, jobID int64) (jobs.StateCounts, error) {
	type count struct {
		state string
		n     int
	}
	rows, err := listRows(ctx, s.rq, `SELECT state, n FROM job_node_counts WHERE job_id = ?`, func(sc scanner) (count, error) {
		var c count
		err := sc.Scan(&c.state, &c.n)
		return c, err
	}, jobID)
	if err != nil {
		return nil, fmt.Errorf("count job %d nodes: %w", jobID, err)
	}
	counts := jobs.StateCounts{}
	for _, c := range rows {
		if c.n != 0 {
			counts[jobs.NodeState(c.state)] = c.n
		}
	}
	if len(rows) > 0 {
		return counts, nil
	}
	var one int
	err = s.rq.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE id = ?`, jobID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("count job %d nodes: %w", jobID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("count job %d nodes: %w", jobID, err)
	}
	return counts, nil
}

// inStateSQL selects a job's records in one state, oldest first. The queued (new) and active
// states have partial indexes, whose conditions are written out for SQLite to use them.
func inStateSQL(state jobs.NodeState) (string, []any) {
	sel := `SELECT ` + jobNodeColumns("") + ` FROM job_nodes WHERE job_id = ? AND `
	switch state {
	case jobs.NodeNew:
		return sel + `state = 'new' ORDER BY seq LIMIT ?`, nil
	case jobs.NodeReady, jobs.NodeRunning:
		return sel + `state IN ('ready', 'running') AND state = ? ORDER BY seq LIMIT ?`, []any{string(state)}
	}
	return sel + `state = ? ORDER BY seq LIMIT ?`, []any{string(state)}
}

// ListJobNodesInState implements store.Store.
func (s *Store) ListJobNodesInState(ctx context.Context, jobID int64, state jobs.NodeState, limit int) ([]jobs.Node, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list job %d nodes in state %s: limit %d must be positive", jobID, state, limit)
	}
	query, args := inStateSQL(state)
	out, err := listRows(ctx, s.rq, query, scanJobNode, append(append([]any{jobID}, args...), limit)...)
	if err != nil {
		return nil, fmt.Errorf("list job %d nodes in state %s: %w", jobID, state, err)
	}
	return out, nil
}

// activeSQL is the number of active records of unfinished jobs: the job_node_counts rows of
// the jobs an index of their state finds unfinished.
var activeSQL = `SELECT COALESCE(SUM(c.n), 0) FROM jobs j JOIN job_node_counts c
	ON c.job_id = j.id AND c.state IN ('ready', 'running') WHERE j.state IN (` + placeholders(len(unfinishedStates)) + `)`

// ClaimJobNodes implements store.Store in one write: the job's stop request, concurrency and
// counts, the server-wide count, then the oldest queued records through their partial index.
func (s *Store) ClaimJobNodes(ctx context.Context, jobID int64, c store.Claim) ([]jobs.Node, error) {
	if c.Limit <= 0 || c.Apply == nil {
		return nil, fmt.Errorf("claim job %d nodes: a positive limit and an Apply function are required", jobID)
	}
	var out []jobs.Node
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		out = nil
		var (
			state, stop string
			concurrency int
		)
		err := tx.QueryRowContext(ctx, `SELECT state, stop, concurrency FROM jobs WHERE id = ?`, jobID).Scan(&state, &stop, &concurrency)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if jobs.State(state).Terminal() || stop != "" {
			return nil
		}
		free := c.Limit
		if concurrency > 0 {
			var active int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM job_node_counts
				WHERE job_id = ? AND state IN ('ready', 'running')`, jobID).Scan(&active); err != nil {
				return err
			}
			free = min(free, concurrency-active)
		}
		if c.GlobalCap > 0 && free > 0 {
			var global int
			if err := tx.QueryRowContext(ctx, activeSQL, unfinishedStates...).Scan(&global); err != nil {
				return err
			}
			free = min(free, c.GlobalCap-global)
		}
		if free <= 0 {
			return nil
		}
		query, _ := inStateSQL(jobs.NodeNew)
		queued, err := listRows(ctx, tx, query, scanJobNode, jobID, free)
		if err != nil {
			return err
		}
		// The claimed records' events are appended together: one move of the job's event
		// counter for the whole claim.
		claimed := make([]jobs.Node, len(queued))
		var events []jobs.Event
		lastOf := make([]int, len(queued)) // each record's last event: its index in events, or -1
		for i, q := range queued {
			n, evs := c.Apply(q)
			if n.JobID != q.JobID || n.Name != q.Name || !n.State.Active() {
				return fmt.Errorf("claim of %s made %s record %d/%s: want an active record of the same node", q.Name, n.State, n.JobID, n.Name)
			}
			n.Version = q.Version
			claimed[i] = n
			events = append(events, evs...)
			lastOf[i] = -1
			if len(evs) > 0 {
				lastOf[i] = len(events) - 1
			}
		}
		last, err := appendEvents(ctx, tx, jobID, events)
		if err != nil {
			return err
		}
		first := last - int64(len(events)) + 1
		for i, n := range claimed {
			if lastOf[i] >= 0 {
				n.LatestEventID = first + int64(lastOf[i])
			}
			if n, err = updateJobNode(ctx, tx, n, nil); err != nil {
				return err
			}
			out = append(out, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim job %d nodes: %w", jobID, err)
	}
	return out, nil
}

// ListDueJobNodes implements store.Store through the partial index job_nodes_due.
func (s *Store) ListDueJobNodes(ctx context.Context, now time.Time, limit int) ([]jobs.Node, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list due job nodes: limit %d must be positive", limit)
	}
	var enc encoder
	at := enc.time(now)
	if enc.err != nil {
		return nil, fmt.Errorf("list due job nodes: %w", enc.err)
	}
	out, err := listRows(ctx, s.rq, `SELECT `+jobNodeColumns("")+` FROM job_nodes
		WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?`, scanJobNode, at, limit)
	if err != nil {
		return nil, fmt.Errorf("list due job nodes: %w", err)
	}
	return out, nil
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
	err := s.read(ctx, func(tx dbtx) error {
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

// CountActiveNodes implements store.Store. Its cost follows the number of unfinished jobs,
// not the number of records or of jobs stored.
func (s *Store) CountActiveNodes(ctx context.Context) (int, error) {
	var n int
	if err := s.rq.QueryRowContext(ctx, activeSQL, unfinishedStates...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count active job nodes: %w", err)
	}
	return n, nil
}
