package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// errEmptyNonce refuses an empty nonce, which no agent sends.
var errEmptyNonce = errors.New("empty nonce")

func nonceKey(nonce string) item { return key(pkNoncePref+nonce, skNonce) }

// ceilUnix returns t in epoch seconds, rounded up: a record is never taken for expired, by
// UseNonce or by DynamoDB's TTL, before t.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// UseNonce implements store.Store: one PutItem of the item NONCE#<nonce> / NONCE, whose
// TTLAttribute is expires (epoch seconds, rounded up) so that DynamoDB deletes it some time
// after, conditional on no item of that nonce existing or the existing one having expired
// (TTLAttribute before now's second; TTL deletion is not prompt). The condition makes
// the write atomic: of concurrent uses of one nonce exactly one succeeds, the others fail
// with store.ErrExists.
func (s *Store) UseNonce(ctx context.Context, nonce string, now, expires time.Time) error {
	if nonce == "" {
		return fmt.Errorf("use nonce: %w", errEmptyNonce)
	}
	w := newWriter(nonceKey(nonce))
	w.n(TTLAttribute, ceilUnix(expires))
	var e expr
	cond := e.notExists(PartitionKey) + " OR " + e.name(TTLAttribute) + " < " + e.value(avN(now.Unix()))
	_, err := s.put(ctx, w.it, cond, &e)
	if _, ok := conditionFailed(err); ok {
		return fmt.Errorf("use nonce: %w", store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("use nonce: %w", err)
	}
	return nil
}
