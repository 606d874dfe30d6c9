package dynamo

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// jobItem encodes j (at j.Version) with its index keys and the meta its items are keyed by.
func jobItem(j jobs.Job, m jobMeta) (item, error) {
	w := newWriter(jobKey(j.ID))
	w.n(attrShards, int64(m.shards))
	w.n(attrEventShards, int64(m.eventShards))
	w.n(attrPages, int64(m.pages))
	w.n(attrUsageShards, int64(m.usage))
	if m.counters > 0 {
		w.n(attrCounterShards, int64(m.counters))
	}
	if m.own {
		w.b(attrOwnCounts, true)
	}
	w.n(TTLAttribute, m.expires)
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

// reservationItem is the item that makes (login, key) unique among jobs.
func reservationItem(login, k string, id int64, expires int64) item {
	it := idemKey(login, k)
	it[attrJobID] = avN(id)
	it[TTLAttribute] = avN(expires)
	return it
}

// idempotencyTaken is the error for a job whose idempotency key another job of its owner has.
func idempotencyTaken(j jobs.Job) error {
	return fmt.Errorf("idempotency key %q of %s: %w", j.IdempotencyKey, j.Owner.Login, store.ErrExists)
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
	if m, err := metaFromJob(it); err == nil {
		s.metas.put(m)
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
		if m, err := metaFromJob(it); err == nil {
			s.metas.put(m)
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

// unfinishedTTL is how long ListJobNodesByName (every agent's connect asks it for the
// node's pending work) uses a list of unfinished jobs this process read: a reconnect storm
// of the whole fleet then reads the UNFINISHED partition a few times a second instead of
// once per agent (100,000 reads of one index partition would exceed its 3,000 RCU/s). A
// job created or ended in this process drops the list; one created elsewhere is missed
// for at most unfinishedTTL, of the order of the index's own lag.
const unfinishedTTL = time.Second

// unfinishedList is the cached list of unfinished jobs.
type unfinishedList struct {
	mu   sync.Mutex
	jobs []jobs.Job
	at   time.Time
	ok   bool
}

func (u *unfinishedList) drop() {
	u.mu.Lock()
	u.ok = false
	u.mu.Unlock()
}

// unfinishedCached is ListUnfinishedJobs, read at most once per unfinishedTTL.
func (s *Store) unfinishedCached(ctx context.Context) ([]jobs.Job, error) {
	u := &s.unfinished
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if u.ok && now.Sub(u.at) < unfinishedTTL && !now.Before(u.at) {
		return u.jobs, nil
	}
	list, err := s.ListUnfinishedJobs(ctx)
	if err != nil {
		return nil, err
	}
	u.jobs, u.at, u.ok = list, now, true
	return list, nil
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
