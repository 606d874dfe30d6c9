package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
	"github.com/baton-run/baton/shared/store/storetest"
)

// TestCountersMatchRecountUnderConcurrency runs one job's records through every transition
// the orchestrator makes, from many goroutines at once, the way concurrent Lambda
// invocations do: records claimed at creation (running, or ready for an agent that is not
// connected), sends recorded in batches (UpdateJobNodes) racing the results of the same
// records (a result that overtakes the send's record writes ready → finished with both
// events), duplicate results of one transaction, due-time moves that change no state (the
// sweep), refill claims after every result, and connect timeouts (ready → errored). At the
// end the job's counters must equal a recount of its records, every record must be
// terminal, the job must be seen done by its counts (no record left queued or active), and
// the event ids must be unique and increasing. A follower polls the job's events all along
// the way a PE client does (start = the last id it got + 1): it must get every event once,
// in id order. It runs for a job without counter shards and for one with (every update
// then adds to its record's shard, each shard its own event sequencer).
func TestCountersMatchRecountUnderConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hundreds of node-runs through the emulator")
	}
	for _, tc := range []struct {
		name string
		from int
	}{{"counters item", 0}, {"counter shards", 1}} {
		t.Run(tc.name, func(t *testing.T) { countersMatchRecount(t, dynamo.WithCounterShardsFrom(tc.from)) })
	}
}

