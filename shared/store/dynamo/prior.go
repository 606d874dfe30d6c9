package dynamo

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
)

// UpdateJobNodeFrom is UpdateJobNode for a caller that read the record just before (prev, at
// n.Version) and has events to write with it — a result — in a job with counter shards whose
// records were all claimed at its creation (own; any other job's update is UpdateJobNode's:
// see below). Knowing what it replaces, the store moves the counters first and writes the
// record once, its LatestEventID already right:
//
//  1. one UpdateItem of the record's sequencer (the counters item, or its counter shard): the
//     counts of prev's and n's states, the active count, and the events' ids;
//  2. one UpdateItem of the record (every attribute, conditional on n.Version), with the
//     LatestEventID of its last event;
//  3. the events, and what else UpdateJobNode does after its counters' update.
//
// Three writes, where UpdateJobNode takes four at scale (its guess of the ids, read before
// the record's write, is nearly always overtaken by another writer of the job, and the
// record is written again with the right id) and half a read unit more. When the record's
// write is refused (its version moved: store.ErrConflict), the counts are moved back and the
// ids written void: nothing is counted or listed — but for a moment the counts said
// otherwise, which is why only a job with no claims (whose caps a low active count could
// pass) takes this path, and why the orchestrator keeps UpdateJobNode for a job with an
// error limit (a failure counted for a moment would stop it). A recount refuses while a
// sequencer allocated ids less than RecountSettle ago (its update may be ahead of its
// record's write). A process that dies between 1 and 2
// leaves the counts ahead of the records (UpdateJobNode's order leaves them behind): a job
// so counted done is not ended while a record is unfinished (MayEndJob, which the
// orchestrator asks before it ends a job), and the sweep's recount repairs the counts.
//
// open reports that the job is not done, known without a read: the record's counter shard
// counts its own records (a job whose records were all claimed at its creation, create.go)
// and still counts one unfinished after this update. The caller can then skip reading the
// job's counts (K+1 read units) to see whether the job is done.
//
// Other calls (no events, a caller that did not read the record) are UpdateJobNode's.
func (s *Store) UpdateJobNodeFrom(ctx context.Context, prev, n jobs.Node, events ...jobs.Event) (_ jobs.Node, open bool, _ error) {
	fail := func(err error) (jobs.Node, bool, error) {
		return jobs.Node{}, false, fmt.Errorf("update job %d node %s at version %d: %w", n.JobID, n.Name, n.Version, err)
	}
	m, err := s.meta(ctx, n.JobID)
	if err != nil {
		return fail(err)
	}
	if !m.own || len(events) == 0 || len(events) > maxEventsPerUpdate || prev.JobID != n.JobID || prev.Name != n.Name || prev.Version != n.Version {
		// Counts ahead of the records, even for a moment, would mislead readers that act on
		// them: a claim against the job's cap, or an error limit. Only a job claimed whole at
		// its creation has neither claims nor, by the orchestrator's choice, an error limit.
		out, err := s.UpdateJobNode(ctx, n, events...)
		return out, false, err
	}
	next := n
	next.Version++
	w := &written{prev: prev, next: next, events: events}
	// The record is encoded before anything is written (a record too large is refused with
	// nothing counted); its LatestEventID is set once the ids are known.
	it, err := nodeItem(w.next, 0, m)
	if err != nil {
		return fail(err)
	}
	delete(it, attrSeq) // kept as created
	j := m.seqOf(n.Name)
	var floor int64
	if j > 0 {
		floor = n.LatestEventID / int64(m.seqs())
	}
	// What follows the counters' update must happen whatever the caller does meanwhile.
	wctx, cancel, err := committing(ctx)
	if err != nil {
		return fail(err)
	}
	defer cancel()
	// The ids must come after the record's latest event: in a job claimed whole at its
	// creation, that is a creation's event, whose id is below every shard's clock (the
	// clocks start equal): no lift (base = floor); if ever it were not, allocPast below.
	mv, err := s.moveCounters(wctx, m, j, []*written{w}, floor, floor)
	if err != nil {
		return fail(err)
	}
	nev := int64(len(events))
	ids := allocated(m, j, mv.c, nev)
	if j > 0 && ids[0].id/int64(m.seqs()) <= floor {
		// The shard's clock is behind the record's latest event, which another sequencer
		// numbered (a claim's node_running): these ids would list the new events before it.
		// They are written void and ids past it taken (rare: a shard lags the counters
		// item only when refills claim faster than its records end).
		c, err := s.allocPast(wctx, m, j, nev, floor)
		if err == nil {
			err = s.writeVoid(wctx, m, ids)
		}
		if err != nil {
			s.uncount(wctx, m, j, w)
			return fail(err)
		}
		mv.c = c
		ids = allocated(m, j, c, nev)
	}
	w.next.LatestEventID = ids[len(ids)-1].id
	it[attrLatestEv] = avN(w.next.LatestEventID)
	var e expr
	_, err = s.writeNode(wctx, it, e.eq(attrVersion, avN(n.Version)), &e)
	if ccf, ok := conditionFailed(err); ok {
		s.undo(wctx, m, j, w, ids)
		return fail(s.versionMiss(ctx, m.nodeKey(n.Name), ccf))
	}
	if err != nil {
		// The write may have been applied all the same (a response lost): look.
		cur, gerr := s.get(wctx, m.nodeKey(n.Name))
		if gerr != nil || cur == nil {
			s.undo(wctx, m, j, w, ids)
			return fail(err)
		}
		if got, _, derr := decodeNode(cur); derr != nil || got.Version != w.next.Version || got.LatestEventID != w.next.LatestEventID {
			s.undo(wctx, m, j, w, ids)
			return fail(err)
		}
	}
	if err := s.finishWrites(wctx, m, j, []*written{w}, mv, false); err != nil {
		return fail(fmt.Errorf("the record is written; %w", err))
	}
	return w.next, mv.open, nil
}

