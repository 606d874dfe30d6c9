package dynamo

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
)

// listEventsSharded is ListEvents for a job with counter shards, whose Q = m.seqs()
// sequencers allocate event ids each on its own: sequencer j's ids are clk*Q+j for its
// clock clk, which grows with every id it allocates (and when a reader moves it on, below),
// so a sequencer's ids increase in the order it allocates them, and its count of ids (seq)
// tells which of them a reader has not seen. Ids are unique and increasing per sequencer,
// not dense. What makes a follower polling with start = last id + 1 see every event once:
// this returns only ids below a bound B such that every id below B that it does not
// return is one that will never exist. Per sequencer j, read in this order:
//
//  1. the sequencer item (consistent): le (its count of ids) and clk;
//  2. its events from start on (a consistent query of its partition, limit), and the last
//     event before start (its seq: where the ids from start on begin).
//
// Walking j's events by seq from the one before start: the first seq missing (allocated,
// not written yet) bounds j at (clock of the event before it + 1)*Q+j — the missing event's
// id is at least that; past the events read, an id counted by le but not seen (in flight)
// bounds it the same way; a query cut by limit bounds it after its last event; and when
// every id le counts was seen, the next id j allocates is above its clock: bound
// (clk+1)*Q+j. B is the least of the sequencers' bounds.
//
// A sequencer that allocates less than the others (at the end of a job, a shard whose
// nodes are all done) would hold B down: when events are held back by such a sequencer —
// every id it counted seen — the reader moves its clock on to the greatest clock it saw,
// with one UpdateItem conditional on its count of ids being as read (no id allocated
// meanwhile): its next ids are then above every id seen. That write happens only for a
// reader held back, at most once per sequencer per call.
//
// An id allocated by a writer that died stays missing: as in the job without shards, it is
// read past once an event after it was written more than the gap wait ago, or, with
// nothing after it, once its sequencer last allocated more than the gap wait ago.
func (s *Store) listEventsSharded(ctx context.Context, m jobMeta, start int64, limit int) ([]jobs.Event, error) {
	q := m.seqs()
	keys := make([]item, q)
	for j := range keys {
		keys[j] = m.seqKey(j)
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	seqs := make([]counters, q)
	for j, k := range keys {
		it, ok := got[keyString(k)]
		if !ok {
			return nil, fmt.Errorf("job %d: event sequencer %s is missing", m.id, str(k[PartitionKey]))
		}
		if seqs[j], err = decodeCountersItem(it); err != nil {
			return nil, err
		}
	}
	type part struct {
		prev  item   // the last event before start, if any
		items []item // events from start on (limit from each partition)
		cut   int64  // an id from which a partition's events were not read (limit)
	}
	Q := int64(q)
	parts := make([]part, q)
	type query struct {
		j  int
		pk string
	}
	var queries []query
	for j := range q {
		for _, pk := range m.eventPartitions(j) {
			queries = append(queries, query{j, pk})
		}
		parts[j].cut = math.MaxInt64
	}
	var mu sync.Mutex
	err = s.parallel(ctx, len(queries), func(ctx context.Context, i int) error {
		j, pk := queries[i].j, avS(queries[i].pk)
		var e expr
		items, err := s.query(ctx, &dynamodb.QueryInput{
			KeyConditionExpression: aws.String(e.eq(PartitionKey, pk) + " AND " + e.name(SortKey) +
				" BETWEEN " + e.value(avS(eventSK(start))) + " AND " + e.value(avS(eventSK(math.MaxInt64)))),
			ExpressionAttributeNames:  e.attrNames(),
			ExpressionAttributeValues: e.attrValues(),
		}, limit)
		if err != nil {
			return err
		}
		raw := items
		// A pack (the creation's events) found from start may hold events before it: the
		// last of those is the event before start.
		if items, err = expandPacks(items); err != nil {
			return err
		}
		var before item
		from := items[:0:0]
		for _, it := range items {
			r := reader{it: it}
			if r.n(attrID) < start {
				if before == nil || seqOfEvent(it) > seqOfEvent(before) {
					before = it
				}
				continue
			}
			from = append(from, it)
		}
		items = from
		var pe expr
		prev, err := s.query(ctx, &dynamodb.QueryInput{
			KeyConditionExpression: aws.String(pe.eq(PartitionKey, pk) + " AND " + pe.name(SortKey) +
				" BETWEEN " + pe.value(avS(eventSK(0))) + " AND " + pe.value(avS(eventSK(start-1)))),
			ProjectionExpression:      aws.String(pe.projection(attrID, attrSeq)),
			ScanIndexForward:          aws.Bool(false),
			ExpressionAttributeNames:  pe.attrNames(),
			ExpressionAttributeValues: pe.attrValues(),
		}, 1)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		p := &parts[j]
		p.items = append(p.items, items...)
		if limit > 0 && len(raw) >= limit {
			r := reader{it: raw[len(raw)-1]}
			p.cut = min(p.cut, (r.n(attrID)/Q+1)*Q+int64(j)) // the next event here is above
		}
		if before != nil {
			prev = append(prev, before)
		}
		for _, it := range prev {
			if p.prev == nil || seqOfEvent(it) > seqOfEvent(p.prev) {
				p.prev = it
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	cutoff := s.now().Add(-s.gapWait).UnixMilli()
	bounds := make([]int64, q)
	idle := make([]bool, q) // every id the sequencer counted was seen
	var seen []item
	var top int64 // the greatest id seen
	for j, p := range parts {
		slices.SortFunc(p.items, func(a, b item) int { return cmp.Compare(seqOfEvent(a), seqOfEvent(b)) })
		expect, lastClk := int64(1), int64(0)
		if p.prev != nil {
			r := reader{it: p.prev}
			expect, lastClk = r.n(attrSeq)+1, r.n(attrID)/Q
			if r.err != nil {
				return nil, r.err
			}
		}
		bound := int64(-1)
		for _, it := range p.items {
			r := reader{it: it}
			sq, id := r.n(attrSeq), r.n(attrID)
			if r.err != nil {
				return nil, r.err
			}
			if id >= p.cut {
				break
			}
			if sq != expect && r.optN(attrWritten) > cutoff {
				bound = (lastClk+1)*Q + int64(j) // an earlier id is still being written
				break
			}
			expect, lastClk = sq+1, id/Q
			seen = append(seen, it)
			top = max(top, id)
		}
		if bound < 0 {
			c := seqs[j]
			switch {
			case p.cut < math.MaxInt64:
				bound = p.cut // more after these
			case expect-1 < c.lastEvent && c.allocAt > cutoff:
				bound = (lastClk+1)*Q + int64(j) // allocated, being written
			default:
				// Every id counted was seen, or the writers of those not seen died.
				bound = (c.clock+1)*Q + int64(j)
				idle[j] = true
			}
		}
		bounds[j] = bound
	}
	// Sequencers that hold back events seen, having nothing in flight: move them on.
	if b := slices.Min(bounds); top >= b {
		target := top / Q
		for j := range bounds {
			if !idle[j] || bounds[j] > top {
				continue
			}
			var e expr
			_, err := s.update(ctx, keys[j], "SET "+e.eq(attrClock, avN(target)),
				e.eq(attrLastEvent, avN(seqs[j].lastEvent))+" AND "+e.name(attrClock)+" < "+e.value(avN(target)), &e, types.ReturnValueNone, nil)
			if _, ok := conditionFailed(err); ok {
				continue // it allocated meanwhile: the next call sees what
			}
			if err != nil {
				return nil, err
			}
			bounds[j] = (target+1)*Q + int64(j)
		}
	}
	bound := slices.Min(bounds)
	idOf := func(it item) int64 { r := reader{it: it}; return r.n(attrID) }
	slices.SortFunc(seen, func(a, b item) int { return cmp.Compare(idOf(a), idOf(b)) })
	var out []jobs.Event
	for _, it := range seen {
		if idOf(it) >= bound {
			break
		}
		if v, ok := it[attrVoid].(*types.AttributeValueMemberBOOL); ok && v.Value {
			continue
		}
		e, err := decodeEvent(it)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// seqOfEvent is the seq of an event item of a job with counter shards.
func seqOfEvent(it item) int64 { r := reader{it: it}; return r.optN(attrSeq) }