func countersMatchRecount(t *testing.T, opt dynamo.Option) {
	e := newEnv(t)
	s := e.store(t, opt)
	ctx := t.Context()
	now := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	chance := func(p float64) bool {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.Float64() < p
	}
	// Apply: a third of the claims find the agent away (ready, due), the rest are recorded
	// running at once with their node_running event, as claimedRecord does.
	apply := func(n jobs.Node) (jobs.Node, []jobs.Event) {
		n.TransactionID = jobs.TransactionID(n.JobID, "t-"+n.Name)
		n, err := jobs.ApplyNode(n, jobs.NodeClaim, now)
		if err != nil {
			panic(err)
		}
		if chance(0.33) {
			due := now.Add(time.Minute)
			n.DueAt = &due
			return n, nil
		}
		n, err = jobs.ApplyNode(n, jobs.NodeSend, now)
		if err != nil {
			panic(err)
		}
		return n, []jobs.Event{{Type: jobs.EventNodeRunning, Timestamp: now, Node: n.Name}}
	}
	// 500 records; 200 under the race detector, which slows the emulator tenfold (the
	// interleavings are the same: 16 goroutines on one job).
	n := map[bool]int{false: 500, true: 200}[raceEnabled]
	in := newJob()
	in.Concurrency = 0
	j, claimed, err := s.CreateJobClaiming(ctx, in, nodes(n, jobs.NodeNew), nil, store.Claim{Limit: 120, Apply: apply})
	if err != nil {
		t.Fatal(err)
	}
	work := make(chan jobs.Node, n)
	for _, nd := range claimed {
		work <- nd
	}
	var evMu sync.Mutex
	events := len(claimed) - countState(claimed, jobs.NodeReady)
	// Per node, the events that must be listed (kept) and the sends' node_running events,
	// which may be written void: a send's write that the node's result overtook between
	// its write and its events (its node_running would be listed after the node's end).
	kept, sent := map[string]int{}, map[string]int{}
	for _, nd := range claimed {
		if nd.State == jobs.NodeRunning {
			kept[nd.Name]++
		}
	}

	// end writes a result for record nd (read again on a conflict), as recordOutcome does.
	end := func(nd jobs.Node, ev jobs.NodeEvent) error {
		for attempt := 0; attempt < 50; attempt++ {
			if nd.State.Terminal() {
				return nil
			}
			var evs []jobs.Event
			if nd.State == jobs.NodeReady {
				var err error
				if nd, err = jobs.ApplyNode(nd, jobs.NodeSend, now); err != nil {
					return err
				}
				evs = append(evs, jobs.Event{Type: jobs.EventNodeRunning, Timestamp: now, Node: nd.Name})
			}
			done, err := jobs.ApplyNode(nd, ev, now)
			if err != nil {
				return err
			}
			done.DueAt = nil
			evs = append(evs, jobs.Event{Type: jobs.NodeEventType(done.State), Timestamp: now, Node: nd.Name})
			_, err = s.UpdateJobNode(ctx, done, evs...)
			if err == nil {
				evMu.Lock()
				events += len(evs)
				kept[nd.Name] += len(evs)
				evMu.Unlock()
				return nil
			}
			if !errors.Is(err, store.ErrConflict) {
				return err
			}
			if nd, err = s.GetJobNode(ctx, nd.JobID, nd.Name); err != nil {
				return err
			}
		}
		return fmt.Errorf("%s: no end after 50 conflicts", nd.Name)
	}
	follower := storetest.NewEventFollower(s, j.ID)
	stopFollowing := make(chan struct{})
	followed := make(chan error, 1)
	go func() { followed <- follower.Follow(ctx, stopFollowing) }()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				var nd jobs.Node
				select {
				case nd = <-work:
				case <-time.After(2 * time.Second):
					return
				}
				var side sync.WaitGroup
				if nd.State == jobs.NodeReady {
					// The send's record (a batch of one or more), racing the result below.
					side.Go(func() {
						run, err := jobs.ApplyNode(nd, jobs.NodeSend, now)
						if err != nil {
							t.Error(err)
							return
						}
						run.DueAt = nil
						_, errs := s.UpdateJobNodes(ctx, []store.NodeUpdate{{Node: run, Events: []jobs.Event{{Type: jobs.EventNodeRunning, Timestamp: now, Node: nd.Name}}}})
						if errs[0] == nil {
							evMu.Lock()
							events++
							sent[nd.Name]++
							evMu.Unlock()
						} else if !errors.Is(errs[0], store.ErrConflict) {
							t.Errorf("send %s: %v", nd.Name, errs[0])
						}
					})
				}
				if chance(0.2) {
					// The sweep moves the due time: no state change.
					side.Go(func() {
						later := now.Add(2 * time.Minute)
						moved := nd
						moved.DueAt = &later
						if _, err := s.UpdateJobNode(ctx, moved); err != nil && !errors.Is(err, store.ErrConflict) {
							t.Errorf("due %s: %v", nd.Name, err)
						}
					})
				}
				result := jobs.NodeSucceed
				if nd.State == jobs.NodeReady && chance(0.1) {
					result = jobs.NodeError // its connect timeout
				}
				if err := end(nd, result); err != nil {
					t.Errorf("end %s: %v", nd.Name, err)
				}
				if chance(0.3) {
					// The same result again (the agent resent it): nothing more changes.
					cur, err := s.GetJobNode(ctx, nd.JobID, nd.Name)
					if err != nil {
						t.Errorf("read %s: %v", nd.Name, err)
					} else if err := end(cur, result); err != nil {
						t.Errorf("end %s again: %v", nd.Name, err)
					}
				}
				side.Wait()
				more, err := s.ClaimJobNodes(ctx, j.ID, store.Claim{Limit: 8, Apply: apply})
				if err != nil {
					t.Errorf("claim: %v", err)
				}
				for _, m := range more {
					if m.State == jobs.NodeRunning {
						evMu.Lock()
						events++
						kept[m.Name]++
						evMu.Unlock()
					}
					work <- m
				}
			}
		})
	}
	wg.Wait()
	close(stopFollowing)
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	counts, err := s.JobCounts(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := s.ListJobNodes(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	recount := jobs.Counts(ns)
	for _, st := range jobs.AllNodeStates {
		if counts[st] != recount[st] {
			t.Errorf("counters %v, recount %v", counts, recount)
			break
		}
	}
	if counts.Unfinished() != 0 || recount.Unfinished() != 0 || recount[jobs.NodeFinished]+recount[jobs.NodeErrored] != n {
		t.Errorf("the job is not done: counters %v, recount %v", counts, recount)
	}
	// A recount once the records have settled (a store whose clock is RecountSettle on)
	// finds nothing to repair.
	later := e.store(t, dynamo.WithGapWait(dynamo.DefaultGapWait, func() time.Time { return time.Now().Add(dynamo.RecountSettle + time.Second) }))
	if changed, err := later.RecountJob(ctx, j.ID); err != nil || changed {
		t.Errorf("recount changed the counters: %v, %v", changed, err)
	}
	evs, err := s.ListEvents(ctx, j.ID, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].ID <= evs[i-1].ID {
			t.Fatalf("event ids not increasing: %d after %d", evs[i].ID, evs[i-1].ID)
		}
	}
	// Every event written is listed but for sends' node_running events voided because the
	// node's result overtook them: per node, at least the events kept, at most those and
	// the sends'; every node's end once.
	listed, ends := map[string]int{}, map[string]int{}
	for _, ev := range evs {
		listed[ev.Node]++
		if ev.Type == jobs.EventNodeFinished || ev.Type == jobs.EventNodeErrored {
			ends[ev.Node]++
		}
	}
	if len(listed) != n {
		t.Errorf("events of %d nodes listed, want %d", len(listed), n)
	}
	voided := 0
	for node, got := range listed {
		if got < kept[node] || got > kept[node]+sent[node] || ends[node] != 1 {
			t.Errorf("%s: %d events listed (%d ends); written: %d kept, %d by sends", node, got, ends[node], kept[node], sent[node])
		}
		voided += kept[node] + sent[node] - got
	}
	t.Logf("%d events written, %d listed: %d sends' node_running overtaken and voided", events, len(evs), voided)
	// A node's events come in the order they were written: its end last (an id below its
	// node_running's would show a node running after it ended).
	last := map[string]jobs.Event{}
	for _, ev := range evs {
		last[ev.Node] = ev
	}
	for node, ev := range last {
		if ev.Type != jobs.EventNodeFinished && ev.Type != jobs.EventNodeErrored {
			t.Errorf("%s: last event %d is %s, want its end", node, ev.ID, ev.Type)
		}
	}
	// The follower, polling until it has them all, got each once and in order.
	if err := follower.CatchUp(ctx, len(evs)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(follower.IDs) != fmt.Sprint(eventIDs(evs)) {
		t.Errorf("the follower got %d events, the job has %d: %v\nwant %v", len(follower.IDs), len(evs), follower.IDs, eventIDs(evs))
	}
}

func eventIDs(evs []jobs.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func countState(ns []jobs.Node, st jobs.NodeState) int {
	c := 0
	for _, n := range ns {
		if n.State == st {
			c++
		}
	}
	return c
}

// TestRecountWaitsForRecordsToSettle: RecountJob refuses while a record of the job moved
// less than RecountSettle ago (its counters' update may be in flight), and recounts once
// every record has settled.
func TestRecountWaitsForRecordsToSettle(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	s := e.store(t, dynamo.WithGapWait(dynamo.DefaultGapWait, now))
	ctx := t.Context()
	j, err := s.CreateJob(ctx, newJob(), nodes(3, jobs.NodeNew), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimJobNodes(ctx, j.ID, store.Claim{Limit: 1, Apply: func(n jobs.Node) (jobs.Node, []jobs.Event) {
		n, err := jobs.ApplyNode(n, jobs.NodeClaim, now())
		if err != nil {
			t.Fatal(err)
		}
		return n, nil
	}})
	if err != nil || len(got) != 1 {
		t.Fatalf("claim: %v, %v", got, err)
	}
	if _, err := s.RecountJob(ctx, j.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("recount right after a claim: %v, want a conflict", err)
	}
	mu.Lock()
	clock = clock.Add(dynamo.RecountSettle)
	mu.Unlock()
	if changed, err := s.RecountJob(ctx, j.ID); err != nil || changed {
		t.Fatalf("recount once settled: changed %v, %v; want unchanged", changed, err)
	}
}

// TestConnections: the connection ids of connected nodes only, from their connection items.
func TestConnections(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	ctx := t.Context()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.CreateNode(ctx, inventory.Node{Name: n, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkNodeConnected(ctx, "a", "pcp://x/server", "conn-a", time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Connections(ctx, []string{"a", "b", "missing", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["a"] != "conn-a" {
		t.Fatalf("connections %v, want only a: conn-a", got)
	}
}

// TestReadCacheReadsConnectionItemsOnce: in a context with a read cache, checking that nodes
// are enrolled and then looking up their connections (job creation) reads each connection
// item once; without one, twice. What is served from the cache is what was read.
func TestReadCacheReadsConnectionItemsOnce(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	for _, n := range []string{"a", "b"} {
		if _, err := s.CreateNode(t.Context(), inventory.Node{Name: n, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkNodeConnected(t.Context(), "a", "pcp://x/server", "conn-a", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		reads int
	}{{"without a cache", t.Context(), 2}, {"with a cache", dynamo.WithReadCache(t.Context()), 1}} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.ops.count("BatchGetItem")
			enrolled, err := s.EnrolledNodes(tc.ctx, []string{"a", "b", "missing"})
			if err != nil || len(enrolled) != 2 || !enrolled["a"] || !enrolled["b"] {
				t.Fatalf("enrolled %v, %v; want a and b", enrolled, err)
			}
			conns, err := s.Connections(tc.ctx, []string{"a", "b", "missing"})
			if err != nil || len(conns) != 1 || conns["a"] != "conn-a" {
				t.Fatalf("connections %v, %v; want a: conn-a", conns, err)
			}
			if got := e.ops.count("BatchGetItem") - before; got != tc.reads {
				t.Fatalf("%d BatchGetItem calls, want %d", got, tc.reads)
			}
		})
	}
}

// TestOvertakenSendLeavesNoRunningAfterTheEnd makes, step by step, the interleaving that
// TestCountersMatchRecountUnderConcurrency meets now and then: a node claimed ready (its
// agent away) is sent its request; the send's write of the record (ready → running, with
// node_running) lands, then the result's (running → finished) lands and numbers its event
// before the send's counters update numbers the send's. The send's node_running would then
// be listed after the node's end, which a PE client following the events would show as the
// node running again: it is written void, for a job without counter shards and for one with.
func TestOvertakenSendLeavesNoRunningAfterTheEnd(t *testing.T) {
	inCounterLayouts(t, func(t *testing.T, e *env, s *dynamo.Store) {
		ctx, now := t.Context(), testNow
		j, claimed := claimThree(t, s, false)
		nd := claimed[0]
		// The next counters update (the send's: its record is written by then) waits.
		gate, release := holdNextCounters(e)
		send := make(chan error, 1)
		go func() {
			run, err := jobs.ApplyNode(nd, jobs.NodeSend, now)
			if err != nil {
				send <- err
				return
			}
			run.DueAt = nil
			_, errs := s.UpdateJobNodes(ctx, []store.NodeUpdate{{Node: run, Events: []jobs.Event{{Type: jobs.EventNodeRunning, Timestamp: now, Node: nd.Name}}}})
			send <- errs[0]
		}()
		<-gate
		cur, err := s.GetJobNode(ctx, j.ID, nd.Name)
		if err != nil || cur.State != jobs.NodeRunning {
			t.Fatalf("the send's record: %+v, %v; want running", cur, err)
		}
		done, err := jobs.ApplyNode(cur, jobs.NodeSucceed, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateJobNode(ctx, done, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: nd.Name}); err != nil {
			t.Fatalf("the result: %v", err)
		}
		close(release)
		if err := <-send; err != nil {
			t.Fatalf("the send: %v", err)
		}
		mine := nodeEvents(t, s, j.ID, nd.Name)
		if len(mine) == 0 || mine[len(mine)-1].Type != jobs.EventNodeFinished {
			t.Fatalf("%s's events %+v: want its end last", nd.Name, mine)
		}
		counts, err := s.JobCounts(ctx, j.ID)
		if err != nil || counts[jobs.NodeFinished] != 1 || counts[jobs.NodeReady] != 2 || counts[jobs.NodeRunning] != 0 {
			t.Errorf("counts %v, %v: want 1 finished and 2 ready", counts, err)
		}
	})
}

// holdNextCounters makes the next counters update of any job wait: gate closes when it
// is held, and closing the returned release lets it go.
func holdNextCounters(e *env) (gate <-chan struct{}, release chan struct{}) {
	var mu sync.Mutex
	g, r := make(chan struct{}), make(chan struct{})
	held := false
	e.ops.setHold(func(op string, body []byte) <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if held || op != "UpdateItem" || !strings.Contains(string(body), `"COUNTERS"`) {
			return nil
		}
		held = true
		close(g)
		return r
	})
	return g, r
}

// TestLaterWriteKeepsAStopsEvent checks the other side of the voiding above: a forced stop's
// write (running → stopped, with node_stopped) whose counters update waits while other
// nodes' results number events and the stopped record is written again without events (the
// agent confirming the kill) keeps its node_stopped: an end is never voided, nor are events
// overtaken by a write that changed no state.
func TestLaterWriteKeepsAStopsEvent(t *testing.T) {
	inCounterLayouts(t, func(t *testing.T, e *env, s *dynamo.Store) {
		ctx, now := t.Context(), testNow
		j, claimed := claimThree(t, s, true)
		gate, release := holdNextCounters(e)
		stopped := make(chan error, 1)
		victim := claimed[0]
		go func() {
			st, err := jobs.ApplyNode(victim, jobs.NodeKill, now)
			if err != nil {
				stopped <- err
				return
			}
			_, errs := s.UpdateJobNodes(ctx, []store.NodeUpdate{{Node: st, Events: []jobs.Event{{Type: jobs.EventNodeStopped, Timestamp: now, Node: victim.Name}}}})
			stopped <- errs[0]
		}()
		<-gate
		// Other nodes' results number events meanwhile: the stop's guess is now wrong.
		for _, nd := range claimed[1:] {
			done, err := jobs.ApplyNode(nd, jobs.NodeSucceed, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.UpdateJobNode(ctx, done, jobs.Event{Type: jobs.EventNodeFinished, Timestamp: now, Node: nd.Name}); err != nil {
				t.Fatal(err)
			}
		}
		// The kill confirmed: the stopped record written again, no events.
		cur, err := s.GetJobNode(ctx, j.ID, victim.Name)
		if err != nil || cur.State != jobs.NodeStopped {
			t.Fatalf("the stop's record: %+v, %v", cur, err)
		}
		cur.Result = []byte(`{"_error":{"kind":"puppetlabs.orchestrator/job-stopped","msg":"confirmed"}}`)
		if _, err := s.UpdateJobNode(ctx, cur); err != nil {
			t.Fatal(err)
		}
		close(release)
		if err := <-stopped; err != nil {
			t.Fatalf("the stop: %v", err)
		}
		var types []string
		for _, ev := range nodeEvents(t, s, j.ID, victim.Name) {
			types = append(types, ev.Type)
		}
		if fmt.Sprint(types) != "[node_running node_stopped]" {
			t.Errorf("%s's events %v, want [node_running node_stopped]", victim.Name, types)
		}
	})
}

// nodeEvents lists job jobID's events of node, in order.
func nodeEvents(t *testing.T, s *dynamo.Store, jobID int64, node string) []jobs.Event {
	t.Helper()
	evs, err := s.ListEvents(t.Context(), jobID, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mine []jobs.Event
	for _, ev := range evs {
		if ev.Node == node {
			mine = append(mine, ev)
		}
	}
	return mine
}

// testNow is the clock of the step-by-step tests.
var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// inCounterLayouts runs f on a fresh store for a job without counter shards and for one with.
func inCounterLayouts(t *testing.T, f func(t *testing.T, e *env, s *dynamo.Store)) {
	for _, tc := range []struct {
		name string
		from int
	}{{"counters item", 0}, {"counter shards", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f(t, e, e.store(t, dynamo.WithCounterShardsFrom(tc.from)))
		})
	}
}

// claimThree creates a job of three nodes, all claimed at creation: recorded running with
// their node_running events, or (running false) ready and due, as for agents away.
func claimThree(t *testing.T, s *dynamo.Store, running bool) (jobs.Job, []jobs.Node) {
	t.Helper()
	apply := func(n jobs.Node) (jobs.Node, []jobs.Event) {
		n, err := jobs.ApplyNode(n, jobs.NodeClaim, testNow)
		if err != nil {
			panic(err)
		}
		if !running {
			due := testNow.Add(time.Minute)
			n.DueAt = &due
			return n, nil
		}
		if n, err = jobs.ApplyNode(n, jobs.NodeSend, testNow); err != nil {
			panic(err)
		}
		return n, []jobs.Event{{Type: jobs.EventNodeRunning, Timestamp: testNow, Node: n.Name}}
	}
	in := newJob()
	in.Concurrency = 0
	j, claimed, err := s.CreateJobClaiming(t.Context(), in, nodes(3, jobs.NodeNew), nil, store.Claim{Limit: 3, Apply: apply})
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	return j, claimed
}
