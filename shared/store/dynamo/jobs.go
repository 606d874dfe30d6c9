package dynamo

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// jobItem encodes j (at j.Version) with its index keys.
func jobItem(j jobs.Job) (item, error) {
	w := newWriter(jobKey(j.ID))
	w.n(attrID, j.ID)
	w.s(attrType, string(j.Type))
	w.s(attrState, string(j.State))
	w.s(attrEnv, j.Environment)
	w.s(attrDesc, j.Description)
	w.s(attrTask, j.Task)
	w.s(attrTaskFold, strings.ToLower(j.Task))
	w.s(attrOwnerID, j.Owner.ID)
	w.s(attrOwnerLogin, j.Owner.Login)
	w.json(attrOptions, j.Options)
	w.bytes(attrPayload, j.Payload)
	w.n(attrConcurrency, int64(j.Concurrency))
	w.n(attrTimeout, int64(j.Timeout))
	w.n(attrNodeCount, int64(j.NodeCount))
	w.time(attrCreated, j.CreatedAt)
	w.time(attrUpdated, j.UpdatedAt)
	w.timePtr(attrFinished, j.FinishedAt)
	status := make([]jobs.StatusEntry, len(j.Status))
	for i, e := range j.Status {
		status[i] = jobs.StatusEntry{State: e.State, EnterTime: e.EnterTime.UTC()}
		if e.ExitTime != nil {
			exit := e.ExitTime.UTC()
			status[i].ExitTime = &exit
		}
	}
	statusJSON, err := json.Marshal(status)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	w.json(attrStatus, statusJSON)
	if j.IdempotencyKey != "" {
		w.s(attrIdemKey, j.IdempotencyKey)
	}
	w.n(attrMaxErrors, int64(j.MaxErrors))
	w.s(attrStop, j.Stop)
	w.n(attrVersion, j.Version)
	if w.err != nil {
		return nil, w.err
	}
	w.s(GSI3PK, gsiJobs)
	w.s(GSI3SK, padID(j.ID))
	if !j.State.Terminal() {
		w.s(GSI1PK, gsiUnfinished)
		w.s(GSI1SK, str(w.it[attrCreated])+"#"+padID(j.ID))
	}
	if err := checkSize(fmt.Sprintf("job %d", j.ID), w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

func decodeJob(it item) (jobs.Job, error) {
	r := reader{it: it}
	j := jobs.Job{
		ID:             r.n(attrID),
		Type:           jobs.Type(r.s(attrType)),
		State:          jobs.State(r.s(attrState)),
		Environment:    r.s(attrEnv),
		Description:    r.s(attrDesc),
		Task:           r.s(attrTask),
		Owner:          jobs.Owner{ID: r.s(attrOwnerID), Login: r.s(attrOwnerLogin)},
		Options:        r.json(attrOptions),
		Payload:        r.bytes(attrPayload),
		Concurrency:    int(r.n(attrConcurrency)),
		Timeout:        int(r.n(attrTimeout)),
		NodeCount:      int(r.n(attrNodeCount)),
		CreatedAt:      r.time(attrCreated),
		UpdatedAt:      r.time(attrUpdated),
		FinishedAt:     r.timePtr(attrFinished),
		IdempotencyKey: r.optS(attrIdemKey),
		MaxErrors:      int(r.n(attrMaxErrors)),
		Stop:           r.s(attrStop),
		Version:        r.n(attrVersion),
	}
	status := r.json(attrStatus)
	if r.err != nil {
		return jobs.Job{}, fmt.Errorf("decode job %s: %w", str(it[PartitionKey]), r.err)
	}
	if len(status) > 0 {
		if err := json.Unmarshal(status, &j.Status); err != nil {
			return jobs.Job{}, fmt.Errorf("decode job %d status: %w", j.ID, err)
		}
	}
	if len(j.Status) == 0 {
		j.Status = nil
	}
	return j, nil
}

// jobCounters is the small item next to each job that the frequent writes touch instead of
// the job: the id of its last event, how many of its node records are active, and whether
// the job is terminal (which decides whether those records count in ACTIVE_NODES).
type jobCounters struct {
	lastEvent int64
	active    int64
	terminal  bool
}

func countersItem(id int64, c jobCounters) item {
	w := newWriter(jobCountersKey(id))
	w.n(attrLastEvent, c.lastEvent)
	w.n(attrActive, c.active)
	w.b(attrTerminal, c.terminal)
	return w.it
}

func decodeCounters(it item) (jobCounters, error) {
	r := reader{it: it}
	c := jobCounters{lastEvent: r.n(attrLastEvent), active: r.n(attrActive), terminal: r.b(attrTerminal)}
	if r.err != nil {
		return jobCounters{}, fmt.Errorf("decode job counters %s: %w", str(it[PartitionKey]), r.err)
	}
	return c, nil
}

// reservationItem is the item that makes (login, key) unique among jobs.
func reservationItem(login, k string, id int64) item {
	it := idemKey(login, k)
	it[attrJobID] = avN(id)
	return it
}

// idempotencyTaken is the error for a job whose idempotency key another job of its owner has.
func idempotencyTaken(j jobs.Job) error {
	return fmt.Errorf("idempotency key %q of %s: %w", j.IdempotencyKey, j.Owner.Login, store.ErrExists)
}

// CreateJob implements store.Store.
//
// It takes an id from the JOB_ID counter, then writes the job, its counters, its idempotency
// reservation, the ACTIVE_NODES increment, its node records and its events in one
// transaction. A job with more items than one transaction holds is written in two steps:
// the node records and events that do not fit are written first (BatchWriteItem), then the
// transaction writes the rest together with the job item, so the job appears all at once or
// not at all; if that transaction fails, the first step's items are deleted.
func (s *Store) CreateJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event) (jobs.Job, error) {
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if seen[n.Name] {
			return jobs.Job{}, fmt.Errorf("create job: node %s listed twice: %w", n.Name, store.ErrExists)
		}
		seen[n.Name] = true
	}
	id, err := s.add(ctx, key(pkCounters, skJobID), 1)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("create job: allocate id: %w", err)
	}
	j.ID, j.Version = id, 1
	jobIt, err := jobItem(j)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("create job %d: %w", id, err)
	}

	var active int64
	body := make([]item, 0, len(nodes)+len(events))
	for i, n := range withInitialEventIDs(nodes, events) {
		n.JobID, n.Version = id, 1
		if n.State.Active() {
			active++
		}
		it, err := nodeItem(n, int64(i))
		if err != nil {
			return jobs.Job{}, fmt.Errorf("create job %d: %w", id, err)
		}
		body = append(body, it)
	}
	for i, e := range events {
		e.JobID, e.ID = id, int64(i+1)
		it, err := eventItem(e)
		if err != nil {
			return jobs.Job{}, fmt.Errorf("create job %d: %w", id, err)
		}
		body = append(body, it)
	}

	var e expr
	notExists := e.notExists(PartitionKey)
	final := []types.TransactWriteItem{
		s.txPut(jobIt, notExists, &e),
		s.txPut(countersItem(id, jobCounters{lastEvent: int64(len(events)), active: active, terminal: j.State.Terminal()}), notExists, &e),
	}
	reservation := -1
	if j.IdempotencyKey != "" {
		reservation = len(final)
		final = append(final, s.txPut(reservationItem(j.Owner.Login, j.IdempotencyKey, id), notExists, &e))
	}
	if active > 0 && !j.State.Terminal() {
		final = append(final, s.txAddActive(active))
	}

	// The last body items ride in the final transaction; the others are staged before it.
	roomItems, roomBytes := maxTxItems-len(final), maxTxBytes
	for _, ti := range final {
		roomBytes -= txItemSize(ti)
	}
	split := len(body)
	for split > 0 && roomItems > 0 && roomBytes-itemSize(body[split-1]) >= 0 {
		split--
		roomItems--
		roomBytes -= itemSize(body[split])
	}
	for _, it := range body[split:] {
		final = append(final, s.txPut(it, "", nil))
	}
	staged := body[:split]
	if len(staged) > 0 {
		if err := s.stage(ctx, j, staged); err != nil {
			return jobs.Job{}, fmt.Errorf("create job %d: %w", id, err)
		}
	}

	err = s.transactRetry(ctx, final)
	if err != nil {
		if len(staged) > 0 {
			s.unstage(ctx, id, staged)
		}
		if tc, ok := canceled(err); ok && tc.failed(reservation) {
			return jobs.Job{}, fmt.Errorf("create job %d: %w", id, idempotencyTaken(j))
		}
		return jobs.Job{}, fmt.Errorf("create job %d: %w", id, err)
	}
	return j, nil
}