// allocPast allocates n ids of sequencer j past clock floor (see afterWrites' lift), and
// returns the sequencer as updated.
func (s *Store) allocPast(ctx context.Context, m jobMeta, j int, n, floor int64) (counters, error) {
	var e expr
	sets, adds := s.allocClauses(&e, m, n, floor)
	after, err := s.update(ctx, m.seqKey(j), updateExpr(sets, adds), liftCond(&e, floor), &e, types.ReturnValueAllNew, nil)
	if _, ok := conditionFailed(err); ok { // the clock passed floor meanwhile: add to it
		e = expr{}
		sets, adds = s.allocClauses(&e, m, n, 0)
		after, err = s.update(ctx, m.seqKey(j), updateExpr(sets, adds), "", &e, types.ReturnValueAllNew, nil)
	}
	if err != nil {
		return counters{}, fmt.Errorf("event ids: %w", err)
	}
	return decodeCountersItem(after)
}

// undo takes back what moveCounters counted for w, whose record was not written, and writes
// its ids void. Its failures are logged: the counts stay ahead until the sweep's recount,
// and an id never written is read past after the gap wait.
func (s *Store) undo(ctx context.Context, m jobMeta, j int, w *written, ids []alloc) {
	s.uncount(ctx, m, j, w)
	if err := s.writeVoid(ctx, m, ids); err != nil {
		s.log.Warn("write void event ids", "job", m.id, "node", w.next.Name, "err", err)
	}
}

// uncount ADDs back the counts moveCounters moved for w (not its ids, not its usage).
func (s *Store) uncount(ctx context.Context, m jobMeta, j int, w *written) {
	if w.prev.State == w.next.State {
		return
	}
	var e expr
	adds := []string{
		e.name(attrStatePref+string(w.prev.State)) + " " + e.value(avN(1)),
		e.name(attrStatePref+string(w.next.State)) + " " + e.value(avN(-1)),
	}
	switch {
	case w.next.State.Active() && !w.prev.State.Active():
		adds = append(adds, e.name(attrActive)+" "+e.value(avN(-1)))
	case !w.next.State.Active() && w.prev.State.Active():
		adds = append(adds, e.name(attrActive)+" "+e.value(avN(1)))
	}
	slices.Sort(adds)
	if _, err := s.update(ctx, m.seqKey(j), updateExpr(nil, adds), "", &e, types.ReturnValueNone, nil); err != nil {
		s.log.Warn("take back the counts of a record not written", "job", m.id, "node", w.next.Name, "err", err)
	}
}

// writeVoid writes ids void (ListEvents passes over them).
func (s *Store) writeVoid(ctx context.Context, m jobMeta, ids []alloc) error {
	items := make([]item, len(ids))
	for i, a := range ids {
		items[i] = s.voidItem(m, a)
	}
	if len(items) == 1 {
		_, err := s.put(ctx, items[0], "", nil)
		return err
	}
	return s.writeAll(ctx, items)
}

