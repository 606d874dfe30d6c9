package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"
)

// errNonFiniteUsage refuses capacity units that are NaN or infinite, which DynamoDB numbers
// cannot hold.
var errNonFiniteUsage = errors.New("usage capacity units must be finite")

// AddJobUsage implements store.Store: one UpdateItem of one of the job's usage shards
// (JOB#<id>#U<k>, k at random, created with the job: one for a job of up to 250 nodes, 4
// beyond) that ADDs every counter of u (the capacity units as decimal numbers), conditional
// on the shard existing (else store.ErrNotFound). ADD is atomic, so concurrent adds all
// count; the shards spread the adds of a busy job over partition keys. Each call is a write
// unit: callers should add a job's usage once per invocation, not once per message. (Usage
// also rides on the counter updates of UpdateJobNode: see usageRider.)
func (s *Store) AddJobUsage(ctx context.Context, jobID int64, u store.Usage) error {
	if !finiteUsage(u) {
		return fmt.Errorf("add usage of job %d: %w", jobID, errNonFiniteUsage)
	}
	var e expr
	clauses := usageAdds(&e, u)
	if len(clauses) == 0 {
		return nil
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

func finiteUsage(u store.Usage) bool {
	return !math.IsNaN(u.ReadUnits) && !math.IsInf(u.ReadUnits, 0) && !math.IsNaN(u.WriteUnits) && !math.IsInf(u.WriteUnits, 0)
}

// usageAdds are the ADD clauses of u's counters that are not zero.
func usageAdds(e *expr, u store.Usage) []string {
	adds := []struct {
		attr string
		v    types.AttributeValue
		zero bool
	}{
		{attrUsageInvocations, avN(u.Invocations), u.Invocations == 0},
		{attrUsageMessagesIn, avN(u.MessagesIn), u.MessagesIn == 0},
		{attrUsageMessagesOut, avN(u.MessagesOut), u.MessagesOut == 0},
		{attrUsageMessageUnits, avN(u.MessageUnits), u.MessageUnits == 0},
		{attrUsageReadUnits, avF(u.ReadUnits), u.ReadUnits == 0},
		{attrUsageWriteUnits, avF(u.WriteUnits), u.WriteUnits == 0},
		{attrUsageS3Writes, avN(u.S3Writes), u.S3Writes == 0},
		{attrUsageS3Reads, avN(u.S3Reads), u.S3Reads == 0},
	}
	var clauses []string
	for _, a := range adds {
		if !a.zero {
			clauses = append(clauses, e.name(a.attr)+" "+e.value(a.v))
		}
	}
	return clauses
}

// usageRider is the usage an update of a job's counters carries: what the caller's usage
// tally (shared/usage) holds when UpdateJobNode or UpdateJobNodes moves the counters, taken
// from the tally and ADDed in the same UpdateItem (no write of its own). An invocation that
// records a result so pays for its usage with the write it makes anyway; what it does after
// that update (its events, its read of the counts, that update itself) stays in the tally
// for its caller to charge. Given back to the tally when the update fails.
type usageRider struct {
	t *usage.Tally
	u store.Usage
}

func takeRider(ctx context.Context) usageRider {
	t := usage.From(ctx)
	u := t.Take()
	if !finiteUsage(u) { // AddJobUsage refuses it with a clear error
		t.Add(u)
		u = store.Usage{}
	}
	return usageRider{t: t, u: u}
}

func (r usageRider) giveBack() { r.t.Add(r.u) }

// JobUsage implements store.Store: one BatchGetItem of the job's usage shards and its
// counters items (the counters item and the counter shards, which carry usage that rode on
// their updates), summed; store.ErrNotFound when there are none (the job does not exist).
func (s *Store) JobUsage(ctx context.Context, jobID int64) (store.Usage, error) {
	m, err := s.meta(ctx, jobID)
	if err != nil {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, err)
	}
	keys := make([]item, 0, m.usage+m.seqs())
	for k := range m.usage {
		keys = append(keys, usageKey(jobID, k))
	}
	for j := range m.seqs() {
		keys = append(keys, m.seqKey(j))
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
