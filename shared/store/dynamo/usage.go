package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/store"
)

// errNonFiniteUsage refuses capacity units that are NaN or infinite, which DynamoDB numbers
// cannot hold.
var errNonFiniteUsage = errors.New("usage capacity units must be finite")

// AddJobUsage implements store.Store: one UpdateItem of the job's counters item that ADDs
// every counter of u (the capacity units as decimal numbers), conditional on the item
// existing (else store.ErrNotFound). ADD is atomic, so concurrent adds all count, and the
// job item is not written, so its Version does not change. The update is tried again when
// it collides with a transaction on the same item (TransactionConflict), up to
// WithMaxAttempts times.
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
	upd := updateExpr(nil, clauses)
	cond := e.exists(PartitionKey)
	for attempt := 0; ; attempt++ {
		_, err := s.update(ctx, jobCountersKey(jobID), upd, cond, &e)
		if _, ok := conditionFailed(err); ok {
			return fmt.Errorf("add usage of job %d: %w", jobID, store.ErrNotFound)
		}
		var tce *types.TransactionConflictException
		if errors.As(err, &tce) && attempt+1 < s.maxAttempts {
			if err := s.backoff(ctx, attempt); err != nil {
				return fmt.Errorf("add usage of job %d: %w", jobID, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("add usage of job %d: %w", jobID, err)
		}
		return nil
	}
}

// JobUsage implements store.Store: one consistent GetItem of the job's counters item, whose
// usage attributes are absent (zero) until usage is first added; store.ErrNotFound when the
// item, and so the job, does not exist.
func (s *Store) JobUsage(ctx context.Context, jobID int64) (store.Usage, error) {
	it, err := s.get(ctx, jobCountersKey(jobID))
	if err != nil {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, err)
	}
	if it == nil {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, store.ErrNotFound)
	}
	r := reader{it: it}
	u := store.Usage{
		Invocations:  r.optN(attrUsageInvocations),
		MessagesIn:   r.optN(attrUsageMessagesIn),
		MessagesOut:  r.optN(attrUsageMessagesOut),
		MessageUnits: r.optN(attrUsageMessageUnits),
		ReadUnits:    r.optF(attrUsageReadUnits),
		WriteUnits:   r.optF(attrUsageWriteUnits),
		S3Writes:     r.optN(attrUsageS3Writes),
		S3Reads:      r.optN(attrUsageS3Reads),
	}
	if r.err != nil {
		return store.Usage{}, fmt.Errorf("job usage %d: %w", jobID, r.err)
	}
	return u, nil
}
