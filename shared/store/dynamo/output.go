package dynamo

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/store"
)

// Live task output: one item per chunk,
//
//	item           pk                      sk             index keys
//	output chunk   JOB#<id>#O#<node>       O#<seq20>      -
//
// with the chunk's seq, stream and data and the job's TTL. A node's output is so one partition
// key, read by one Query in seq order from any seq on (cost follows what is returned), and
// written by BatchWriteItem (25 chunks a call; an agent sends at most 4 messages a second per
// task, so no partition key comes near its limits). A chunk written again under its key is
// the same chunk (agents resend, they never rewrite), so the batch's unconditional puts are
// idempotent; a chunk item is 1 write unit per started KB.
const (
	pkOutputInfix   = "#O#"
	skOutputPrefix  = "O#"
	attrOutStream   = "stream"
	attrOutData     = "data"
	attrOutSequence = "oseq"
)

func outputPK(jobID int64, node string) string { return jobPK(jobID) + pkOutputInfix + node }

func outputKey(jobID int64, node string, seq int64) item {
	return key(outputPK(jobID, node), skOutputPrefix+padID(seq))
}

// PutOutput implements store.Store: the job's meta (cached; for the TTL), then one
// BatchWriteItem per 25 chunks. A seq given twice in one call is written once.
func (s *Store) PutOutput(ctx context.Context, jobID int64, node string, chunks []store.OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	fail := func(err error) error { return fmt.Errorf("put output of job %d node %s: %w", jobID, node, err) }
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fail(err)
	}
	seen := make(map[int64]bool, len(chunks))
	reqs := make([]types.WriteRequest, 0, len(chunks))
	for _, c := range chunks {
		if c.Seq < 1 {
			return fail(fmt.Errorf("seq %d < 1", c.Seq))
		}
		if seen[c.Seq] { // BatchWriteItem refuses a key twice in one call
			continue
		}
		seen[c.Seq] = true
		it := outputKey(jobID, node, c.Seq)
		it[attrOutSequence] = avN(c.Seq)
		it[attrOutStream] = avS(c.Stream)
		it[attrOutData] = avS(c.Data)
		it[TTLAttribute] = avN(m.expires)
		if err := checkSize("output chunk "+strconv.FormatInt(c.Seq, 10), it); err != nil {
			return fail(err)
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
	}
	if err := s.batchWrite(ctx, reqs); err != nil {
		return fail(err)
	}
	return nil
}

// ListOutput implements store.Store: one Query of the node's output partition from after+1,
// up to limit items.
func (s *Store) ListOutput(ctx context.Context, jobID int64, node string, after int64, limit int) ([]store.OutputChunk, error) {
	fail := func(err error) ([]store.OutputChunk, error) {
		return nil, fmt.Errorf("list output of job %d node %s: %w", jobID, node, err)
	}
	if limit < 1 || limit > store.MaxOutputList {
		return fail(fmt.Errorf("limit %d is not between 1 and %d", limit, store.MaxOutputList))
	}
	if after == math.MaxInt64 {
		return []store.OutputChunk{}, nil
	}
	var e expr
	items, err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String(e.eq(PartitionKey, avS(outputPK(jobID, node))) + " AND " + e.name(SortKey) +
			" BETWEEN " + e.value(avS(skOutputPrefix+padID(max(after+1, 0)))) + " AND " + e.value(avS(skOutputPrefix+padID(math.MaxInt64)))),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, limit)
	if err != nil {
		return fail(err)
	}
	out := make([]store.OutputChunk, 0, len(items))
	for _, it := range items {
		r := reader{it: it}
		c := store.OutputChunk{Seq: r.n(attrOutSequence), Stream: r.s(attrOutStream), Data: r.optS(attrOutData)}
		if r.err != nil {
			return fail(r.err)
		}
		out = append(out, c)
	}
	return out, nil
}
