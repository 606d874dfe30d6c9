package dynamo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// nodeOptional are the node record attributes a write leaves out when they are empty, so
// that a write over a record removes them.
var nodeOptional = []string{attrReadyAt, attrStarted, attrFinished, attrResult, attrDueAt, GSI1PK, GSI1SK, GSI2PK, GSI2SK}

// nodeItem encodes node record n, the seq-th of its job, with its index keys: GSI2 (DUE#) when
// it has a DueAt, GSI1 (TXN#) when its transaction id does not name its job.
func nodeItem(n jobs.Node, seq int64, m jobMeta) (item, error) {
	w := newWriter(m.nodeKey(n.Name))
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
	w.n(TTLAttribute, m.expires)
	if w.err != nil {
		return nil, fmt.Errorf("job %d node %s: %w", n.JobID, n.Name, w.err)
	}
	if n.DueAt != nil {
		w.s(GSI2PK, gsiDuePrefix+strconv.Itoa(shardOf(strconv.FormatInt(n.JobID, 10)+"#"+n.Name, dueShards)))
		w.s(GSI2SK, str(w.it[attrDueAt])+"#"+padID(n.JobID)+"#"+n.Name)
	}
	if n.TransactionID != "" {
		if _, ok := jobs.TransactionJob(n.TransactionID); !ok {
			w.s(GSI1PK, gsiTxnPrefix+n.TransactionID)
			w.s(GSI1SK, padID(n.JobID))
		}
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

// eventItem encodes event e, the seq-th its sequencer allocated (in a job with counter
// shards: ListEvents checks that a sequencer's events are all there by their seq).
func (s *Store) eventItem(e jobs.Event, seq int64, m jobMeta) (item, error) {
	w := newWriter(m.eventKey(e.ID, seq))
	w.n(attrJobID, e.JobID)
	w.n(attrID, e.ID)
	if m.counters > 0 {
		w.n(attrSeq, seq)
	}
	w.s(attrType, e.Type)
	w.time(attrTimestamp, e.Timestamp)
	w.s(attrNode, e.Node)
	w.json(attrDetail, e.Detail)
	w.s(attrMessage, e.Message)
	w.n(attrWritten, s.now().UnixMilli())
	w.n(TTLAttribute, m.expires)
	if w.err != nil {
		return nil, fmt.Errorf("job %d event %d: %w", e.JobID, e.ID, w.err)
	}
	if err := checkSize(fmt.Sprintf("job %d event %d", e.JobID, e.ID), w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

// alloc is an event id a sequencer allocated, and its seq (the sequencer's count of the ids
// it allocated, that one included).
type alloc struct{ seq, id int64 }

// allocClauses returns the update clauses that allocate n event ids on a sequencer item of
// job m: ADD to its count of ids and to its clock and, in a job with counter shards, SET the
// time (ListEvents' gap wait for an id whose writer died).
//
// With lift > 0 the clock is SET to lift+n instead: the caller makes the update
// conditional on the clock being at or below lift (liftCond), so that the ids allocated
// are above lift (their events come after events numbered up to clock lift).
func (s *Store) allocClauses(e *expr, m jobMeta, n, lift int64) (sets, adds []string) {
	if n <= 0 {
		return nil, nil
	}
	adds = []string{e.name(attrLastEvent) + " " + e.value(avN(n))}
	if lift > 0 {
		sets = append(sets, e.eq(attrClock, avN(lift+n)))
	} else {
		adds = append(adds, e.name(attrClock)+" "+e.value(avN(n)))
	}
	if m.counters > 0 {
		sets = append(sets, e.eq(attrAllocAt, avN(s.now().UnixMilli())))
	}
	return sets, adds
}

// liftCond is the condition of an allocation with lift (allocClauses).
func liftCond(e *expr, lift int64) string {
	return "(" + e.notExists(attrClock) + " OR " + e.name(attrClock) + " <= " + e.value(avN(lift)) + ")"
}

// allocated returns the last n ids sequencer j of job m allocated, oldest first, from c,
// the sequencer item as the allocation left it.
func allocated(m jobMeta, j int, c counters, n int64) []alloc {
	out := make([]alloc, n)
	for i := range out {
		back := n - 1 - int64(i)
		out[i] = alloc{seq: c.lastEvent - back, id: m.eventID(j, c.clock-back)}
	}
	return out
}

// voidItem stands for an event id that was allocated for nothing (a claim that lost its
// record): ListEvents skips it.
func (s *Store) voidItem(m jobMeta, a alloc) item {
	w := newWriter(m.eventKey(a.id, a.seq))
	w.n(attrJobID, m.id)
	w.n(attrID, a.id)
	if m.counters > 0 {
		w.n(attrSeq, a.seq)
	}
	w.b(attrVoid, true)
	w.n(attrWritten, s.now().UnixMilli())
	w.n(TTLAttribute, m.expires)
	return w.it
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

// GetJobNode implements store.Store: one consistent GetItem (and one of the job item, for
// where its records are, the first time this process sees the job).
func (s *Store) GetJobNode(ctx context.Context, jobID int64, name string) (jobs.Node, error) {
	fail := func(err error) (jobs.Node, error) {
		return jobs.Node{}, fmt.Errorf("get job %d node %s: %w", jobID, name, err)
	}
	if name == "" {
		return fail(store.ErrNotFound)
	}
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	it, err := s.get(ctx, m.nodeKey(name))
	if err != nil {
		return fail(err)
	}
	if it == nil {
		return fail(store.ErrNotFound)
	}
	n, _, err := decodeNode(it)
	return n, err
}

// shardRecords queries every shard of job m (in parallel), with an optional filter, and
// returns the records by creation order. Its cost follows the job's size: it serves the
// API's listing and the rare paths (stops, recounts), never a result.
func (s *Store) shardRecords(ctx context.Context, m jobMeta, filter func(*expr) string, projection ...string) ([]item, error) {
	parts := make([][]item, m.shards)
	err := s.parallel(ctx, m.shards, func(ctx context.Context, k int) error {
		var e expr
		in := &dynamodb.QueryInput{
			KeyConditionExpression: aws.String(e.eq(PartitionKey, avS(m.shardPK(k))) +
				" AND begins_with(" + e.name(SortKey) + ", " + e.value(avS(skNodePrefix)) + ")"),
		}
		if filter != nil {
			in.FilterExpression = aws.String(filter(&e))
		}
		if len(projection) > 0 {
			in.ProjectionExpression = aws.String(e.projection(projection...))
		}
		in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.attrNames(), e.attrValues()
		items, err := s.query(ctx, in, 0)
		parts[k] = items
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []item
	for _, p := range parts {
		out = append(out, p...)
	}
	seqOf := func(it item) int64 {
		r := reader{it: it}
		return r.optN(attrSeq)
	}
	slices.SortFunc(out, func(a, b item) int { return cmp.Compare(seqOf(a), seqOf(b)) })
	return out, nil
}

// ListJobNodes implements store.Store: a query of each of the job's shards, merged by
// creation order. An unknown job has no nodes.
func (s *Store) ListJobNodes(ctx context.Context, jobID int64) ([]jobs.Node, error) {
	m, err := s.meta(ctx, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list job %d nodes: %w", jobID, err)
	}
	items, err := s.shardRecords(ctx, m, nil)
	if err != nil {
		return nil, fmt.Errorf("list job %d nodes: %w", jobID, err)
	}
	return decodeNodes(items)
}

func decodeNodes(items []item) ([]jobs.Node, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := make([]jobs.Node, len(items))
	for i, it := range items {
		n, _, err := decodeNode(it)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// ListJobNodesByName implements store.Store: the unfinished jobs (GSI1's UNFINISHED
// partition and their job items, read at most once per unfinishedTTL by this process), then
// one BatchGetItem of the node's record in each. Its cost follows the number of unfinished
// jobs.
func (s *Store) ListJobNodesByName(ctx context.Context, name string, states ...jobs.NodeState) ([]jobs.Node, error) {
	fail := func(err error) ([]jobs.Node, error) {
		return nil, fmt.Errorf("list job nodes named %s: %w", name, err)
	}
	if name == "" {
		return nil, nil
	}
	unfinished, err := s.unfinishedCached(ctx)
	if err != nil {
		return fail(err)
	}
	keys := make([]item, 0, len(unfinished))
	for _, j := range unfinished {
		m, err := s.meta(ctx, j.ID)
		if err != nil {
			return fail(err)
		}
		keys = append(keys, m.nodeKey(name))
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return fail(err)
	}
	var out []jobs.Node
	for _, k := range keys { // in the order of the jobs: oldest first
		it, ok := got[keyString(k)]
		if !ok {
			continue
		}
		n, _, err := decodeNode(it)
		if err != nil {
			return fail(err)
		}
		if len(states) == 0 || slices.Contains(states, n.State) {
			out = append(out, n)
		}
	}
	return out, nil
}

// FindJobNodeByTransaction implements store.Store. A transaction id that names its job
// (jobs.TransactionID) is looked for among that job's records (a query of its shards: the
// orchestrator finds such records with GetJobNode instead, knowing the node). Any other id
// is looked up in GSI1 (TXN#<id>, written only for such ids), then read consistently and
// checked.
func (s *Store) FindJobNodeByTransaction(ctx context.Context, txn string) (jobs.Node, error) {
	fail := func(err error) (jobs.Node, error) {
		return jobs.Node{}, fmt.Errorf("find job node by transaction %s: %w", txn, err)
	}
	if txn == "" {
		return fail(store.ErrNotFound)
	}
	if id, ok := jobs.TransactionJob(txn); ok {
		m, err := s.meta(ctx, id)
		if err != nil {
			return fail(err)
		}
		items, err := s.shardRecords(ctx, m, func(e *expr) string { return e.eq(attrTxn, avS(txn)) })
		if err != nil {
			return fail(err)
		}
		if len(items) == 0 {
			return fail(store.ErrNotFound)
		}
		n, _, err := decodeNode(items[0])
		return n, err
	}
	var e expr
	entries, err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String(e.eq(GSI1PK, avS(gsiTxnPrefix+txn))),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, 0)
	if err != nil {
		return fail(err)
	}
	for _, ent := range entries {
		id, err := jobIDFromPK(str(ent[PartitionKey]))
		if err != nil {
			return fail(err)
		}
		if _, err := s.meta(ctx, id); errors.Is(err, store.ErrNotFound) {
			continue // a job that was never created
		} else if err != nil {
			return fail(err)
		}
		it, err := s.get(ctx, key(str(ent[PartitionKey]), str(ent[SortKey])))
		if err != nil {
			return fail(err)
		}
		if it == nil {
			continue
		}
		n, _, err := decodeNode(it)
		if err != nil {
			return fail(err)
		}
		if n.TransactionID == txn {
			return n, nil
		}
	}
	return fail(store.ErrNotFound)
}

// writeNode writes record it over the stored one with one UpdateItem that SETs every
// attribute of it and REMOVEs the optional ones it lacks, under cond, and returns the item
// it replaced.
func (s *Store) writeNode(ctx context.Context, it item, cond string, e *expr) (item, error) {
	var sets, removes []string
	for a, v := range it {
		if a == PartitionKey || a == SortKey {
			continue
		}
		sets = append(sets, e.name(a)+" = "+e.value(v))
	}
	idx := item{}
	for _, a := range nodeOptional {
		if _, ok := it[a]; !ok {
			removes = append(removes, e.name(a))
		}
		idx[a] = it[a]
	}
	slices.Sort(sets) // a stable expression, whatever the map order
	upd := "SET " + strings.Join(sets, ", ")
	if len(removes) > 0 {
		upd += " REMOVE " + strings.Join(removes, ", ")
	}
	return s.update(ctx, key(str(it[PartitionKey]), str(it[SortKey])), upd, cond, e, types.ReturnValueAllOld, idx)
}

// UpdateJobNode implements store.Store, with no transaction and no read before it:
//
//  1. one UpdateItem of the record (every attribute; conditional on n.Version; it returns the
//     record it replaced, whose state says what changed);
//  2. when the state changed or there are events, one UpdateItem of the job's counters item
//     (ADD to the old and new states' counts, the active count and the last event id; it
//     returns the new last event id, which numbers the events);
//  3. when there are events and their ids were not the ones guessed, one UpdateItem of the
//     record that sets its LatestEventID (conditional on the version just written; refused
//     when a later write of the record came in between: when that one changed the state
//     and its events may be numbered before these, these are written void, so that a
//     node's events never list a change after a later one; see overtaken);
//  4. the events (a PutItem for one; BatchWriteItem for several);
//  5. when the record became active or stopped being active, one UpdateItem of its slot of
//     the ACTIVE count (SLOTS#<k>: ADD 1 or -1; none for a job that is terminal).
//
// The counters move only after the record's conditional write succeeded, so a refused or
// repeated update never counts twice; a process that dies between 1 and 2 leaves the counts
// behind, which RecountJob repairs. Event ids are allocated in 2, after the write: a
// refused update takes none, so ids have no gaps.
func (s *Store) UpdateJobNode(ctx context.Context, n jobs.Node, events ...jobs.Event) (jobs.Node, error) {
	out, errs := s.UpdateJobNodes(ctx, []store.NodeUpdate{{Node: n, Events: events}})
	return out[0], errs[0]
}

// written is a record written by step 1 of UpdateJobNode, waiting for the steps after.
type written struct {
	prev   jobs.Node
	seq    int64
	next   jobs.Node
	events []jobs.Event
	guess  int64 // the LatestEventID written, when there are events
}

// UpdateJobNodes implements store.Store: step 1 of UpdateJobNode for every update (s.workers
// at a time), then, for the records of each job together, one UpdateItem of its counters
// (event ids in the order of ups), one batch of events and the other steps.
func (s *Store) UpdateJobNodes(ctx context.Context, ups []store.NodeUpdate) ([]jobs.Node, []error) {
	out := make([]jobs.Node, len(ups))
	errs := make([]error, len(ups))
	ws := make([]*written, len(ups))
	metas := make([]jobMeta, len(ups))
	for i, u := range ups {
		metas[i], errs[i] = s.meta(ctx, u.Node.JobID)
		if errs[i] == nil && len(u.Events) > maxEventsPerUpdate {
			errs[i] = fmt.Errorf("%d events in one update, at most %d", len(u.Events), maxEventsPerUpdate)
		}
	}
	// Guess the event ids from the sequencers (an eventually consistent read, half a unit):
	// when no other writer allocates ids meanwhile, the records are written with their
	// LatestEventID right and need no second write. Records are grouped by job and
	// sequencer (the counters item, or the record's counter shard).
	type group struct {
		job int64
		seq int
	}
	groupOf := func(i int) group { return group{ups[i].Node.JobID, metas[i].seqOf(ups[i].Node.Name)} }
	base := map[group]int64{}
	guess := make([]int64, len(ups))
	for i, u := range ups {
		if errs[i] != nil || len(u.Events) == 0 {
			continue
		}
		g := groupOf(i)
		if _, ok := base[g]; !ok {
			base[g] = -1
			if it, err := s.getEventual(ctx, metas[i].seqKey(g.seq)); err == nil && it != nil {
				if c, err := decodeCountersItem(it); err == nil {
					base[g] = c.clock
				}
			}
		}
	}
	// A counter shard's events must come after the events of its records that other
	// sequencers numbered (a record claimed by the counters item, say): its clock must pass
	// theirs, the floor (see afterWrites).
	floor := map[group]int64{}
	for i, u := range ups {
		if g := groupOf(i); errs[i] == nil && len(u.Events) > 0 && g.seq > 0 {
			floor[g] = max(floor[g], u.Node.LatestEventID/int64(metas[i].seqs()))
		}
	}
	next := map[group]int64{}
	for g, b := range base {
		next[g] = b
		if f := floor[g]; f > b {
			next[g] = f
		}
	}
	for i, u := range ups {
		g := groupOf(i)
		if b := next[g]; errs[i] == nil && len(u.Events) > 0 && b >= 0 {
			next[g] += int64(len(u.Events))
			guess[i] = metas[i].eventID(g.seq, next[g])
		}
	}
	_ = s.parallel(ctx, len(ups), func(ctx context.Context, i int) error {
		if errs[i] == nil {
			n := ups[i].Node
			if guess[i] > 0 {
				n.LatestEventID = guess[i]
			}
			ws[i], errs[i] = s.writeRecord(ctx, metas[i], n, ups[i].Events)
			if errs[i] == nil {
				ws[i].guess = guess[i]
				ws[i].next.LatestEventID = ups[i].Node.LatestEventID
				if len(ups[i].Events) == 0 {
					ws[i].next.LatestEventID = n.LatestEventID
				}
			}
		}
		return nil
	})
	var order []group
	byGroup := map[group][]int{}
	for i := range ups {
		if errs[i] != nil {
			continue
		}
		g := groupOf(i)
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], i)
	}
	for _, g := range order {
		idx := byGroup[g]
		batch := make([]*written, len(idx))
		for k, i := range idx {
			batch[k] = ws[i]
		}
		b, ok := base[g]
		if !ok {
			b = -1
		}
		// The records are written: their counts, events and slots follow even if the
		// caller gives up now (a cancelled context would leave the counts behind).
		err := s.afterWrites(context.WithoutCancel(ctx), metas[idx[0]], g.seq, batch, b, floor[g])
		for _, i := range idx {
			errs[i] = err
			out[i] = ws[i].next
		}
	}
	for i, err := range errs {
		if err != nil {
			n := ups[i].Node
			errs[i] = fmt.Errorf("update job %d node %s at version %d: %w", n.JobID, n.Name, n.Version, err)
			out[i] = jobs.Node{}
		}
	}
	return out, errs
}

// maxEventsPerUpdate bounds the events of one record update.
const maxEventsPerUpdate = 100

// writeRecord is step 1 of UpdateJobNode.
func (s *Store) writeRecord(ctx context.Context, m jobMeta, n jobs.Node, events []jobs.Event) (*written, error) {
	next := n
	next.Version++
	it, err := nodeItem(next, 0, m)
	if err != nil {
		return nil, err
	}
	delete(it, attrSeq) // kept as created
	var e expr
	cond := e.eq(attrVersion, avN(n.Version))
	wctx, cancel, err := committing(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	old, err := s.writeNode(wctx, it, cond, &e)
	if ccf, ok := conditionFailed(err); ok {
		return nil, s.versionMiss(ctx, m.nodeKey(n.Name), ccf)
	}
	if err != nil {
		return nil, err
	}
	prev, seq, err := decodeNode(old)
	if err != nil {
		return nil, err
	}
	return &written{prev: prev, seq: seq, next: next, events: events}, nil
}

// afterWrites does what follows the writes of records of job m (UpdateJobNode's steps 2 to
// 5), for all of them together: one update of sequencer j (the counters item, or for a job
// with counter shards the records' shard), one batch of events, and the quota moves. base,
// when >= 0, is the clock of the sequencer the records' LatestEventIDs were guessed from:
// when the guess holds, no record needs its LatestEventID set again. floor is the clock the
// ids a counter shard allocates must pass (the clock of the records' latest events, which
// another sequencer may have numbered): when base says the shard's clock is not past it,
// the update SETs the clock to floor plus the events instead of adding to it, on condition
// that it is still at or below floor (else it adds: the clock passed floor meanwhile).
func (s *Store) afterWrites(ctx context.Context, m jobMeta, j int, ws []*written, base, floor int64) error {
	mv, err := s.moveCounters(ctx, m, j, ws, base, floor)
	if errors.Is(err, errNothingMoved) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the record is written; %w", err)
	}
	return s.finishWrites(ctx, m, j, ws, mv, true)
}

// moved is what moveCounters did: the counters as they are after its update, whether the
// records' guessed ids held, and the quota taken by records made active outside a claim.
type moved struct {
	c       counters
	guessed bool
	took    []int64
	act     int64
	// open: the sequencer is a counter shard that counts its own records (create.go) and
	// still counts one unfinished: the job is not done.
	open bool
}

// moveCounters is the first part of afterWrites: the update of sequencer j (counts, active
// count, event ids) for records ws, and the claim cursor moved back for requeued records.
func (s *Store) moveCounters(ctx context.Context, m jobMeta, j int, ws []*written, base, floor int64) (moved, error) {
	delta := map[jobs.NodeState]int64{}
	var act, nev int64
	requeued := int64(-1)
	took := make([]int64, slotShards) // quota taken by records made active outside a claim
	for _, w := range ws {
		if w.prev.State != w.next.State {
			delta[w.prev.State]--
			delta[w.next.State]++
			switch {
			case w.next.State.Active() && !w.prev.State.Active():
				act++
				took[shardOf(strconv.FormatInt(w.next.JobID, 10)+"#"+w.next.Name, slotShards)]++
			case !w.next.State.Active() && w.prev.State.Active():
				act--
			}
			if w.next.State == jobs.NodeNew && (requeued < 0 || w.seq < requeued) {
				requeued = w.seq
			}
		}
		nev += int64(len(w.events))
	}
	sharded := j > 0
	lift := sharded && nev > 0 && floor > base
	var ride usageRider
	build := func(e *expr) string {
		l := int64(0)
		if lift {
			l = floor
		}
		sets, adds := s.allocClauses(e, m, nev, l)
		for st, d := range delta {
			if d != 0 {
				adds = append(adds, e.name(attrStatePref+string(st))+" "+e.value(avN(d)))
			}
		}
		if act != 0 {
			adds = append(adds, e.name(attrActive)+" "+e.value(avN(act)))
		}
		if !sharded { // the quota is the counters item's (a shard's update takes it below)
			for k, n := range took {
				if n != 0 {
					adds = append(adds, e.name(quotaAttr(k))+" "+e.value(avN(n)))
				}
			}
		}
		if len(adds)+len(sets) > 0 {
			adds = append(adds, usageAdds(e, ride.u)...) // never a write for the usage alone
		}
		slices.Sort(adds)
		return updateExpr(sets, adds)
	}
	ride = takeRider(ctx)
	var e expr
	upd := build(&e)
	if upd == "" {
		ride.giveBack()
		return moved{}, errNothingMoved
	}
	// Unconditional: a condition on the guessed ids would be refused (a billed write of
	// the sequencer, then a second one) whenever another writer got ids in between, which
	// at scale is nearly always; a wrong guess costs a write of the record instead (its
	// own key).
	cond := ""
	if lift {
		cond = liftCond(&e, floor)
	}
	after, err := s.update(ctx, m.seqKey(j), upd, cond, &e, types.ReturnValueAllNew, nil)
	if _, ok := conditionFailed(err); ok && lift {
		lift = false // the clock is past floor: add to it
		e = expr{}
		after, err = s.update(ctx, m.seqKey(j), build(&e), "", &e, types.ReturnValueAllNew, nil)
	}
	guessed := err == nil && (base >= 0 || floor > 0) && nev > 0
	if err != nil {
		ride.giveBack()
		return moved{}, fmt.Errorf("its job's counters: %w", err)
	}
	c, err := decodeCountersItem(after)
	if err != nil {
		return moved{}, err
	}
	if requeued >= 0 && (sharded || requeued < c.cursor) {
		// Back in the queue behind the claim cursor: move the cursor back to it.
		var ce expr
		_, err := s.update(ctx, jobCountersKey(m.id), "SET "+ce.eq(attrCursor, avN(requeued)),
			ce.name(attrCursor)+" > "+ce.value(avN(requeued)), &ce, types.ReturnValueNone, nil)
		if _, ok := conditionFailed(err); !ok && err != nil {
			return moved{}, fmt.Errorf("the claim cursor: %w", err)
		}
	}
	mv := moved{c: c, guessed: guessed, took: took, act: act}
	if r := (reader{it: after}); sharded && r.optB(attrOwnCounts) {
		for _, st := range []jobs.NodeState{jobs.NodeNew, jobs.NodeReady, jobs.NodeRunning} {
			if r.optN(attrStatePref+string(st)) > 0 {
				mv.open = true
			}
		}
	}
	return mv, nil
}

// errNothingMoved: moveCounters had nothing to update (no state changed, no events).
var errNothingMoved = errors.New("no counter moved")

// finishWrites is the second part of afterWrites, after moveCounters (mv): the records' event
// ids, their LatestEventIDs set right where the guess was wrong (fixup), the events, the
// quota moves and the surplus quota's return.
func (s *Store) finishWrites(ctx context.Context, m jobMeta, j int, ws []*written, mv moved, fixup bool) error {
	c, guessed, took, act := mv.c, mv.guessed, mv.took, mv.act
	sharded := j > 0
	var nev int64
	for _, w := range ws {
		nev += int64(len(w.events))
	}
	var err error
	if nev > 0 {
		ids := allocated(m, j, c, nev)
		allocs := make([][]alloc, len(ws))
		for i, w := range ws {
			allocs[i], ids = ids[:len(w.events)], ids[len(w.events):]
			if len(w.events) > 0 {
				w.next.LatestEventID = allocs[i][len(allocs[i])-1].id
			}
		}
		// A record whose guessed LatestEventID was wrong gets it set, conditional on the
		// version written, before its events are written. A refusal means that a later
		// write of the record came in between; if that one changed the record's state and
		// numbered events of its own before these (its counters update came first, which is
		// what made this guess wrong), these events would be listed after the record's later
		// ones — a node_running after the node's end. They are then written void (ListEvents
		// skips them): the later write's events say where the record is (overtaken). A
		// guess that held means no other write of the job numbered events between this
		// one's read and its update: nothing came in between.
		superseded := make([]bool, len(ws))
		failed := make([]error, len(ws))
		_ = s.parallel(ctx, len(ws), func(ctx context.Context, i int) error {
			w := ws[i]
			if len(w.events) == 0 || !fixup || (guessed && w.guess == w.next.LatestEventID) {
				return nil
			}
			var le expr
			_, err := s.update(ctx, m.nodeKey(w.next.Name), "SET "+le.eq(attrLatestEv, avN(w.next.LatestEventID)),
				le.eq(attrVersion, avN(w.next.Version)), &le, types.ReturnValueNone, nil)
			if ccf, ok := conditionFailed(err); ok {
				cur, err := s.refusedItem(ctx, m.nodeKey(w.next.Name), ccf)
				superseded[i], failed[i] = err == nil && overtaken(w, cur, allocs[i][0].id), err
				return nil
			}
			failed[i] = err // its events are written all the same
			return nil
		})
		var items []item
		for i, w := range ws {
			for k, ev := range w.events {
				a := allocs[i][k]
				if superseded[i] {
					items = append(items, s.voidItem(m, a))
					continue
				}
				ev.JobID, ev.ID = m.id, a.id
				it, err := s.eventItem(ev, a.seq, m)
				if err != nil {
					return err
				}
				items = append(items, it)
			}
		}
		if len(items) == 1 {
			_, err = s.put(ctx, items[0], "", nil)
		} else {
			err = s.writeAll(ctx, items)
		}
		if err != nil {
			return fmt.Errorf("the record is written; its events: %w", err)
		}
		if err := errors.Join(failed...); err != nil {
			return fmt.Errorf("the record is written; its latest event id: %w", err)
		}
	}
	if sum(took) > 0 {
		terminal := c.terminal
		if sharded {
			// The quota is the counters item's: take it there (a rare write: records are
			// made active by claims, which take their quota themselves).
			var qe expr
			var adds []string
			for k, n := range took {
				if n != 0 {
					adds = append(adds, qe.name(quotaAttr(k))+" "+qe.value(avN(n)))
				}
			}
			cm, err := s.update(ctx, jobCountersKey(m.id), updateExpr(nil, adds), "", &qe, types.ReturnValueAllNew, nil)
			if err != nil {
				return fmt.Errorf("the record is written; its job's quota: %w", err)
			}
			r := reader{it: cm}
			terminal = r.b(attrTerminal)
		}
		if terminal {
			// A terminal job holds no quota: take back what this update added.
			var qe expr
			var adds []string
			for k, n := range took {
				if n != 0 {
					adds = append(adds, qe.name(quotaAttr(k))+" "+qe.value(avN(-n)))
				}
			}
			if _, err := s.update(ctx, jobCountersKey(m.id), updateExpr(nil, adds), "", &qe, types.ReturnValueNone, nil); err != nil {
				return fmt.Errorf("the record is written; its job's quota: %w", err)
			}
		} else {
			for k, n := range took {
				if n != 0 {
					if err := s.addSlot(ctx, k, n, -1); err != nil {
						return fmt.Errorf("the record is written; its slot: %w", err)
					}
				}
			}
		}
	}
	if !sharded {
		return s.returnSurplus(ctx, m, c, true)
	}
	if act >= 0 || (-c.active)%tailReturnChunk != 0 {
		// One update in tailReturnChunk looks at the job's quota (the one whose end brought
		// its shard's count of ends to a multiple of it): a look reads every counter.
		return nil
	}
	cm, _, sh, err := s.jobCounters(ctx, m)
	if err != nil {
		return fmt.Errorf("the record is written; its job's quota: %w", err)
	}
	cm.active += sh.active
	cm.queued += sh.queued
	return s.returnSurplus(ctx, m, cm, false)
}

// overtaken reports whether the events of write w (the first numbered first) must be written
// void because cur, the record as a later write left it, may have events numbered before
// them that say the record moved on: the later write changed the record's state and its
// LatestEventID is not past w's events (it is that write's own event id, or its guess,
// which is never above it). An end (a terminal record) is never voided: no later write
// changes a terminal record's state (a kill confirmation keeps it stopped). A later write
// whose events were numbered after w's but whose guess was low and not yet set right makes
// this void w's events needlessly: a node_running of a node claimed ready whose result
// raced its send, in the rare case of that race, is then not listed (its end is).
func overtaken(w *written, cur item, first int64) bool {
	if w.next.State.Terminal() || cur == nil {
		return false
	}
	later, _, err := decodeNode(cur)
	if err != nil {
		return false // keep the events: a node listed twice running beats one never seen
	}
	return later.State != w.next.State && later.LatestEventID < first
}

// shardSum is what a job's counter shards add to its counters item.
type shardSum struct {
	counts         jobs.StateCounts
	active, queued int64
	clock          int64 // the greatest clock of the shards
	allocAt        int64 // when a shard last allocated event ids (the latest; Unix ms)
}

// jobCounters reads job m's counters item and, for a job with counter shards, its shards
// too (one consistent BatchGetItem of them all), and returns the counters item, decoded and
// as read, and the sum of the shards. The job's counts are the item's plus the shards'.
func (s *Store) jobCounters(ctx context.Context, m jobMeta) (counters, item, shardSum, error) {
	sh := shardSum{counts: jobs.StateCounts{}}
	var ctr item
	if m.counters == 0 {
		it, err := s.get(ctx, jobCountersKey(m.id))
		if err != nil {
			return counters{}, nil, sh, err
		}
		ctr = it
	} else {
		keys := make([]item, m.seqs())
		for j := range keys {
			keys[j] = m.seqKey(j)
		}
		got, err := s.batchGet(ctx, keys)
		if err != nil {
			return counters{}, nil, sh, err
		}
		ctr = got[keyString(keys[0])]
		for _, k := range keys[1:] {
			it, ok := got[keyString(k)]
			if !ok {
				return counters{}, nil, sh, fmt.Errorf("job %d: counter shard %s is missing", m.id, str(k[PartitionKey]))
			}
			counts, err := decodeCounts(it)
			if err != nil {
				return counters{}, nil, sh, err
			}
			for st, n := range counts {
				sh.counts[st] += n
			}
			r := reader{it: it}
			sh.active += r.optN(attrActive)
			sh.queued += r.optN(attrStatePref + string(jobs.NodeNew))
			sh.clock = max(sh.clock, r.optN(attrClock))
			sh.allocAt = max(sh.allocAt, r.optN(attrAllocAt))
		}
	}
	if ctr == nil {
		return counters{}, nil, sh, store.ErrNotFound
	}
	if r := (reader{it: ctr}); r.optN(attrChecking) > 0 {
		s.checks.Store(m.id, r.optN(attrChecking))
	} else {
		s.checks.Delete(m.id)
	}
	c, err := decodeCountersItem(ctr)
	return c, ctr, sh, err
}

func sum(v []int64) int64 {
	var t int64
	for _, x := range v {
		t += x
	}
	return t
}

// quotaAttr is the counters attribute of the job's quota from slot shard k.
func quotaAttr(k int) string { return attrQuotaPref + strconv.Itoa(k) }

// counters is a job's counters item, decoded.
type counters struct {
	lastEvent, active, cursor, queued int64
	clock, allocAt                    int64 // the sequencer's clock and when it last allocated
	terminal, stopped                 bool
	quota                             [slotShards]int64
}

func decodeCountersItem(it item) (counters, error) {
	r := reader{it: it}
	c := counters{
		lastEvent: r.optN(attrLastEvent),
		active:    r.optN(attrActive),
		cursor:    r.optN(attrCursor),
		queued:    r.optN(attrStatePref + string(jobs.NodeNew)),
		allocAt:   r.optN(attrAllocAt),
	}
	c.clock = c.lastEvent
	if _, ok := it[attrClock]; ok {
		c.clock = r.optN(attrClock)
	}
	if _, ok := it[attrTerminal]; ok {
		c.terminal = r.b(attrTerminal)
	}
	if _, ok := it[attrStopped]; ok {
		c.stopped = r.b(attrStopped)
	}
	for k := range slotShards {
		c.quota[k] = r.optN(quotaAttr(k))
	}
	if r.err != nil {
		return counters{}, fmt.Errorf("decode job counters %s: %w", str(it[PartitionKey]), r.err)
	}
	return c, nil
}

func (c counters) totalQuota() int64 { return sum(c.quota[:]) }

// tailReturnChunk is the least surplus quota a job gives back before it ends.
const tailReturnChunk = 16

// returnSurplus gives back to the ACTIVE semaphore the quota job m holds beyond its active
// records once it has no queued record left (its tail: every end frees a slot no claim of
// this job will use), tailReturnChunk slots or more at a time: one UpdateItem of the
// counters conditional on the quota read, then an ADD per slot shard. Nothing happens while
// the job has queued records (its claims use the quota again, with no write to the
// semaphore); the rest goes back when the job ends (UpdateJob). A job in its tail so holds
// fewer than tailReturnChunk slots it does not use.
func (s *Store) returnSurplus(ctx context.Context, m jobMeta, c counters, gate bool) error {
	surplus := c.totalQuota() - c.active
	if c.terminal || c.queued > 0 || surplus < tailReturnChunk {
		return nil
	}
	if gate && c.active%tailReturnChunk != 0 {
		// One update in tailReturnChunk tries (the one whose end brought the active count
		// to a multiple of it), not every one: concurrent tries of the same return would be
		// refused, each a billed write of the job's counters item.
		return nil
	}
	give := make([]int64, slotShards)
	for k := slotShards - 1; k >= 0 && surplus > 0; k-- {
		g := min(c.quota[k], surplus)
		give[k], surplus = g, surplus-g
	}
	var e expr
	var sets, conds []string
	for k, g := range give {
		if g == 0 {
			continue
		}
		sets = append(sets, e.eq(quotaAttr(k), avN(c.quota[k]-g)))
		conds = append(conds, e.eq(quotaAttr(k), avN(c.quota[k])))
	}
	_, err := s.update(ctx, jobCountersKey(m.id), updateExpr(sets, nil), strings.Join(conds, " AND "), &e, types.ReturnValueNone, nil)
	if _, ok := conditionFailed(err); ok {
		return nil // another update moved the quota: it returns what is left
	}
	if err != nil {
		return fmt.Errorf("return the quota of job %d: %w", m.id, err)
	}
	for k, g := range give {
		if g > 0 {
			if err := s.addSlot(ctx, k, -g, -1); err != nil {
				return fmt.Errorf("return the quota of job %d: %w", m.id, err)
			}
		}
	}
	return nil
}

// UpdateJobNodeAndJob implements store.Store in two writes: the record, then the job.
func (s *Store) UpdateJobNodeAndJob(ctx context.Context, n jobs.Node, nodeEvents []jobs.Event, j jobs.Job, jobEvents []jobs.Event) (jobs.Node, jobs.Job, error) {
	out, err := s.UpdateJobNode(ctx, n, nodeEvents...)
	if err != nil {
		return jobs.Node{}, jobs.Job{}, err
	}
	updated, err := s.UpdateJob(ctx, j, jobEvents...)
	if err != nil {
		return out, jobs.Job{}, err
	}
	return out, updated, nil
}

// JobCounts implements store.Store: one consistent GetItem of the job's counters item, or
// for a job with counter shards one consistent BatchGetItem of it and its shards, summed.
func (s *Store) JobCounts(ctx context.Context, jobID int64) (jobs.StateCounts, error) {
	m, err := s.meta(ctx, jobID) // created, not only staged
	if err != nil {
		return nil, fmt.Errorf("count job %d nodes: %w", jobID, err)
	}
	_, ctr, sh, err := s.jobCounters(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("count job %d nodes: %w", jobID, err)
	}
	out, err := decodeCounts(ctr)
	if err != nil {
		return nil, fmt.Errorf("count job %d nodes: %w", jobID, err)
	}
	for st, n := range sh.counts {
		if out[st] += n; out[st] == 0 {
			delete(out, st)
		}
	}
	return out, nil
}

func decodeCounts(it item) (jobs.StateCounts, error) {
	out := jobs.StateCounts{}
	for a := range it {
		st, ok := strings.CutPrefix(a, attrStatePref)
		if !ok {
			continue
		}
		r := reader{it: it}
		if n := r.n(a); n != 0 {
			out[jobs.NodeState(st)] = int(n)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	return out, nil
}

// CountActiveNodes implements store.Store: the unfinished jobs (GSI1's UNFINISHED
// partition, keys only), then one BatchGetItem of their counters items, whose active counts
// (of the jobs not terminal) it sums. Its cost follows the number of unfinished jobs. A job
// created or ended a moment ago may be missing from, or still in, the index (it lags by
// well under a second); the server-wide cap does not depend on it (see acquireSlots).
func (s *Store) CountActiveNodes(ctx context.Context) (int, error) {
	refs, err := s.unfinishedJobs(ctx)
	if err != nil {
		return 0, fmt.Errorf("count active job nodes: %w", err)
	}
	keys := make([]item, 0, len(refs))
	shards := map[int64][]item{} // the counter shards of the jobs that have some
	for _, r := range refs {
		keys = append(keys, jobCountersKey(r.id))
		m, err := s.meta(ctx, r.id)
		if errors.Is(err, store.ErrNotFound) {
			continue // not created (yet), or gone
		}
		if err != nil {
			return 0, fmt.Errorf("count active job nodes: %w", err)
		}
		for j := 1; j < m.seqs(); j++ {
			shards[r.id] = append(shards[r.id], m.seqKey(j))
			keys = append(keys, m.seqKey(j))
		}
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return 0, fmt.Errorf("count active job nodes: %w", err)
	}
	total := 0
	for _, r := range refs {
		it, ok := got[keyString(jobCountersKey(r.id))]
		if !ok {
			continue
		}
		c, err := decodeCountersItem(it)
		if err != nil {
			return 0, fmt.Errorf("count active job nodes: %w", err)
		}
		if c.terminal {
			continue
		}
		total += int(c.active)
		for _, k := range shards[r.id] {
			if it, ok := got[keyString(k)]; ok {
				rd := reader{it: it}
				total += int(rd.optN(attrActive))
			}
		}
	}
	return total, nil
}

// slotCounts reads the SLOTS#<k> items (eventually consistent: the ADDs that take slots
// are conditional, so a stale count costs at most a retry).
func (s *Store) slotCounts(ctx context.Context) ([]int64, error) {
	keys := make([]item, slotShards)
	for k := range keys {
		keys[k] = slotKey(k)
	}
	got, err := s.batchGetRead(ctx, keys, false)
	if err != nil {
		return nil, err
	}
	out := make([]int64, slotShards)
	for k := range out {
		if it, ok := got[keyString(keys[k])]; ok {
			r := reader{it: it}
			out[k] = r.optN(attrCount)
		}
	}
	return out, nil
}

// addSlot adds delta to slot shard k, on condition that it stays at or below most (most < 0:
// no condition). It reports store.ErrConflict when the condition fails.
func (s *Store) addSlot(ctx context.Context, k int, delta, most int64) error {
	var e expr
	upd := "ADD " + e.name(attrCount) + " " + e.value(avN(delta))
	cond := ""
	if most >= 0 {
		cond = e.notExists(attrCount) + " OR " + e.name(attrCount) + " <= " + e.value(avN(most-delta))
	}
	_, err := s.update(ctx, slotKey(k), upd, cond, &e, types.ReturnValueNone, nil)
	if _, ok := conditionFailed(err); ok {
		return store.ErrConflict
	}
	return err
}

// quota returns shard k's share of a cap of total.
func quota(total, k int) int64 {
	q := total / slotShards
	if k < total%slotShards {
		q++
	}
	return int64(q)
}

// acquireSlots takes up to n slots of the ACTIVE count and returns the shard of each it
// took. Under a cap (> 0) each shard holds at most its share of the cap (quota), checked by
// the ADD's condition, so that concurrent claims in any number of processes stay within it
// together; without a cap it takes all n, spread over the least used shards.
func (s *Store) acquireSlots(ctx context.Context, n, cap int, counts []int64) ([]int, error) {
	var out []int
	for attempt := 0; len(out) < n && attempt < s.maxAttempts; attempt++ {
		if counts == nil {
			var err error
			if counts, err = s.slotCounts(ctx); err != nil {
				return out, err
			}
		}
		want := n - len(out)
		plan := make([]int64, slotShards)
		if cap <= 0 {
			for range want {
				k := 0
				for i := range counts {
					if counts[i]+plan[i] < counts[k]+plan[k] {
						k = i
					}
				}
				plan[k]++
			}
		} else {
			var used int64
			for _, c := range counts {
				used += c
			}
			free := min(int64(want), int64(cap)-used)
			for k := 0; k < slotShards && free > 0; k++ {
				if room := quota(cap, k) - counts[k]; room > 0 {
					plan[k] = min(room, free)
					free -= plan[k]
				}
			}
		}
		counts = nil // read again on the next attempt
		lost := false
		for k, a := range plan {
			if a == 0 {
				continue
			}
			most := int64(-1)
			if cap > 0 {
				most = quota(cap, k)
			}
			err := s.addSlot(ctx, k, a, most)
			if errors.Is(err, store.ErrConflict) {
				lost = true // another claim took some meanwhile: read again
				continue
			}
			if err != nil {
				s.releaseSlots(ctx, out)
				return nil, err
			}
			for range a {
				out = append(out, k)
			}
		}
		if !lost {
			break
		}
	}
	return out, nil
}

// releaseSlots gives back slots (one per entry, by shard); failures are logged (RecountSlots
// repairs them).
func (s *Store) releaseSlots(ctx context.Context, shards []int) {
	per := make([]int64, slotShards)
	for _, k := range shards {
		per[k]++
	}
	for k, n := range per {
		if n == 0 {
			continue
		}
		if err := s.addSlot(context.WithoutCancel(ctx), k, -n, -1); err != nil {
			s.log.Warn("give back slots of the active count", "shard", k, "slots", n, "error", err)
		}
	}
}

// ListJobNodesInState implements store.Store. Queued records come from the pages of names
// from the claim cursor on (their records read by BatchGetItem): the cost follows limit and
// the records passed over. Other states are a filtered query of the job's shards, whose cost
// follows the job's size: only stops and the sweep ask for them, never a result.
func (s *Store) ListJobNodesInState(ctx context.Context, jobID int64, state jobs.NodeState, limit int) ([]jobs.Node, error) {
	fail := func(err error) ([]jobs.Node, error) {
		return nil, fmt.Errorf("list job %d nodes in state %s: %w", jobID, state, err)
	}
	if limit <= 0 {
		return fail(fmt.Errorf("limit %d must be positive", limit))
	}
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	if state == jobs.NodeNew {
		ctr, err := s.get(ctx, jobCountersKey(jobID))
		if err != nil {
			return fail(err)
		}
		r := reader{it: ctr}
		cursor := r.optN(attrCursor)
		recs, _, err := s.queued(ctx, m, cursor, limit)
		if err != nil {
			return fail(err)
		}
		out := make([]jobs.Node, len(recs))
		for i, q := range recs {
			out[i] = q.node
		}
		return out, nil
	}
	items, err := s.shardRecords(ctx, m, func(e *expr) string { return e.eq(attrState, avS(string(state))) })
	if err != nil {
		return fail(err)
	}
	if len(items) > limit {
		items = items[:limit]
	}
	out, err := decodeNodes(items)
	if err != nil {
		return fail(err)
	}
	if out == nil {
		out = []jobs.Node{}
	}
	return out, nil
}

// ListDueJobNodes implements store.Store: a query of each DUE#<k> partition of GSI2 (keys
// only; sort key "<due>#<job>#<name>") up to now, limit entries each, merged by due time; the
// first limit are read (BatchGetItem) and checked again (due, and their job not terminal).
// Its cost follows limit.
func (s *Store) ListDueJobNodes(ctx context.Context, now time.Time, limit int) ([]jobs.Node, error) {
	fail := func(err error) ([]jobs.Node, error) { return nil, fmt.Errorf("list due job nodes: %w", err) }
	if limit <= 0 {
		return fail(fmt.Errorf("limit %d must be positive", limit))
	}
	upTo, err := encodeTime(now)
	if err != nil {
		return fail(err)
	}
	parts := make([][]item, dueShards)
	err = s.parallel(ctx, dueShards, func(ctx context.Context, k int) error {
		var e expr
		items, err := s.query(ctx, &dynamodb.QueryInput{
			IndexName: aws.String(GSI2),
			KeyConditionExpression: aws.String(e.eq(GSI2PK, avS(gsiDuePrefix+strconv.Itoa(k))) + " AND " +
				e.name(GSI2SK) + " <= " + e.value(avS(upTo+"#~"))),
			ExpressionAttributeNames:  e.attrNames(),
			ExpressionAttributeValues: e.attrValues(),
		}, limit)
		parts[k] = items
		return err
	})
	if err != nil {
		return fail(err)
	}
	var entries []item
	for _, p := range parts {
		entries = append(entries, p...)
	}
	slices.SortFunc(entries, func(a, b item) int { return strings.Compare(str(a[GSI2SK]), str(b[GSI2SK])) })
	if len(entries) > limit {
		entries = entries[:limit]
	}
	keys := make([]item, 0, 2*len(entries))
	jobsSeen := map[int64]bool{}
	for _, ent := range entries {
		keys = append(keys, key(str(ent[PartitionKey]), str(ent[SortKey])))
		id, err := jobIDFromPK(str(ent[PartitionKey]))
		if err != nil {
			return fail(err)
		}
		if !jobsSeen[id] {
			jobsSeen[id] = true
			keys = append(keys, jobCountersKey(id))
		}
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return fail(err)
	}
	var out []jobs.Node
	for _, ent := range entries {
		it, ok := got[keyString(key(str(ent[PartitionKey]), str(ent[SortKey])))]
		if !ok {
			continue
		}
		n, _, err := decodeNode(it)
		if err != nil {
			return fail(err)
		}
		ctr, ok := got[keyString(jobCountersKey(n.JobID))]
		if !ok {
			continue
		}
		if r := (reader{it: ctr}); r.b(attrTerminal) {
			continue
		}
		if n.DueAt != nil && !n.DueAt.After(now) {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, func(a, b jobs.Node) int { return a.DueAt.Compare(*b.DueAt) })
	return out, nil
}

// ListEvents implements store.Store: a query of each of the job's event shards (ids
// start on, limit each), merged by id. It returns the run of ids from start on with no id
// missing: an id allocated whose event is not written yet ends the run (a follower asking
// again from last+1 gets it once written), unless an event after it was written more than
// the gap wait ago (WithGapWait; its writer died: the id stays empty). Ids a claim gave up
// (void) are passed over.
func (s *Store) ListEvents(ctx context.Context, jobID int64, start int64, limit int) ([]jobs.Event, error) {
	fail := func(err error) ([]jobs.Event, error) {
		return nil, fmt.Errorf("list job %d events: %w", jobID, err)
	}
	if limit < 0 {
		return fail(fmt.Errorf("negative limit %d", limit))
	}
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	start = max(start, 1)
	if m.counters > 0 {
		out, err := s.listEventsSharded(ctx, m, start, limit)
		if err != nil {
			return fail(err)
		}
		return out, nil
	}
	parts := make([][]item, m.eventShards)
	err = s.parallel(ctx, m.eventShards, func(ctx context.Context, k int) error {
		var e expr
		items, err := s.query(ctx, &dynamodb.QueryInput{
			KeyConditionExpression: aws.String(e.eq(PartitionKey, avS(jobPK(jobID)+"#E"+strconv.Itoa(k))) + " AND " + e.name(SortKey) +
				" BETWEEN " + e.value(avS(eventSK(start))) + " AND " + e.value(avS(eventSK(math.MaxInt64)))),
			ExpressionAttributeNames:  e.attrNames(),
			ExpressionAttributeValues: e.attrValues(),
		}, limit)
		parts[k] = items
		return err
	})
	if err != nil {
		return fail(err)
	}
	var items []item
	for _, p := range parts {
		items = append(items, p...)
	}
	idOf := func(it item) int64 { r := reader{it: it}; return r.n(attrID) }
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(idOf(a), idOf(b)) })
	var out []jobs.Event
	expect := start
	cutoff := s.now().Add(-s.gapWait).UnixMilli()
	for _, it := range items {
		id := idOf(it)
		if id != expect {
			r := reader{it: it}
			if r.optN(attrWritten) > cutoff {
				break // an earlier id is still being written
			}
		}
		expect = id + 1
		if v, ok := it[attrVoid].(*types.AttributeValueMemberBOOL); ok && v.Value {
			continue
		}
		e, err := decodeEvent(it)
		if err != nil {
			return fail(err)
		}
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}