// MayEndJob reports whether job jobID may be ended now by its caller: every node record of
// the job is done (in a terminal state), and no other caller is checking the same. Many
// result handlers see a job's counts say done at once (each counted before its record's
// write, UpdateJobNodeFrom); one check at a time per job keeps it to about one read of the
// records per job:
//
//  1. one conditional UpdateItem of the job's counters item: SET the check's end
//     (doneCheckHold from now) unless another check's end is still ahead (false, without a
//     write, when this process's last read of the counters said so);
//  2. a consistent query of each of its node shards (in parallel), a page at a time, which
//     stops at the first unfinished record, again after 25 ms, 50 ms, … (3.2 s in all) while
//     one is (a record whose write is on its way);
//  3. when still unfinished, the check's end cleared, so that the result whose record comes
//     last checks again.
//
// Its cost follows the job's size (about a read unit per 7 records of a bench::noop job:
// DynamoDB bills the records read whether a filter drops them or not, so none is used, and
// the meter's estimate is exact).
func (s *Store) MayEndJob(ctx context.Context, jobID int64) (bool, error) {
	fail := func(err error) (bool, error) { return false, fmt.Errorf("may end job %d: %w", jobID, err) }
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	now := s.now()
	if until, ok := s.checks.Load(jobID); ok && until.(int64) > now.UnixMilli() {
		return false, nil // another caller is checking (this process read so just before)
	}
	mine := avN(now.Add(doneCheckHold).UnixMilli())
	// release clears this caller's hold (not a later caller's), whatever happened to its
	// context, so that the result whose record comes last can check at once.
	release := func() {
		var ce expr
		_, err := s.update(context.WithoutCancel(ctx), jobCountersKey(jobID), "REMOVE "+ce.name(attrChecking), ce.eq(attrChecking, mine), &ce, types.ReturnValueNone, nil)
		if _, ok := conditionFailed(err); !ok && err != nil {
			s.log.Warn("clear the end check of a job", "job", jobID, "err", err)
		}
	}
	var e expr
	_, err = s.update(ctx, jobCountersKey(jobID), "SET "+e.eq(attrChecking, mine),
		"("+e.notExists(attrChecking)+" OR "+e.name(attrChecking)+" < "+e.value(avN(now.UnixMilli()))+")", &e, types.ReturnValueNone, nil)
	if _, ok := conditionFailed(err); ok {
		return false, nil
	}
	if err != nil {
		release() // the SET may have been applied, its response lost
		return fail(err)
	}
	for attempt := 0; ; attempt++ {
		done, err := s.recordsDone(ctx, m)
		if err != nil || done || attempt == doneCheckTries-1 {
			if !done {
				release()
			}
			if err != nil {
				return fail(err)
			}
			return done, nil
		}
		t := time.NewTimer(25 * time.Millisecond << attempt)
		select {
		case <-ctx.Done():
			t.Stop()
			release()
			return fail(ctx.Err())
		case <-t.C:
		}
	}
}

// doneCheckHold is how long a caller of MayEndJob holds a job's end check, and
// doneCheckTries how many times it reads the records (25 ms after the first, doubling: 3.2 s
// in all). The result handlers whose record writes it waits for do not check themselves when
// their shard still counted an unfinished record (UpdateJobNodeFrom's open), so it waits for
// them rather than give up at once.
const (
	doneCheckHold  = 10 * time.Second
	doneCheckTries = 8
)

// recordsDone reports whether every node record of job m is done (see MayEndJob).
func (s *Store) recordsDone(ctx context.Context, m jobMeta) (bool, error) {
	var err error
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var unfinished atomic.Bool
	err = s.parallel(ctx, m.shards, func(ctx context.Context, k int) error {
		var e expr
		in := &dynamodb.QueryInput{
			TableName: s.table,
			KeyConditionExpression: aws.String(e.eq(PartitionKey, avS(m.shardPK(k))) +
				" AND begins_with(" + e.name(SortKey) + ", " + e.value(avS(skNodePrefix)) + ")"),
			ConsistentRead:         aws.Bool(true),
			ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
		}
		in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.attrNames(), e.attrValues()
		for !unfinished.Load() {
			page, err := s.db.Query(ctx, in)
			if err != nil {
				if unfinished.Load() {
					return nil // another shard answered: this one was cancelled
				}
				return err
			}
			size := 0
			for _, it := range page.Items {
				size += itemSize(it)
				r := reader{it: it}
				if st := jobs.NodeState(r.optS(attrState)); !st.Terminal() {
					unfinished.Store(true)
					stop()
				}
			}
			s.record(ctx, "Query", one(page.ConsumedCapacity), []use{{pk: m.shardPK(k), rcu: readUnits(size, true)}})
			if len(page.LastEvaluatedKey) == 0 {
				return nil
			}
			in.ExclusiveStartKey = page.LastEvaluatedKey
		}
		return nil
	})
	if unfinished.Load() {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
