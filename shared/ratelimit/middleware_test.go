package ratelimit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/ratelimit"
)

func TestMiddleware(t *testing.T) {
	c := newClock()
	l, err := ratelimit.New(0.25, 2, ratelimit.WithClock(c.Now)) // a token every 4 s
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		w.WriteHeader(http.StatusTeapot)
	})
	h := ratelimit.Middleware(l, func(r *http.Request) string { return r.Header.Get("Who") }, next)

	type want struct {
		status int
		retry  string // Retry-After header and details.retry_after; "" when served
	}
	steps := []struct {
		advance time.Duration
		who     string
		want    want
	}{
		{0, "alice", want{http.StatusTeapot, ""}},
		{0, "alice", want{http.StatusTeapot, ""}},
		{0, "alice", want{http.StatusTooManyRequests, "4"}},
		{0, "bob", want{http.StatusTeapot, ""}},
		{3500 * time.Millisecond, "alice", want{http.StatusTooManyRequests, "1"}}, // 0.5 s rounds up to 1
		{499 * time.Millisecond, "alice", want{http.StatusTooManyRequests, "1"}},  // 1 ms rounds up to 1
		{time.Millisecond, "alice", want{http.StatusTeapot, ""}},
		{0, "alice", want{http.StatusTooManyRequests, "4"}},
	}
	wantServed := 0
	for i, s := range steps {
		c.Advance(s.advance)
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Who", s.who)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != s.want.status {
			t.Fatalf("step %d (%s): status %d, want %d", i, s.who, rec.Code, s.want.status)
		}
		if s.want.status != http.StatusTooManyRequests {
			wantServed++
			if got := rec.Header().Get("Retry-After"); got != "" {
				t.Errorf("step %d: served answer has Retry-After %q", i, got)
			}
			continue
		}
		if got := rec.Header().Get("Retry-After"); got != s.want.retry {
			t.Errorf("step %d: Retry-After %q, want %q", i, got, s.want.retry)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("step %d: Content-Type %q", i, ct)
		}
		var body struct {
			Kind    string                     `json:"kind"`
			Msg     string                     `json:"msg"`
			Details map[string]json.RawMessage `json:"details"`
		}
		dec := json.NewDecoder(rec.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			t.Fatalf("step %d: body: %v", i, err)
		}
		if body.Kind != ratelimit.KindRateLimited {
			t.Errorf("step %d: kind %q", i, body.Kind)
		}
		if wantMsg := "Too many requests; retry after " + s.want.retry + " seconds"; body.Msg != wantMsg {
			t.Errorf("step %d: msg %q, want %q", i, body.Msg, wantMsg)
		}
		if got := string(body.Details["retry_after"]); got != s.want.retry || len(body.Details) != 1 {
			t.Errorf("step %d: details %v, want retry_after %s only", i, body.Details, s.want.retry)
		}
	}
	if served != wantServed {
		t.Errorf("next served %d requests, want %d", served, wantServed)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	cases := []struct {
		wait time.Duration
		want int64
	}{
		{0, 1},
		{-time.Second, 1},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{90 * time.Second, 90},
		{time.Hour, 3600},
	}
	for _, tc := range cases {
		t.Run(tc.wait.String(), func(t *testing.T) {
			if got := ratelimit.RetryAfterSeconds(tc.wait); got != tc.want {
				t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.wait, got, tc.want)
			}
		})
	}
}

func TestClientAddress(t *testing.T) {
	cases := []struct {
		name   string
		header string
		remote string
		want   string
	}{
		{"IPv4 host without port", "", "192.0.2.1:5555", "ip:192.0.2.1"},
		{"IPv6 host by its /64", "", "[2001:db8::1]:443", "ip:2001:db8::"},
		{"another address of the same /64", "", "[2001:db8::ffff:1234:5678:9abc]:443", "ip:2001:db8::"},
		{"another /64", "", "[2001:db8:0:1::1]:443", "ip:2001:db8:0:1::"},
		{"IPv4-mapped IPv6 is IPv4", "", "[::ffff:192.0.2.1]:80", "ip:192.0.2.1"},
		{"address without port", "", "192.0.2.9", "ip:192.0.2.9"},
		{"a token changes nothing", "s3cret", "192.0.2.1:5555", "ip:192.0.2.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/jobs", nil)
			r.RemoteAddr = tc.remote
			if tc.header != "" {
				r.Header.Set("X-Authentication", tc.header)
			}
			if got := ratelimit.ClientAddress(r); got != tc.want {
				t.Errorf("ClientAddress = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMiddlewareConcurrent serves many requests at once through the middleware with a stopped
// clock: exactly burst of them reach next. Run with -race.
func TestMiddlewareConcurrent(t *testing.T) {
	const burst = 20
	c := newClock()
	l, err := ratelimit.New(1, burst, ratelimit.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	h := ratelimit.Middleware(l, ratelimit.ClientAddress, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	results := make(chan int, 100)
	for range 100 {
		go func() {
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			if err != nil {
				results <- 0
				return
			}
			req.Header.Set("X-Authentication", "shared-token")
			resp, err := srv.Client().Do(req)
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	counts := map[int]int{}
	for range 100 {
		counts[<-results]++
	}
	if counts[http.StatusOK] != burst || counts[http.StatusTooManyRequests] != 100-burst {
		t.Errorf("statuses %v, want %d × 200 and %d × 429", counts, burst, 100-burst)
	}
}
