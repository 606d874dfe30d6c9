package dynamo_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// runAll moves every record of job jobID to running with a node_running event, one
// UpdateJobNode each, and returns them as written.
func runAll(t *testing.T, s *dynamo.Store, jobID int64, now time.Time) []jobs.Node {
	t.Helper()
	ns, err := s.ListJobNodes(t.Context(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]jobs.Node, len(ns))
	for i, nd := range ns {
		nd.State, nd.TransactionID, nd.StartedAt = jobs.NodeRunning, jobs.TransactionID(jobID, "t-"+nd.Name), &now
		if out[i], err = s.UpdateJobNode(t.Context(), nd, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: now, Node: nd.Name}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// eventsOf returns the events of job jobID by node, and the ids of all of them.
func eventsOf(t *testing.T, s *dynamo.Store, jobID int64) map[string][]jobs.Event {
	t.Helper()
	evs, err := s.ListEvents(t.Context(), jobID, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string][]jobs.Event{}
	for _, ev := range evs {
		by[ev.Node] = append(by[ev.Node], ev)
	}
	return by
}

// TestUpdateJobNodeFrom: a result written by UpdateJobNodeFrom takes three writes (the
// counters, the record with its latest event id, the event), for a job with one counters item
// (no read) and one with counter shards (a read of its shard's clock: TestOpenWithoutARead
// has a job whose records were all claimed at creation, which needs none); the record's LatestEventID names its event,
// listed after its node_running; the counts follow. A write refused for its version counts
// nothing and lists nothing; MayEndJob says whether every record is done.
func TestUpdateJobNodeFrom(t *testing.T) {
	for _, size := range []int{3, 600} { // 600: counter shards
		t.Run(strconv.Itoa(size)+" nodes", func(t *testing.T) {
			e := newEnv(t)
			s := e.store(t)
			ctx := t.Context()
			now := time.Now()
			// Every record claimed at creation (running): with counter shards (600), the job
			// UpdateJobNodeFrom writes counters first; without (3), UpdateJobNode's path.
			recs := nodes(size, jobs.NodeRunning)
			for i := range recs {
				recs[i].StartedAt = &now
			}
			j, err := s.CreateJob(ctx, newJob(), recs, []jobs.Event{{Type: jobs.EventNodeRunning, Timestamp: now, Node: recs[0].Name}})
			if err != nil {
				t.Fatal(err)
			}
			running, err := s.ListJobNodes(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if done, err := s.MayEndJob(ctx, j.ID); err != nil || done {
				t.Fatalf("MayEndJob = %v, %v with every node running", done, err)
			}
			gets, updates, puts := e.ops.count("GetItem")+e.ops.count("BatchGetItem"), e.ops.count("UpdateItem"), e.ops.count("PutItem")
			for i, prev := range running {
				if i == len(running)-1 {
					break // the last one is refused below
				}
				end := prev
				end.State, end.FinishedAt = jobs.NodeFinished, &now
				got, _, err := s.UpdateJobNodeFrom(ctx, prev, end, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: prev.Name})
				if err != nil {
					t.Fatal(err)
				}
				if got.Version != prev.Version+1 || got.LatestEventID <= prev.LatestEventID {
					t.Fatalf("written %+v, from %+v", got, prev)
				}
				running[i] = got
			}
			results := len(running) - 1
			if size >= 500 {
				// A job with counter shards looks at its quota once in 16 ends (a read of
				// its counters, and a return of the surplus): the same as UpdateJobNode.
				looks := results/16 + 1
				if n := e.ops.count("GetItem") + e.ops.count("BatchGetItem") - gets; n > looks {
					t.Errorf("%d results read %d times, want at most %d", results, n, looks)
				}
				if n := e.ops.count("UpdateItem") - updates; n < 2*results || n > 2*results+2*looks {
					t.Errorf("%d results sent %d UpdateItem requests, want %d (counters and record each) and at most %d for the quota", results, n, 2*results, 2*looks)
				}
				if n := e.ops.count("PutItem") - puts; n != results {
					t.Errorf("%d results sent %d PutItem requests, want %d (an event each)", results, n, results)
				}
			}
			by := eventsOf(t, s, j.ID)
			for _, nd := range running[:results] {
				stored, err := s.GetJobNode(ctx, j.ID, nd.Name)
				if err != nil {
					t.Fatal(err)
				}
				evs := by[nd.Name]
				last := len(evs) - 1
				if last < 0 || evs[last].Type != jobs.EventNodeFinished || (last > 0 && evs[last].ID <= evs[last-1].ID) {
					t.Fatalf("%s's events: %+v, want its node_finished last", nd.Name, evs)
				}
				if stored.LatestEventID != evs[last].ID || stored.State != jobs.NodeFinished {
					t.Fatalf("%s: stored %s with latest event %d, its last event is %d", nd.Name, stored.State, stored.LatestEventID, evs[last].ID)
				}
			}

			// A stale version: refused, nothing counted, nothing listed.
			last := running[results]
			stale := last
			stale.Version--
			stale.State, stale.FinishedAt = jobs.NodeFailed, &now
			before, err := s.JobCounts(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			prevStale := last
			prevStale.Version--
			if _, _, err := s.UpdateJobNodeFrom(ctx, prevStale, stale, jobs.Event{Type: jobs.EventNodeFailed, Timestamp: now, Node: last.Name}); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("a stale write: %v, want ErrConflict", err)
			}
			after, err := s.JobCounts(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after[jobs.NodeFailed] != before[jobs.NodeFailed] || after[jobs.NodeRunning] != before[jobs.NodeRunning] || after[jobs.NodeRunning] != 1 {
				t.Fatalf("counts %v after a refused write, %v before", after, before)
			}
			if evs := eventsOf(t, s, j.ID)[last.Name]; len(evs) != 0 {
				t.Fatalf("a refused write listed events: %+v", evs)
			}
			if done, err := s.MayEndJob(ctx, j.ID); err != nil || done {
				t.Fatalf("MayEndJob = %v, %v with a node running", done, err)
			}
			end := last
			end.State, end.FinishedAt = jobs.NodeFinished, &now
			if _, _, err := s.UpdateJobNodeFrom(ctx, last, end, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: last.Name}); err != nil {
				t.Fatal(err)
			}
			counts, err := s.JobCounts(ctx, j.ID)
			if err != nil || counts[jobs.NodeFinished] != size || counts.Unfinished() != 0 {
				t.Fatalf("counts %v (%v), want %d finished", counts, err, size)
			}
			if done, err := s.MayEndJob(ctx, j.ID); err != nil || !done {
				t.Fatalf("MayEndJob = %v, %v with every node finished", done, err)
			}
			// One caller ends the job: another, while the first holds the check, may not
			// (from another process too, which has not read the counters).
			if again, err := e.store(t).MayEndJob(ctx, j.ID); err != nil || again {
				t.Fatalf("a second MayEndJob = %v, %v, want false", again, err)
			}
		})
	}
}

// TestUpdateJobNodeFromPastTheFloor: in a job with counter shards, a record whose latest
// event another sequencer numbered past its shard's clock gets ids after it: in a job whose
// records were claimed by refills, by lifting the shard's clock (its clock read first); in a
// job whose records were all claimed at its creation (where it cannot happen but by a bug),
// by taking ids again past it, the first written void.
func TestUpdateJobNodeFromPastTheFloor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state jobs.NodeState
	}{{"queued at creation", jobs.NodeNew}, {"claimed at creation", jobs.NodeRunning}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.store(t)
			ctx := t.Context()
			now := time.Now()
			recs := nodes(600, tc.state)
			for i := range recs {
				if tc.state == jobs.NodeRunning {
					recs[i].StartedAt = &now
				}
			}
			j, err := s.CreateJob(ctx, newJob(), recs, nil)
			if err != nil {
				t.Fatal(err)
			}
			prev, err := s.GetJobNode(ctx, j.ID, "node-000")
			if err != nil {
				t.Fatal(err)
			}
			if tc.state == jobs.NodeNew {
				prev = runAll(t, s, j.ID, now)[0]
			}
			// As if a sequencer far ahead of this record's shard had numbered its latest event.
			const q = 3 // the counters item and two counter shards at 600 nodes
			high := prev
			high.LatestEventID = 100000*q + 0
			if prev, err = s.UpdateJobNode(ctx, high); err != nil {
				t.Fatal(err)
			}
			if prev.LatestEventID != high.LatestEventID {
				t.Fatalf("latest event %d, want %d", prev.LatestEventID, high.LatestEventID)
			}
			end := prev
			end.State, end.FinishedAt = jobs.NodeFinished, &now
			got, _, err := s.UpdateJobNodeFrom(ctx, prev, end, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: prev.Name})
			if err != nil {
				t.Fatal(err)
			}
			if got.LatestEventID <= high.LatestEventID {
				t.Fatalf("the result's event id %d is not after the record's latest %d", got.LatestEventID, high.LatestEventID)
			}
			stored, err := s.GetJobNode(ctx, j.ID, prev.Name)
			if err != nil || stored.LatestEventID != got.LatestEventID {
				t.Fatalf("stored latest event %d (%v), want %d", stored.LatestEventID, err, got.LatestEventID)
			}
			counts, err := s.JobCounts(ctx, j.ID)
			if err != nil || counts[jobs.NodeFinished] != 1 {
				t.Fatalf("counts %v (%v), want 1 finished", counts, err)
			}
			evs := eventsOf(t, s, j.ID)[prev.Name]
			if len(evs) == 0 || evs[len(evs)-1].ID != got.LatestEventID || evs[len(evs)-1].Type != jobs.EventNodeFinished {
				t.Fatalf("%s's events %+v, want its node_finished last, id %d", prev.Name, evs, got.LatestEventID)
			}
		})
	}
}