// stage writes the node records and events of a big job that do not fit in its final
// transaction. A taken idempotency key is checked first so that a refused job does not
// write them for nothing (the final transaction still decides).
func (s *Store) stage(ctx context.Context, j jobs.Job, items []item) error {
	if j.IdempotencyKey != "" {
		it, err := s.get(ctx, idemKey(j.Owner.Login, j.IdempotencyKey))
		if err != nil {
			return fmt.Errorf("check idempotency key: %w", err)
		}
		if it != nil {
			return idempotencyTaken(j)
		}
	}
	reqs := make([]types.WriteRequest, len(items))
	for i, it := range items {
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
	}
	if err := s.batchWrite(ctx, reqs); err != nil {
		s.unstage(ctx, j.ID, items)
		return fmt.Errorf("write %d node records and events: %w", len(items), err)
	}
	return nil
}

// unstage deletes staged items after the job failed to commit. A failure is only logged:
// the items are unreachable, since no job item points at them.
func (s *Store) unstage(ctx context.Context, id int64, items []item) {
	reqs := make([]types.WriteRequest, len(items))
	for i, it := range items {
		reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(str(it[PartitionKey]), str(it[SortKey]))}}
	}
	if err := s.batchWrite(context.WithoutCancel(ctx), reqs); err != nil {
		s.log.Warn("delete the staged items of a job that was not created", "job_id", id, "items", len(items), "error", err)
	}
}

