package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
)

// claimReady is a claim's Apply: the record becomes ready with a transaction id of its own.
func claimReady(n jobs.Node) (jobs.Node, []jobs.Event) {
	n.State, n.TransactionID, n.ReadyAt = jobs.NodeReady, "txn-"+n.Name, ptr(at(10))
	n.DueAt = ptr(at(40))
	return n, nil
}

// claimRunning is a claim's Apply that starts the record at once, with an event saying so.
func claimRunning(n jobs.Node) (jobs.Node, []jobs.Event) {
	n.State, n.TransactionID, n.ReadyAt, n.StartedAt = jobs.NodeRunning, "txn-"+n.Name, ptr(at(10)), ptr(at(10))
	return n, []jobs.Event{newEvent(jobs.EventNodeRunning, n.Name, 10)}
}

func equalCounts(t *testing.T, what string, got, want jobs.StateCounts) {
	t.Helper()
	norm := func(c jobs.StateCounts) map[jobs.NodeState]int {
		out := map[jobs.NodeState]int{}
		for st, n := range c {
			if n != 0 {
				out[st] = n
			}
		}
		return out
	}
	if g, w := norm(got), norm(want); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("%s: counts %v, want %v", what, g, w)
	}
}

func names(ns []jobs.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

func runProgress(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CountsFollowEveryWrite", func(t *testing.T) {
		s := newStore(t)
		nodes := newNodes("a", "b", "c", "d")
		nodes[3].State = jobs.NodeErrored
		j, err := s.CreateJob(t.Context(), newJob(1, 4), nodes, nil)
		must(t, "create", err)
		c, err := s.JobCounts(t.Context(), j.ID)
		must(t, "counts", err)
		equalCounts(t, "after create", c, jobs.StateCounts{jobs.NodeNew: 3, jobs.NodeErrored: 1})

		setNodeState(t, s, j.ID, "a", jobs.NodeReady)
		setNodeState(t, s, j.ID, "a", jobs.NodeRunning)
		setNodeState(t, s, j.ID, "b", jobs.NodeRunning)
		setNodeState(t, s, j.ID, "b", jobs.NodeFailed)
		n := getJobNode(t, s, j.ID, "c")
		n.Message = "same state"
		_, err = s.UpdateJobNode(t.Context(), n)
		must(t, "update without state change", err)
		c, err = s.JobCounts(t.Context(), j.ID)
		must(t, "counts", err)
		equalCounts(t, "after updates", c, jobs.StateCounts{jobs.NodeNew: 1, jobs.NodeRunning: 1, jobs.NodeFailed: 1, jobs.NodeErrored: 1})
		if c.Active() != 1 || c.Unfinished() != 2 || c.Failures() != 2 || c.Total() != 4 {
			t.Fatalf("derived counts of %v: active %d unfinished %d failures %d total %d", c, c.Active(), c.Unfinished(), c.Failures(), c.Total())
		}

		// A refused update changes no count.
		stale := getJobNode(t, s, j.ID, "c")
		stale.Version--
		stale.State = jobs.NodeFinished
		_, err = s.UpdateJobNode(t.Context(), stale)
		mustErrIs(t, "stale update", err, store.ErrConflict)
		c, err = s.JobCounts(t.Context(), j.ID)
		must(t, "counts", err)
		equalCounts(t, "after a refused update", c, jobs.StateCounts{jobs.NodeNew: 1, jobs.NodeRunning: 1, jobs.NodeFailed: 1, jobs.NodeErrored: 1})
	})

	t.Run("CountsOfUnknownAndEmptyJobs", func(t *testing.T) {
		s := newStore(t)
		_, err := s.JobCounts(t.Context(), 4242)
		mustErrIs(t, "unknown job", err, store.ErrNotFound)
		j, err := s.CreateJob(t.Context(), newJob(1, 0), nil, nil)
		must(t, "create", err)
		c, err := s.JobCounts(t.Context(), j.ID)
		must(t, "counts of a job without nodes", err)
		equalCounts(t, "empty job", c, jobs.StateCounts{})
	})

	t.Run("ListInStateInCreationOrder", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "z", "y", "x", "w", "v")
		setNodeState(t, s, j.ID, "y", jobs.NodeReady)
		setNodeState(t, s, j.ID, "w", jobs.NodeReady)
		setNodeState(t, s, j.ID, "w", jobs.NodeRunning)
		setNodeState(t, s, j.ID, "x", jobs.NodeReady)
		tests := []struct {
			state jobs.NodeState
			limit int
			want  []string
		}{
			{jobs.NodeNew, 10, []string{"z", "v"}},
			{jobs.NodeNew, 1, []string{"z"}},
			{jobs.NodeReady, 10, []string{"y", "x"}},
			{jobs.NodeRunning, 10, []string{"w"}},
			{jobs.NodeFinished, 10, []string{}},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s limit %d", tt.state, tt.limit), func(t *testing.T) {
				got, err := s.ListJobNodesInState(t.Context(), j.ID, tt.state, tt.limit)
				must(t, "list", err)
				if g := names(got); !slices.Equal(g, tt.want) {
					t.Fatalf("records %v, want %v", g, tt.want)
				}
				for _, n := range got {
					equalNode(t, "listed record", n, getJobNode(t, s, j.ID, n.Name))
				}
			})
		}
		if _, err := s.ListJobNodesInState(t.Context(), j.ID, jobs.NodeNew, 0); err == nil {
			t.Fatal("a zero limit was accepted")
		}
	})

	t.Run("UpdateManyIndependently", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a", "b", "c")
		a, b, c := getJobNode(t, s, j.ID, "a"), getJobNode(t, s, j.ID, "b"), getJobNode(t, s, j.ID, "c")
		b.Version++ // stale
		for _, n := range []*jobs.Node{&a, &b, &c} {
			n.State, n.Message = jobs.NodeReady, "claimed"
		}
		out, errs := s.UpdateJobNodes(t.Context(), []store.NodeUpdate{
			{Node: a, Events: []jobs.Event{newEvent(jobs.EventNodeRunning, "a", 1)}},
			{Node: b},
			{Node: c, Events: []jobs.Event{newEvent(jobs.EventNodeRunning, "c", 2)}},
		})
		if len(out) != 3 || len(errs) != 3 {
			t.Fatalf("%d results and %d errors for 3 updates", len(out), len(errs))
		}
		must(t, "update a", errs[0])
		mustErrIs(t, "stale update of b", errs[1], store.ErrConflict)
		must(t, "update c", errs[2])
		equalNode(t, "a as returned", out[0], getJobNode(t, s, j.ID, "a"))
		equalNode(t, "c as returned", out[2], getJobNode(t, s, j.ID, "c"))
		if out[0].LatestEventID == 0 || out[2].LatestEventID <= out[0].LatestEventID {
			t.Fatalf("latest event ids %d, %d: want increasing, after the events appended", out[0].LatestEventID, out[2].LatestEventID)
		}
		if got := getJobNode(t, s, j.ID, "b"); got.State != jobs.NodeNew {
			t.Fatalf("b after its refused update: %s", got.State)
		}
		evs, err := s.ListEvents(t.Context(), j.ID, 1, 0)
		must(t, "events", err)
		if len(evs) != 2 {
			t.Fatalf("%d events after two updates with one event each", len(evs))
		}
		cnt, err := s.JobCounts(t.Context(), j.ID)
		must(t, "counts", err)
		equalCounts(t, "after the batch", cnt, jobs.StateCounts{jobs.NodeReady: 2, jobs.NodeNew: 1})
	})

	t.Run("UpdateNodeAndJobTogether", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a")
		n := getJobNode(t, s, j.ID, "a")
		n.State = jobs.NodeFinished
		job, err := s.GetJob(t.Context(), j.ID)
		must(t, "get", err)
		job.State = jobs.StateFinished
		gotNode, gotJob, err := s.UpdateJobNodeAndJob(t.Context(), n, []jobs.Event{newEvent(jobs.EventNodeFinished, "a", 1)},
			job, []jobs.Event{newEvent(jobs.EventJobFinished, "", 2)})
		must(t, "update both", err)
		equalNode(t, "node as returned", gotNode, getJobNode(t, s, j.ID, "a"))
		stored, err := s.GetJob(t.Context(), j.ID)
		must(t, "get", err)
		equalJob(t, "job as returned", gotJob, stored)
		if stored.State != jobs.StateFinished || gotNode.LatestEventID != 1 {
			t.Fatalf("after the update: job %s, node latest event %d", stored.State, gotNode.LatestEventID)
		}
		evs, err := s.ListEvents(t.Context(), j.ID, 1, 0)
		must(t, "events", err)
		if len(evs) != 2 || evs[1].Type != jobs.EventJobFinished {
			t.Fatalf("events %s", show(evs))
		}
		c, err := s.JobCounts(t.Context(), j.ID)
		must(t, "counts", err)
		equalCounts(t, "counts", c, jobs.StateCounts{jobs.NodeFinished: 1})

		// A stale node version writes nothing.
		k := createJob(t, s, 2, jobs.StateRunning, "b")
		kn := getJobNode(t, s, k.ID, "b")
		kn.Version++
		kj, err := s.GetJob(t.Context(), k.ID)
		must(t, "get", err)
		kj.State = jobs.StateFinished
		_, _, err = s.UpdateJobNodeAndJob(t.Context(), kn, nil, kj, nil)
		mustErrIs(t, "stale node", err, store.ErrConflict)
		if got, _ := s.GetJob(t.Context(), k.ID); got.State != jobs.StateRunning || got.Version != kj.Version {
			t.Fatalf("the job was written although its node was stale: %s v%d", got.State, got.Version)
		}
	})

	t.Run("DueRecords", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a", "b", "c", "d")
		for name, due := range map[string]int{"a": 30, "b": 10, "c": 20} {
			n := getJobNode(t, s, j.ID, name)
			n.State, n.DueAt = jobs.NodeReady, ptr(at(due))
			_, err := s.UpdateJobNode(t.Context(), n)
			must(t, "set due", err)
		}
		tests := []struct {
			now, limit int
			want       []string
		}{
			{5, 10, []string{}},
			{10, 10, []string{"b"}},
			{25, 10, []string{"b", "c"}},
			{100, 10, []string{"b", "c", "a"}},
			{100, 2, []string{"b", "c"}},
		}
		for _, tt := range tests {
			got, err := s.ListDueJobNodes(t.Context(), at(tt.now), tt.limit)
			must(t, "list due", err)
			if g := names(got); !slices.Equal(g, tt.want) {
				t.Fatalf("due at +%ds (limit %d): %v, want %v", tt.now, tt.limit, g, tt.want)
			}
		}
		// Clearing DueAt takes a record out.
		n := getJobNode(t, s, j.ID, "b")
		n.DueAt = nil
		_, err := s.UpdateJobNode(t.Context(), n)
		must(t, "clear due", err)
		got, err := s.ListDueJobNodes(t.Context(), at(100), 10)
		must(t, "list due", err)
		if g := names(got); !slices.Equal(g, []string{"c", "a"}) {
			t.Fatalf("due after clearing b: %v", g)
		}
	})
}