// TestOpenWithoutARead: in a job with counter shards whose records were all claimed at its
// creation, each counter shard counts its own records, so a result's update says whether the
// job surely has a node unfinished (open) without reading the job's counts: open until the
// result that ends its shard's last record; the counts stay the job's.
func TestOpenWithoutARead(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const n = 600 // two counter shards
	recs := nodes(n, jobs.NodeRunning)
	for i := range recs {
		recs[i].StartedAt = &now
	}
	j, err := s.CreateJob(ctx, newJob(), recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := s.ListJobNodes(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	closed := 0
	gets := e.ops.count("GetItem") + e.ops.count("BatchGetItem")
	for i, prev := range ns {
		end := prev
		end.State, end.FinishedAt = jobs.NodeFinished, &now
		if i%3 == 0 {
			end.State = jobs.NodeFailed
		}
		_, open, err := s.UpdateJobNodeFrom(ctx, prev, end, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: prev.Name})
		if err != nil {
			t.Fatal(err)
		}
		if !open {
			closed++
			counts, err := s.JobCounts(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if i < n-1 && counts.Unfinished() == 0 {
				t.Fatalf("result %d: the job is done before its last result", i)
			}
		}
	}
	// No result read anything but the two that closed their shard (the job's counts).
	if reads := e.ops.count("GetItem") + e.ops.count("BatchGetItem") - gets; reads > closed+n/16+1 {
		t.Errorf("%d results read %d times, want only the counts after each shard's last and the quota's looks (%d)", len(ns), reads, closed+n/16+1)
	}
	// One result per counter shard ends its last record: only those are not open.
	if closed != 2 {
		t.Fatalf("%d results said the job may be done, want 2 (one per counter shard)", closed)
	}
	counts, err := s.JobCounts(ctx, j.ID)
	if err != nil || counts.Unfinished() != 0 || counts[jobs.NodeFailed] != n/3 || counts[jobs.NodeFinished] != n-n/3 {
		t.Fatalf("counts %v (%v), want %d failed and %d finished", counts, err, n/3, n-n/3)
	}
}

// TestRecountWaitsForCountersAhead: in a job whose results move the counters before the
// record (UpdateJobNodeFrom), a recount refuses while a counter shard moved less than
// RecountSettle ago (that result's record write may still be on its way), and goes ahead
// after it.
func TestRecountWaitsForCountersAhead(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := e.store(t, dynamo.WithGapWait(0, clock))
	ctx := t.Context()
	recs := nodes(600, jobs.NodeRunning)
	for i := range recs {
		recs[i].StartedAt = &now
	}
	j, err := s.CreateJob(ctx, newJob(), recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * dynamo.RecountSettle) // the creation has settled
	mu.Unlock()
	prev, err := s.GetJobNode(ctx, j.ID, "node-000")
	if err != nil {
		t.Fatal(err)
	}
	end := prev
	started := now.Add(-2 * dynamo.RecountSettle)
	end.State, end.StartedAt, end.FinishedAt = jobs.NodeFinished, &started, &started // times that say nothing moved
	if _, _, err := s.UpdateJobNodeFrom(ctx, prev, end, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: prev.Name}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecountJob(ctx, j.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a recount right after a counter shard moved: %v, want ErrConflict", err)
	}
	mu.Lock()
	now = now.Add(dynamo.RecountSettle + time.Second)
	mu.Unlock()
	if _, err := s.RecountJob(ctx, j.ID); err != nil {
		t.Fatalf("a recount once the shards settled: %v", err)
	}
	counts, err := s.JobCounts(ctx, j.ID)
	if err != nil || counts[jobs.NodeFinished] != 1 || counts[jobs.NodeRunning] != 599 {
		t.Fatalf("counts %v (%v), want 1 finished and 599 running", counts, err)
	}
}

// TestMayEndJobReleasesItsHold: a check whose caller gives up (its context ends while it
// waits for a record) releases the job's hold, so that the next caller checks at once
// rather than being refused for doneCheckHold.
func TestMayEndJobReleasesItsHold(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	now := time.Now()
	recs := nodes(600, jobs.NodeRunning)
	for i := range recs {
		recs[i].StartedAt = &now
	}
	j, err := s.CreateJob(t.Context(), newJob(), recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if may, err := s.MayEndJob(ctx, j.ID); may || err == nil {
		t.Fatalf("MayEndJob = %v, %v with its context ended while a record is running, want an error", may, err)
	}
	queries := e.ops.count("Query")
	if may, err := e.store(t).MayEndJob(t.Context(), j.ID); may || err != nil {
		t.Fatalf("MayEndJob = %v, %v with a record running", may, err)
	}
	if e.ops.count("Query") == queries {
		t.Fatal("the next caller was refused: the hold was not released")
	}
}