// withInitialEventIDs returns a copy of nodes whose LatestEventID is the id the last initial
// event naming the node will get (a new job's events are numbered from 1).
func withInitialEventIDs(nodes []jobs.Node, events []jobs.Event) []jobs.Node {
	out := slices.Clone(nodes)
	index := make(map[string]int, len(out))
	for i, n := range out {
		index[n.Name] = i
	}
	for i, e := range events {
		if k, ok := index[e.Node]; ok && e.Node != "" {
			out[k].LatestEventID = int64(i + 1)
		}
	}
	return out
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id int64) (jobs.Job, error) {
	it, err := s.get(ctx, jobKey(id))
	if err != nil {
		return jobs.Job{}, fmt.Errorf("get job %d: %w", id, err)
	}
	if it == nil {
		return jobs.Job{}, fmt.Errorf("get job %d: %w", id, store.ErrNotFound)
	}
	return decodeJob(it)
}

// GetJobByIdempotencyKey implements store.Store: it reads the reservation, then the job.
func (s *Store) GetJobByIdempotencyKey(ctx context.Context, login, k string) (jobs.Job, error) {
	if k == "" {
		return jobs.Job{}, fmt.Errorf("get job of %s by empty idempotency key: %w", login, store.ErrNotFound)
	}
	res, err := s.get(ctx, idemKey(login, k))
	if err != nil {
		return jobs.Job{}, fmt.Errorf("get job of %s by idempotency key %q: %w", login, k, err)
	}
	if res == nil {
		return jobs.Job{}, fmt.Errorf("get job of %s by idempotency key %q: %w", login, k, store.ErrNotFound)
	}
	r := reader{it: res}
	id := r.n(attrJobID)
	if r.err != nil {
		return jobs.Job{}, fmt.Errorf("get job of %s by idempotency key %q: %w", login, k, r.err)
	}
	j, err := s.GetJob(ctx, id)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("get job of %s by idempotency key %q: %w", login, k, err)
	}
	if j.Owner.Login != login || j.IdempotencyKey != k {
		return jobs.Job{}, fmt.Errorf("get job of %s by idempotency key %q: reservation names job %d, which has another key", login, k, id)
	}
	return j, nil
}

