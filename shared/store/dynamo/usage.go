package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/store"
)

// errNonFiniteUsage refuses capacity units that are NaN or infinite, which DynamoDB numbers
// cannot hold.
var errNonFiniteUsage = errors.New("usage capacity units must be finite")

// AddJobUsage implements store.Store: one UpdateItem of one of the job's usage shards
// (JOB#<id>#U<k>, k at random, created with the job: one for a job of up to 250 nodes, 4
// beyond) that ADDs every counter of u (the capacity units as decimal numbers), conditional
// on the shard existing (else store.ErrNotFound). ADD is atomic, so concurrent adds all
// count; the shards spread the adds of a busy job over partition keys. Each call is a write
// unit: callers should add a job's usage once per invocation, not once per message.
func (s *Store) AddJobUsage(ctx context.Context, jobID int64, u store.Usage) error {
	if math.IsNaN(u.ReadUnits) || math.IsInf(u.ReadUnits, 0) || math.IsNaN(u.WriteUnits) || math.IsInf(u.WriteUnits, 0) {
		return fmt.Errorf("add usage of job %d: %w", jobID, errNonFiniteUsage)
	}
	var e expr
	adds := []struct {
		attr string
		v    types.AttributeValue
	}{
		{attrUsageInvocations, avN(u.Invocations)},
		{attrUsageMessagesIn, avN(u.MessagesIn)},
		{attrUsageMessagesOut, avN(u.MessagesOut)},
		{attrUsageMessageUnits, avN(u.MessageUnits)},
		{attrUsageReadUnits, avF(u.ReadUnits)},
		{attrUsageWriteUnits, avF(u.WriteUnits)},
		{attrUsageS3Writes, avN(u.S3Writes)},
		{attrUsageS3Reads, avN(u.S3Reads)},
	}
	clauses := make([]string, len(adds))
	for i, a := range adds {
		clauses[i] = e.name(a.attr) + " " + e.value(a.v)
	}
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return fmt.Errorf("add usage of job %d: %w", jobID, err)
	}
	_, err = s.update(ctx, usageKey(jobID, rand.IntN(m.usage)), updateExpr(nil, clauses), e.exists(PartitionKey), &e, types.ReturnValueNone, nil)
	if _, ok := conditionFailed(err); ok {
		return fmt.Errorf("add usage of job %d: %w", jobID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("add usage of job %d: %w", jobID, err)
	}
	return nil
}

// JobUsage implements store.Store: one BatchGetItem of the job's usage shards, summed;
// store.ErrNotFound when there are none (the job does not exist).
func (s *Store) JobUsage(ctx context.Context, jobID int64) (store.Usage, error) {
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, err)
	}
	keys := make([]item, m.usage)
	for k := range keys {
		keys[k] = usageKey(jobID, k)
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, err)
	}
	if len(got) == 0 {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, store.ErrNotFound)
	}
	var u store.Usage
	for _, it := range got {
		r := reader{it: it}
		u.Invocations += r.optN(attrUsageInvocations)
		u.MessagesIn += r.optN(attrUsageMessagesIn)
		u.MessagesOut += r.optN(attrUsageMessagesOut)
		u.MessageUnits += r.optN(attrUsageMessageUnits)
		u.ReadUnits += r.optF(attrUsageReadUnits)
		u.WriteUnits += r.optF(attrUsageWriteUnits)
		u.S3Writes += r.optN(attrUsageS3Writes)
		u.S3Reads += r.optN(attrUsageS3Reads)
		if r.err != nil {
			return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, r.err)
		}
	}
	return u, nil
}
