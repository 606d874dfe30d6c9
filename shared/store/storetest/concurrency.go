package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// Sizes of the concurrency tests: enough goroutines to interleave, few enough for -race.
const (
	racers         = 8
	jobsPerRacer   = 4
	eventsPerRacer = 6
)

func runConcurrency(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("UpdateJobNodeSameVersionOneWins", func(t *testing.T) {
		s := newStore(t)
		j, err := s.CreateJob(t.Context(), newJob(1, 1), newNodes("a"), nil)
		must(t, "create job", err)
		read := getJobNode(t, s, j.ID, "a")

		errs := make([]error, racers)
		results := make([]jobs.Node, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				n := read
				n.State = jobs.NodeRunning
				n.Message = fmt.Sprintf("racer %d", i)
				<-start
				results[i], errs[i] = s.UpdateJobNode(t.Context(), n, newEvent(jobs.EventNodeRunning, "a", i))
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("racers %d and %d both updated version %d", winner, i, read.Version)
				}
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("racer %d: error = %v, want nil or ErrConflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("no racer succeeded; errors: %v", errs)
		}
		stored := getJobNode(t, s, j.ID, "a")
		equalNode(t, "stored node", stored, results[winner])
		if stored.Version != read.Version+1 || stored.Message != fmt.Sprintf("racer %d", winner) {
			t.Fatalf("stored node = %+v, want version %d written by racer %d", stored, read.Version+1, winner)
		}
		evs, err := s.ListEvents(t.Context(), j.ID, 0, 0)
		must(t, "list events", err)
		equalIDs(t, "events", eventIDs(evs), seq(1, 1))
	})

	t.Run("CreateJobDistinctIDs", func(t *testing.T) {
		s := newStore(t)
		ids := make([][]int64, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				for k := range jobsPerRacer {
					j, err := s.CreateJob(t.Context(), newJob(i*jobsPerRacer+k, 2), newNodes("a", "b"),
						[]jobs.Event{newEvent(jobs.EventNodeRunning, "a", k)})
					if err != nil {
						errs[i] = err
						return
					}
					// Ids increase within one goroutine: each create follows the previous one.
					if n := len(ids[i]); n > 0 && j.ID <= ids[i][n-1] {
						errs[i] = fmt.Errorf("id %d after id %d", j.ID, ids[i][n-1])
						return
					}
					ids[i] = append(ids[i], j.ID)
				}
			})
		}
		wg.Wait()
		must(t, "concurrent create", errors.Join(errs...))

		seen := map[int64]bool{}
		for _, list := range ids {
			for _, id := range list {
				if seen[id] {
					t.Fatalf("id %d assigned twice", id)
				}
				seen[id] = true
			}
		}
		total := racers * jobsPerRacer
		if len(seen) != total {
			t.Fatalf("%d distinct ids, want %d", len(seen), total)
		}
		all, n, err := s.ListJobs(t.Context(), store.JobQuery{OrderBy: "name"})
		must(t, "list jobs", err)
		if n != total || len(all) != total {
			t.Fatalf("listed %d jobs (total %d), want %d", len(all), n, total)
		}
		for _, j := range all {
			if !seen[j.ID] {
				t.Fatalf("listed job %d was not returned by CreateJob", j.ID)
			}
			evs, err := s.ListEvents(t.Context(), j.ID, 0, 0)
			must(t, "list events", err)
			equalIDs(t, fmt.Sprintf("job %d events", j.ID), eventIDs(evs), seq(1, 1))
		}
	})

	t.Run("AppendEventsNoGaps", func(t *testing.T) {
		s := newStore(t)
		names := make([]string, racers)
		for i := range names {
			names[i] = fmt.Sprintf("node%02d", i)
		}
		j, err := s.CreateJob(t.Context(), newJob(1, racers), newNodes(names...), nil)
		must(t, "create job", err)

		latest := make([][]int64, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() {
				for k := 0; k < eventsPerRacer; {
					n, err := s.GetJobNode(t.Context(), j.ID, name)
					if err != nil {
						errs[i] = err
						return
					}
					n.Message = fmt.Sprintf("event %d", k)
					updated, err := s.UpdateJobNode(t.Context(), n, newEvent(jobs.EventNodeRunning, name, k))
					if errors.Is(err, store.ErrConflict) {
						continue // a backend may report contention on the job's counter: retry
					}
					if err != nil {
						errs[i] = err
						return
					}
					latest[i] = append(latest[i], updated.LatestEventID)
					k++
				}
			})
		}
		wg.Wait()
		must(t, "concurrent appends", errors.Join(errs...))

		total := int64(racers * eventsPerRacer)
		evs, err := s.ListEvents(t.Context(), j.ID, 0, 0)
		must(t, "list events", err)
		equalIDs(t, "events", eventIDs(evs), seq(1, total))

		// Each returned LatestEventID names that goroutine's own event.
		byID := map[int64]jobs.Event{}
		for _, e := range evs {
			byID[e.ID] = e
		}
		for i, ids := range latest {
			for k, id := range ids {
				e := byID[id]
				if e.Node != names[i] || !e.Timestamp.Equal(at(k)) {
					t.Fatalf("%s's event %d got id %d, which holds %+v", names[i], k, id, e)
				}
			}
			n := getJobNode(t, s, j.ID, names[i])
			if n.LatestEventID != ids[len(ids)-1] || n.Version != 1+eventsPerRacer {
				t.Fatalf("%s: latest=%d version=%d, want latest=%d version=%d",
					names[i], n.LatestEventID, n.Version, ids[len(ids)-1], 1+eventsPerRacer)
			}
		}
		job, err := s.GetJob(t.Context(), j.ID)
		must(t, "get job", err)
		if job.Version != j.Version {
			t.Fatalf("job version = %d after appends, want %d", job.Version, j.Version)
		}
	})
}