// jobRow is what GSI3 holds of a job: enough to filter, count and order a listing.
type jobRow struct {
	id                          int64
	typ, state, env, owner, tfd string
	created                     time.Time
	finished                    *time.Time
}

func decodeJobRow(it item) (jobRow, error) {
	r := reader{it: it}
	row := jobRow{
		id: r.n(attrID), typ: r.s(attrType), state: r.s(attrState), env: r.s(attrEnv),
		owner: r.s(attrOwnerLogin), tfd: r.s(attrTaskFold), created: r.time(attrCreated), finished: r.timePtr(attrFinished),
	}
	if r.err != nil {
		return jobRow{}, fmt.Errorf("decode job index entry %s: %w", str(it[PartitionKey]), r.err)
	}
	return row, nil
}

// jobOrder compares two rows on a JobQuery.OrderBy key, ties broken by id.
var jobOrder = map[string]func(a, b jobRow) int{
	"":            func(a, b jobRow) int { return a.created.Compare(b.created) },
	"timestamp":   func(a, b jobRow) int { return a.created.Compare(b.created) },
	"owner":       func(a, b jobRow) int { return strings.Compare(a.owner, b.owner) },
	"environment": func(a, b jobRow) int { return strings.Compare(a.env, b.env) },
	"name":        func(a, b jobRow) int { return 0 },
	"state":       func(a, b jobRow) int { return strings.Compare(a.state, b.state) },
}

// matches reports whether row passes the filters of q.
func (row jobRow) matches(q store.JobQuery, taskFold string) bool {
	if q.Type != "" && row.typ != string(q.Type) {
		return false
	}
	if q.Task != "" && !strings.Contains(row.tfd, taskFold) {
		return false
	}
	if q.MinFinish != nil && (row.finished == nil || row.finished.Before(*q.MinFinish)) {
		return false
	}
	if q.MaxFinish != nil && (row.finished == nil || row.finished.After(*q.MaxFinish)) {
		return false
	}
	return true
}

