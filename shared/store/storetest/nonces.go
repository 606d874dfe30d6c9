package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// nonceRacers is how many goroutines race to use one nonce.
const nonceRacers = 16

// nonceNow is the clock every UseNonce call here passes: fixed, so that the suite means the
// same whatever today's date is, and far from the wall clock, so that a backend that compared
// expiry with the wall clock instead of the time it is given fails. The fixtures are an hour
// away from it on either side.
var nonceNow = time.Date(2100, time.March, 1, 12, 0, 0, 0, time.UTC)

func live() time.Time    { return nonceNow.Add(time.Hour) }
func expired() time.Time { return nonceNow.Add(-time.Hour) }

func runNonces(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("FirstUseThenExists", func(t *testing.T) {
		s := newStore(t)
		must(t, "first use", s.UseNonce(t.Context(), "n-1", nonceNow, live()))
		attempts := []struct {
			name    string
			expires time.Time
		}{
			{"same expiry", live()},
			{"later expiry", live().Add(24 * time.Hour)},
			{"earlier expiry", expired()},
		}
		for _, a := range attempts {
			t.Run(a.name, func(t *testing.T) {
				mustErrIs(t, "second use", s.UseNonce(t.Context(), "n-1", nonceNow, a.expires), store.ErrExists)
			})
		}
	})

	t.Run("DifferentNoncesIndependent", func(t *testing.T) {
		s := newStore(t)
		// Nonces are opaque: case, prefixes and separators make different nonces.
		nonces := []string{"abc", "ABC", "ab", "abcd", "abc#NONCE", "a/b+c="}
		for _, n := range nonces {
			t.Run("use "+n, func(t *testing.T) {
				must(t, "use", s.UseNonce(t.Context(), n, nonceNow, live()))
			})
		}
		for _, n := range nonces {
			t.Run("reuse "+n, func(t *testing.T) {
				mustErrIs(t, "reuse", s.UseNonce(t.Context(), n, nonceNow, live()), store.ErrExists)
			})
		}
	})

	t.Run("ExpiredRecordReusable", func(t *testing.T) {
		s := newStore(t)
		must(t, "use with a past expiry", s.UseNonce(t.Context(), "n-old", nonceNow, expired()))
		must(t, "use again after expiry", s.UseNonce(t.Context(), "n-old", nonceNow, expired()))
		must(t, "use again, now live", s.UseNonce(t.Context(), "n-old", nonceNow, live()))
		mustErrIs(t, "use while live", s.UseNonce(t.Context(), "n-old", nonceNow, live()), store.ErrExists)
	})

	t.Run("ConcurrentSameNonceOneWins", func(t *testing.T) {
		tests := []struct {
			name  string
			setup func(t *testing.T, s store.Store, nonce string)
		}{
			{"fresh", func(*testing.T, store.Store, string) {}},
			{"expired record", func(t *testing.T, s store.Store, nonce string) {
				must(t, "record expired nonce", s.UseNonce(t.Context(), nonce, nonceNow, expired()))
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				const nonce = "n-race"
				tt.setup(t, s, nonce)
				errs := make([]error, nonceRacers)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range nonceRacers {
					wg.Go(func() {
						<-start
						errs[i] = s.UseNonce(t.Context(), nonce, nonceNow, live())
					})
				}
				close(start)
				wg.Wait()
				wins := 0
				for i, err := range errs {
					switch {
					case err == nil:
						wins++
					case !errors.Is(err, store.ErrExists):
						t.Fatalf("racer %d: error = %v, want nil or ErrExists", i, err)
					}
				}
				if wins != 1 {
					t.Fatalf("%d of %d racers used the nonce, want exactly 1", wins, nonceRacers)
				}
				mustErrIs(t, "use after the race", s.UseNonce(t.Context(), nonce, nonceNow, live()), store.ErrExists)
			})
		}
	})
}
