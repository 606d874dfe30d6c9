package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/store"
)

// leaseNow is the clock the lease cases pass: far from the wall clock, so that a backend
// that compared with the wall clock instead of the time it is given fails.
var leaseNow = time.Date(2100, time.May, 1, 12, 0, 0, 0, time.UTC)

func runLeases(t *testing.T, newStore func(t *testing.T) store.Store) {
	try := func(t *testing.T, s store.Store, name, owner string, now time.Time, d time.Duration) bool {
		t.Helper()
		ok, err := s.TryLease(t.Context(), name, owner, now, now.Add(d))
		must(t, "try lease", err)
		return ok
	}
	t.Run("TwoOwners", func(t *testing.T) {
		s := newStore(t)
		if !try(t, s, "job-1", "a", leaseNow, time.Minute) {
			t.Fatal("a did not get a free lease")
		}
		if try(t, s, "job-1", "b", leaseNow.Add(30*time.Second), time.Minute) {
			t.Fatal("b took a lease a holds")
		}
		if !try(t, s, "job-2", "b", leaseNow, time.Minute) {
			t.Fatal("b did not get another, free lease")
		}
		// The owner renews, even to an earlier end.
		if !try(t, s, "job-1", "a", leaseNow.Add(10*time.Second), 5*time.Second) {
			t.Fatal("a could not renew its lease")
		}
		if try(t, s, "job-1", "b", leaseNow.Add(14*time.Second), time.Minute) {
			t.Fatal("b took a's renewed lease before it expired")
		}
	})
	t.Run("ExpiryByThePassedClock", func(t *testing.T) {
		s := newStore(t)
		if !try(t, s, "l", "a", leaseNow, time.Minute) {
			t.Fatal("a did not get a free lease")
		}
		if try(t, s, "l", "b", leaseNow.Add(time.Minute-time.Nanosecond), time.Minute) {
			t.Fatal("b took the lease a nanosecond before it expired")
		}
		if !try(t, s, "l", "b", leaseNow.Add(time.Minute), time.Minute) {
			t.Fatal("b did not get the lease at its expiry")
		}
		if try(t, s, "l", "a", leaseNow.Add(time.Minute+time.Second), time.Minute) {
			t.Fatal("a took back a lease b now holds")
		}
	})
	t.Run("ReleaseByOwnerOnly", func(t *testing.T) {
		s := newStore(t)
		if !try(t, s, "l", "a", leaseNow, time.Hour) {
			t.Fatal("a did not get a free lease")
		}
		must(t, "release by another owner", s.ReleaseLease(t.Context(), "l", "b"))
		if try(t, s, "l", "b", leaseNow.Add(time.Second), time.Hour) {
			t.Fatal("a release by a non-owner freed the lease")
		}
		must(t, "release by the owner", s.ReleaseLease(t.Context(), "l", "a"))
		if !try(t, s, "l", "b", leaseNow.Add(time.Second), time.Hour) {
			t.Fatal("b did not get a released lease")
		}
		must(t, "release of an unknown lease", s.ReleaseLease(t.Context(), "unknown", "a"))
	})
	t.Run("ConcurrentTriesOneWinner", func(t *testing.T) {
		s := newStore(t)
		const racers = 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for i := range racers {
			wg.Go(func() {
				ok, err := s.TryLease(t.Context(), "race", string(rune('a'+i)), leaseNow, leaseNow.Add(time.Minute))
				if err != nil {
					t.Errorf("try lease: %v", err)
					return
				}
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d of %d concurrent tries got the lease, want 1", wins, racers)
		}
	})
	t.Run("EmptyRefused", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.TryLease(t.Context(), "", "a", leaseNow, leaseNow.Add(time.Minute)); err == nil {
			t.Fatal("a lease without a name was taken")
		}
		if _, err := s.TryLease(t.Context(), "l", "", leaseNow, leaseNow.Add(time.Minute)); err == nil {
			t.Fatal("a lease without an owner was taken")
		}
	})
}
