package orchestrator_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
)

// driftingStore is a store whose job counts carry a phantom active record (as a lost
// counters update leaves them on DynamoDB) until RecountJob repairs them.
type driftingStore struct {
	*sqlite.Store
	mu       sync.Mutex
	phantom  int // extra ready records in JobCounts
	recounts int
}

var _ store.Recounter = (*driftingStore)(nil)

func (d *driftingStore) JobCounts(ctx context.Context, id int64) (jobs.StateCounts, error) {
	c, err := d.Store.JobCounts(ctx, id)
	if err != nil {
		return c, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.phantom > 0 {
		c[jobs.NodeReady] += d.phantom
	}
	return c, nil
}

func (d *driftingStore) RecountJob(context.Context, int64) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recounts++
	changed := d.phantom > 0
	d.phantom = 0
	return changed, nil
}

func (d *driftingStore) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recounts
}

// TestSweepRecountsQuietJobs: a job whose counts stay the same for two minutes of sweeps is
// recounted once (a Recounter store), and a recount that repairs its counts moves it on — a
// job that a lost counters update kept from ending ends. Counts that change, or a recount
// done since they last changed, mean no recount.
func TestSweepRecountsQuietJobs(t *testing.T) {
	ctx := t.Context()
	sq, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	st := &driftingStore{Store: sq}
	clock := &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, n := range []string{"web1", "web2"} {
		if _, err := sq.CreateNode(ctx, inventory.Node{Name: n, Facts: json.RawMessage(`{}`), CreatedAt: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	agents := &scriptedAgents{connected: map[string]bool{"web1": true, "web2": true}}
	orch := orchestrator.New(st, oneTask{}, noURLs{}, agents, sealer, orchestrator.WithClock(clock.Now),
		orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: -1, StatusInterval: -1}))
	job, err := orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"web1", "web2"}}}}, jobs.Owner{Login: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := orch.Dispatch(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	sent := agents.take()
	if len(sent) != 2 {
		t.Fatalf("sent %d requests, want 2", len(sent))
	}
	sweep := func() {
		t.Helper()
		if err := orch.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Both nodes run for a long while: quiet counts that are right. One recount after two
	// minutes, none after that while they stay the same.
	for range 6 {
		sweep()
		clock.Add(time.Minute)
	}
	if n := st.calls(); n != 1 {
		t.Fatalf("%d recounts of a job quiet for 6 minutes, want 1", n)
	}
	// The results come in, but a counters update is lost: a phantom ready record keeps the
	// job from ending.
	st.mu.Lock()
	st.phantom = 1
	st.mu.Unlock()
	for _, e := range sent {
		var req protocol.NonBlockingRequest
		if err := protocol.DecodeData(e, &req); err != nil {
			t.Fatal(err)
		}
		res, _ := json.Marshal(protocol.TaskResults{Stdout: "{}"})
		resp, err := protocol.New(protocol.TypeNonBlockingResponse, protocol.ServerURI,
			protocol.NonBlockingResponse{TransactionID: req.TransactionID, Results: res})
		if err != nil {
			t.Fatal(err)
		}
		node, err := protocol.NodeFromURI(e.Target)
		if err != nil {
			t.Fatal(err)
		}
		if err := orch.HandleAgentMessage(ctx, node, resp); err != nil {
			t.Fatal(err)
		}
	}
	sweep() // the counts changed: watching them again, no recount
	if n := st.calls(); n != 1 {
		t.Fatalf("%d recounts right after the counts changed, want 1", n)
	}
	if j, _ := sq.GetJob(ctx, job.ID); j.State.Terminal() {
		t.Fatalf("the job ended (%s) with a phantom record in its counts", j.State)
	}
	clock.Add(time.Minute)
	sweep()
	if n := st.calls(); n != 1 {
		t.Fatalf("%d recounts after one quiet minute, want 1", n)
	}
	clock.Add(time.Minute)
	sweep()
	if n := st.calls(); n != 2 {
		t.Fatalf("%d recounts after two quiet minutes, want 2", n)
	}
	j, err := sq.GetJob(ctx, job.ID)
	if err != nil || j.State != jobs.StateFinished {
		t.Fatalf("after the recount the job is %s (%v), want finished", j.State, err)
	}
}
