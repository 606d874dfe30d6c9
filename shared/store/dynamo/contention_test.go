package dynamo_test

import (
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// TestClaimsUnderContention: 16 workers run a job's records the way concurrent result
// handlers do (running, finished, then a refill claim each), and concurrent claims take
// turns on the job's cursor: counts stay exact and every record runs once. Claims that
// lose their turn cost a refused conditional write each (DynamoDB bills them): the test
// logs the write units per node-run and bounds them, so that a change that makes contention
// costlier shows. A node-run here is about 10 write units uncontended (a ready claim with a
// due index entry, a running write with its event, a finished write with its event).
func TestClaimsUnderContention(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 600 node-runs through the emulator")
	}
	e := newEnv(t)
	m := newMeter()
	s := e.store(t, dynamo.WithMeter(m))
	ctx := t.Context()
	now := time.Now()
	claim := func(nd jobs.Node) (jobs.Node, []jobs.Event) {
		nd.State, nd.TransactionID = jobs.NodeReady, jobs.TransactionID(nd.JobID, "u-"+nd.Name)
		due := now.Add(time.Minute)
		nd.ReadyAt, nd.DueAt = &now, &due
		return nd, nil
	}
	in := newJob()
	in.Concurrency = 0
	const n = 600
	j, err := s.CreateJob(ctx, in, nodes(n, jobs.NodeNew), nil)
	if err != nil {
		t.Fatal(err)
	}
	work := make(chan jobs.Node, n)
	var cw sync.WaitGroup
	for range 8 {
		cw.Go(func() {
			first, err := s.ClaimJobNodes(ctx, j.ID, store.Claim{Limit: 256, GlobalCap: 250, Apply: claim})
			if err != nil {
				t.Errorf("claim: %v", err)
			}
			for _, nd := range first {
				work <- nd
			}
		})
	}
	cw.Wait()
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			for {
				var nd jobs.Node
				select {
				case nd = <-work:
				case <-time.After(3 * time.Second):
					return
				}
				// running
				nd.State, nd.StartedAt, nd.DueAt = jobs.NodeRunning, &now, nil
				r, err := s.UpdateJobNode(ctx, nd, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: now, Node: nd.Name})
				if err != nil {
					t.Errorf("running: %v", err)
					continue
				}
				r.State, r.FinishedAt = jobs.NodeFinished, &now
				if _, err := s.UpdateJobNode(ctx, r, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: nd.Name}); err != nil {
					t.Errorf("finish: %v", err)
					continue
				}
				mu.Lock()
				done++
				mu.Unlock()
				more, err := s.ClaimJobNodes(ctx, j.ID, store.Claim{Limit: 8, GlobalCap: 250, Apply: claim})
				if err != nil {
					t.Errorf("claim: %v", err)
				}
				for _, m := range more {
					work <- m
				}
			}
		})
	}
	wg.Wait()
	c, err := s.JobCounts(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := s.ListJobNodes(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done != n || c[jobs.NodeFinished] != n || jobs.Counts(ns)[jobs.NodeFinished] != n {
		t.Fatalf("ran %d of %d; counts %v, recount %v", done, n, c, jobs.Counts(ns))
	}
	rcu, wcu := m.totals()
	t.Logf("%.2f WCU, %.2f RCU per node-run with 16 workers", wcu/n, rcu/n)
	if wcu/n > 20 {
		t.Errorf("%.2f WCU per node-run under contention, want at most 20", wcu/n)
	}
}
