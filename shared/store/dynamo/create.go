package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// CreateJob implements store.Store; see createJob.
func (s *Store) CreateJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event) (jobs.Job, error) {
	created, _, err := s.createJob(ctx, j, nodes, events, nil)
	return created, err
}

// CreateJobClaiming implements store.Store: the records it claims are written claimed (one
// write each, never queued first), in the same batches as the rest; see createJob.
func (s *Store) CreateJobClaiming(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event, c store.Claim) (jobs.Job, []jobs.Node, error) {
	if c.Limit <= 0 || c.Apply == nil {
		return jobs.Job{}, nil, errors.New("create job: a claim needs a positive limit and an Apply function")
	}
	return s.createJob(ctx, j, nodes, events, &c)
}

// createJob writes a job in four steps, the job item last, as the commit point:
//
//  1. an id from the JOB_ID counter (UpdateItem ADD);
//  2. the idempotency reservation, when the job has a key (PutItem, conditional on the key
//     being free: store.ErrExists, and nothing else is written);
//  3. everything else, by BatchWriteItem (25 items a call, s.workers calls at once,
//     unprocessed items retried): the counters item, the pages of node names, the usage
//     shards, the node records and the events; and, for the records active from the start
//     (claimed by c or created so), slots of the ACTIVE count (the claimed ones under
//     c.GlobalCap);
//  4. the job item (PutItem, conditional on its key being free).
//
// Every reader reaches a job's other items through the job item (its meta says where they
// are), so a job is seen whole or not at all. A failure in 3 or 4 deletes what 2 and 3 wrote
// and gives the slots back; a process that dies in between leaves unreachable items under
// an id that is never used again, which TTL deletes.
func (s *Store) createJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, events []jobs.Event, c *store.Claim) (jobs.Job, []jobs.Node, error) {
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if n.Name == "" {
			return jobs.Job{}, nil, fmt.Errorf("create job: %w", errEmptyName)
		}
		if seen[n.Name] {
			return jobs.Job{}, nil, fmt.Errorf("create job: node %s listed twice: %w", n.Name, store.ErrExists)
		}
		seen[n.Name] = true
	}
	id, err := s.add(ctx, key(pkCounters, skJobID), 1)
	if err != nil {
		return jobs.Job{}, nil, fmt.Errorf("create job: allocate id: %w", err)
	}
	fail := func(err error) (jobs.Job, []jobs.Node, error) {
		return jobs.Job{}, nil, fmt.Errorf("create job %d: %w", id, err)
	}
	j.ID, j.Version = id, 1
	m := newMeta(id, len(nodes), j.Concurrency, s.now(), s.retention, s.counterFrom)
	jobIt, err := jobItem(j, m)
	if err != nil {
		return fail(err)
	}
	terminal := j.State.Terminal()

	recs := withInitialEventIDs(nodes, events)
	evs := make([]jobs.Event, len(events))
	active := 0
	for i := range recs {
		recs[i].JobID, recs[i].Version = id, 1
		if recs[i].State.Active() {
			active++
		}
		if recs[i].LatestEventID > 0 { // the index of the event, from 1
			recs[i].LatestEventID = creationAlloc(m, int(recs[i].LatestEventID-1)).id
		}
	}
	for i, e := range events {
		e.JobID, e.ID = id, creationAlloc(m, i).id
		evs[i] = e
	}

	// The records claimed at creation: the first queued ones, as many as the caps allow.
	var claimed []int
	var grants []int // the slot shard of each claimed record
	if c != nil && !terminal && j.Stop == "" {
		free := c.Limit
		if j.Concurrency > 0 {
			free = min(free, j.Concurrency-active)
		}
		for i := range recs {
			if len(claimed) >= free {
				break
			}
			if recs[i].State == jobs.NodeNew {
				claimed = append(claimed, i)
			}
		}
		if len(claimed) > 0 {
			if grants, err = s.acquireSlots(ctx, len(claimed), c.GlobalCap, nil); err != nil {
				return fail(err)
			}
			claimed = claimed[:len(grants)]
		}
		for k, i := range claimed {
			q := recs[i]
			n, nevs := c.Apply(q)
			if n.JobID != q.JobID || n.Name != q.Name || !n.State.Active() {
				s.releaseSlots(ctx, grants)
				return fail(fmt.Errorf("claim of %s made %s record %d/%s: want an active record of the same node", q.Name, n.State, n.JobID, n.Name))
			}
			n.Version = 1
			for _, e := range nevs {
				e.JobID, e.ID = id, creationAlloc(m, len(evs)).id
				evs = append(evs, e)
				n.LatestEventID = e.ID
			}
			recs[i] = n
			_ = k
		}
	}
	// Every record active from the start holds a slot of the ACTIVE semaphore: the claimed
	// ones took theirs under c.GlobalCap; the others (created active) take theirs as they
	// are. The job holds them as its quota.
	others := 0
	if !terminal {
		others = active
	}
	if others > 0 {
		g, err := s.acquireSlots(ctx, others, 0, nil)
		if err != nil {
			s.releaseSlots(ctx, grants)
			return fail(err)
		}
		grants = append(grants, g...)
	}
	quota := make([]int64, slotShards)
	for _, k := range grants {
		quota[k]++
	}
	// The body: counters, pages, usage shards, node records, events.
	body := make([]item, 0, len(recs)+len(evs)+m.pages+m.usage+1)
	counts := jobs.StateCounts{}
	cursor := len(recs)
	for i, n := range recs {
		counts[n.State]++
		if n.State == jobs.NodeNew && i < cursor {
			cursor = i
		}
	}
	// The creation's events go round the sequencers (creationAlloc); every sequencer's
	// clock starts at the same value, so that none starts behind the others (ListEvents
	// returns ids up to the least clock).
	q := m.seqs()
	clk := int64((len(evs) + q - 1) / q)
	// A job with counter shards and no queued record (every record claimed at creation: the
	// AWS default) keeps each record's count on its own shard from the start: no claim ever
	// moves a count to the counters item, so a shard that still counts an unfinished record
	// after a result's update says that the job is not done without a read of the others
	// (UpdateJobNodeFrom's open).
	own := m.counters > 0 && counts[jobs.NodeNew] == 0
	if own {
		m.own = true
		jobIt[attrOwnCounts] = avBool(true)
	}
	itemCounts := counts
	shardCounts := make([]jobs.StateCounts, m.counters)
	if own {
		itemCounts = jobs.StateCounts{}
		for k := range shardCounts {
			shardCounts[k] = jobs.StateCounts{}
		}
		for _, n := range recs {
			shardCounts[m.seqOf(n.Name)-1][n.State]++
		}
	}
	ctrs := countersItem(m, j, itemCounts, int64((len(evs)+q-1)/q), int64(cursor), quota)
	ctrs[attrClock] = avN(clk)
	body = append(body, ctrs)
	for k := range m.counters {
		w := newWriter(counterShardKey(id, k))
		w.n(attrLastEvent, int64((len(evs)-(k+1)+q-1)/q))
		w.n(attrClock, clk)
		if own {
			w.b(attrOwnCounts, true)
			for st, n := range shardCounts[k] {
				w.n(attrStatePref+string(st), int64(n))
			}
			w.n(attrActive, int64(shardCounts[k].Active()))
		}
		w.n(TTLAttribute, m.expires)
		body = append(body, w.it)
	}
	for p := 0; p < m.pages; p++ {
		w := newWriter(pageKey(id, p))
		names := make([]string, 0, pageSize)
		for _, n := range recs[p*pageSize : min((p+1)*pageSize, len(recs))] {
			names = append(names, n.Name)
		}
		w.strs(attrNames, names)
		w.n(TTLAttribute, m.expires)
		body = append(body, w.it)
	}
	for k := range m.usage {
		w := newWriter(usageKey(id, k))
		w.n(TTLAttribute, m.expires)
		body = append(body, w.it)
	}
	for i, n := range recs {
		it, err := nodeItem(n, int64(i), m)
		if err != nil {
			s.releaseSlots(ctx, grants)
			return fail(err)
		}
		body = append(body, it)
	}
	evItems, err := s.creationEventItems(m, evs) // packs in a job with counter shards (packs.go)
	if err != nil {
		s.releaseSlots(ctx, grants)
		return fail(err)
	}
	body = append(body, evItems...)

	undo := func(reserved bool) {
		s.releaseSlots(ctx, grants)
		s.unstage(ctx, id, body)
		if reserved {
			var e expr
			if _, err := s.del(context.WithoutCancel(ctx), idemKey(j.Owner.Login, j.IdempotencyKey), e.eq(attrJobID, avN(id)), &e); err != nil {
				s.log.Warn("delete the idempotency reservation of a job that was not created", "job_id", id, "error", err)
			}
		}
	}
	reserved := false
	if j.IdempotencyKey != "" {
		var e expr
		_, err := s.put(ctx, reservationItem(j.Owner.Login, j.IdempotencyKey, id, m.expires), e.notExists(PartitionKey), &e)
		if _, ok := conditionFailed(err); ok {
			s.releaseSlots(ctx, grants)
			return fail(idempotencyTaken(j))
		}
		if err != nil {
			s.releaseSlots(ctx, grants)
			return fail(err)
		}
		reserved = true
	}
	if err := s.writeAll(ctx, body); err != nil {
		undo(reserved)
		return fail(err)
	}
	var e expr
	if _, err := s.put(ctx, jobIt, e.notExists(PartitionKey), &e); err != nil {
		undo(reserved)
		return fail(err)
	}
	s.metas.put(m)
	s.unfinished.drop()
	out := make([]jobs.Node, len(claimed))
	for k, i := range claimed {
		out[k] = recs[i]
	}
	return j, out, nil
}

