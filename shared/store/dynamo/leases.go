package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errEmptyLease refuses a lease without a name or an owner.
var errEmptyLease = errors.New("a lease needs a name and an owner")

// leaseRetention is how long after its end DynamoDB's TTL may delete a lease item.
const leaseRetention = 24 * time.Hour

func leaseKey(name string) item { return key(pkLeasePref+name, skLease) }

// TryLease implements store.Store: one PutItem of LEASE#<name> (owner, end in Unix
// fixed-width UTC text, which compares as the instants do; TTL a day after the end) conditional on no lease, an expired one (end at or
// before now) or one of owner. Of concurrent tries for a free lease exactly one succeeds.
func (s *Store) TryLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	if name == "" || owner == "" {
		return false, fmt.Errorf("try lease %q: %w", name, errEmptyLease)
	}
	at, err := encodeTime(now)
	if err != nil {
		return false, fmt.Errorf("try lease %s: %w", name, err)
	}
	w := newWriter(leaseKey(name))
	w.s(attrOwner, owner)
	w.time(attrUntil, until)
	w.n(TTLAttribute, ceilUnix(until.Add(leaseRetention)))
	if w.err != nil {
		return false, fmt.Errorf("try lease %s: %w", name, w.err)
	}
	var e expr
	cond := e.notExists(PartitionKey) + " OR " + e.name(attrUntil) + " <= " + e.value(avS(at)) +
		" OR " + e.eq(attrOwner, avS(owner))
	_, err = s.put(ctx, w.it, cond, &e)
	if _, ok := conditionFailed(err); ok {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("try lease %s: %w", name, err)
	}
	return true, nil
}

// ReleaseLease implements store.Store: one DeleteItem conditional on owner holding it.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	if name == "" {
		return nil
	}
	var e expr
	_, err := s.del(ctx, leaseKey(name), e.eq(attrOwner, avS(owner)), &e)
	if _, ok := conditionFailed(err); ok {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
