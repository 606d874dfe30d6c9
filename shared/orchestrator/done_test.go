package orchestrator_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// aheadStore is a store whose counts can run ahead of its records (as the dynamo store's
// when a process dies between its counters' update and its record's write): it writes
// results with UpdateJobNodeFrom and answers MayEndJob as told.
type aheadStore struct {
	*sqlite.Store
	notDone atomic.Bool
	from    atomic.Int64 // UpdateJobNodeFrom calls with the record as stored
	asked   atomic.Int64 // MayEndJob calls
}

func (s *aheadStore) UpdateJobNodeFrom(ctx context.Context, prev, n jobs.Node, events ...jobs.Event) (jobs.Node, bool, error) {
	if cur, err := s.GetJobNode(ctx, n.JobID, n.Name); err == nil && cur.Version == prev.Version && cur.State == prev.State {
		s.from.Add(1)
	}
	written, err := s.UpdateJobNode(ctx, n, events...)
	return written, false, err
}

func (s *aheadStore) MayEndJob(ctx context.Context, jobID int64) (bool, error) {
	s.asked.Add(1)
	return !s.notDone.Load(), nil
}

// TestJobNotEndedAheadOfItsRecords: with a store whose counts can run ahead of its records, a
// result is written with the record it replaces, and a job whose counts say done is not
// ended while the store says a node is not; the sweep ends it once every node is.
func TestJobNotEndedAheadOfItsRecords(t *testing.T) {
	var st *aheadStore
	h := newStatusHarnessOn(t, []string{"web1", "web2"}, func(sq *sqlite.Store) store.Store { st = &aheadStore{Store: sq}; return st },
		orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: -1, StatusInterval: time.Minute, ConnectTimeout: 10 * time.Second}))
	sq, orch, agents, clock := h.st, h.orch, h.agents, h.clock
	job, err := orch.SubmitTask(t.Context(), orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"web1", "web2"}}}}, jobs.Owner{Login: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := orch.Dispatch(t.Context(), job.ID); err != nil {
		t.Fatal(err)
	}
	st.notDone.Store(true)
	owner := map[string]string{} // transaction → node
	ns, err := sq.ListJobNodes(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		owner[n.TransactionID] = n.Name
	}
	result := json.RawMessage(`{"stdout":"{\"ok\":true}","stderr":"","exitcode":0}`)
	answerAll(t, orch, agents, owner, result)
	if n := st.from.Load(); n != 2 {
		t.Fatalf("%d results written from the record they replace, want 2", n)
	}
	counts, err := sq.JobCounts(t.Context(), job.ID)
	if err != nil || counts[jobs.NodeFinished] != 2 {
		t.Fatalf("counts %v (%v), want 2 finished", counts, err)
	}
	if j, err := sq.GetJob(t.Context(), job.ID); err != nil || j.State.Terminal() || st.asked.Load() == 0 {
		t.Fatalf("job %s (%v), asked %d times: want running, the store asked", j.State, err, st.asked.Load())
	}
	st.notDone.Store(false)
	clock.Add(time.Minute)
	if err := orch.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if j, err := sq.GetJob(t.Context(), job.ID); err != nil || j.State != jobs.StateFinished {
		t.Fatalf("job %s (%v) after the sweep, want finished", j.State, err)
	}

	// A job with an error limit: its results are written the usual way (a store that counts
	// before it writes could count a refused write's failure for a moment, and stop the job).
	limited, err := orch.SubmitTask(t.Context(), orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"web1", "web2"}}, MaxErrors: orchestrator.MaxErrors{Set: true, Count: 1}}}, jobs.Owner{Login: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := orch.Dispatch(t.Context(), limited.ID); err != nil {
		t.Fatal(err)
	}
	ns, err = sq.ListJobNodes(t.Context(), limited.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		owner[n.TransactionID] = n.Name
	}
	before := st.from.Load()
	answerAll(t, orch, agents, owner, result)
	if st.from.Load() != before {
		t.Fatal("a job with an error limit had its results written counters first")
	}
	if j, err := sq.GetJob(t.Context(), limited.ID); err != nil || j.State != jobs.StateFinished {
		t.Fatalf("the limited job %s (%v), want finished", j.State, err)
	}
}

// answerAll answers every request sent (owner: transaction → node) with result.
func answerAll(t *testing.T, orch *orchestrator.Service, agents *scriptedAgents, owner map[string]string, result json.RawMessage) {
	t.Helper()
	for _, sent := range agents.take() {
		var req protocol.NonBlockingRequest
		if err := protocol.DecodeData(sent, &req); err != nil || sent.MessageType != protocol.TypeNonBlockingRequest {
			continue
		}
		e, err := protocol.New(protocol.TypeNonBlockingResponse, protocol.ServerURI, protocol.NonBlockingResponse{TransactionID: req.TransactionID, Results: result})
		if err != nil {
			t.Fatal(err)
		}
		if err := orch.HandleAgentMessage(t.Context(), owner[req.TransactionID], e); err != nil {
			t.Fatal(err)
		}
	}
}
