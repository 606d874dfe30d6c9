package ratelimit_test

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/ratelimit"
)

// clock is a fake clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name  string
		rate  float64
		burst int
		opts  []ratelimit.Option
	}{
		{"zero rate", 0, 1, nil},
		{"negative rate", -1, 1, nil},
		{"NaN rate", math.NaN(), 1, nil},
		{"infinite rate", math.Inf(1), 1, nil},
		{"zero burst", 1, 0, nil},
		{"negative burst", 1, -3, nil},
		{"zero max keys", 1, 1, []ratelimit.Option{ratelimit.WithMaxKeys(0)}},
		{"nil clock", 1, 1, []ratelimit.Option{ratelimit.WithClock(nil)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ratelimit.New(tc.rate, tc.burst, tc.opts...)
			if !errors.Is(err, ratelimit.ErrInvalidConfig) {
				t.Fatalf("New(%v, %d) = %v, %v; want ErrInvalidConfig", tc.rate, tc.burst, l, err)
			}
		})
	}
}

// step advances the clock by advance, then calls Allow(key) and checks the answer.
type step struct {
	advance   time.Duration
	key       string
	ok        bool
	retry     time.Duration
	wantCount int // Len() after the call; -1 to skip
}

func TestAllow(t *testing.T) {
	cases := []struct {
		name    string
		rate    float64
		burst   int
		maxKeys int
		steps   []step
	}{
		{
			name: "burst then refusal with the time to the next token", rate: 1, burst: 3,
			steps: []step{
				{0, "a", true, 0, 1},
				{0, "a", true, 0, 1},
				{0, "a", true, 0, 1},
				{0, "a", false, time.Second, 1},
				{400 * time.Millisecond, "a", false, 600 * time.Millisecond, 1},
				{600 * time.Millisecond, "a", true, 0, 1},
				{0, "a", false, time.Second, 1},
			},
		},
		{
			name: "refused calls take no token", rate: 2, burst: 1,
			steps: []step{
				{0, "a", true, 0, -1},
				{100 * time.Millisecond, "a", false, 400 * time.Millisecond, -1},
				{100 * time.Millisecond, "a", false, 300 * time.Millisecond, -1},
				{300 * time.Millisecond, "a", true, 0, -1},
			},
		},
		{
			name: "keys are independent", rate: 1, burst: 1,
			steps: []step{
				{0, "a", true, 0, 1},
				{0, "a", false, time.Second, 1},
				{0, "b", true, 0, 2},
				{0, "b", false, time.Second, 2},
				{0, "", true, 0, 3},
			},
		},
		{
			name: "refill stops at burst", rate: 10, burst: 2,
			steps: []step{
				{0, "a", true, 0, -1},
				{0, "a", true, 0, -1},
				{0, "a", false, 100 * time.Millisecond, -1},
				{199 * time.Millisecond, "b", true, 0, 2}, // a is 1 ms short of full: kept
				{time.Hour, "a", true, 0, 1},              // idle keys dropped before the lookup; b went too
				{0, "a", true, 0, 1},
				{0, "a", false, 100 * time.Millisecond, 1},
			},
		},
		{
			name: "slow rate gives retry of minutes", rate: 1.0 / 60, burst: 1,
			steps: []step{
				{0, "a", true, 0, -1},
				{0, "a", false, time.Minute, -1},
				{30 * time.Second, "a", false, 30 * time.Second, -1},
			},
		},
		{
			name: "a clock that steps back refills nothing", rate: 1, burst: 1,
			steps: []step{
				{0, "a", true, 0, -1},
				{-10 * time.Second, "a", false, time.Second, -1},
				{500 * time.Millisecond, "a", false, 500 * time.Millisecond, -1},
				{500 * time.Millisecond, "a", true, 0, -1},
				{0, "a", false, time.Second, -1},
			},
		},
		{
			name: "the least recently used key goes when the cap is reached", rate: 1, burst: 1, maxKeys: 2,
			steps: []step{
				{0, "a", true, 0, 1},
				{0, "b", true, 0, 2},
				{0, "a", false, time.Second, 2}, // a is now the most recent
				{0, "c", true, 0, 2},            // b is dropped
				{0, "a", false, time.Second, 2},
				{0, "b", true, 0, 2}, // b starts again with a full bucket; c is dropped
				{0, "c", true, 0, 2},
			},
		},
		{
			name: "idle keys are dropped only once their bucket is full", rate: 0.5, burst: 2,
			steps: []step{
				{0, "a", true, 0, 1},
				{0, "a", true, 0, 1},
				{3999 * time.Millisecond, "b", true, 0, 2},
				{time.Millisecond, "c", true, 0, 2}, // a: 4 s at 0.5/s refilled 2 tokens
				{4 * time.Second, "c", true, 0, 1},  // b went; c was used just now
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			opts := []ratelimit.Option{ratelimit.WithClock(c.Now)}
			if tc.maxKeys > 0 {
				opts = append(opts, ratelimit.WithMaxKeys(tc.maxKeys))
			}
			l, err := ratelimit.New(tc.rate, tc.burst, opts...)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				c.Advance(s.advance)
				ok, retry := l.Allow(s.key)
				if ok != s.ok || retry != s.retry {
					t.Fatalf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.key, ok, retry, s.ok, s.retry)
				}
				if s.wantCount >= 0 {
					if n := l.Len(); n != s.wantCount {
						t.Fatalf("step %d: Len() = %d, want %d", i, n, s.wantCount)
					}
				}
			}
		})
	}
}

