package dynamo

import (
	"context"
	"sync"
)

type readCacheKey struct{}

// readCache holds the connection items one request read, found or not.
type readCache struct {
	mu    sync.Mutex
	items map[string]item // by keyString; nil: read, not there
}

// WithReadCache returns a context in which the store keeps the connection items it reads
// (EnrolledNodes, Connections) and serves them again: a request that checks that nodes are
// enrolled and then looks up their connections — creating a job — reads each item once,
// not twice (a read unit per node). For one request only: the items change.
func WithReadCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, readCacheKey{}, &readCache{items: map[string]item{}})
}

// connItems reads the connection items of names (consistent BatchGetItem; through the
// context's read cache, if any) and returns those found by name.
func (s *Store) connItems(ctx context.Context, names []string) (map[string]item, error) {
	rc, _ := ctx.Value(readCacheKey{}).(*readCache)
	out := make(map[string]item, len(names))
	keys := make([]item, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		k := invKey(n)
		if rc != nil {
			rc.mu.Lock()
			it, ok := rc.items[keyString(k)]
			rc.mu.Unlock()
			if ok {
				if it != nil {
					out[n] = it
				}
				continue
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return out, nil
	}
	got, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	if rc != nil {
		rc.mu.Lock()
		defer rc.mu.Unlock()
	}
	for _, k := range keys {
		it := got[keyString(k)]
		if rc != nil {
			rc.items[keyString(k)] = it
		}
		if it != nil {
			out[str(it[attrName])] = it
		}
	}
	return out, nil
}
