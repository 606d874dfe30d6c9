package dynamo

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// nodeItem encodes node record n, the seq-th of its job, with its index keys.
func nodeItem(n jobs.Node, seq int64) (item, error) {
	w := newWriter(nodeKey(n.JobID, n.Name))
	w.n(attrJobID, n.JobID)
	w.s(attrName, n.Name)
	w.n(attrSeq, seq)
	w.s(attrState, string(n.State))
	w.s(attrTxn, n.TransactionID)
	w.timePtr(attrReadyAt, n.ReadyAt)
	w.timePtr(attrStarted, n.StartedAt)
	w.timePtr(attrFinished, n.FinishedAt)
	w.json(attrResult, n.Result)
	w.s(attrMessage, n.Message)
	w.n(attrLatestEv, n.LatestEventID)
	w.timePtr(attrDueAt, n.DueAt)
	w.n(attrVersion, n.Version)
	if w.err != nil {
		return nil, fmt.Errorf("job %d node %s: %w", n.JobID, n.Name, w.err)
	}
	w.s(GSI1PK, gsiNamePrefix+n.Name)
	w.s(GSI1SK, padID(n.JobID))
	if n.TransactionID != "" {
		w.s(GSI2PK, gsiTxnPrefix+n.TransactionID)
		w.s(GSI2SK, padID(n.JobID))
	}
	if err := checkSize(fmt.Sprintf("job %d node %s", n.JobID, n.Name), w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

// decodeNode decodes a node record and returns its creation order too.
func decodeNode(it item) (jobs.Node, int64, error) {
	r := reader{it: it}
	n := jobs.Node{
		JobID:         r.n(attrJobID),
		Name:          r.s(attrName),
		State:         jobs.NodeState(r.s(attrState)),
		TransactionID: r.s(attrTxn),
		ReadyAt:       r.timePtr(attrReadyAt),
		StartedAt:     r.timePtr(attrStarted),
		FinishedAt:    r.timePtr(attrFinished),
		Result:        r.json(attrResult),
		Message:       r.s(attrMessage),
		LatestEventID: r.n(attrLatestEv),
		DueAt:         r.timePtr(attrDueAt),
		Version:       r.n(attrVersion),
	}
	seq := r.n(attrSeq)
	if r.err != nil {
		return jobs.Node{}, 0, fmt.Errorf("decode node record %s %s: %w", str(it[PartitionKey]), str(it[SortKey]), r.err)
	}
	return n, seq, nil
}

func eventItem(e jobs.Event) (item, error) {
	w := newWriter(key(jobPK(e.JobID), eventSK(e.ID)))
	w.n(attrJobID, e.JobID)
	w.n(attrID, e.ID)
	w.s(attrType, e.Type)
	w.time(attrTimestamp, e.Timestamp)
	w.s(attrNode, e.Node)
	w.json(attrDetail, e.Detail)
	w.s(attrMessage, e.Message)
	if w.err != nil {
		return nil, fmt.Errorf("job %d event %d: %w", e.JobID, e.ID, w.err)
	}
	if err := checkSize(fmt.Sprintf("job %d event %d", e.JobID, e.ID), w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

func decodeEvent(it item) (jobs.Event, error) {
	r := reader{it: it}
	e := jobs.Event{
		JobID:     r.n(attrJobID),
		ID:        r.n(attrID),
		Type:      r.s(attrType),
		Timestamp: r.time(attrTimestamp),
		Node:      r.s(attrNode),
		Detail:    r.json(attrDetail),
		Message:   r.s(attrMessage),
	}
	if r.err != nil {
		return jobs.Event{}, fmt.Errorf("decode event %s %s: %w", str(it[PartitionKey]), str(it[SortKey]), r.err)
	}
	return e, nil
}

// GetJobNode implements store.Store.
func (s *Store) GetJobNode(ctx context.Context, jobID int64, name string) (jobs.Node, error) {
	it, err := s.get(ctx, nodeKey(jobID, name))
	if err != nil {
		return jobs.Node{}, fmt.Errorf("get job %d node %s: %w", jobID, name, err)
	}
	if it == nil {
		return jobs.Node{}, fmt.Errorf("get job %d node %s: %w", jobID, name, store.ErrNotFound)
	}
	n, _, err := decodeNode(it)
	return n, err
}

// ListJobNodes implements store.Store: one query on the job's item collection. An unknown
// job has no nodes.
func (s *Store) ListJobNodes(ctx context.Context, jobID int64) ([]jobs.Node, error) {
	var e expr
	items, err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String(e.eq(PartitionKey, avS(jobPK(jobID))) +
			" AND begins_with(" + e.name(SortKey) + ", " + e.value(avS(skNodePrefix)) + ")"),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, 0)
	if err != nil {
		return nil, fmt.Errorf("list job %d nodes: %w", jobID, err)
	}
	type rec struct {
		n   jobs.Node
		seq int64
	}
	recs := make([]rec, 0, len(items))
	for _, it := range items {
		n, seq, err := decodeNode(it)
		if err != nil {
			return nil, fmt.Errorf("list job %d nodes: %w", jobID, err)
		}
		recs = append(recs, rec{n, seq})
	}
	slices.SortFunc(recs, func(a, b rec) int { return cmp.Compare(a.seq, b.seq) })
	if len(recs) == 0 {
		return nil, nil
	}
	out := make([]jobs.Node, len(recs))
	for i, r := range recs {
		out[i] = r.n
	}
	return out, nil
}

// ListJobNodesByName implements store.Store. The UNFINISHED partition of GSI1 names the
// unfinished jobs; the NAME#<name> partition of GSI1, from the oldest of them on, names the
// node's records; consistent reads of those records and of their jobs' counters then keep
// the records of jobs still unfinished whose state is one of states (every state when none
// is given). Its cost follows the jobs run on that node since the oldest unfinished job.
func (s *Store) ListJobNodesByName(ctx context.Context, name string, states ...jobs.NodeState) ([]jobs.Node, error) {
	fail := func(err error) ([]jobs.Node, error) {
		return nil, fmt.Errorf("list job nodes named %s: %w", name, err)
	}
	refs, err := s.unfinishedJobs(ctx)
	if err != nil {
		return fail(err)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	order := make(map[int64]int, len(refs))
	minID := int64(math.MaxInt64)
	for _, r := range refs {
		order[r.id] = r.order
		minID = min(minID, r.id)
	}
	var e expr
	entries, err := s.query(ctx, &dynamodb.QueryInput{
		IndexName: aws.String(GSI1),
		KeyConditionExpression: aws.String(e.eq(GSI1PK, avS(gsiNamePrefix+name)) + " AND " +
			e.name(GSI1SK) + " >= " + e.value(avS(padID(minID)))),
		ProjectionExpression:      aws.String(e.projection(PartitionKey, SortKey, GSI1PK, GSI1SK)),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, 0)
	if err != nil {
		return fail(err)
	}
	var keys []item
	for _, it := range entries {
		id, err := jobIDFromPK(str(it[PartitionKey]))
		if err != nil {
			return fail(err)
		}
		if _, ok := order[id]; ok {
			keys = append(keys, nodeKey(id, name), jobCountersKey(id))
		}
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return fail(err)
	}
	var out []jobs.Node
	for i := 0; i < len(keys); i += 2 {
		nodeIt, ok := got[keyString(keys[i])]
		ctrIt, ok2 := got[keyString(keys[i+1])]
		if !ok || !ok2 {
			continue
		}
		ctr, err := decodeCounters(ctrIt)
		if err != nil {
			return fail(err)
		}
		if ctr.terminal {
			continue
		}
		n, _, err := decodeNode(nodeIt)
		if err != nil {
			return fail(err)
		}
		if len(states) == 0 || slices.Contains(states, n.State) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b jobs.Node) int { return cmp.Compare(order[a.JobID], order[b.JobID]) })
	return out, nil
}

// FindJobNodeByTransaction implements store.Store: GSI2 names the records that sent txn
// (lowest job id first); the first one whose consistent read still has txn, in a job that
// exists, is returned. The empty transaction id matches nothing.
func (s *Store) FindJobNodeByTransaction(ctx context.Context, txn string) (jobs.Node, error) {
	fail := func(err error) (jobs.Node, error) {
		return jobs.Node{}, fmt.Errorf("find job node by transaction %s: %w", txn, err)
	}
	if txn == "" {
		return fail(store.ErrNotFound)
	}
	var e expr
	entries, err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(GSI2),
		KeyConditionExpression:    aws.String(e.eq(GSI2PK, avS(gsiTxnPrefix+txn))),
		ProjectionExpression:      aws.String(e.projection(PartitionKey, SortKey, GSI2PK, GSI2SK)),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, 0)
	if err != nil {
		return fail(err)
	}
	var keys []item
	for _, it := range entries {
		pk := str(it[PartitionKey])
		id, err := jobIDFromPK(pk)
		if err != nil {
			return fail(err)
		}
		keys = append(keys, key(pk, str(it[SortKey])), jobCountersKey(id))
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return fail(err)
	}
	for i := 0; i < len(keys); i += 2 {
		nodeIt, ok := got[keyString(keys[i])]
		if _, ok2 := got[keyString(keys[i+1])]; !ok || !ok2 {
			continue
		}
		n, _, err := decodeNode(nodeIt)
		if err != nil {
			return fail(err)
		}
		if n.TransactionID == txn {
			return n, nil
		}
	}
	return fail(store.ErrNotFound)
}

// UpdateJobNode implements store.Store. It reads the record and its job's counters. Without
// events, a change that leaves the record's activity as it was is one conditional PutItem
// (condition: the version read). Otherwise one transaction writes the record (same
// condition), the job's counters (ADD the events and the change of active records;
// conditions: the last event id read, and that the job is still terminal or not as read),
// ACTIVE_NODES when the job is not terminal, and the events. A transaction that lost only on
// the counters (another append won) is tried again; callers see ErrConflict only when the
// record itself changed.
func (s *Store) UpdateJobNode(ctx context.Context, n jobs.Node, events ...jobs.Event) (jobs.Node, error) {
	fail := func(err error) (jobs.Node, error) {
		return jobs.Node{}, fmt.Errorf("update job %d node %s at version %d: %w", n.JobID, n.Name, n.Version, err)
	}
	if k := 3 + len(events); k > maxTxItems {
		return fail(fmt.Errorf("%d events in one update, at most %d", len(events), maxTxItems-3))
	}
	nk, ck := nodeKey(n.JobID, n.Name), jobCountersKey(n.JobID)
	for attempt := 0; ; attempt++ {
		got, err := s.batchGet(ctx, []item{nk, ck})
		if err != nil {
			return fail(err)
		}
		oldIt, ok := got[keyString(nk)]
		if !ok {
			return fail(store.ErrNotFound)
		}
		old, seq, err := decodeNode(oldIt)
		if err != nil {
			return fail(err)
		}
		if old.Version != n.Version {
			return fail(store.ErrConflict)
		}
		var delta int64
		switch {
		case n.State.Active() && !old.State.Active():
			delta = 1
		case !n.State.Active() && old.State.Active():
			delta = -1
		}
		next := n
		next.Version++

		var e expr
		cond := e.eq(attrVersion, avN(n.Version))
		if len(events) == 0 && delta == 0 {
			it, err := nodeItem(next, seq)
			if err != nil {
				return fail(err)
			}
			err = s.put(ctx, it, cond, &e)
			if ccf, ok := conditionFailed(err); ok {
				return fail(s.versionMiss(ctx, nk, ccf))
			}
			if err != nil {
				return fail(err)
			}
			return next, nil
		}

		ctrIt, ok := got[keyString(ck)]
		if !ok {
			return fail(store.ErrNotFound) // the job does not exist (or is still being created)
		}
		ctr, err := decodeCounters(ctrIt)
		if err != nil {
			return fail(err)
		}
		if len(events) > 0 {
			next.LatestEventID = ctr.lastEvent + int64(len(events))
		}
		it, err := nodeItem(next, seq)
		if err != nil {
			return fail(err)
		}
		tx := []types.TransactWriteItem{s.txPut(it, cond, &e)}

		var ce expr
		var adds, conds []string
		if len(events) > 0 {
			adds = append(adds, ce.name(attrLastEvent)+" "+ce.value(avN(int64(len(events)))))
			conds = append(conds, ce.eq(attrLastEvent, avN(ctr.lastEvent)))
		}
		if delta != 0 {
			adds = append(adds, ce.name(attrActive)+" "+ce.value(avN(delta)))
			conds = append(conds, ce.eq(attrTerminal, avBool(ctr.terminal)))
		}
		tx = append(tx, s.txUpdate(ck, updateExpr(nil, adds), strings.Join(conds, " AND "), &ce))
		if delta != 0 && !ctr.terminal {
			tx = append(tx, s.txAddActive(delta))
		}
		for i, ev := range events {
			ev.JobID, ev.ID = n.JobID, ctr.lastEvent+int64(i+1)
			evIt, err := eventItem(ev)
			if err != nil {
				return fail(err)
			}
			var ee expr
			tx = append(tx, s.txPut(evIt, ee.notExists(PartitionKey), &ee))
		}
		err = s.transact(ctx, tx)
		if err == nil {
			return next, nil
		}
		tc, ok := canceled(err)
		switch {
		case !ok:
			return fail(err)
		case tc.failed(0):
			return fail(store.ErrConflict)
		case tc.failed(1) || tc.contended():
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

// CountActiveNodes implements store.Store: one read of the ACTIVE_NODES counter, which every
// write that changes the count updates in the same transaction.
func (s *Store) CountActiveNodes(ctx context.Context) (int, error) {
	it, err := s.get(ctx, key(pkCounters, skActive))
	if err != nil {
		return 0, fmt.Errorf("count active job nodes: %w", err)
	}
	if it == nil {
		return 0, nil
	}
	r := reader{it: it}
	n := r.n(attrCount)
	if r.err != nil {
		return 0, fmt.Errorf("count active job nodes: %w", r.err)
	}
	return int(n), nil
}

// ListEvents implements store.Store: one query on the job's item collection (sort keys
// EVENT#<zero-padded id>), plus a read of the job's counters when it finds nothing, to tell
// an unknown job from one without events.
func (s *Store) ListEvents(ctx context.Context, jobID int64, start int64, limit int) ([]jobs.Event, error) {
	fail := func(err error) ([]jobs.Event, error) {
		return nil, fmt.Errorf("list job %d events: %w", jobID, err)
	}
	if limit < 0 {
		return fail(fmt.Errorf("negative limit %d", limit))
	}
	var e expr
	items, err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String(e.eq(PartitionKey, avS(jobPK(jobID))) + " AND " + e.name(SortKey) +
			" BETWEEN " + e.value(avS(eventSK(max(start, 0)))) + " AND " + e.value(avS(eventSK(math.MaxInt64)))),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, limit)
	if err != nil {
		return fail(err)
	}
	if len(items) == 0 {
		it, err := s.get(ctx, jobCountersKey(jobID))
		if err != nil {
			return fail(err)
		}
		if it == nil {
			return fail(store.ErrNotFound)
		}
		return nil, nil
	}
	out := make([]jobs.Event, len(items))
	for i, it := range items {
		if out[i], err = decodeEvent(it); err != nil {
			return fail(err)
		}
	}
	return out, nil
}
