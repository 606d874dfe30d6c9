package storetest

import (
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// usageRacers is how many goroutines add usage to one job at once.
const usageRacers = 16

// unknownJobID is an id no job in a fresh store has.
const unknownJobID = 987654

// fullUsage returns a Usage with every counter set to a distinct value; the capacity units
// are binary fractions, which every backend adds exactly.
func fullUsage() store.Usage {
	return store.Usage{
		Invocations:  3,
		MessagesIn:   5,
		MessagesOut:  7,
		MessageUnits: 11,
		ReadUnits:    2.5,
		WriteUnits:   4.25,
		S3Writes:     13,
		S3Reads:      17,
	}
}

// jobUsage reads a job's usage, failing t on error.
func jobUsage(t *testing.T, s store.Store, jobID int64) store.Usage {
	t.Helper()
	u, err := s.JobUsage(t.Context(), jobID)
	must(t, "job usage", err)
	return u
}

// equalUsage fails t unless got is want.
func equalUsage(t *testing.T, what string, got, want store.Usage) {
	t.Helper()
	equal(t, what, got, want, func(u store.Usage) store.Usage { return u })
}

func runUsage(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ZeroBeforeAnyAdd", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateNew, "a")
		equalUsage(t, "usage of a new job", jobUsage(t, s, j.ID), store.Usage{})
	})

	t.Run("RoundTripEveryField", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a")
		must(t, "add usage", s.AddJobUsage(t.Context(), j.ID, fullUsage()))
		equalUsage(t, "usage", jobUsage(t, s, j.ID), fullUsage())
	})

	t.Run("AddsAccumulate", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a")
		adds := []struct {
			name string
			add  store.Usage
			want store.Usage
		}{
			{"first", fullUsage(), fullUsage()},
			{"one counter", store.Usage{MessagesOut: 1},
				store.Usage{Invocations: 3, MessagesIn: 5, MessagesOut: 8, MessageUnits: 11, ReadUnits: 2.5, WriteUnits: 4.25, S3Writes: 13, S3Reads: 17}},
			{"nothing", store.Usage{},
				store.Usage{Invocations: 3, MessagesIn: 5, MessagesOut: 8, MessageUnits: 11, ReadUnits: 2.5, WriteUnits: 4.25, S3Writes: 13, S3Reads: 17}},
			{"every counter again", fullUsage(),
				store.Usage{Invocations: 6, MessagesIn: 10, MessagesOut: 15, MessageUnits: 22, ReadUnits: 5, WriteUnits: 8.5, S3Writes: 26, S3Reads: 34}},
			{"fractions", store.Usage{ReadUnits: 0.5, WriteUnits: 0.125},
				store.Usage{Invocations: 6, MessagesIn: 10, MessagesOut: 15, MessageUnits: 22, ReadUnits: 5.5, WriteUnits: 8.625, S3Writes: 26, S3Reads: 34}},
		}
		for _, a := range adds {
			t.Run(a.name, func(t *testing.T) {
				must(t, "add usage", s.AddJobUsage(t.Context(), j.ID, a.add))
				equalUsage(t, "usage", jobUsage(t, s, j.ID), a.want)
			})
		}
	})

	t.Run("JobsIndependent", func(t *testing.T) {
		s := newStore(t)
		j1 := createJob(t, s, 1, jobs.StateRunning, "a")
		j2 := createJob(t, s, 2, jobs.StateRunning, "a")
		must(t, "add usage to job 1", s.AddJobUsage(t.Context(), j1.ID, fullUsage()))
		must(t, "add usage to job 2", s.AddJobUsage(t.Context(), j2.ID, store.Usage{Invocations: 1}))
		equalUsage(t, "job 1 usage", jobUsage(t, s, j1.ID), fullUsage())
		equalUsage(t, "job 2 usage", jobUsage(t, s, j2.ID), store.Usage{Invocations: 1})
	})

	t.Run("UnknownJobNotFound", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a")
		for _, id := range []int64{unknownJobID, j.ID + 1, 0} {
			mustErrIs(t, "add usage to an unknown job", s.AddJobUsage(t.Context(), id, fullUsage()), store.ErrNotFound)
			_, err := s.JobUsage(t.Context(), id)
			mustErrIs(t, "usage of an unknown job", err, store.ErrNotFound)
		}
		equalUsage(t, "usage of the known job", jobUsage(t, s, j.ID), store.Usage{})
	})

	t.Run("VersionUnchanged", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a")
		must(t, "add usage", s.AddJobUsage(t.Context(), j.ID, fullUsage()))
		got, err := s.GetJob(t.Context(), j.ID)
		must(t, "get job", err)
		equalJob(t, "job after adding usage", got, j)

		// An update with the Version read before the add still applies.
		got.Description = "updated after usage"
		updated, err := s.UpdateJob(t.Context(), got)
		must(t, "update job with the version read before the add", err)
		if updated.Version != j.Version+1 {
			t.Fatalf("version after update = %d, want %d", updated.Version, j.Version+1)
		}
		equalUsage(t, "usage after the job update", jobUsage(t, s, j.ID), fullUsage())
	})

	t.Run("ConcurrentAddsAllCount", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a")
		errs := make([]error, usageRacers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range usageRacers {
			wg.Go(func() {
				<-start
				errs[i] = s.AddJobUsage(t.Context(), j.ID, store.Usage{Invocations: 1, WriteUnits: 0.5})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("racer %d: %v", i, err)
			}
		}
		equalUsage(t, "usage after concurrent adds", jobUsage(t, s, j.ID),
			store.Usage{Invocations: usageRacers, WriteUnits: usageRacers * 0.5})
		got, err := s.GetJob(t.Context(), j.ID)
		must(t, "get job", err)
		if got.Version != j.Version {
			t.Fatalf("job version after concurrent adds = %d, want %d", got.Version, j.Version)
		}
	})
}