// creationAlloc is the id of the i-th event (from 0) written with job m's creation: the
// events go round its sequencers (the counters item and its counter shards), so that no
// event partition takes them all; their ids follow their order (i + seqs()).
func creationAlloc(m jobMeta, i int) alloc {
	q := m.seqs()
	return alloc{seq: int64(i/q + 1), id: m.eventID(i%q, int64(i/q+1))}
}

// countersItem is a new job's counters item.
func countersItem(m jobMeta, j jobs.Job, counts jobs.StateCounts, lastEvent, cursor int64, quota []int64) item {
	w := newWriter(jobCountersKey(m.id))
	w.n(attrLastEvent, lastEvent)
	w.n(attrClock, lastEvent)
	w.n(attrActive, int64(counts.Active()))
	w.b(attrTerminal, j.State.Terminal())
	w.b(attrStopped, j.Stop != "")
	w.n(attrCursor, cursor)
	for st, n := range counts {
		if n != 0 {
			w.n(attrStatePref+string(st), int64(n))
		}
	}
	for k, q := range quota {
		if q != 0 {
			w.n(quotaAttr(k), q)
		}
	}
	w.n(TTLAttribute, m.expires)
	return w.it
}

// writeAll puts items with BatchWriteItem, s.workers calls at once.
func (s *Store) writeAll(ctx context.Context, items []item) error {
	chunks := (len(items) + maxBatchWrite - 1) / maxBatchWrite
	return s.parallel(ctx, chunks, func(ctx context.Context, c int) error {
		part := items[c*maxBatchWrite : min((c+1)*maxBatchWrite, len(items))]
		reqs := make([]types.WriteRequest, len(part))
		for i, it := range part {
			reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
		}
		return s.batchWrite(ctx, reqs)
	})
}

