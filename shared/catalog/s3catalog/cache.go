package s3catalog

import (
	"context"
	"sync"
	"time"
)

// cache keeps loaded values for ttl. Concurrent gets of one key share a single load: the
// others wait for it (or for their ctx). A failed load is not cached; the key's last good
// value, if any, stays available through last.
type cache[V any] struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex // guards m and the val/at/ok fields of its entries
	m  map[string]*cacheEntry[V]
}

type cacheEntry[V any] struct {
	sem chan struct{} // held by the goroutine checking or loading the entry
	val V
	at  time.Time
	ok  bool
}

func newCache[V any](ttl time.Duration, now func() time.Time) *cache[V] {
	return &cache[V]{ttl: ttl, now: now, m: map[string]*cacheEntry[V]{}}
}

func (c *cache[V]) get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	var zero V
	c.mu.Lock()
	e := c.m[key]
	if e == nil {
		e = &cacheEntry[V]{sem: make(chan struct{}, 1)}
		c.m[key] = e
	}
	c.mu.Unlock()
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	defer func() { <-e.sem }()

	c.mu.Lock()
	if e.ok && c.now().Sub(e.at) < c.ttl {
		v := e.val
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()

	v, err := load(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if !e.ok && c.m[key] == e {
			delete(c.m, key) // keep no entries for keys that never loaded
		}
		return zero, err
	}
	e.val, e.at, e.ok = v, c.now(), true
	return v, nil
}

// last returns key's last successfully loaded value, however old.
func (c *cache[V]) last(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil && e.ok {
		return e.val, true
	}
	var zero V
	return zero, false
}
