package dynamo

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/baton-run/baton/shared/store"
)

// Live task output: one item per run of consecutive chunks written together (an agent's
// output message is one run),
//
//	item           pk                      sk                       index keys
//	output run     JOB#<id>#O#<node>       O#<last seq, 20 digits>  -
//
// holding the run's chunks as JSON (gzip-compressed from 1 KB when that is smaller) and the
// job's TTL. A node's output is so one partition key and ListOutput one Query: every chunk
// after seq N is in an item whose last seq is after N, so the query starts there
// (sk > O#<N>) and reads forward. An output message costs one PutItem (1 write unit per
// started KB of the item, whatever its number of chunks) — the batching is the message's —
// and no action the $default function does not already take. The put is conditional: a run
// is written unless the item of its last seq already starts at or before it (then that item
// holds all of it), so a message sent again changes nothing and no chunk is ever lost to a
// shorter run of the same last seq; runs that overlap otherwise are merged by seq when read. An agent sends at most 4
// messages a second per task: no partition key comes near its limits.
const (
	pkOutputInfix  = "#O#"
	skOutputPrefix = "O#"
	attrOutChunks  = "chunks"
	attrOutFirst   = "first"
)

// maxRunBytes bounds the data of one output item (well under MaxItemBytes once encoded).
const maxRunBytes = 128 << 10

func outputPK(jobID int64, node string) string { return jobPK(jobID) + pkOutputInfix + node }

func outputSK(seq int64) string { return skOutputPrefix + padID(seq) }

type storedChunk struct {
	Seq    int64  `json:"q"`
	Stream string `json:"s"`
	Data   string `json:"d"`
}

// PutOutput implements store.Store: the job's meta (cached; for the TTL), then one PutItem
// per run of consecutive seqs (an agent's message is one run; a run is cut at maxRunBytes).
func (s *Store) PutOutput(ctx context.Context, jobID int64, node string, chunks []store.OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	fail := func(err error) error { return fmt.Errorf("put output of job %d node %s: %w", jobID, node, err) }
	sorted := slices.Clone(chunks)
	slices.SortStableFunc(sorted, func(a, b store.OutputChunk) int { return cmp.Compare(a.Seq, b.Seq) })
	sorted = slices.CompactFunc(sorted, func(a, b store.OutputChunk) bool { return a.Seq == b.Seq })
	if sorted[0].Seq < 1 {
		return fail(fmt.Errorf("seq %d < 1", sorted[0].Seq))
	}
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	var run []storedChunk
	size := 0
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		raw, err := json.Marshal(run)
		if err != nil {
			return err
		}
		w := newWriter(key(outputPK(jobID, node), outputSK(run[len(run)-1].Seq)))
		w.n(attrOutFirst, run[0].Seq)
		w.json(attrOutChunks, raw)
		w.n(TTLAttribute, m.expires)
		if w.err != nil {
			return w.err
		}
		if err := checkSize("output chunks", w.it); err != nil {
			return err
		}
		// Written unless an item of the same last seq starts at or before this run: it
		// holds every chunk of this one already (both runs are contiguous); a stored run
		// that starts later holds a part of this one, which replaces it.
		var e expr
		cond := e.notExists(PartitionKey) + " OR " + e.name(attrOutFirst) + " > " + e.value(avN(run[0].Seq))
		if _, err := s.put(ctx, w.it, cond, &e); err != nil {
			if _, ok := conditionFailed(err); !ok {
				return err
			}
		}
		run, size = run[:0], 0
		return nil
	}
	for _, c := range sorted {
		if len(run) > 0 && (c.Seq != run[len(run)-1].Seq+1 || size+len(c.Data) > maxRunBytes) {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
		run = append(run, storedChunk{Seq: c.Seq, Stream: c.Stream, Data: c.Data})
		size += len(c.Data)
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	return nil
}

// ListOutput implements store.Store: one Query of the node's output partition from the items
// whose last seq is after after, up to limit items (each holds at least one chunk).
func (s *Store) ListOutput(ctx context.Context, jobID int64, node string, after int64, limit int) ([]store.OutputChunk, error) {
	fail := func(err error) ([]store.OutputChunk, error) {
		return nil, fmt.Errorf("list output of job %d node %s: %w", jobID, node, err)
	}
	if limit < 1 || limit > store.MaxOutputList {
		return fail(fmt.Errorf("limit %d is not between 1 and %d", limit, store.MaxOutputList))
	}
	out := []store.OutputChunk{}
	if after == math.MaxInt64 {
		return out, nil
	}
	// Items come by their last seq. With the disjoint runs agents send, the first limit items
	// hold the chunks asked for; runs that overlap otherwise may put a smaller seq in a later
	// item, so reading goes on (a page of limit items at a time, maxOutputPages at most) while
	// what was read is not a run without gaps from after+1 of limit chunks.
	var e expr
	in := &dynamodb.QueryInput{
		KeyConditionExpression: aws.String(e.eq(PartitionKey, avS(outputPK(jobID, node))) + " AND " + e.name(SortKey) +
			" BETWEEN " + e.value(avS(outputSK(max(after+1, 0)))) + " AND " + e.value(avS(outputSK(math.MaxInt64)))),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}
	for page := 0; page < maxOutputPages; page++ {
		items, err := s.query(ctx, in, limit)
		if err != nil {
			return fail(err)
		}
		for _, it := range items {
			r := reader{it: it}
			raw := r.json(attrOutChunks)
			if r.err != nil {
				return fail(r.err)
			}
			var run []storedChunk
			if err := json.Unmarshal(raw, &run); err != nil {
				return fail(fmt.Errorf("output item %s: %w", str(it[SortKey]), err))
			}
			for _, c := range run {
				if c.Seq > after {
					out = append(out, store.OutputChunk{Seq: c.Seq, Stream: c.Stream, Data: c.Data})
				}
			}
		}
		slices.SortStableFunc(out, func(a, b store.OutputChunk) int { return cmp.Compare(a.Seq, b.Seq) })
		out = slices.CompactFunc(out, func(a, b store.OutputChunk) bool { return a.Seq == b.Seq })
		if len(items) < limit || contiguous(out, after, limit) {
			break
		}
		last := items[len(items)-1]
		in.ExclusiveStartKey = key(str(last[PartitionKey]), str(last[SortKey]))
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// maxOutputPages bounds the pages of items one ListOutput reads.
const maxOutputPages = 4

// contiguous reports whether cs (sorted) starts with limit chunks from after+1 with no gap.
func contiguous(cs []store.OutputChunk, after int64, limit int) bool {
	if len(cs) < limit {
		return false
	}
	for i := range limit {
		if cs[i].Seq != after+int64(i)+1 {
			return false
		}
	}
	return true
}