// ListJobs implements store.Store. It queries the whole "JOBS" partition of GSI3, whose
// entries hold only the listing attributes (about 150 bytes a job: 10,000 jobs read about
// 1.5 MB, some 180 read units, in two pages), filters, counts, orders and pages in memory,
// then reads the page's jobs with consistent reads. Like the SQLite store, OrderBy "owner"
// orders by owner login, ties are broken by id in the same direction, and an unknown
// OrderBy or a negative Limit or Offset is an error. The index is eventually consistent: a
// job created or changed a moment ago may be missing or placed by its previous values.
func (s *Store) ListJobs(ctx context.Context, q store.JobQuery) ([]jobs.Job, int, error) {
	order, ok := jobOrder[q.OrderBy]
	if !ok {
		return nil, 0, fmt.Errorf("list jobs: unknown order %q", q.OrderBy)
	}
	if q.Limit < 0 || q.Offset < 0 {
		return nil, 0, fmt.Errorf("list jobs: negative limit %d or offset %d", q.Limit, q.Offset)
	}
	var e expr
	items, err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(GSI3),
		KeyConditionExpression:    aws.String(e.eq(GSI3PK, avS(gsiJobs))),
		ProjectionExpression:      aws.String(e.projection(JobListAttributes...)),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	taskFold := strings.ToLower(q.Task)
	var rows []jobRow
	for _, it := range items {
		row, err := decodeJobRow(it)
		if err != nil {
			return nil, 0, fmt.Errorf("list jobs: %w", err)
		}
		if row.matches(q, taskFold) {
			rows = append(rows, row)
		}
	}
	slices.SortFunc(rows, func(a, b jobRow) int {
		c := cmp.Or(order(a, b), cmp.Compare(a.id, b.id))
		if q.Desc {
			return -c
		}
		return c
	})
	total := len(rows)
	page := rows[min(q.Offset, total):]
	if q.Limit > 0 && len(page) > q.Limit {
		page = page[:q.Limit]
	}
	ids := make([]int64, len(page))
	for i, row := range page {
		ids[i] = row.id
	}
	out, err := s.getJobs(ctx, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	return out, total, nil
}

// getJobs reads the jobs ids, in that order; a missing one is an error.
func (s *Store) getJobs(ctx context.Context, ids []int64) ([]jobs.Job, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]item, len(ids))
	for i, id := range ids {
		keys[i] = jobKey(id)
	}
	found, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]jobs.Job, 0, len(ids))
	for i, id := range ids {
		it, ok := found[keyString(keys[i])]
		if !ok {
			return nil, fmt.Errorf("job %d is indexed but missing", id)
		}
		j, err := decodeJob(it)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// unfinishedRef is an entry of the UNFINISHED partition of GSI1.
type unfinishedRef struct {
	id    int64
	order int // position in the index: by creation time, then id
}

// unfinishedJobs queries the UNFINISHED partition of GSI1 (keys only), oldest first.
func (s *Store) unfinishedJobs(ctx context.Context) ([]unfinishedRef, error) {
	var e expr
	items, err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String(e.eq(GSI1PK, avS(gsiUnfinished))),
		ProjectionExpression:      aws.String(e.projection(PartitionKey, SortKey, GSI1PK, GSI1SK)),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, 0)
	if err != nil {
		return nil, err
	}
	out := make([]unfinishedRef, 0, len(items))
	for i, it := range items {
		id, err := jobIDFromPK(str(it[PartitionKey]))
		if err != nil {
			return nil, err
		}
		out = append(out, unfinishedRef{id: id, order: i})
	}
	return out, nil
}

