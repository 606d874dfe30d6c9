package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/catalog"
	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/seal"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/sqlite"
	"github.com/baton-run/baton/shared/tasks"
)

// countingStore counts the store operations the orchestrator makes and the records they
// return, per method.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	calls map[string]int
	rows  map[string]int
}

func newCountingStore(s store.Store) *countingStore {
	return &countingStore{Store: s, calls: map[string]int{}, rows: map[string]int{}}
}

func (c *countingStore) count(method string, rows int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[method]++
	c.rows[method] += rows
}

func (c *countingStore) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.calls)
	clear(c.rows)
}

func (c *countingStore) totals() (calls, rows int, byMethod map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byMethod = map[string]int{}
	for m, n := range c.calls {
		calls += n
		byMethod[m] = n
	}
	for _, n := range c.rows {
		rows += n
	}
	return calls, rows, byMethod
}

func (c *countingStore) CreateJob(ctx context.Context, j jobs.Job, nodes []jobs.Node, evs []jobs.Event) (jobs.Job, error) {
	c.count("CreateJob", 0)
	return c.Store.CreateJob(ctx, j, nodes, evs)
}
func (c *countingStore) CreateJobClaiming(ctx context.Context, j jobs.Job, nodes []jobs.Node, evs []jobs.Event, cl store.Claim) (jobs.Job, []jobs.Node, error) {
	created, claimed, err := c.Store.CreateJobClaiming(ctx, j, nodes, evs, cl)
	c.count("CreateJobClaiming", len(claimed))
	return created, claimed, err
}

// EndJobNodeAndJob passes the sqlite store's one-write end of a one-node job through (the
// orchestrator uses it when the store has it).
func (c *countingStore) EndJobNodeAndJob(ctx context.Context, n jobs.Node, evs []jobs.Event, end func(jobs.Job) (jobs.Job, []jobs.Event, error)) (jobs.Node, jobs.Job, error) {
	c.count("EndJobNodeAndJob", 1)
	je, ok := c.Store.(interface {
		EndJobNodeAndJob(context.Context, jobs.Node, []jobs.Event, func(jobs.Job) (jobs.Job, []jobs.Event, error)) (jobs.Node, jobs.Job, error)
	})
	if !ok {
		return jobs.Node{}, jobs.Job{}, errors.New("the counted store cannot end a job in one write")
	}
	return je.EndJobNodeAndJob(ctx, n, evs, end)
}
func (c *countingStore) UpdateJobNodeAndJob(ctx context.Context, n jobs.Node, nevs []jobs.Event, j jobs.Job, jevs []jobs.Event) (jobs.Node, jobs.Job, error) {
	c.count("UpdateJobNodeAndJob", 1)
	return c.Store.UpdateJobNodeAndJob(ctx, n, nevs, j, jevs)
}
func (c *countingStore) GetJob(ctx context.Context, id int64) (jobs.Job, error) {
	c.count("GetJob", 1)
	return c.Store.GetJob(ctx, id)
}
func (c *countingStore) UpdateJob(ctx context.Context, j jobs.Job, evs ...jobs.Event) (jobs.Job, error) {
	c.count("UpdateJob", 0)
	return c.Store.UpdateJob(ctx, j, evs...)
}
func (c *countingStore) ListUnfinishedJobs(ctx context.Context) ([]jobs.Job, error) {
	out, err := c.Store.ListUnfinishedJobs(ctx)
	c.count("ListUnfinishedJobs", len(out))
	return out, err
}
func (c *countingStore) GetJobNode(ctx context.Context, id int64, name string) (jobs.Node, error) {
	c.count("GetJobNode", 1)
	return c.Store.GetJobNode(ctx, id, name)
}
func (c *countingStore) ListJobNodes(ctx context.Context, id int64) ([]jobs.Node, error) {
	out, err := c.Store.ListJobNodes(ctx, id)
	c.count("ListJobNodes", len(out))
	return out, err
}
func (c *countingStore) ListJobNodesByName(ctx context.Context, name string, states ...jobs.NodeState) ([]jobs.Node, error) {
	out, err := c.Store.ListJobNodesByName(ctx, name, states...)
	c.count("ListJobNodesByName", len(out))
	return out, err
}
func (c *countingStore) FindJobNodeByTransaction(ctx context.Context, txn string) (jobs.Node, error) {
	c.count("FindJobNodeByTransaction", 1)
	return c.Store.FindJobNodeByTransaction(ctx, txn)
}
func (c *countingStore) UpdateJobNode(ctx context.Context, n jobs.Node, evs ...jobs.Event) (jobs.Node, error) {
	c.count("UpdateJobNode", 0)
	return c.Store.UpdateJobNode(ctx, n, evs...)
}
func (c *countingStore) UpdateJobNodes(ctx context.Context, ups []store.NodeUpdate) ([]jobs.Node, []error) {
	c.count("UpdateJobNodes", 0)
	return c.Store.UpdateJobNodes(ctx, ups)
}
func (c *countingStore) CountActiveNodes(ctx context.Context) (int, error) {
	c.count("CountActiveNodes", 0)
	return c.Store.CountActiveNodes(ctx)
}
func (c *countingStore) JobCounts(ctx context.Context, id int64) (jobs.StateCounts, error) {
	c.count("JobCounts", 0)
	return c.Store.JobCounts(ctx, id)
}
func (c *countingStore) ListJobNodesInState(ctx context.Context, id int64, st jobs.NodeState, limit int) ([]jobs.Node, error) {
	out, err := c.Store.ListJobNodesInState(ctx, id, st, limit)
	c.count("ListJobNodesInState", len(out))
	return out, err
}
func (c *countingStore) ClaimJobNodes(ctx context.Context, id int64, cl store.Claim) ([]jobs.Node, error) {
	out, err := c.Store.ClaimJobNodes(ctx, id, cl)
	c.count("ClaimJobNodes", len(out))
	return out, err
}
func (c *countingStore) ListDueJobNodes(ctx context.Context, now time.Time, limit int) ([]jobs.Node, error) {
	out, err := c.Store.ListDueJobNodes(ctx, now, limit)
	c.count("ListDueJobNodes", len(out))
	return out, err
}
func (c *countingStore) ListEvents(ctx context.Context, id, start int64, limit int) ([]jobs.Event, error) {
	out, err := c.Store.ListEvents(ctx, id, start, limit)
	c.count("ListEvents", len(out))
	return out, err
}
func (c *countingStore) GetNode(ctx context.Context, name string) (inventory.Node, error) {
	c.count("GetNode", 1)
	return c.Store.GetNode(ctx, name)
}
func (c *countingStore) ListNodes(ctx context.Context) ([]inventory.Node, error) {
	out, err := c.Store.ListNodes(ctx)
	c.count("ListNodes", len(out))
	return out, err
}
func (c *countingStore) EnrolledNodes(ctx context.Context, names []string) (map[string]bool, error) {
	out, err := c.Store.EnrolledNodes(ctx, names)
	c.count("EnrolledNodes", len(out))
	return out, err
}

