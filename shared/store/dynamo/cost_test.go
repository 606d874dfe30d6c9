package dynamo_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// Budgets per node-run of the store's work, which doc.go derives ("Cost per node-run"). A
// node-run here is what the orchestrator does for one node: its record is claimed (running,
// with a node_running event), its result is written (finished, with its event), and the job's
// counts are read after each result (advance), which then refills the freed slot.
var budgets = map[regime]runCost{
	// Every record claimed in the write that creates the job.
	atCreation: {wcu: 5.5, rcu: 2.0, calls: 6},
	// Every record claimed by a refill after a result, one at a time (a job whose
	// Concurrency keeps it at its cap): the costliest steady state.
	byRefill: {wcu: 7.5, rcu: 6.5, calls: 12},
}

// shardedBudgets are the budgets of a job with counter shards (two here): the job's counts
// are the counters item and its shards (a read of each after every result, and in each
// claim round).
var shardedBudgets = map[regime]runCost{
	// Each counter shard counts its own records (a result reads no counts until its shard
	// has none unfinished) and the creation's events are packed (packs.go).
	atCreation: {wcu: 4.5, rcu: 1.0, calls: 4},
	byRefill:   {wcu: 7.5, rcu: 10.5, calls: 12},
}

// targetJobRate is the rate of node-runs of one job the key design is sized for; no
// partition key may then take more than a partition's 1,000 WCU/s or 3,000 RCU/s. A job
// whose records are claimed by refills one at a time writes its counters item once per
// node-run (the claim cursor: claims of one job take turns on it): it is sized for 400.
var targetJobRate = map[regime]float64{atCreation: 1000, byRefill: 400}

// bigJob is the size of the big job: 2,000 nodes, 1,000 under the race detector (which
// slows the emulator tenfold; the per-node-run figures are the same).
var bigJob = map[bool]int{false: 2000, true: 1000}[raceEnabled]

type regime string

const (
	atCreation regime = "claimed at creation"
	byRefill   regime = "claimed by refills"
)

// runCost is what one job of n nodes cost, per node-run.
type runCost struct {
	wcu, rcu, calls float64
	hotW, hotR      float64 // units per node-run on the busiest partition key
	hotWKey         partKey
	hotRKey         partKey
}

func (c runCost) String() string {
	return fmt.Sprintf("%.2f WCU, %.2f RCU, %.2f calls per node-run; hottest keys %v %.3f WCU and %v %.3f RCU per node-run",
		c.wcu, c.rcu, c.calls, c.hotWKey, c.hotW, c.hotRKey, c.hotR)
}

// measure runs one job of n nodes through the store the way the orchestrator does (create,
// claim, result, counts, refill) and returns its cost per node-run. claimAtCreation claims
// the first batch in the write that creates the job (CreateJobClaiming).
func measure(t *testing.T, n int, r regime, opt dynamo.Option) runCost {
	t.Helper()
	e := newEnv(t)
	m := newMeter()
	s := e.store(t, dynamo.WithMeter(m), opt)
	ctx := t.Context()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	claim := func(nd jobs.Node) (jobs.Node, []jobs.Event) {
		nd.State, nd.TransactionID = jobs.NodeRunning, jobs.TransactionID(nd.JobID, "u-"+nd.Name)
		nd.ReadyAt, nd.StartedAt = &now, &now
		return nd, []jobs.Event{{Type: jobs.EventNodeRunning, Timestamp: now, Node: nd.Name, Message: "Started package::install on " + nd.Name}}
	}
	const refillBatch, globalCap = 8, 250
	in := newJob()
	in.NodeCount = n
	before := e.ops.total()
	var running []jobs.Node
	var job jobs.Job
	var err error
	if r == atCreation {
		in.Concurrency = 0
		job, running, err = s.CreateJobClaiming(ctx, in, nodes(n, jobs.NodeNew), nil,
			store.Claim{Limit: n, Apply: claim})
	} else {
		in.Concurrency = 16
		job, err = s.CreateJob(ctx, in, nodes(n, jobs.NodeNew), nil)
		if err == nil {
			running, err = s.ClaimJobNodes(ctx, job.ID, store.Claim{Limit: refillBatch, GlobalCap: globalCap, Apply: claim})
		}
	}
	if err != nil {
		t.Fatalf("create and claim: %v", err)
	}
	done := 0
	for len(running) > 0 {
		nd := running[0]
		running = running[1:]
		prev := nd
		nd.State, nd.FinishedAt, nd.Message = jobs.NodeFinished, &now, "Finished on "+nd.Name
		nd.Result = []byte(`{"_output":"ok"}`)
		_, open, err := s.UpdateJobNodeFrom(ctx, prev, nd, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: nd.Name, Message: nd.Message})
		if err != nil {
			t.Fatalf("result of %s: %v", nd.Name, err)
		}
		done++
		if open {
			continue // the job is not done, and nothing is queued: the orchestrator reads no counts
		}
		counts, err := s.JobCounts(ctx, job.ID)
		if err != nil {
			t.Fatalf("counts: %v", err)
		}
		if counts[jobs.NodeNew] > 0 {
			more, err := s.ClaimJobNodes(ctx, job.ID, store.Claim{Limit: refillBatch, GlobalCap: globalCap, Apply: claim})
			if err != nil {
				t.Fatalf("refill: %v", err)
			}
			running = append(running, more...)
		}
	}
	if done != n {
		t.Fatalf("%d of %d nodes ran", done, n)
	}
	counts, err := s.JobCounts(ctx, job.ID)
	if err != nil || counts[jobs.NodeFinished] != n || counts.Total() != n {
		t.Fatalf("counts after the run: %v, %v; want %d finished", counts, err, n)
	}
	if active, err := s.CountActiveNodes(ctx); err != nil || active != 0 {
		t.Fatalf("active nodes after the run: %d, %v", active, err)
	}
	rcu, wcu := m.totals()
	c := runCost{wcu: wcu / float64(n), rcu: rcu / float64(n), calls: float64(e.ops.total()-before) / float64(n)}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, u := range m.parts {
		if u.wcu/float64(n) > c.hotW {
			c.hotW, c.hotWKey = u.wcu/float64(n), k
		}
		if u.rcu/float64(n) > c.hotR {
			c.hotR, c.hotRKey = u.rcu/float64(n), k
		}
	}
	return c
}

