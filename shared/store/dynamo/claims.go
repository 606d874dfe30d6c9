package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// queuedRec is a queued record and its creation index.
type queuedRec struct {
	node jobs.Node
	seq  int64
	ver  int64
}

// queued returns up to want queued records of job m from creation index cursor on, in
// creation order: the names come from the job's pages, the records from BatchGetItem. It
// also returns the creation index of the first record at or after cursor that is still
// new (the end when there is none among those it read), and moves the claim cursor there
// when it passed over a page or more of records that are not new.
func (s *Store) queued(ctx context.Context, m jobMeta, cursor int64, want int) ([]queuedRec, int64, error) {
	total := int64(m.pages) * pageSize // an upper bound; the last page may be short
	var out []queuedRec
	head := int64(-1)
	pos := cursor
	window := int64(want + 4)
	for len(out) < want && pos < total {
		end := min(pos+window, total)
		names, err := s.pageNames(ctx, m, pos, end)
		if err != nil {
			return nil, 0, err
		}
		if len(names) == 0 {
			break
		}
		keys := make([]item, len(names))
		for i, n := range names {
			keys[i] = m.nodeKey(n)
		}
		// Eventually consistent: a record read as queued that was claimed a moment ago
		// fails its claim's condition and is passed over.
		got, err := s.batchGetRead(ctx, keys, false)
		if err != nil {
			return nil, 0, err
		}
		for i, k := range keys {
			seq := pos + int64(i)
			it, ok := got[keyString(k)]
			if !ok {
				continue
			}
			n, _, err := decodeNode(it)
			if err != nil {
				return nil, 0, err
			}
			if n.State != jobs.NodeNew {
				continue
			}
			if head < 0 {
				head = seq
			}
			if len(out) < want {
				out = append(out, queuedRec{node: n, seq: seq, ver: n.Version})
			}
		}
		pos += int64(len(names))
		window *= 2
	}
	if head < 0 {
		head = pos
	}
	if head-cursor >= pageSize {
		var e expr
		_, err := s.update(ctx, jobCountersKey(m.id), "SET "+e.eq(attrCursor, avN(head)),
			e.name(attrCursor)+" < "+e.value(avN(head)), &e, types.ReturnValueNone, nil)
		if _, ok := conditionFailed(err); !ok && err != nil {
			return nil, 0, err
		}
	}
	return out, head, nil
}

