package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

const jobColumns = `id, type, state, environment, description, owner_id, owner_login, options, payload,
	concurrency, timeout, node_count, created_at, updated_at, status, stop, version`

// jobOrder maps JobQuery.OrderBy to a column; ties are broken by id.
var jobOrder = map[string]string{
	"":            "created_at",
	"timestamp":   "created_at",
	"owner":       "owner_login",
	"environment": "environment",
	"name":        "id",
	"state":       "state",
}

// terminalStates lists the job states in which a job is finished, as jobs.State.Terminal says.
var terminalStates = func() []any {
	var out []any
	for _, st := range []jobs.State{
		jobs.StateNew, jobs.StateReady, jobs.StateRunning, jobs.StateStopping,
		jobs.StateStopped, jobs.StateFinished, jobs.StateFailed,
	} {
		if st.Terminal() {
			out = append(out, string(st))
		}
	}
	return out
}()

// jobValues returns the columns type through stop of j, in jobColumns order.
func jobValues(j jobs.Job) ([]any, error) {
	var enc encoder
	status := make([]jobs.StatusEntry, len(j.Status))
	for i, e := range j.Status {
		status[i] = e
		status[i].EnterTime = e.EnterTime.UTC()
		if e.ExitTime != nil {
			exit := e.ExitTime.UTC()
			status[i].ExitTime = &exit
		}
	}
	statusJSON, err := json.Marshal(status)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	vals := []any{
		string(j.Type), string(j.State), j.Environment, j.Description, j.Owner.ID, j.Owner.Login,
		blob(j.Options), blob(j.Payload), j.Concurrency, j.Timeout, j.NodeCount,
		enc.time(j.CreatedAt), enc.time(j.UpdatedAt), string(statusJSON), j.Stop,
	}
	if enc.err != nil {
		return nil, enc.err
	}
	return vals, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanJob(sc scanner) (jobs.Job, error) {
	var (
		j                        jobs.Job
		options, payload         []byte
		created, updated, status string
	)
	if err := sc.Scan(&j.ID, &j.Type, &j.State, &j.Environment, &j.Description, &j.Owner.ID, &j.Owner.Login,
		&options, &payload, &j.Concurrency, &j.Timeout, &j.NodeCount, &created, &updated, &status, &j.Stop, &j.Version); err != nil {
		return jobs.Job{}, err
	}
	var dec decoder
	j.Options, j.Payload = bytesOrNil(options), bytesOrNil(payload)
	j.CreatedAt, j.UpdatedAt = dec.time(created), dec.time(updated)
	if dec.err != nil {
		return jobs.Job{}, fmt.Errorf("job %d: %w", j.ID, dec.err)
	}
	if err := json.Unmarshal([]byte(status), &j.Status); err != nil {
		return jobs.Job{}, fmt.Errorf("job %d: decode status: %w", j.ID, err)
	}
	if len(j.Status) == 0 {
		j.Status = nil
	}
	return j, nil
}

func scanJobs(rows *sql.Rows) ([]jobs.Job, error) {
	defer rows.Close()
	var out []jobs.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event) (jobs.Job, error) {
	vals, err := jobValues(j)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("create job: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO jobs (type, state, environment, description, owner_id,
			owner_login, options, payload, concurrency, timeout, node_count, created_at, updated_at, status, stop,
			version, last_event_id) VALUES (`+placeholders(len(vals))+`, 1, 0)`, vals...)
		if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if j.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if err := insertJobNodes(ctx, tx, j.ID, nodes); err != nil {
			return err
		}
		_, err = appendEvents(ctx, tx, j.ID, events)
		return err
	})
	if err != nil {
		return jobs.Job{}, fmt.Errorf("create job: %w", err)
	}
	j.Version = 1
	return j, nil
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id int64) (jobs.Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Job{}, fmt.Errorf("get job %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return jobs.Job{}, fmt.Errorf("get job %d: %w", id, err)
	}
	return j, nil
}

// ListJobs implements store.Store. OrderBy "owner" orders by owner login; ties in any order
// are broken by id, in the same direction. An unknown OrderBy or a negative Limit or Offset
// is an error.
func (s *Store) ListJobs(ctx context.Context, q store.JobQuery) ([]jobs.Job, int, error) {
	col, ok := jobOrder[q.OrderBy]
	if !ok {
		return nil, 0, fmt.Errorf("list jobs: unknown order %q", q.OrderBy)
	}
	if q.Limit < 0 || q.Offset < 0 {
		return nil, 0, fmt.Errorf("list jobs: negative limit %d or offset %d", q.Limit, q.Offset)
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	order := col + " " + dir
	if col != "id" {
		order += ", id " + dir
	}
	where, args := "", []any{}
	if q.Type != "" {
		where, args = " WHERE type = ?", append(args, string(q.Type))
	}
	limit := int64(-1)
	if q.Limit > 0 {
		limit = int64(q.Limit)
	}

	var (
		out   []jobs.Job
		total int
	)
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs`+where, args...).Scan(&total); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs`+where+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
			append(args, limit, q.Offset)...)
		if err != nil {
			return err
		}
		out, err = scanJobs(rows)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	return out, total, nil
}

// ListUnfinishedJobs implements store.Store; oldest means earliest CreatedAt, then lowest id.
func (s *Store) ListUnfinishedJobs(ctx context.Context) ([]jobs.Job, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE state NOT IN (`+
		placeholders(len(terminalStates))+`) ORDER BY created_at, id`, terminalStates...)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	out, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	return out, nil
}

// UpdateJob implements store.Store.
func (s *Store) UpdateJob(ctx context.Context, j jobs.Job, events ...jobs.Event) (jobs.Job, error) {
	vals, err := jobValues(j)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("update job %d: %w", j.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET type = ?, state = ?, environment = ?, description = ?,
			owner_id = ?, owner_login = ?, options = ?, payload = ?, concurrency = ?, timeout = ?, node_count = ?,
			created_at = ?, updated_at = ?, status = ?, stop = ?, version = version + 1
			WHERE id = ? AND version = ?`, append(vals, j.ID, j.Version)...)
		if err != nil {
			return err
		}
		n, err := affected(res)
		if err != nil {
			return err
		}
		if n == 0 {
			return versionMiss(ctx, tx, `SELECT 1 FROM jobs WHERE id = ?`, j.ID)
		}
		_, err = appendEvents(ctx, tx, j.ID, events)
		return err
	})
	if err != nil {
		return jobs.Job{}, fmt.Errorf("update job %d at version %d: %w", j.ID, j.Version, err)
	}
	j.Version++
	return j, nil
}