func TestMemoryIsBounded(t *testing.T) {
	c := newClock()
	l, err := ratelimit.New(1, 5, ratelimit.WithClock(c.Now), ratelimit.WithMaxKeys(100))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		l.Allow(fmt.Sprintf("key-%d", i))
		if n := l.Len(); n > 100 {
			t.Fatalf("after %d keys Len() = %d, want at most 100", i+1, n)
		}
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("Len() = %d, want 100", n)
	}
	c.Advance(5 * time.Second) // burst/rate: every bucket is full again
	if n := l.Len(); n != 0 {
		t.Fatalf("after the refill period Len() = %d, want 0", n)
	}
}

// TestConcurrentAllow runs many goroutines on shared keys with a stopped clock: exactly burst
// calls per key may succeed, whatever the interleaving. Run with -race.
func TestConcurrentAllow(t *testing.T) {
	const (
		burst      = 50
		keys       = 8
		goroutines = 32
		calls      = 100
	)
	c := newClock()
	l, err := ratelimit.New(1, burst, ratelimit.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed = map[string]int{}
	)
	for g := range goroutines {
		wg.Go(func() {
			local := map[string]int{}
			for i := range calls {
				k := fmt.Sprintf("k%d", (g+i)%keys)
				ok, retry := l.Allow(k)
				if ok {
					local[k]++
				} else if retry <= 0 {
					t.Errorf("refused with retry %v, want > 0", retry)
				}
				_ = l.Len()
			}
			mu.Lock()
			defer mu.Unlock()
			for k, n := range local {
				allowed[k] += n
			}
		})
	}
	wg.Wait()
	if len(allowed) != keys {
		t.Fatalf("allowed on %d keys, want %d: %v", len(allowed), keys, allowed)
	}
	for k, n := range allowed {
		if n != burst {
			t.Errorf("key %s: %d calls allowed, want exactly %d", k, n, burst)
		}
	}
}

// TestBlockedTakesNothing checks that Blocked tells what Allow would answer without spending
// a token.
func TestBlockedTakesNothing(t *testing.T) {
	c := newClock()
	l, err := ratelimit.New(1, 2, ratelimit.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	if blocked, _ := l.Blocked("a"); blocked {
		t.Fatal("an unknown key is blocked")
	}
	for i := range 2 {
		if blocked, _ := l.Blocked("a"); blocked {
			t.Fatalf("blocked before spending token %d", i+1)
		}
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("token %d refused", i+1)
		}
	}
	blocked, wait := l.Blocked("a")
	if !blocked || wait != time.Second {
		t.Fatalf("Blocked = %v, %s after the burst; want true, 1s", blocked, wait)
	}
	for range 10 {
		l.Blocked("a") // asking again spends nothing
	}
	c.Advance(time.Second)
	if blocked, _ := l.Blocked("a"); blocked {
		t.Fatal("still blocked once a token is back")
	}
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("the refilled token was refused")
	}
}

// TestAllowN takes several tokens at once, as a byte budget does: what is over the bucket
// waits for the refill, nothing is taken when refused, and more than the burst never passes.
func TestAllowN(t *testing.T) {
	c := newClock()
	l, err := ratelimit.New(100, 1000, ratelimit.WithClock(c.Now)) // 100 bytes a second, 1,000 at once
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		n       float64
		ok      bool
		wait    time.Duration
	}{
		{0, 600, true, 0},
		{0, 600, false, 2 * time.Second}, // 400 left: 200 more take 2 s
		{time.Second, 600, false, time.Second},
		{time.Second, 600, true, 0},
		{0, 1001, false, 10010 * time.Millisecond}, // over the burst: never, whatever the wait says
		{time.Hour, 1001, false, 10 * time.Millisecond},
		{0, 1000, true, 0},
	}
	for i, s := range steps {
		c.Advance(s.advance)
		ok, wait := l.AllowN("conn", s.n)
		if ok != s.ok || wait != s.wait {
			t.Errorf("step %d: AllowN(%v) = %v, %v; want %v, %v", i, s.n, ok, wait, s.ok, s.wait)
		}
	}
}