// ListUnfinishedJobs implements store.Store: the UNFINISHED partition of GSI1 (keys only)
// names the jobs, which are then read with consistent reads and checked again. Oldest means
// earliest CreatedAt, then lowest id. A job that changed state a moment ago may be missing
// (index lag), never wrongly included.
func (s *Store) ListUnfinishedJobs(ctx context.Context) ([]jobs.Job, error) {
	refs, err := s.unfinishedJobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	ids := make([]int64, len(refs))
	for i, r := range refs {
		ids[i] = r.id
	}
	all, err := s.getJobs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	out := slices.DeleteFunc(all, func(j jobs.Job) bool { return j.State.Terminal() })
	slices.SortFunc(out, func(a, b jobs.Job) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// UpdateJob implements store.Store. It reads the job and its counters, then writes in one
// transaction: the job (condition: the version read), its counters (when events are
// appended, the last event id read; when the job enters or leaves a terminal state, the
// active count read, which then moves in or out of ACTIVE_NODES), the idempotency
// reservations when the owner login or key changes, and the events. A transaction that lost
// only on the counters is tried again.
func (s *Store) UpdateJob(ctx context.Context, j jobs.Job, events ...jobs.Event) (jobs.Job, error) {
	fail := func(err error) (jobs.Job, error) {
		return jobs.Job{}, fmt.Errorf("update job %d at version %d: %w", j.ID, j.Version, err)
	}
	next := j
	next.Version++
	newIt, err := jobItem(next)
	if err != nil {
		return fail(err)
	}
	// At most: the job, its counters, ACTIVE_NODES, two reservations, the events.
	if n := 5 + len(events); n > maxTxItems {
		return fail(fmt.Errorf("%d events in one update, at most %d", len(events), maxTxItems-5))
	}
	for attempt := 0; ; attempt++ {
		got, err := s.batchGet(ctx, []item{jobKey(j.ID), jobCountersKey(j.ID)})
		if err != nil {
			return fail(err)
		}
		oldIt, ok := got[keyString(jobKey(j.ID))]
		if !ok {
			return fail(store.ErrNotFound)
		}
		old, err := decodeJob(oldIt)
		if err != nil {
			return fail(err)
		}
		if old.Version != j.Version {
			return fail(store.ErrConflict)
		}
		ctrIt, ok := got[keyString(jobCountersKey(j.ID))]
		if !ok {
			return fail(fmt.Errorf("job counters missing"))
		}
		ctr, err := decodeCounters(ctrIt)
		if err != nil {
			return fail(err)
		}

		var e expr
		tx := []types.TransactWriteItem{s.txPut(newIt, e.eq(attrVersion, avN(j.Version)), &e)}
		counters := -1
		terminal := j.State.Terminal()
		if len(events) > 0 || terminal != ctr.terminal {
			var ce expr
			var sets, adds, conds []string
			if len(events) > 0 {
				adds = append(adds, ce.name(attrLastEvent)+" "+ce.value(avN(int64(len(events)))))
				conds = append(conds, ce.eq(attrLastEvent, avN(ctr.lastEvent)))
			}
			if terminal != ctr.terminal {
				sets = append(sets, ce.eq(attrTerminal, avBool(terminal)))
				conds = append(conds, ce.eq(attrActive, avN(ctr.active)), ce.eq(attrTerminal, avBool(ctr.terminal)))
			}
			counters = len(tx)
			tx = append(tx, s.txUpdate(jobCountersKey(j.ID), updateExpr(sets, adds), strings.Join(conds, " AND "), &ce))
		}
		if terminal != ctr.terminal && ctr.active != 0 {
			delta := ctr.active
			if terminal {
				delta = -delta
			}
			tx = append(tx, s.txAddActive(delta))
		}
		reservation := -1
		oldRes, newRes := [2]string{old.Owner.Login, old.IdempotencyKey}, [2]string{j.Owner.Login, j.IdempotencyKey}
		if oldRes != newRes {
			if old.IdempotencyKey != "" {
				var de expr
				tx = append(tx, s.txDelete(idemKey(old.Owner.Login, old.IdempotencyKey), de.eq(attrJobID, avN(j.ID)), &de))
			}
			if j.IdempotencyKey != "" {
				var re expr
				reservation = len(tx)
				tx = append(tx, s.txPut(reservationItem(j.Owner.Login, j.IdempotencyKey, j.ID), re.notExists(PartitionKey), &re))
			}
		}
		for i, ev := range events {
			ev.JobID, ev.ID = j.ID, ctr.lastEvent+int64(i+1)
			it, err := eventItem(ev)
			if err != nil {
				return fail(err)
			}
			var ee expr
			tx = append(tx, s.txPut(it, ee.notExists(PartitionKey), &ee))
		}

		if len(tx) == 1 {
			err = s.put(ctx, newIt, aws.ToString(tx[0].Put.ConditionExpression), &e)
			if ccf, ok := conditionFailed(err); ok {
				return fail(s.versionMiss(ctx, jobKey(j.ID), ccf))
			}
		} else {
			err = s.transact(ctx, tx)
		}
		if err == nil {
			return next, nil
		}
		tc, ok := canceled(err)
		switch {
		case !ok:
			return fail(err)
		case tc.failed(0):
			return fail(store.ErrConflict)
		case tc.failed(reservation):
			return fail(idempotencyTaken(j))
		case tc.failed(counters) || tc.contended():
			if attempt+1 >= s.maxAttempts {
				return fail(fmt.Errorf("job counters kept changing: %w", store.ErrConflict))
			}
			if err := s.backoff(ctx, attempt); err != nil {
				return fail(err)
			}
		default:
			return fail(err)
		}
	}
}

// updateExpr joins SET and ADD clauses.
func updateExpr(sets, adds []string) string {
	var parts []string
	if len(sets) > 0 {
		parts = append(parts, "SET "+strings.Join(sets, ", "))
	}
	if len(adds) > 0 {
		parts = append(parts, "ADD "+strings.Join(adds, ", "))
	}
	return strings.Join(parts, " ")
}