// TestCostPerNodeRun measures the store's work per node-run at two job sizes, in the two
// regimes of budgets, and fails when it grows with the job, exceeds the budget, or puts a
// partition key above DynamoDB's per-partition limits at the target rate of one job. Both
// sizes run with counter shards (as every job of counterShardsFrom nodes or more does);
// the small job runs without too (as smaller jobs do), against the budgets of that design.
func TestCostPerNodeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs thousands of node-runs through the emulator")
	}
	for _, r := range []regime{atCreation, byRefill} {
		t.Run(string(r), func(t *testing.T) {
			plain := measure(t, 100, r, dynamo.WithCounterShardsFrom(0))
			t.Logf("100 nodes without counter shards: %v", plain)
			if b := budgets[r]; plain.wcu > b.wcu || plain.rcu > b.rcu || plain.calls > b.calls {
				t.Errorf("over budget (%.1f WCU, %.1f RCU, %.0f calls per node-run): %v", b.wcu, b.rcu, b.calls, plain)
			}
			sharded := dynamo.WithCounterShardsFrom(1)
			small, big := measure(t, 100, r, sharded), measure(t, bigJob, r, sharded)
			t.Logf("100 nodes: %v", small)
			t.Logf("%d nodes: %v", bigJob, big)
			// A small job spends more of its node-runs in its tail, where no refill follows a
			// result: allow 10% for that, far below what work growing with the job would show.
			grows := func(b, s float64) bool { return b > 1.1*s+0.1 }
			if grows(big.wcu, small.wcu) || grows(big.rcu, small.rcu) || grows(big.calls, small.calls) {
				t.Errorf("work per node-run grows with the job: 100 nodes %v; 2,000 nodes %v", small, big)
			}
			b := shardedBudgets[r]
			for _, c := range []runCost{small, big} {
				if c.wcu > b.wcu || c.rcu > b.rcu || c.calls > b.calls {
					t.Errorf("over budget (%.1f WCU, %.1f RCU, %.0f calls per node-run): %v", b.wcu, b.rcu, b.calls, c)
				}
			}
			// At the target rate, the busiest key of the big job must stay under a
			// partition's limits.
			rate := targetJobRate[r]
			if w, r := big.hotW*rate, big.hotR*rate; w > 1000 || r > 3000 {
				t.Errorf("at %.0f node-runs/s the busiest keys take %.0f WCU/s (%v) and %.0f RCU/s (%v): over a partition's 1,000 WCU/s or 3,000 RCU/s",
					rate, w, big.hotWKey, r, big.hotRKey)
			}
		})
	}
}
