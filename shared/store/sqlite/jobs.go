package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

const jobColumns = `id, type, state, environment, description, owner_id, owner_login, options, payload,
	concurrency, timeout, node_count, created_at, updated_at, status, stop, task, finished_at, idempotency_key,
	max_errors, version`

// jobWriteFields are the columns jobValues returns, in order: every column a create or an
// update writes apart from id and version.
var jobWriteFields = []string{
	"type", "state", "environment", "description", "owner_id", "owner_login", "options", "payload",
	"concurrency", "timeout", "node_count", "created_at", "updated_at", "status", "stop",
	"task", "task_fold", "finished_at", "idempotency_key", "max_errors",
}

var (
	insertJobSQL = `INSERT INTO jobs (` + strings.Join(jobWriteFields, ", ") + `, version)
		VALUES (` + placeholders(len(jobWriteFields)) + `, 1)`
	updateJobSQL = `UPDATE jobs SET ` + strings.Join(jobWriteFields, " = ?, ") + ` = ?, version = version + 1
		WHERE id = ? AND version = ?`
)

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

// unfinishedStates lists the job states that are not terminal.
var unfinishedStates = func() []any {
	var out []any
	for _, st := range []jobs.State{
		jobs.StateNew, jobs.StateReady, jobs.StateRunning, jobs.StateStopping,
		jobs.StateStopped, jobs.StateFinished, jobs.StateFailed,
	} {
		if !st.Terminal() {
			out = append(out, string(st))
		}
	}
	return out
}()

// jobValues returns the values of jobWriteFields for j.
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
		j.Task, strings.ToLower(j.Task), enc.timePtr(j.FinishedAt), j.IdempotencyKey, j.MaxErrors,
	}
	if enc.err != nil {
		return nil, enc.err
	}
	return vals, nil
}

func scanJob(sc scanner) (jobs.Job, error) {
	var (
		j                        jobs.Job
		options, payload         []byte
		created, updated, status string
		finished                 sql.NullString
	)
	if err := sc.Scan(&j.ID, &j.Type, &j.State, &j.Environment, &j.Description, &j.Owner.ID, &j.Owner.Login,
		&options, &payload, &j.Concurrency, &j.Timeout, &j.NodeCount, &created, &updated, &status, &j.Stop,
		&j.Task, &finished, &j.IdempotencyKey, &j.MaxErrors, &j.Version); err != nil {
		return jobs.Job{}, err
	}
	var dec decoder
	j.Options, j.Payload = bytesOrNil(options), bytesOrNil(payload)
	j.CreatedAt, j.UpdatedAt, j.FinishedAt = dec.time(created), dec.time(updated), dec.timePtr(finished)
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

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event) (jobs.Job, error) {
	created, _, err := s.createJob(ctx, j, nodes, events, nil)
	return created, err
}

// CreateJobClaiming implements store.Store in one write: the claimed records are inserted
// claimed, never queued.
func (s *Store) CreateJobClaiming(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event, c store.Claim) (jobs.Job, []jobs.Node, error) {
	if c.Limit <= 0 || c.Apply == nil {
		return jobs.Job{}, nil, fmt.Errorf("create job: a claim needs a positive limit and an Apply function")
	}
	return s.createJob(ctx, j, nodes, events, &c)
}

