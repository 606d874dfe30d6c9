package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// followNodes is the size of the job the follower test runs: big enough that stores which
// spread a big job's counters and event ids over several items (DynamoDB, from 500 nodes)
// do so.
const followNodes = 520

// runFollowing checks the contract a PE client relies on when it follows a job's events —
// GET /orchestrator/v1/jobs/:id/events?start=N, N the id of the last event it got + 1 —
// while the job's records are written from many goroutines: event ids are unique and
// increase in the order a reader can see them (a store may leave ids unused: they need not
// be consecutive), so that a follower gets every event exactly once, in id order.
func runFollowing(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("FollowerGetsEveryEventOnce", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		names := make([]string, followNodes)
		for i := range names {
			names[i] = fmt.Sprintf("n%03d", i)
		}
		in := newJob(1, followNodes)
		in.Concurrency = 0
		j, claimed, err := s.CreateJobClaiming(ctx, in, newNodes(names...), nil,
			store.Claim{Limit: followNodes, Apply: claimRunning})
		must(t, "create job", err)
		if len(claimed) != followNodes {
			t.Fatalf("claimed %d records, want %d", len(claimed), followNodes)
		}
		f := NewEventFollower(s, j.ID)
		stop := make(chan struct{})
		followed := make(chan error, 1)
		go func() { followed <- f.Follow(ctx, stop) }()
		var wg sync.WaitGroup
		for w := range racers {
			wg.Go(func() {
				for i := w; i < len(claimed); i += racers {
					n := claimed[i]
					n.State, n.FinishedAt = jobs.NodeFinished, ptr(at(20))
					if _, err := s.UpdateJobNode(ctx, n, newEvent(jobs.EventNodeFinished, n.Name, 20)); err != nil {
						t.Errorf("finish %s: %v", n.Name, err)
						return
					}
				}
			})
		}
		wg.Wait()
		job, err := s.GetJob(ctx, j.ID)
		must(t, "get job", err)
		job.State = jobs.StateFinished
		_, err = s.UpdateJob(ctx, job, jobs.Event{Type: jobs.EventJobFinished, Timestamp: at(30)})
		must(t, "finish job", err)
		close(stop)
		if err := <-followed; err != nil {
			t.Fatal(err)
		}
		all, err := s.ListEvents(ctx, j.ID, 0, 0)
		must(t, "list events", err)
		if want := 2*followNodes + 1; len(all) != want {
			t.Fatalf("%d events, want %d", len(all), want)
		}
		ids := eventIDs(all)
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Fatalf("event ids not unique and increasing: %v", ids)
		}
		if err := f.CatchUp(ctx, len(all)); err != nil {
			t.Fatal(err)
		}
		equalIDs(t, "the follower's events", f.IDs, ids)
		if last := all[len(all)-1]; last.Type != jobs.EventJobFinished {
			t.Fatalf("last event %s, want %s", last.Type, jobs.EventJobFinished)
		}
		// Each record's LatestEventID names its own last event.
		byID := map[int64]jobs.Event{}
		for _, e := range all {
			byID[e.ID] = e
		}
		for _, name := range names[:20] {
			n := getJobNode(t, s, j.ID, name)
			if e, ok := byID[n.LatestEventID]; !ok || e.Node != name || e.Type != jobs.EventNodeFinished {
				t.Fatalf("%s: latest event id %d is %+v, want its node_finished event", name, n.LatestEventID, e)
			}
		}
	})
}

// EventFollower polls a job's events as a PE client does: start = the last id it got + 1.
// IDs are the event ids it got, in the order it got them. The DynamoDB store's own
// concurrency tests use it too.
type EventFollower struct {
	s     store.Store
	job   int64
	IDs   []int64
	polls int
}

// NewEventFollower returns a follower of job's events in s, starting at the first.
func NewEventFollower(s store.Store, job int64) *EventFollower {
	return &EventFollower{s: s, job: job}
}

// Poll asks for the events after the last one it got (a small page: limits are part of the
// contract) and checks that they come after it, in order.
func (f *EventFollower) Poll(ctx context.Context) error {
	start := int64(1)
	if len(f.IDs) > 0 {
		start = f.IDs[len(f.IDs)-1] + 1
	}
	evs, err := f.s.ListEvents(ctx, f.job, start, 7)
	if err != nil {
		return err
	}
	f.polls++
	for _, e := range evs {
		if len(f.IDs) > 0 && e.ID <= f.IDs[len(f.IDs)-1] {
			return fmt.Errorf("poll %d from %d: event %d after %d", f.polls, start, e.ID, f.IDs[len(f.IDs)-1])
		}
		f.IDs = append(f.IDs, e.ID)
	}
	return nil
}

// Follow polls until stop is closed.
func (f *EventFollower) Follow(ctx context.Context, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := f.Poll(ctx); err != nil {
			return err
		}
	}
}

// CatchUp polls until it has want events (the writers are done), for a minute at most.
func (f *EventFollower) CatchUp(ctx context.Context, want int) error {
	for deadline := time.Now().Add(time.Minute); len(f.IDs) < want; {
		if time.Now().After(deadline) {
			return fmt.Errorf("the follower has %d of %d events after %d polls", len(f.IDs), want, f.polls)
		}
		if err := f.Poll(ctx); err != nil {
			return err
		}
	}
	return nil
}