// unstage deletes the items of a job that was not created. A failure is only logged: the
// items are unreachable, since no job item points at them, and TTL deletes them.
func (s *Store) unstage(ctx context.Context, id int64, items []item) {
	ctx = context.WithoutCancel(ctx)
	chunks := (len(items) + maxBatchWrite - 1) / maxBatchWrite
	err := s.parallel(ctx, chunks, func(ctx context.Context, c int) error {
		part := items[c*maxBatchWrite : min((c+1)*maxBatchWrite, len(items))]
		reqs := make([]types.WriteRequest, len(part))
		for i, it := range part {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(str(it[PartitionKey]), str(it[SortKey]))}}
		}
		return s.batchWrite(ctx, reqs)
	})
	if err != nil {
		s.log.Warn("delete the items of a job that was not created", "job_id", id, "items", len(items), "error", err)
	}
}

// UpdateJob implements store.Store. It reads the job (its version, key and state as stored),
// then writes it with a PutItem conditional on the version read — in a transaction with the
// idempotency reservations only when the owner's login or the key changes. Then, when there
// are events or the job's terminal state or stop request changed, one UpdateItem of the
// counters item (ADD the events, SET the flags), whose new last event id numbers the
// events, which are then written. A job that becomes terminal gives back the slots of the
// ACTIVE count its active records hold.
func (s *Store) UpdateJob(ctx context.Context, j jobs.Job, events ...jobs.Event) (jobs.Job, error) {
	fail := func(err error) (jobs.Job, error) {
		return jobs.Job{}, fmt.Errorf("update job %d at version %d: %w", j.ID, j.Version, err)
	}
	oldIt, err := s.get(ctx, jobKey(j.ID))
	if err != nil {
		return fail(err)
	}
	if oldIt == nil {
		return fail(store.ErrNotFound)
	}
	old, err := decodeJob(oldIt)
	if err != nil {
		return fail(err)
	}
	if old.Version != j.Version {
		return fail(store.ErrConflict)
	}
	m, err := metaFromJob(oldIt)
	if err != nil {
		return fail(err)
	}
	s.metas.put(m)
	next := j
	next.Version++
	newIt, err := jobItem(next, m)
	if err != nil {
		return fail(err)
	}
	// The job's write and the counters update that follows it run to their end together,
	// even if the caller gives up once the first is sent (see committing).
	ctx, cancel, err := committing(ctx)
	if err != nil {
		return fail(err)
	}
	defer cancel()
	var e expr
	cond := e.eq(attrVersion, avN(j.Version))
	oldRes, newRes := [2]string{old.Owner.Login, old.IdempotencyKey}, [2]string{j.Owner.Login, j.IdempotencyKey}
	if oldRes == newRes {
		_, err = s.put(ctx, newIt, cond, &e)
		if ccf, ok := conditionFailed(err); ok {
			return fail(s.versionMiss(ctx, jobKey(j.ID), ccf))
		}
		if err != nil {
			return fail(err)
		}
	} else {
		tx := []types.TransactWriteItem{s.txPut(newIt, cond, &e)}
		if old.IdempotencyKey != "" {
			var de expr
			tx = append(tx, s.txDelete(idemKey(old.Owner.Login, old.IdempotencyKey), de.eq(attrJobID, avN(j.ID)), &de))
		}
		reservation := -1
		if j.IdempotencyKey != "" {
			var re expr
			reservation = len(tx)
			tx = append(tx, s.txPut(reservationItem(j.Owner.Login, j.IdempotencyKey, j.ID, m.expires), re.notExists(PartitionKey), &re))
		}
		err := s.transactRetry(ctx, tx)
		tc, ok := canceled(err)
		switch {
		case err == nil:
		case ok && tc.failed(0):
			return fail(store.ErrConflict)
		case ok && tc.failed(reservation):
			return fail(idempotencyTaken(j))
		default:
			return fail(err)
		}
	}

	terminal, wasTerminal := j.State.Terminal(), old.State.Terminal()
	if terminal != wasTerminal {
		s.unfinished.drop()
	}
	if len(events) > 0 || terminal != wasTerminal || (j.Stop != "") != (old.Stop != "") {
		// A job's events come after every event of its records: with counter shards, the
		// counters item's clock is lifted past theirs (read first) when it is behind.
		var lift int64
		if m.counters > 0 && len(events) > 0 {
			cm, _, sh, err := s.jobCounters(ctx, m)
			if err != nil {
				return fail(fmt.Errorf("the job is written; its counters: %w", err))
			}
			if sh.clock > cm.clock {
				lift = sh.clock
			}
		}
		n := int64(len(events))
		write := func(lift int64) (item, error) {
			var ce expr
			sets := []string{ce.eq(attrTerminal, avBool(terminal)), ce.eq(attrStopped, avBool(j.Stop != ""))}
			if terminal && !wasTerminal {
				// A terminal job holds no slot of the ACTIVE semaphore: its quota goes back.
				for k := range slotShards {
					sets = append(sets, ce.eq(quotaAttr(k), avN(0)))
				}
			}
			as, adds := s.allocClauses(&ce, m, n, lift)
			cond := ""
			if lift > 0 {
				cond = liftCond(&ce, lift)
			}
			return s.update(ctx, jobCountersKey(j.ID), updateExpr(append(sets, as...), adds), cond, &ce, types.ReturnValueAllOld, nil)
		}
		before, err := write(lift)
		if _, ok := conditionFailed(err); ok && lift > 0 {
			lift = 0 // the clock passed it meanwhile
			before, err = write(0)
		}
		if err != nil {
			return fail(fmt.Errorf("the job is written; its counters: %w", err))
		}
		c, err := decodeCountersItem(before)
		if err != nil {
			return fail(err)
		}
		if len(events) > 0 {
			c.lastEvent += n // as the allocation left the sequencer
			if c.clock += n; lift > 0 {
				c.clock = lift + n
			}
			if err := s.writeEvents(ctx, m, events, allocated(m, 0, c, int64(len(events)))); err != nil {
				return fail(fmt.Errorf("the job is written; its events: %w", err))
			}
		}
		if terminal && !wasTerminal {
			for k, q := range c.quota {
				if q > 0 {
					if err := s.addSlot(ctx, k, -q, -1); err != nil {
						return fail(fmt.Errorf("the job is written; return its quota: %w", err))
					}
				}
			}
		}
	}
	return next, nil
}

// writeEvents writes events with the ids ids (BatchWriteItem; one PutItem for one).
func (s *Store) writeEvents(ctx context.Context, m jobMeta, events []jobs.Event, ids []alloc) error {
	items := make([]item, len(events))
	for i, ev := range events {
		ev.JobID, ev.ID = m.id, ids[i].id
		it, err := s.eventItem(ev, ids[i].seq, m)
		if err != nil {
			return err
		}
		items[i] = it
	}
	if len(items) == 1 {
		_, err := s.put(ctx, items[0], "", nil)
		return err
	}
	return s.writeAll(ctx, items)
}

var _ = aws.String