func (s *Store) createJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event, c *store.Claim) (jobs.Job, []jobs.Node, error) {
	vals, err := jobValues(j)
	if err != nil {
		return jobs.Job{}, nil, fmt.Errorf("create job: %w", err)
	}
	var claimed []jobs.Node
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error {
		claimed = nil
		res, err := tx.ExecContext(ctx, insertJobSQL, vals...)
		if isUnique(err) {
			return idempotencyTaken(j)
		}
		if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if j.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO job_event_ids (job_id, last) VALUES (?, 0)`, j.ID); err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		records := withInitialEventIDs(nodes, events)
		all := events
		if c != nil {
			var claimEvents []jobs.Event
			if claimed, claimEvents, err = claimAtCreation(ctx, tx, j, records, len(events), c); err != nil {
				return err
			}
			all = append(append([]jobs.Event(nil), events...), claimEvents...)
		}
		if err := insertJobNodes(ctx, tx, j.ID, records); err != nil {
			return err
		}
		_, err = appendEvents(ctx, tx, j.ID, all)
		return err
	})
	if err != nil {
		return jobs.Job{}, nil, fmt.Errorf("create job: %w", err)
	}
	j.Version = 1
	for i := range claimed {
		claimed[i].Version = 1
	}
	return j, claimed, nil
}

// claimAtCreation claims, in place in records (the new job jobID's records, about to be
// inserted), the first queued ones the claim allows, and returns them and their events,
// numbered after the job's first initial events.
func claimAtCreation(ctx context.Context, tx dbtx, j jobs.Job, records []jobs.Node, initial int, c *store.Claim) ([]jobs.Node, []jobs.Event, error) {
	if j.State.Terminal() || j.Stop != "" {
		return nil, nil, nil
	}
	free := c.Limit
	if j.Concurrency > 0 {
		free = min(free, j.Concurrency)
	}
	if c.GlobalCap > 0 {
		var global int
		if err := tx.QueryRowContext(ctx, activeSQL, unfinishedStates...).Scan(&global); err != nil {
			return nil, nil, err
		}
		free = min(free, c.GlobalCap-global)
	}
	var (
		claimed []jobs.Node
		events  []jobs.Event
	)
	for i := 0; i < len(records) && len(claimed) < free; i++ {
		q := records[i]
		if q.State != jobs.NodeNew {
			continue
		}
		q.JobID = j.ID
		n, evs := c.Apply(q)
		if n.JobID != q.JobID || n.Name != q.Name || !n.State.Active() {
			return nil, nil, fmt.Errorf("claim of %s made %s record %d/%s: want an active record of the same node", q.Name, n.State, n.JobID, n.Name)
		}
		events = append(events, evs...)
		if len(evs) > 0 {
			n.LatestEventID = int64(initial + len(events))
		}
		records[i] = n
		claimed = append(claimed, n)
	}
	return claimed, events, nil
}

// withInitialEventIDs returns a copy of nodes whose LatestEventID is the id the last initial
// event naming the node will get (a new job's events are numbered from 1).
func withInitialEventIDs(nodes []jobs.Node, events []jobs.Event) []jobs.Node {
	out := append([]jobs.Node(nil), nodes...)
	if len(events) == 0 {
		return out
	}
	index := make(map[string][]int, len(out))
	for k, n := range out {
		index[n.Name] = append(index[n.Name], k)
	}
	for i, e := range events {
		if e.Node == "" {
			continue
		}
		for _, k := range index[e.Node] {
			out[k].LatestEventID = int64(i + 1)
		}
	}
	return out
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id int64) (jobs.Job, error) {
	j, err := scanJob(s.rq.QueryRowContext(ctx, selectJobSQL, id))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Job{}, fmt.Errorf("get job %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return jobs.Job{}, fmt.Errorf("get job %d: %w", id, err)
	}
	return j, nil
}

// idempotencyTaken is the error for a job whose idempotency key another job of its owner has;
// the only unique constraint on jobs besides the id, which the store assigns, is that key.
func idempotencyTaken(j jobs.Job) error {
	return fmt.Errorf("idempotency key %q of %s: %w", j.IdempotencyKey, j.Owner.Login, store.ErrExists)
}

// jobByIdempotencySQL selects a job by owner login and key; repeating the condition of the
// partial unique index jobs_idempotency (a non-empty key) lets SQLite use that index.
var jobByIdempotencySQL = `SELECT ` + jobColumns + ` FROM jobs
	WHERE owner_login = ? AND idempotency_key = ? AND idempotency_key <> ''`

// GetJobByIdempotencyKey implements store.Store.
func (s *Store) GetJobByIdempotencyKey(ctx context.Context, login, key string) (jobs.Job, error) {
	if key == "" {
		return jobs.Job{}, fmt.Errorf("get job of %s by empty idempotency key: %w", login, store.ErrNotFound)
	}
	j, err := scanJob(s.rq.QueryRowContext(ctx, jobByIdempotencySQL, login, key))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Job{}, fmt.Errorf("get job of %s by idempotency key %q: %w", login, key, store.ErrNotFound)
	}
	if err != nil {
		return jobs.Job{}, fmt.Errorf("get job of %s by idempotency key %q: %w", login, key, err)
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
	where, args := jobFilter(q)
	limit := int64(-1)
	if q.Limit > 0 {
		limit = int64(q.Limit)
	}

	var (
		out   []jobs.Job
		total int
	)
	err := s.read(ctx, func(tx dbtx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs`+where, args...).Scan(&total); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs`+where+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
			append(args, limit, q.Offset)...)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanJob)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	return out, total, nil
}

// The range of storable times; every stored finish time lies within it.
var (
	minStoredTime = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxStoredTime = time.Date(9999, time.December, 31, 23, 59, 59, 999999999, time.UTC)
)

// jobFilter returns the WHERE clause ("" for none) and its arguments selecting the jobs q
// filters on.
func jobFilter(q store.JobQuery) (string, []any) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, arg ...any) {
		conds, args = append(conds, cond), append(args, arg...)
	}
	if q.Type != "" {
		add("type = ?", string(q.Type))
	}
	if q.Task != "" {
		add("instr(task_fold, ?) > 0", strings.ToLower(q.Task))
	}
	if q.MinFinish != nil {
		cond, arg := finishBound(">=", *q.MinFinish)
		add(cond, arg...)
	}
	if q.MaxFinish != nil {
		cond, arg := finishBound("<=", *q.MaxFinish)
		add(cond, arg...)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// finishBound returns the condition finished_at op t (op ">=" or "<="). A bound outside the
// storable range, which cannot be encoded, selects every finished job or none.
func finishBound(op string, t time.Time) (string, []any) {
	u := t.UTC()
	below, above := u.Before(minStoredTime), u.After(maxStoredTime)
	switch {
	case (op == ">=" && below) || (op == "<=" && above):
		return "finished_at IS NOT NULL", nil
	case below || above:
		return "0", nil
	}
	var enc encoder // cannot fail: u is in range
	return "finished_at " + op + " ?", []any{enc.time(u)}
}

// ListUnfinishedJobs implements store.Store; oldest means earliest CreatedAt, then lowest id.
func (s *Store) ListUnfinishedJobs(ctx context.Context) ([]jobs.Job, error) {
	out, err := listRows(ctx, s.rq, `SELECT `+jobColumns+` FROM jobs WHERE state IN (`+
		placeholders(len(unfinishedStates))+`) ORDER BY created_at, id`, scanJob, unfinishedStates...)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	return out, nil
}

// updateJob writes j over the job at j.Version and appends events.
func updateJob(ctx context.Context, tx dbtx, j jobs.Job, vals []any, events []jobs.Event) error {
	res, err := tx.ExecContext(ctx, updateJobSQL, append(vals, j.ID, j.Version)...)
	if isUnique(err) {
		return idempotencyTaken(j)
	}
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
}

// UpdateJob implements store.Store.
func (s *Store) UpdateJob(ctx context.Context, j jobs.Job, events ...jobs.Event) (jobs.Job, error) {
	vals, err := jobValues(j)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("update job %d: %w", j.ID, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error { return updateJob(ctx, tx, j, vals, events) })
	if err != nil {
		return jobs.Job{}, fmt.Errorf("update job %d at version %d: %w", j.ID, j.Version, err)
	}
	j.Version++
	return j, nil
}

// selectJobSQL reads job ? (GetJob, and EndJobNodeAndJob in its write).
const selectJobSQL = `SELECT ` + jobColumns + ` FROM jobs WHERE id = ?`

// updateJobNodeAndJob writes node record n with nodeEvents and job j (vals: jobValues(j)) with
// jobEvents, in transaction tx; it returns the node as written.
func updateJobNodeAndJob(ctx context.Context, tx dbtx, n jobs.Node, nodeEvents []jobs.Event, j jobs.Job, vals []any, jobEvents []jobs.Event) (jobs.Node, error) {
	out, err := updateJobNode(ctx, tx, n, nodeEvents)
	if err != nil {
		return jobs.Node{}, err
	}
	return out, updateJob(ctx, tx, j, vals, jobEvents)
}

// EndJobNodeAndJob writes node record n (as UpdateJobNode, with nodeEvents) and the end of
// its job in one write, reading the job in that write: end gets the job as stored and
// returns it ended with the job's events, or an error, which is returned and leaves
// everything as it was. It runs on the committer's goroutine and may run twice (see write),
// so it must only compute. Ending a one-node job so takes no read transaction of its own
// before the write (UpdateJobNodeAndJob needs the job read first), and the job cannot have
// changed between its read and its write.
func (s *Store) EndJobNodeAndJob(ctx context.Context, n jobs.Node, nodeEvents []jobs.Event, end func(jobs.Job) (jobs.Job, []jobs.Event, error)) (jobs.Node, jobs.Job, error) {
	var (
		outNode jobs.Node
		outJob  jobs.Job
	)
	err := s.write(ctx, func(ctx context.Context, tx dbtx) error {
		cur, err := scanJob(tx.QueryRowContext(ctx, selectJobSQL, n.JobID))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		j, jobEvents, err := end(cur)
		if err != nil {
			return err
		}
		if j.ID != cur.ID || j.Version != cur.Version {
			return fmt.Errorf("the job's end changed its id or version (%d at %d, read %d at %d): %w", j.ID, j.Version, cur.ID, cur.Version, store.ErrConflict)
		}
		vals, err := jobValues(j)
		if err != nil {
			return err
		}
		if outNode, err = updateJobNodeAndJob(ctx, tx, n, nodeEvents, j, vals, jobEvents); err != nil {
			return err
		}
		outJob = j
		outJob.Version++
		return nil
	})
	if err != nil {
		return jobs.Node{}, jobs.Job{}, fmt.Errorf("end job %d with node %s: %w", n.JobID, n.Name, err)
	}
	return outNode, outJob, nil
}

// UpdateJobNodeAndJob implements store.Store in one write.
func (s *Store) UpdateJobNodeAndJob(ctx context.Context, n jobs.Node, nodeEvents []jobs.Event, j jobs.Job, jobEvents []jobs.Event) (jobs.Node, jobs.Job, error) {
	vals, err := jobValues(j)
	if err != nil {
		return jobs.Node{}, jobs.Job{}, fmt.Errorf("update job %d: %w", j.ID, err)
	}
	var out jobs.Node
	err = s.write(ctx, func(ctx context.Context, tx dbtx) error {
		var err error
		out, err = updateJobNodeAndJob(ctx, tx, n, nodeEvents, j, vals, jobEvents)
		return err
	})
	if err != nil {
		return jobs.Node{}, jobs.Job{}, fmt.Errorf("update job %d node %s and the job: %w", n.JobID, n.Name, err)
	}
	j.Version++
	return out, j, nil
}