// instantAgents answers every request at once with a successful task result, from a few
// goroutines, through the orchestrator's agent message path.
type instantAgents struct {
	orch *orchestrator.Service
	reqs chan protocol.Envelope
	wg   sync.WaitGroup
}

// Connected says every agent is connected here, as baton serve's gateway would.
func (a *instantAgents) Connected(string) bool { return true }

func (a *instantAgents) Send(_ context.Context, node string, e protocol.Envelope) error {
	if e.MessageType == protocol.TypeNonBlockingRequest {
		a.wg.Add(1)
		a.reqs <- e
	}
	return nil
}

func (a *instantAgents) run(ctx context.Context, t *testing.T) {
	for e := range a.reqs {
		var r protocol.NonBlockingRequest
		if err := protocol.DecodeData(e, &r); err != nil {
			t.Errorf("decode request: %v", err)
			a.wg.Done()
			continue
		}
		node := e.Target[len("pcp://"):]
		node = node[:len(node)-len("/agent")]
		res, err := protocol.New(protocol.TypeNonBlockingResponse, protocol.ServerURI, protocol.NonBlockingResponse{
			TransactionID: r.TransactionID, Results: json.RawMessage(`{"stdout":"{\"ok\":true}","stderr":"","exitcode":0}`)})
		if err == nil {
			err = a.orch.HandleAgentMessage(ctx, node, res)
		}
		if err != nil {
			t.Errorf("result of %s: %v", node, err)
		}
		a.wg.Done()
	}
}

type oneTask struct{}

func (oneTask) Task(_ context.Context, env, name string) (catalog.Task, error) {
	return catalog.Task{Name: name, Module: "demo", Environment: env, Metadata: tasks.Metadata{}, RawMetadata: json.RawMessage(`{}`)}, nil
}

type noURLs struct{}

func (noURLs) FileURI(context.Context, string, string, string, string) (protocol.FileURI, error) {
	return protocol.FileURI{}, nil
}