// pageNames returns the names of job m's records with creation index in [from, to).
func (s *Store) pageNames(ctx context.Context, m jobMeta, from, to int64) ([]string, error) {
	first, last := int(from/pageSize), int((to-1)/pageSize)
	keys := make([]item, 0, last-first+1)
	for p := first; p <= last && p < m.pages; p++ {
		keys = append(keys, pageKey(m.id, p))
	}
	got, err := s.batchGetRead(ctx, keys, false) // pages never change
	if err != nil {
		return nil, err
	}
	var out []string
	for p := first; p <= last && p < m.pages; p++ {
		it, ok := got[keyString(pageKey(m.id, p))]
		if !ok {
			return nil, fmt.Errorf("job %d: page %d of its node names is missing", m.id, p)
		}
		r := reader{it: it}
		names := r.strs(attrNames)
		if r.err != nil {
			return nil, r.err
		}
		base := int64(p) * pageSize
		for i, n := range names {
			if seq := base + int64(i); seq >= from && seq < to {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// ClaimJobNodes implements store.Store. Each round reads the job's counters item (flags,
// active count, claim cursor), takes the first queued records from the cursor on (pages of
// names, BatchGetItem of the records), takes slots of the ACTIVE count (under c.GlobalCap,
// see acquireSlots), then moves the counters first — one UpdateItem that ADDs the new
// states' counts, the active count and the events' ids and sets the cursor, conditional on
// the job being neither terminal nor stopped and, for a job with a Concurrency, on its active
// count leaving room — and then writes each record (UpdateItem conditional on its version
// and on it being still queued; s.workers at a time) and the events. A record another claim
// or writer took first is given back at once (counts, slot; its event ids are written void)
// and the round goes on with the next records. The counters moving first is what makes the
// caps hold across processes; a process that dies between the counters and the records
// leaves the counts ahead (never behind: a cap is never exceeded), which RecountJob repairs.
// Cost: a handful of reads and, per record claimed, one write of the record and one of each
// of its events, plus one write of the counters and one per slot shard per round.
func (s *Store) ClaimJobNodes(ctx context.Context, jobID int64, c store.Claim) ([]jobs.Node, error) {
	fail := func(err error) ([]jobs.Node, error) { return nil, fmt.Errorf("claim job %d nodes: %w", jobID, err) }
	if c.Limit <= 0 || c.Apply == nil {
		return fail(errors.New("a positive limit and an Apply function are required"))
	}
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	var out []jobs.Node
	attempts := s.maxAttempts
	if c.Attempts > 0 {
		attempts = min(attempts, c.Attempts)
	}
	for attempt := 0; len(out) < c.Limit && attempt < attempts; attempt++ {
		got, again, err := s.claimRound(ctx, m, c, c.Limit-len(out))
		out = append(out, got...)
		if err != nil {
			return out, fmt.Errorf("claim job %d nodes: %w", jobID, err)
		}
		if !again {
			break
		}
		if len(got) == 0 {
			if err := s.backoff(ctx, attempt); err != nil {
				return out, fmt.Errorf("claim job %d nodes: %w", jobID, err)
			}
		}
	}
	return out, nil
}

// claimRound is one round of ClaimJobNodes, for up to limit records; again says whether a
// race lost it records (or its counters update) and another round may find more.
func (s *Store) claimRound(ctx context.Context, m jobMeta, c store.Claim, limit int) ([]jobs.Node, bool, error) {
	c0, _, sh, err := s.jobCounters(ctx, m)
	if err != nil {
		return nil, false, err
	}
	if c0.terminal || c0.stopped {
		return nil, false, nil
	}
	// The counters item's active count is the claims'; the counter shards hold what record
	// updates changed since (mostly ends: a negative count). Their sum is the job's. A
	// shard's count only falls but for records made active outside a claim (which take
	// their slots unconditionally), so the conditions below, on the counters item's count
	// with the shards' as read, hold the caps.
	c0.active += sh.active
	free := limit
	if m.concurrency > 0 {
		free = min(free, m.concurrency-int(c0.active))
	}
	if free <= 0 {
		return nil, false, nil
	}
	// Slots: the job's own quota first (slots it took before and that its ended records
	// freed), then more from the ACTIVE semaphore, under c.GlobalCap.
	room := max(0, c0.totalQuota()-c0.active)
	var counts []int64
	if int64(free) > room && c.GlobalCap > 0 {
		if counts, err = s.slotCounts(ctx); err != nil {
			return nil, false, err
		}
		globalFree := int64(c.GlobalCap) - sum(counts)
		free = int(min(int64(free), room+max(0, globalFree)))
	}
	if free <= 0 {
		return nil, false, nil
	}
	cands, _, err := s.queued(ctx, m, c0.cursor, free)
	if err != nil || len(cands) == 0 {
		return nil, false, err
	}
	var grants []int
	if need := int64(len(cands)) - room; need > 0 {
		if grants, err = s.acquireSlots(ctx, int(need), c.GlobalCap, counts); err != nil {
			return nil, false, err
		}
	}
	if n := room + int64(len(grants)); n < int64(len(cands)) {
		cands = cands[:n]
	}
	if len(cands) == 0 {
		return nil, false, nil
	}
	got := make([]int64, slotShards)
	for _, k := range grants {
		got[k]++
	}
	// Apply the claim; count what it changes.
	type claim struct {
		q      queuedRec
		n      jobs.Node
		events []jobs.Event
	}
	claims := make([]claim, len(cands))
	delta := map[jobs.NodeState]int64{}
	nev := 0
	for i, q := range cands {
		n, evs := c.Apply(q.node)
		if n.JobID != q.node.JobID || n.Name != q.node.Name || !n.State.Active() {
			s.releaseSlots(ctx, grants)
			return nil, false, fmt.Errorf("claim of %s made %s record %d/%s: want an active record of the same node", q.node.Name, n.State, n.JobID, n.Name)
		}
		n.Version = q.ver + 1
		claims[i] = claim{q: q, n: n, events: evs}
		delta[jobs.NodeNew]--
		delta[n.State]++
		nev += len(evs)
	}
	k := int64(len(claims))
	var e expr
	// The claimed records' earlier events (a record requeued with some) must come before
	// the new ones: lift the clock past theirs when it is not.
	var lift int64
	if m.counters > 0 {
		for _, cl := range claims {
			if f := cl.q.node.LatestEventID / int64(m.seqs()); f > c0.clock && len(cl.events) > 0 {
				lift = max(lift, f)
			}
		}
	}
	sets, adds := s.allocClauses(&e, m, int64(nev), lift)
	adds = append(adds, e.name(attrActive)+" "+e.value(avN(k)))
	for st, d := range delta {
		if d != 0 {
			adds = append(adds, e.name(attrStatePref+string(st))+" "+e.value(avN(d)))
		}
	}
	for sh, g := range got {
		if g > 0 {
			adds = append(adds, e.name(quotaAttr(sh))+" "+e.value(avN(g)))
		}
	}
	slices.Sort(adds)
	sets = append(sets, e.eq(attrCursor, avN(claims[len(claims)-1].q.seq+1)))
	var conds []string
	// The quota read must be the quota still (a tail return moves it), and the active
	// count must leave room in it and in the job's concurrency.
	// The cursor read must be the cursor still: claims of one job take turns on it, so that
	// two never go for the same records (a claim that lost the turn reads again).
	if lift > 0 {
		conds = append(conds, liftCond(&e, lift))
	}
	conds = append(conds, e.eq(attrCursor, avN(c0.cursor)), e.eq(attrTerminal, avBool(false)), e.eq(attrStopped, avBool(false)),
		e.name(attrActive)+" <= "+e.value(avN(c0.totalQuota()+int64(len(grants))-k-sh.active)))
	for sh, q := range c0.quota {
		if q == 0 {
			conds = append(conds, "("+e.notExists(quotaAttr(sh))+" OR "+e.eq(quotaAttr(sh), avN(0))+")")
		} else {
			conds = append(conds, e.eq(quotaAttr(sh), avN(q)))
		}
	}
	if m.concurrency > 0 {
		conds = append(conds, e.name(attrActive)+" <= "+e.value(avN(int64(m.concurrency)-k-sh.active)))
	}
	// Once sent, the counters update runs to its end even if the caller gives up (a
	// response cut after DynamoDB applied it would leave the counts ahead with no record
	// written); the records, the give-backs and the events follow it the same way.
	wctx, cancel, err := committing(ctx)
	if err != nil {
		s.releaseSlots(ctx, grants)
		return nil, false, err
	}
	defer cancel()
	ctx = wctx
	after, err := s.update(ctx, jobCountersKey(m.id), updateExpr(sets, adds), strings.Join(conds, " AND "), &e, types.ReturnValueAllNew, nil)
	if _, ok := conditionFailed(err); ok {
		s.releaseSlots(ctx, grants)
		return nil, true, nil // stopped, or another claim took the room: read again
	}
	if err != nil {
		s.releaseSlots(ctx, grants)
		return nil, false, err
	}
	ca, err := decodeCountersItem(after)
	if err != nil {
		return nil, false, err
	}
	all := allocated(m, 0, ca, int64(nev))

	// The records, then the events of those written.
	ids := make([][]alloc, len(claims))
	for i := range claims {
		ids[i], all = all[:len(claims[i].events)], all[len(claims[i].events):]
		if len(ids[i]) > 0 {
			claims[i].n.LatestEventID = ids[i][len(ids[i])-1].id
		}
	}
	won := make([]bool, len(claims))
	err = s.parallel(ctx, len(claims), func(ctx context.Context, i int) error {
		cl := claims[i]
		it, err := nodeItem(cl.n, cl.q.seq, m)
		if err != nil {
			return err
		}
		var ne expr
		cond := ne.eq(attrVersion, avN(cl.q.ver)) + " AND " + ne.eq(attrState, avS(string(jobs.NodeNew)))
		_, err = s.writeNode(ctx, it, cond, &ne)
		if _, ok := conditionFailed(err); ok {
			return nil
		}
		if err != nil {
			return err
		}
		won[i] = true
		return nil
	})
	var out []jobs.Node
	var evItems []item
	back := map[jobs.NodeState]int64{}
	var lostAct, lostEv int64
	for i, cl := range claims {
		if won[i] {
			out = append(out, cl.n)
			for j, ev := range cl.events {
				ev.JobID, ev.ID = m.id, ids[i][j].id
				it, eerr := s.eventItem(ev, ids[i][j].seq, m)
				if eerr != nil {
					err = errors.Join(err, eerr)
					continue
				}
				evItems = append(evItems, it)
			}
			continue
		}
		back[jobs.NodeNew]++
		back[cl.n.State]--
		lostAct++
		for _, a := range ids[i] {
			evItems = append(evItems, s.voidItem(m, a))
			lostEv++
		}
	}
	if lostAct > 0 {
		var be expr
		adds := []string{be.name(attrActive) + " " + be.value(avN(-lostAct))}
		for st, d := range back {
			if d != 0 {
				adds = append(adds, be.name(attrStatePref+string(st))+" "+be.value(avN(d)))
			}
		}
		if _, uerr := s.update(ctx, jobCountersKey(m.id), updateExpr(nil, adds), "", &be, types.ReturnValueNone, nil); uerr != nil {
			err = errors.Join(err, fmt.Errorf("give back the counts of records lost to another writer: %w", uerr))
		}
	}
	if werr := s.writeAll(ctx, evItems); werr != nil {
		err = errors.Join(err, fmt.Errorf("claimed records' events: %w", werr))
	}
	return out, lostAct > 0, err
}

// RecountSettle is how long ago a job's records must all have last moved (their ready,
// start and finish times) for RecountJob to count them.
const RecountSettle = time.Minute

// RecountJob recounts job jobID's records (a query of every shard: its cost follows the
// job's size) and, when the counters item disagrees — a process died between a record's
// write and its counters', or a response was lost after DynamoDB applied a write — writes
// the recount: state counts, active count and claim cursor, conditional on the counters
// being as read (a concurrent write makes it report store.ErrConflict; try again later). It
// reports whether it changed anything. A recount that ran between a record's write and its
// counters' update would count that write twice (the update lands after the recount), so
// it refuses (store.ErrConflict) while any record of the job moved less than RecountSettle
// ago by its ready, start or finish time, which the orchestrator sets to the time of each
// state change just before writing it. The sweep calls it for jobs whose counts have not
// changed for a while.
func (s *Store) RecountJob(ctx context.Context, jobID int64) (bool, error) {
	fail := func(err error) (bool, error) { return false, fmt.Errorf("recount job %d: %w", jobID, err) }
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	_, ctr, sh, err := s.jobCounters(ctx, m)
	if err != nil {
		return fail(err)
	}
	if m.own && sh.allocAt > s.now().Add(-RecountSettle).UnixMilli() {
		// A result's counter update comes before its record's write (UpdateJobNodeFrom):
		// one that moved a moment ago may have its record's write still in flight.
		return fail(fmt.Errorf("a counter shard moved less than %s ago: %w", RecountSettle, store.ErrConflict))
	}
	items, err := s.shardRecords(ctx, m, nil, PartitionKey, SortKey, attrSeq, attrState, attrReadyAt, attrStarted, attrFinished)
	if err != nil {
		return fail(err)
	}
	counts := jobs.StateCounts{}
	cursor := int64(-1)
	settled := s.now().Add(-RecountSettle)
	for _, it := range items {
		r := reader{it: it}
		st := jobs.NodeState(r.s(attrState))
		seq := r.n(attrSeq)
		for _, t := range []*time.Time{r.timePtr(attrReadyAt), r.timePtr(attrStarted), r.timePtr(attrFinished)} {
			if t != nil && t.After(settled) {
				// A record that moved a moment ago may have its counters' update still in
				// flight: counting it now could count it twice.
				return fail(fmt.Errorf("%s moved at %s, less than %s ago: %w", str(it[SortKey]), t.Format(time.RFC3339), RecountSettle, store.ErrConflict))
			}
		}
		if r.err != nil {
			return fail(r.err)
		}
		counts[st]++
		if st == jobs.NodeNew && cursor < 0 {
			cursor = seq
		}
	}
	if cursor < 0 {
		cursor = int64(len(items))
	}
	stored, err := decodeCounts(ctr)
	if err != nil {
		return fail(err)
	}
	r := reader{it: ctr}
	storedAct, storedCursor := r.optN(attrActive), r.optN(attrCursor)
	// With counter shards, the counters item takes what the shards (as read) do not count.
	same := storedAct+sh.active == int64(counts.Active()) && storedCursor <= cursor
	for _, st := range jobs.AllNodeStates {
		same = same && stored[st]+sh.counts[st] == counts[st]
	}
	if same {
		return false, nil
	}
	var e expr
	var sets, conds []string
	sets = append(sets, e.eq(attrActive, avN(int64(counts.Active())-sh.active)), e.eq(attrCursor, avN(min(cursor, storedCursor))))
	conds = append(conds, e.eq(attrActive, avN(storedAct)), e.eq(attrCursor, avN(storedCursor)))
	for _, st := range jobs.AllNodeStates {
		a := attrStatePref + string(st)
		sets = append(sets, e.eq(a, avN(int64(counts[st]-sh.counts[st]))))
		if _, ok := ctr[a]; ok {
			conds = append(conds, e.eq(a, ctr[a]))
		} else {
			conds = append(conds, e.notExists(a))
		}
	}
	_, err = s.update(ctx, jobCountersKey(jobID), updateExpr(sets, nil), strings.Join(conds, " AND "), &e, types.ReturnValueNone, nil)
	if _, ok := conditionFailed(err); ok {
		return fail(store.ErrConflict)
	}
	if err != nil {
		return fail(err)
	}
	return true, nil
}
