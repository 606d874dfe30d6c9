package ratelimit

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// DefaultMaxKeys is how many keys a Limiter tracks unless WithMaxKeys says otherwise.
const DefaultMaxKeys = 10000

// ErrInvalidConfig is returned by New for a rate, burst or option that cannot work.
var ErrInvalidConfig = errors.New("ratelimit: invalid config")

// Limiter is a set of token buckets, one per key. Each bucket holds at most burst tokens and
// refills at rate tokens per second; a request takes one token.
//
// Memory is bounded two ways. A key unused for burst/rate seconds (the time an empty bucket
// takes to refill) is dropped: its bucket would be full again, so forgetting it changes no
// answer. And at most maxKeys keys are kept: when a new key would exceed that, the least
// recently used key is dropped even if its bucket is not yet full — that key then starts again
// with a full bucket, so choose maxKeys above the number of distinct callers you expect in one
// refill period. Both evictions are O(1) per Allow (an LRU list), with no background goroutine.
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	rate    float64 // tokens per second
	burst   float64
	idle    time.Duration // a key unused this long has a full bucket and is dropped
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *bucket
	lru  *list.List               // front = most recently used
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time // when tokens was computed, and when the key was last used
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock sets the clock (time.Now by default); tests pass a fake one.
func WithClock(now func() time.Time) Option { return func(l *Limiter) { l.now = now } }

// WithMaxKeys caps the number of keys tracked at once (DefaultMaxKeys by default).
func WithMaxKeys(n int) Option { return func(l *Limiter) { l.maxKeys = n } }

// New returns a limiter that allows rate requests per second per key on average, and bursts
// of up to burst requests.
func New(rate float64, burst int, opts ...Option) (*Limiter, error) {
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
		return nil, fmt.Errorf("%w: rate must be a positive number of requests per second, got %v", ErrInvalidConfig, rate)
	}
	if burst < 1 {
		return nil, fmt.Errorf("%w: burst must be at least 1, got %d", ErrInvalidConfig, burst)
	}
	l := &Limiter{rate: rate, burst: float64(burst), maxKeys: DefaultMaxKeys, now: time.Now,
		keys: map[string]*list.Element{}, lru: list.New()}
	for _, o := range opts {
		o(l)
	}
	if l.now == nil {
		return nil, fmt.Errorf("%w: clock is nil", ErrInvalidConfig)
	}
	if l.maxKeys < 1 {
		return nil, fmt.Errorf("%w: max keys must be at least 1, got %d", ErrInvalidConfig, l.maxKeys)
	}
	l.idle = durationOf(l.burst / l.rate)
	return l, nil
}

// durationOf converts seconds to a Duration, rounding up and saturating instead of overflowing.
func durationOf(seconds float64) time.Duration {
	ns := math.Ceil(seconds * float64(time.Second))
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}

// Allow takes a token from key's bucket. When the bucket is empty it answers false and how
// long until a token is back; it takes nothing then, so a caller that keeps retrying early
// does not push its own retry time further away.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	return l.AllowN(key, 1)
}

// AllowN takes n tokens from key's bucket (a byte count, say), or, when fewer are there,
// answers false and how long until n are back, taking nothing. n above the burst is never
// allowed: its wait is how long a full bucket would take to hold n.
func (l *Limiter) AllowN(key string, n float64) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now)

	var b *bucket
	if e, found := l.keys[key]; found {
		b = e.Value.(*bucket)
		l.lru.MoveToFront(e)
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		}
		b.last = now // a clock that steps back refills nothing, and refill restarts from there
	} else {
		for l.lru.Len() >= l.maxKeys {
			l.remove(l.lru.Back())
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		l.keys[key] = l.lru.PushFront(b)
	}
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	return false, durationOf((n - b.tokens) / l.rate)
}

// Blocked reports whether key's bucket is empty now — whether Allow would refuse it — and
// how long until a token is back, without taking anything.
func (l *Limiter) Blocked(key string) (blocked bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.keys[key]
	if !found {
		return false, 0
	}
	b := e.Value.(*bucket)
	tokens := b.tokens
	if elapsed := now.Sub(b.last); elapsed > 0 {
		tokens = math.Min(l.burst, tokens+elapsed.Seconds()*l.rate)
	}
	if tokens >= 1 {
		return false, 0
	}
	return true, durationOf((1 - tokens) / l.rate)
}

// evictIdle drops keys, least recently used first, whose buckets are full again by now.
func (l *Limiter) evictIdle(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		if now.Sub(e.Value.(*bucket).last) < l.idle {
			return
		}
		l.remove(e)
	}
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.keys, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// Len reports how many keys the limiter tracks now (after dropping the idle ones).
func (l *Limiter) Len() int {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now)
	return l.lru.Len()
}