func runClaims(t *testing.T, newStore func(t *testing.T) store.Store) {
	claim := func(t *testing.T, s store.Store, jobID int64, limit, global int) []jobs.Node {
		t.Helper()
		got, err := s.ClaimJobNodes(t.Context(), jobID, store.Claim{Limit: limit, GlobalCap: global, Apply: claimReady})
		must(t, "claim", err)
		return got
	}
	t.Run("OldestFirstUpToLimit", func(t *testing.T) {
		s := newStore(t)
		j := newJob(1, 5)
		j.Concurrency = 0
		created, err := s.CreateJob(t.Context(), j, newNodes("e", "d", "c", "b", "a"), nil)
		must(t, "create", err)
		got := claim(t, s, created.ID, 2, 0)
		if g := names(got); !slices.Equal(g, []string{"e", "d"}) {
			t.Fatalf("claimed %v, want [e d]", g)
		}
		for _, n := range got {
			equalNode(t, "claimed record", n, getJobNode(t, s, created.ID, n.Name))
			if n.State != jobs.NodeReady || n.TransactionID != "txn-"+n.Name {
				t.Fatalf("claimed record %+v was not written as Apply made it", n)
			}
		}
		if g := names(claim(t, s, created.ID, 10, 0)); !slices.Equal(g, []string{"c", "b", "a"}) {
			t.Fatalf("second claim %v, want [c b a]", g)
		}
		if g := claim(t, s, created.ID, 10, 0); len(g) != 0 {
			t.Fatalf("claim with nothing queued took %v", names(g))
		}
	})

	t.Run("WithEvents", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a", "b", "c")
		// An event before the claim, so that ids do not start at 1.
		n := getJobNode(t, s, j.ID, "c")
		n.Message = "before"
		_, err := s.UpdateJobNode(t.Context(), n, newEvent(jobs.EventNodeSkipped, "c", 1))
		must(t, "update", err)
		got, err := s.ClaimJobNodes(t.Context(), j.ID, store.Claim{Limit: 2, Apply: claimRunning})
		must(t, "claim", err)
		if g := names(got); !slices.Equal(g, []string{"a", "b"}) {
			t.Fatalf("claimed %v", g)
		}
		for i, n := range got {
			equalNode(t, "claimed record", n, getJobNode(t, s, j.ID, n.Name))
			if n.State != jobs.NodeRunning || n.LatestEventID != int64(i+2) {
				t.Fatalf("claimed %s: state %s, latest event %d; want running, %d", n.Name, n.State, n.LatestEventID, i+2)
			}
		}
		evs, err := s.ListEvents(t.Context(), j.ID, 1, 0)
		must(t, "events", err)
		if len(evs) != 3 || evs[1].Node != "a" || evs[2].Node != "b" || evs[2].ID != 3 {
			t.Fatalf("events after a claim with events: %s", show(evs))
		}
		c, err := s.JobCounts(t.Context(), j.ID)
		must(t, "counts", err)
		equalCounts(t, "after the claim", c, jobs.StateCounts{jobs.NodeRunning: 2, jobs.NodeNew: 1})
	})

	t.Run("AtCreation", func(t *testing.T) {
		s := newStore(t)
		// Another job holds two slots of a server-wide cap of 5.
		other := newJob(9, 2)
		other.Concurrency, other.State = 0, jobs.StateRunning
		o, err := s.CreateJob(t.Context(), other, newNodes("x", "y"), nil)
		must(t, "create other", err)
		claim(t, s, o.ID, 2, 0)

		j := newJob(1, 6)
		j.Concurrency, j.State = 0, jobs.StateRunning
		nodes := newNodes("a", "b", "c", "d", "e", "f")
		nodes[1].State = jobs.NodeErrored // not enrolled: not queued
		created, claimed, err := s.CreateJobClaiming(t.Context(), j, nodes, []jobs.Event{newEvent(jobs.EventNodeErrored, "b", 1)},
			store.Claim{Limit: 10, GlobalCap: 5, Apply: claimRunning})
		must(t, "create claiming", err)
		if g := names(claimed); !slices.Equal(g, []string{"a", "c", "d"}) {
			t.Fatalf("claimed at creation %v, want the 3 queued ones the cap leaves room for", g)
		}
		for i, n := range claimed {
			equalNode(t, "claimed record", n, getJobNode(t, s, created.ID, n.Name))
			if n.State != jobs.NodeRunning || n.LatestEventID != int64(i+2) {
				t.Fatalf("claimed %s: %s, latest event %d; want running, %d", n.Name, n.State, n.LatestEventID, i+2)
			}
		}
		c, err := s.JobCounts(t.Context(), created.ID)
		must(t, "counts", err)
		equalCounts(t, "after creation", c, jobs.StateCounts{jobs.NodeRunning: 3, jobs.NodeErrored: 1, jobs.NodeNew: 2})
		evs, err := s.ListEvents(t.Context(), created.ID, 1, 0)
		must(t, "events", err)
		if len(evs) != 4 || evs[0].Node != "b" || evs[1].Node != "a" || evs[3].Node != "d" {
			t.Fatalf("events: %s", show(evs))
		}
		if b := getJobNode(t, s, created.ID, "b"); b.LatestEventID != 1 {
			t.Fatalf("initial event of b: latest event %d", b.LatestEventID)
		}
		// The rest are claimed later as usual.
		if g := names(claim(t, s, created.ID, 10, 0)); !slices.Equal(g, []string{"e", "f"}) {
			t.Fatalf("later claim %v", g)
		}

		// With the job's own concurrency.
		k := newJob(2, 3) // Concurrency 2
		k.State = jobs.StateRunning
		_, claimed, err = s.CreateJobClaiming(t.Context(), k, newNodes("p", "q", "r"), nil, store.Claim{Limit: 10, Apply: claimReady})
		must(t, "create claiming", err)
		if g := names(claimed); !slices.Equal(g, []string{"p", "q"}) {
			t.Fatalf("claimed %v under concurrency 2", g)
		}
		// A taken idempotency key: nothing written.
		dup := newJob(3, 1)
		dup.IdempotencyKey, dup.Owner.Login = "k1", "alice"
		_, err = s.CreateJob(t.Context(), dup, newNodes("z"), nil)
		must(t, "create keyed", err)
		before, _, err := s.ListJobs(t.Context(), store.JobQuery{})
		must(t, "list", err)
		_, _, err = s.CreateJobClaiming(t.Context(), dup, newNodes("z"), nil, store.Claim{Limit: 1, Apply: claimReady})
		mustErrIs(t, "create with a taken key", err, store.ErrExists)
		after, _, err := s.ListJobs(t.Context(), store.JobQuery{})
		must(t, "list", err)
		if len(after) != len(before) {
			t.Fatalf("%d jobs after a refused create, want %d", len(after), len(before))
		}
	})

	t.Run("JobConcurrency", func(t *testing.T) {
		s := newStore(t)
		j := newJob(1, 5) // Concurrency 2
		created, err := s.CreateJob(t.Context(), j, newNodes("a", "b", "c", "d", "e"), nil)
		must(t, "create", err)
		if g := names(claim(t, s, created.ID, 10, 0)); !slices.Equal(g, []string{"a", "b"}) {
			t.Fatalf("claimed %v, want the 2 the concurrency allows", g)
		}
		if g := claim(t, s, created.ID, 10, 0); len(g) != 0 {
			t.Fatalf("claim at the concurrency limit took %v", names(g))
		}
		setNodeState(t, s, created.ID, "a", jobs.NodeRunning)
		setNodeState(t, s, created.ID, "a", jobs.NodeFinished)
		if g := names(claim(t, s, created.ID, 10, 0)); !slices.Equal(g, []string{"c"}) {
			t.Fatalf("claim after one ended: %v, want [c]", g)
		}
	})

	t.Run("GlobalCapAcrossJobs", func(t *testing.T) {
		s := newStore(t)
		mk := func(i int, nodes ...string) int64 {
			j := newJob(i, len(nodes))
			j.Concurrency, j.State = 0, jobs.StateRunning
			created, err := s.CreateJob(t.Context(), j, newNodes(nodes...), nil)
			must(t, "create", err)
			return created.ID
		}
		j1, j2 := mk(1, "a", "b", "c"), mk(2, "a", "b", "c")
		if g := claim(t, s, j1, 10, 4); len(g) != 3 {
			t.Fatalf("first job claimed %d, want 3", len(g))
		}
		if g := names(claim(t, s, j2, 10, 4)); !slices.Equal(g, []string{"a"}) {
			t.Fatalf("second job claimed %v under a global cap of 4 with 3 active", g)
		}
		// Records of a finished job no longer count.
		for _, n := range []string{"a", "b", "c"} {
			setNodeState(t, s, j1, n, jobs.NodeRunning)
			setNodeState(t, s, j1, n, jobs.NodeFinished)
		}
		job, err := s.GetJob(t.Context(), j1)
		must(t, "get", err)
		job.State = jobs.StateFinished
		_, err = s.UpdateJob(t.Context(), job)
		must(t, "finish", err)
		if g := names(claim(t, s, j2, 10, 4)); !slices.Equal(g, []string{"b", "c"}) {
			t.Fatalf("second job claimed %v once the first finished", g)
		}
		active, err := s.CountActiveNodes(t.Context())
		must(t, "count active", err)
		if active != 3 {
			t.Fatalf("CountActiveNodes = %d, want 3", active)
		}
	})

	t.Run("StoppedOrTerminalJobsGetNone", func(t *testing.T) {
		s := newStore(t)
		for _, tt := range []struct {
			name  string
			state jobs.State
			stop  string
		}{{"stop requested", jobs.StateStopping, "graceful"}, {"finished", jobs.StateFinished, ""}, {"failed", jobs.StateFailed, ""}} {
			t.Run(tt.name, func(t *testing.T) {
				j := newJob(1, 2)
				j.State, j.Stop = tt.state, tt.stop
				created, err := s.CreateJob(t.Context(), j, newNodes("a", "b"), nil)
				must(t, "create", err)
				if g := claim(t, s, created.ID, 10, 0); len(g) != 0 {
					t.Fatalf("claimed %v", names(g))
				}
			})
		}
		_, err := s.ClaimJobNodes(t.Context(), 4242, store.Claim{Limit: 1, Apply: claimReady})
		mustErrIs(t, "unknown job", err, store.ErrNotFound)
	})

	t.Run("BadClaimsRefused", func(t *testing.T) {
		s := newStore(t)
		j := createJob(t, s, 1, jobs.StateRunning, "a")
		for _, c := range []store.Claim{
			{Limit: 0, Apply: claimReady},
			{Limit: 1},
			{Limit: 1, Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) { n.State = jobs.NodeFinished; return n, nil }},
			{Limit: 1, Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) { n.Name = "other"; n.State = jobs.NodeReady; return n, nil }},
		} {
			if _, err := s.ClaimJobNodes(t.Context(), j.ID, c); err == nil {
				t.Fatalf("claim %+v was accepted", c)
			}
		}
		if n := getJobNode(t, s, j.ID, "a"); n.State != jobs.NodeNew || n.Version != 1 {
			t.Fatalf("record after refused claims: %+v", n)
		}
	})

	t.Run("ConcurrentClaimsDisjointWithinCaps", func(t *testing.T) {
		s := newStore(t)
		const nodes, claimers = 30, 8
		var list []string
		for i := range nodes {
			list = append(list, fmt.Sprintf("n%02d", i))
		}
		j := newJob(1, nodes)
		j.Concurrency, j.State = 12, jobs.StateRunning
		created, err := s.CreateJob(t.Context(), j, newNodes(list...), nil)
		must(t, "create", err)
		var (
			mu  sync.Mutex
			got []string
			wg  sync.WaitGroup
		)
		for range claimers {
			wg.Go(func() {
				c, err := s.ClaimJobNodes(t.Context(), created.ID, store.Claim{Limit: 3, Apply: claimReady})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				got = append(got, names(c)...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(got)
		if len(got) != 12 || len(slices.Compact(slices.Clone(got))) != 12 {
			t.Fatalf("concurrent claims took %v: want 12 distinct records (the concurrency)", got)
		}
		c, err := s.JobCounts(t.Context(), created.ID)
		must(t, "counts", err)
		equalCounts(t, "after concurrent claims", c, jobs.StateCounts{jobs.NodeReady: 12, jobs.NodeNew: nodes - 12})
	})
}

func runNodeState(t *testing.T, newStore func(t *testing.T) store.Store) {
	create := func(t *testing.T, s store.Store, name, facts string) {
		t.Helper()
		n := newInvNode(name)
		n.Facts = json.RawMessage(facts)
		_, err := s.CreateNode(t.Context(), n)
		must(t, "create node", err)
	}
	t.Run("EnrolledAndNames", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"web2", "db1", "web1"} {
			create(t, s, n, `{}`)
		}
		names, err := s.NodeNames(t.Context())
		must(t, "names", err)
		if !slices.Equal(names, []string{"db1", "web1", "web2"}) {
			t.Fatalf("NodeNames = %v", names)
		}
		var ask []string
		for i := range 1200 { // more than one statement or batch of look-ups
			ask = append(ask, fmt.Sprintf("ghost%d", i))
		}
		ask = append(ask, "web1", "db1", "web1")
		got, err := s.EnrolledNodes(t.Context(), ask)
		must(t, "enrolled", err)
		if len(got) != 2 || !got["web1"] || !got["db1"] {
			t.Fatalf("EnrolledNodes = %v, want web1 and db1", got)
		}
	})

	t.Run("CreateManyAllOrNothing", func(t *testing.T) {
		s := newStore(t)
		batch := func(names ...string) []inventory.Node {
			out := make([]inventory.Node, len(names))
			for i, n := range names {
				out[i] = newInvNode(n)
			}
			return out
		}
		must(t, "create three", s.CreateNodes(t.Context(), batch("a", "b", "c")))
		for _, name := range []string{"a", "b", "c"} {
			n, err := s.GetNode(t.Context(), name)
			must(t, "get", err)
			want := newInvNode(name)
			want.Version = 1
			equalInv(t, "created node", n, want)
		}
		var big []string
		for i := range 250 { // more than one DynamoDB transaction
			big = append(big, fmt.Sprintf("big%03d", i))
		}
		for _, tt := range []struct {
			name  string
			nodes []string
		}{
			{"one taken", []string{"x", "b", "y"}},
			{"one given twice", []string{"x", "y", "x"}},
			{"one taken after many", append(append([]string{}, big...), "c")},
		} {
			t.Run(tt.name, func(t *testing.T) {
				mustErrIs(t, "create", s.CreateNodes(t.Context(), batch(tt.nodes...)), store.ErrExists)
				names, err := s.NodeNames(t.Context())
				must(t, "names", err)
				if !slices.Equal(names, []string{"a", "b", "c"}) {
					t.Fatalf("after a refused batch the inventory holds %d nodes, want a, b and c", len(names))
				}
			})
		}
		must(t, "create many", s.CreateNodes(t.Context(), batch(big...)))
		names, err := s.NodeNames(t.Context())
		must(t, "names", err)
		if len(names) != 253 {
			t.Fatalf("%d nodes after creating 250 more, want 253", len(names))
		}
	})

	t.Run("FactsAndTheirValues", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a", `{"os":{"family":"Debian","release":{"major":12}},"role":"web","up":true,"list":[1,2],"nil":null}`)
		create(t, s, "b", `{"os":{"family":"RedHat"},"role":{"name":"db"}}`)
		create(t, s, "c", `{}`)
		tests := []struct {
			path []string
			want string
		}{
			{[]string{"os", "family"}, "map[a:Debian b:RedHat]"},
			{[]string{"os", "release", "major"}, "map[a:12]"},
			{[]string{"role"}, "map[a:web]"}, // b's role is an object: not a scalar
			{[]string{"up"}, "map[a:true]"},
			{[]string{"list"}, "map[]"},
			{[]string{"nil"}, "map[]"},
			{[]string{"os"}, "map[]"},
			{[]string{"missing", "x"}, "map[]"},
		}
		check := func(t *testing.T) {
			for _, tt := range tests {
				got, err := s.FactValues(t.Context(), tt.path)
				must(t, "fact values", err)
				if fmt.Sprint(got) != tt.want {
					t.Fatalf("FactValues(%q) = %v, want %s", tt.path, got, tt.want)
				}
			}
		}
		check(t)
		check(t) // asked again (an index may now serve it)
		got, err := s.FactValues(t.Context(), []string{"os", "release", "major"})
		must(t, "fact values", err)
		if _, ok := got["a"].(json.Number); !ok {
			t.Fatalf("a number fact came back as %T, want json.Number", got["a"])
		}

		before, err := s.GetNode(t.Context(), "c")
		must(t, "get", err)
		must(t, "same facts", s.SetNodeFacts(t.Context(), "c", []byte(`{}`)))
		if n, _ := s.GetNode(t.Context(), "c"); n.Version != before.Version {
			t.Fatalf("writing the facts a node has changed its version %d to %d", before.Version, n.Version)
		}
		must(t, "new facts", s.SetNodeFacts(t.Context(), "c", []byte(`{"os":{"family":"Debian"},"role":"db"}`)))
		after, err := s.GetNode(t.Context(), "c")
		must(t, "get", err)
		if after.Version != before.Version+1 || string(normJSON(after.Facts)) != `{"os":{"family":"Debian"},"role":"db"}` {
			t.Fatalf("after new facts: version %d (was %d), facts %s", after.Version, before.Version, after.Facts)
		}
		must(t, "facts of a", s.SetNodeFacts(t.Context(), "a", []byte(`{"role":"web"}`)))
		must(t, "delete b", s.DeleteNode(t.Context(), "b"))
		tests = []struct {
			path []string
			want string
		}{
			{[]string{"os", "family"}, "map[c:Debian]"},
			{[]string{"role"}, "map[a:web c:db]"},
			{[]string{"os", "release", "major"}, "map[]"},
		}
		check(t)
		mustErrIs(t, "facts of an unknown node", s.SetNodeFacts(t.Context(), "ghost", []byte(`{}`)), store.ErrNotFound)

		// UpdateNode with new facts keeps the values current too.
		n, err := s.GetNode(t.Context(), "a")
		must(t, "get", err)
		n.Facts = json.RawMessage(`{"role":"cache"}`)
		_, err = s.UpdateNode(t.Context(), n)
		must(t, "update", err)
		got, err = s.FactValues(t.Context(), []string{"role"})
		must(t, "fact values", err)
		if fmt.Sprint(got) != "map[a:cache c:db]" {
			t.Fatalf("after UpdateNode: %v", got)
		}
	})

	t.Run("Connections", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a", `{"role":"web"}`)
		create(t, s, "b", `{}`)
		must(t, "connect a", s.MarkNodeConnected(t.Context(), "a", "pcp://x/server", "c1", at(5)))
		n, err := s.GetNode(t.Context(), "a")
		must(t, "get", err)
		if !n.Connected || n.Connection != "c1" || n.Broker != "pcp://x/server" || !normTime(*n.ConnectedAt).Equal(normTime(at(5))) ||
			string(normJSON(n.Facts)) != `{"role":"web"}` || n.Version != 2 {
			t.Fatalf("after connect: %+v", n)
		}
		must(t, "reconnect a", s.MarkNodeConnected(t.Context(), "a", "pcp://x/server", "c2", at(6)))
		// A connect recorded late, for a connection made before c2, changes nothing.
		must(t, "late connect of an older connection", s.MarkNodeConnected(t.Context(), "a", "pcp://x/server", "c0", at(5)))
		if n, _ := s.GetNode(t.Context(), "a"); n.Connection != "c2" || !normTime(*n.ConnectedAt).Equal(normTime(at(6))) || n.Version != 3 {
			t.Fatalf("a late connect of an older connection replaced the newer one: %+v", n)
		}
		must(t, "disconnect of the old connection", s.MarkNodeDisconnected(t.Context(), "a", "c1"))
		if n, _ := s.GetNode(t.Context(), "a"); !n.Connected || n.Connection != "c2" {
			t.Fatalf("the old connection's close disconnected the node: %+v", n)
		}
		must(t, "disconnect", s.MarkNodeDisconnected(t.Context(), "a", "c2"))
		if n, _ := s.GetNode(t.Context(), "a"); n.Connected {
			t.Fatalf("still connected: %+v", n)
		}
		must(t, "connect a", s.MarkNodeConnected(t.Context(), "a", "pcp://x/server", "c3", at(7)))
		must(t, "connect b", s.MarkNodeConnected(t.Context(), "b", "pcp://x/server", "c4", at(7)))
		must(t, "disconnect all", s.MarkAllNodesDisconnected(t.Context()))
		for _, name := range []string{"a", "b"} {
			if n, _ := s.GetNode(t.Context(), name); n.Connected {
				t.Fatalf("%s connected after MarkAllNodesDisconnected", name)
			}
		}
		mustErrIs(t, "connect unknown", s.MarkNodeConnected(t.Context(), "ghost", "b", "c", at(1)), store.ErrNotFound)
		mustErrIs(t, "disconnect unknown", s.MarkNodeDisconnected(t.Context(), "ghost", ""), store.ErrNotFound)
	})
}