// runJob runs a task job of size nodes (concurrency 0: unlimited) to the end and returns the
// store operations and rows read per node-run, from submission to the job's end.
func runJob(t *testing.T, size, concurrency, globalCap int) (calls, rows float64, byMethod map[string]int) {
	t.Helper()
	ctx := t.Context()
	base, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	st := newCountingStore(base)
	names := make([]string, size)
	var enrol sync.WaitGroup
	for w := range 32 { // in parallel, so that the store commits the enrolments in groups
		enrol.Go(func() {
			for i := w; i < size; i += 32 {
				names[i] = fmt.Sprintf("node%05d", i)
				if _, err := base.CreateNode(ctx, inventory.Node{Name: names[i], Facts: json.RawMessage(`{}`), CreatedAt: time.Unix(0, 0)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	enrol.Wait()
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	agents := &instantAgents{reqs: make(chan protocol.Envelope, size)}
	kicks := make(chan int64, 1)
	orch := orchestrator.New(st, oneTask{}, noURLs{}, agents, sealer,
		orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: globalCap}),
		orchestrator.WithKick(func(id int64) { kicks <- id }))
	agents.orch = orch
	for range 8 {
		go agents.run(ctx, t)
	}
	defer close(agents.reqs)

	job, err := orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: names}, Concurrency: concurrency}}, jobs.Owner{Login: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := orch.Dispatch(ctx, <-kicks); err != nil {
		t.Fatal(err)
	}
	// Results refill the slots the server-wide cap leaves free; the sweep would also come
	// by every second: run it until the job ends, as baton serve does.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		agents.wg.Wait()
		j, err := base.GetJob(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State.Terminal() {
			if j.State != jobs.StateFinished {
				t.Fatalf("job ended %s", j.State)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job of %d nodes did not finish", size)
		}
		if err := orch.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := base.JobCounts(ctx, job.ID)
	if err != nil || counts[jobs.NodeFinished] != size {
		t.Fatalf("counts %v, %v: want %d finished", counts, err, size)
	}
	c, r, m := st.totals()
	return float64(c) / float64(size), float64(r) / float64(size), m
}

// TestWorkPerNodeRunDoesNotGrowWithTheJob runs jobs of 100 and of 2,000 nodes and compares
// the store operations per node-run, and the records they read per node-run: neither may
// grow with the job (a listing of the job per result would make them grow twenty-fold).
func TestWorkPerNodeRunDoesNotGrowWithTheJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 4,200 node-runs")
	}
	for _, tc := range []struct{ concurrency, globalCap int }{{0, -1}, {0, 50}} {
		t.Run(fmt.Sprintf("concurrency %d, server-wide cap %d", tc.concurrency, tc.globalCap), func(t *testing.T) {
			smallCalls, smallRows, smallBy := runJob(t, 100, tc.concurrency, tc.globalCap)
			bigCalls, bigRows, bigBy := runJob(t, 2000, tc.concurrency, tc.globalCap)
			t.Logf("per node-run: %.2f store calls and %.2f records read at 100 nodes, %.2f and %.2f at 2,000",
				smallCalls, smallRows, bigCalls, bigRows)
			t.Logf("calls at 100: %v", smallBy)
			t.Logf("calls at 2,000: %v", bigBy)
			// Constant work per node-run, with a little room for the retries that concurrent
			// results cause; a job listing per result would multiply these by 20.
			if bigCalls > smallCalls*1.25+0.5 {
				t.Errorf("store calls per node-run grew from %.2f to %.2f", smallCalls, bigCalls)
			}
			if bigRows > smallRows*1.25+0.5 {
				t.Errorf("records read per node-run grew from %.2f to %.2f", smallRows, bigRows)
			}
			if bigCalls > 12 || bigRows > 12 {
				t.Errorf("%.2f store calls and %.2f records read per node-run: more than the dozen a node-run needs", bigCalls, bigRows)
			}
			if bigBy["ListJobNodes"] > 0 || bigBy["ListNodes"] > 0 {
				t.Errorf("the job or the inventory was listed: %v", bigBy)
			}
			// The agents here answer at once, before the rest of their batch is sent: a
			// record this process sent is held as started before its request goes out, so
			// no result reads its record back.
			if smallBy["GetJobNode"]+bigBy["GetJobNode"] > 0 {
				t.Errorf("results read their records back (%d, %d): the records sent were not held as started", smallBy["GetJobNode"], bigBy["GetJobNode"])
			}
		})
	}
}

func (c *countingStore) JobUsage(ctx context.Context, id int64) (store.Usage, error) {
	c.count("JobUsage", 1)
	return c.Store.JobUsage(ctx, id)
}

// storeWithNodes opens a store in a temporary directory with names enrolled, and a sealer.
func storeWithNodes(t *testing.T, names ...string) (*sqlite.Store, *seal.Sealer) {
	t.Helper()
	base, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	for _, name := range names {
		if _, err := base.CreateNode(t.Context(), inventory.Node{Name: name, Facts: json.RawMessage(`{}`), CreatedAt: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return base, sealer
}

// TestJobUsageIsReadOnlyWhenMetered checks that a deployment that meters nothing (baton
// serve) answers a job's usage without reading the store — a read less on every GET of a
// job — and that a metered one (AWS) reads what was charged to the job.
func TestJobUsageIsReadOnlyWhenMetered(t *testing.T) {
	for _, metered := range []bool{false, true} {
		t.Run(fmt.Sprintf("metered %v", metered), func(t *testing.T) {
			ctx := t.Context()
			base, sealer := storeWithNodes(t, "node1")
			st := newCountingStore(base)
			orch := orchestrator.New(st, oneTask{}, noURLs{}, &instantAgents{}, sealer,
				orchestrator.WithConfig(orchestrator.Config{Metered: metered}), orchestrator.WithKick(func(int64) {}))
			job, err := orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
				Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"node1"}}}}, jobs.Owner{Login: "admin"})
			if err != nil {
				t.Fatal(err)
			}
			charged := store.Usage{Invocations: 2, MessagesOut: 3, MessageUnits: 3, WriteUnits: 4.5}
			if err := base.AddJobUsage(ctx, job.ID, charged); err != nil {
				t.Fatal(err)
			}
			st.reset()
			u, err := orch.JobUsage(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			_, _, by := st.totals()
			want, reads := store.Usage{}, 0
			if metered {
				want, reads = charged, 1
			}
			if u != want || by["JobUsage"] != reads {
				t.Errorf("usage %+v after %d store reads; want %+v after %d", u, by["JobUsage"], want, reads)
			}
		})
	}
}

// TestWaitJobGetsTheEndItWaitsFor checks that a waiter of a job this process ends gets the
// job as written and its node counts with the wake, without reading them back (counts come
// only that way), and that they are what the store holds: for a one-node job (its end and
// the job's in one write) and for a job of three nodes (the job ended on its own).
func TestWaitJobGetsTheEndItWaitsFor(t *testing.T) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			ctx := t.Context()
			names := make([]string, size)
			for i := range names {
				names[i] = fmt.Sprintf("node%d", i+1)
			}
			base, sealer := storeWithNodes(t, names...)
			st := newCountingStore(base)
			agents := &instantAgents{reqs: make(chan protocol.Envelope, size)}
			kicks := make(chan int64, 1)
			orch := orchestrator.New(st, oneTask{}, noURLs{}, agents, sealer, orchestrator.WithKick(func(id int64) { kicks <- id }))
			agents.orch = orch
			job, err := orch.SubmitTask(ctx, orchestrator.TaskRequest{Task: "demo::noop",
				Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: names}}}, jobs.Owner{Login: "admin"})
			if err != nil {
				t.Fatal(err)
			}
			// The job is dispatched once the waiter waits.
			st.reset()
			type waited struct {
				job    jobs.Job
				counts jobs.StateCounts
				err    error
			}
			got := make(chan waited, 1)
			go func() {
				j, c, err := orch.WaitJob(ctx, job.ID, 20*time.Second)
				got <- waited{j, c, err}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for _, _, by := st.totals(); by["GetJob"] == 0; _, _, by = st.totals() {
				if time.Now().After(deadline) {
					t.Fatal("the waiter did not read the job")
				}
				time.Sleep(time.Millisecond)
			}
			go agents.run(ctx, t)
			defer close(agents.reqs)
			if err := orch.Dispatch(ctx, <-kicks); err != nil {
				t.Fatal(err)
			}
			w := <-got
			if w.err != nil {
				t.Fatal(w.err)
			}
			if w.counts == nil {
				t.Fatal("the waiter read the job back: no counts came with the wake")
			}
			if _, _, by := st.totals(); size == 1 && (by["EndJobNodeAndJob"] != 1 || by["UpdateJobNodeAndJob"] != 0) {
				// The job is read within the write that ends it, not before (GetJob, then
				// UpdateJobNodeAndJob, is the way of stores that cannot).
				t.Errorf("a one-node job's end: %d one-write ends, %d writes after a read; want 1 and 0 (%v)", by["EndJobNodeAndJob"], by["UpdateJobNodeAndJob"], by)
			}
			stored, err := base.GetJob(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(w.job, stored) {
				t.Errorf("woken with %+v, the store holds %+v", w.job, stored)
			}
			counts, err := base.JobCounts(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(w.counts, counts) || w.counts[jobs.NodeFinished] != size {
				t.Errorf("woken with counts %v, the store holds %v", w.counts, counts)
			}
		})
	}
}
