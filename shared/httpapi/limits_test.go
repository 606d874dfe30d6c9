package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/ratelimit"
)

// TestLimitsByPrincipalAndAddress: requests without a valid credential share their client
// address's budget whatever token they carry (an IPv6 client's whole /64), an authenticated
// user's requests spend the user's budget whichever token and address they come from. This
// is the API handler as both baton serve and the AWS api function run it.
func TestLimitsByPrincipalAndAddress(t *testing.T) {
	s := newStack(t, stackOptions{})
	clock := newClock()
	perUser, err := ratelimit.New(1, 3, ratelimit.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	perAddress, err := ratelimit.New(1, 2, ratelimit.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(s.orch, nil, nil, s.auth, nil, httpapi.WithLimits(httpapi.Limits{Principal: perUser, Anonymous: perAddress}))
	second, err := s.auth.IssueToken(context.Background(), "admin", "second", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	random := 0
	steps := []struct {
		name   string
		remote string
		token  string // "random": a fresh made-up token
		want   int
	}{
		{"made-up token", "192.0.2.1:1000", "random", 401},
		{"another made-up token", "192.0.2.1:1001", "random", 401},
		{"a third: the address's budget is spent", "192.0.2.1:1002", "random", 429},
		{"no token at all", "192.0.2.1:1003", "", 429},
		{"another address has its own budget", "198.51.100.1:1000", "random", 401},
		{"IPv6", "[2001:db8::1]:1000", "random", 401},
		{"IPv6 again", "[2001:db8::1]:1001", "random", 401},
		{"another address of the same /64", "[2001:db8::ffff]:1000", "random", 429},
		{"a valid token from a spent address", "192.0.2.1:1004", s.token, 200},
		{"the user again", "198.51.100.2:1000", s.token, 200},
		{"the user's other token", "198.51.100.3:1000", second, 200},
		{"the user's budget is spent, whichever token", "198.51.100.4:1000", second, 429},
	}
	for _, st := range steps {
		req := httptest.NewRequest(http.MethodGet, "/orchestrator/v1/jobs", nil)
		req.RemoteAddr = st.remote
		tok := st.token
		if tok == "random" {
			random++
			tok = fmt.Sprintf("made-up-%d", random)
		}
		if tok != "" {
			req.Header.Set("X-Authentication", tok)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code != st.want {
			t.Errorf("%s: status %d, want %d: %s", st.name, rec.Code, st.want, rec.Body)
		}
		if st.want == 429 && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", st.name)
		}
	}
	clock.Advance(time.Second)
	req := httptest.NewRequest(http.MethodGet, "/orchestrator/v1/jobs", nil)
	req.RemoteAddr = "192.0.2.1:2000"
	req.Header.Set("X-Authentication", "made-up-again")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("a second later the address has a token back: status %d", rec.Code)
	}
}

// TestDefaultLimitsLimitAnonymousRequests: NewLimits with zeros (as the AWS api function
// calls it) limits requests without a valid credential by address.
func TestDefaultLimitsLimitAnonymousRequests(t *testing.T) {
	l, err := httpapi.NewLimits(0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Principal == nil || l.Anonymous == nil {
		t.Fatalf("limits %+v: both must be on by default", l)
	}
}
