package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
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

// scriptedAgents records what the orchestrator sends and answers nothing by itself: each
// test decides what its agents say.
type scriptedAgents struct {
	mu        sync.Mutex
	sent      []protocol.Envelope
	connected map[string]bool
}

func (a *scriptedAgents) Connected(node string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected[node]
}

func (a *scriptedAgents) Send(_ context.Context, node string, e protocol.Envelope) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.connected[node] {
		return fmt.Errorf("send to %s: %w", node, orchestrator.ErrNotConnected)
	}
	a.sent = append(a.sent, e)
	return nil
}

// take returns and forgets what was sent.
func (a *scriptedAgents) take() []protocol.Envelope {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.sent
	a.sent = nil
	return out
}

type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type statusHarness struct {
	t      *testing.T
	st     *sqlite.Store
	orch   *orchestrator.Service
	agents *scriptedAgents
	clock  *manualClock
}

const statusInterval = 30 * time.Second

func newStatusHarness(t *testing.T, nodes []string, opts ...orchestrator.Option) *statusHarness {
	t.Helper()
	return newStatusHarnessOn(t, nodes, nil, opts...)
}

// newStatusHarnessOn is newStatusHarness with the orchestrator's store wrap(st) (nil: st).
func newStatusHarnessOn(t *testing.T, nodes []string, wrap func(*sqlite.Store) store.Store, opts ...orchestrator.Option) *statusHarness {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, n := range nodes {
		if _, err := st.CreateNode(t.Context(), inventory.Node{Name: n, Facts: json.RawMessage(`{}`), CreatedAt: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	agents := &scriptedAgents{connected: map[string]bool{}}
	for _, n := range nodes {
		agents.connected[n] = true
	}
	opts = append([]orchestrator.Option{orchestrator.WithClock(clock.Now),
		orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: -1, StatusInterval: statusInterval, ConnectTimeout: 10 * time.Second, ConnectRetry: 2 * time.Second})}, opts...)
	var orchStore store.Store = st
	if wrap != nil {
		orchStore = wrap(st)
	}
	orch := orchestrator.New(orchStore, oneTask{}, noURLs{}, agents, sealer, opts...)
	return &statusHarness{t: t, st: st, orch: orch, agents: agents, clock: clock}
}

func (h *statusHarness) submit(nodes ...string) jobs.Job {
	h.t.Helper()
	job, err := h.orch.SubmitTask(h.t.Context(), orchestrator.TaskRequest{Task: "demo::noop",
		Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: nodes}}}, jobs.Owner{Login: "admin"})
	if err != nil {
		h.t.Fatal(err)
	}
	return job
}

// start submits r as admin, dispatches the job and returns it with the one request sent.
func (h *statusHarness) start(r orchestrator.TaskRequest) (jobs.Job, protocol.NonBlockingRequest) {
	h.t.Helper()
	job, err := h.orch.SubmitTask(h.t.Context(), r, jobs.Owner{Login: "admin"})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.orch.Dispatch(h.t.Context(), job.ID); err != nil {
		h.t.Fatal(err)
	}
	var req protocol.NonBlockingRequest
	h.one(protocol.TypeNonBlockingRequest, &req)
	return job, req
}

// one returns the only message sent, of type want, decoding its data into data.
func (h *statusHarness) one(want string, data any) protocol.Envelope {
	h.t.Helper()
	sent := h.agents.take()
	if len(sent) != 1 || sent[0].MessageType != want {
		types := []string{}
		for _, e := range sent {
			types = append(types, e.MessageType)
		}
		h.t.Fatalf("sent %v, want one %s", types, want)
	}
	if err := protocol.DecodeData(sent[0], data); err != nil {
		h.t.Fatal(err)
	}
	return sent[0]
}

func (h *statusHarness) answer(node, messageType string, data any) error {
	h.t.Helper()
	e, err := protocol.New(messageType, protocol.ServerURI, data)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.orch.HandleAgentMessage(h.t.Context(), node, e)
}

func (h *statusHarness) statusAnswer(node, txn, status string) {
	h.t.Helper()
	var q protocol.BlockingRequest
	h.one(protocol.TypeBlockingRequest, &q)
	var p protocol.StatusQueryParams
	if q.Module != protocol.ModuleStatus || q.Action != protocol.ActionQuery || json.Unmarshal(q.Params, &p) != nil || p.TransactionID != txn {
		h.t.Fatalf("status query %+v, want one for %s", q, txn)
	}
	res, _ := json.Marshal(protocol.StatusResults{TransactionID: txn, Status: status})
	if err := h.answer(node, protocol.TypeBlockingResponse, protocol.BlockingResponse{TransactionID: q.TransactionID, Results: res}); err != nil {
		h.t.Fatalf("status answer: %v", err)
	}
}

func (h *statusHarness) node(jobID int64, name string) jobs.Node {
	h.t.Helper()
	n, err := h.st.GetJobNode(h.t.Context(), jobID, name)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *statusHarness) sweep() {
	h.t.Helper()
	if err := h.orch.Sweep(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
}

// TestStatusQueries: a running node that stays silent for the status interval is asked for
// its transaction's status, and every answer moves it on — a lost result or a lost request
// delays the node, never loses it.
func TestStatusQueries(t *testing.T) {
	for _, tc := range []struct {
		status     string
		wantResend bool
	}{
		{"running", false},
		{"success", true}, // finished, its result lost on the way
		{"failure", true},
		{"unknown", true}, // the request never arrived
	} {
		t.Run(tc.status, func(t *testing.T) {
			h := newStatusHarness(t, []string{"web1"})
			job := h.submit("web1")
			if err := h.orch.Dispatch(t.Context(), job.ID); err != nil {
				t.Fatal(err)
			}
			var req protocol.NonBlockingRequest
			h.one(protocol.TypeNonBlockingRequest, &req)
			if id, ok := jobs.TransactionJob(req.TransactionID); !ok || id != job.ID {
				t.Fatalf("transaction id %q does not name job %d", req.TransactionID, job.ID)
			}
			// Nothing is due before the interval: no query.
			h.clock.Add(statusInterval - time.Second)
			h.sweep()
			if sent := h.agents.take(); len(sent) != 0 {
				t.Fatalf("sent %d messages before the status interval", len(sent))
			}
			h.clock.Add(time.Second)
			h.sweep()
			h.statusAnswer("web1", req.TransactionID, tc.status)
			n := h.node(job.ID, "web1")
			if n.State != jobs.NodeRunning || n.DueAt == nil || !n.DueAt.Equal(h.clock.Now().Add(statusInterval)) {
				t.Fatalf("after the query the node is %s due %v, want running and due one interval later", n.State, n.DueAt)
			}
			if !tc.wantResend {
				if sent := h.agents.take(); len(sent) != 0 {
					t.Fatalf("a running transaction was sent %d more messages", len(sent))
				}
				// Still silent one interval later: asked again.
				h.clock.Add(statusInterval)
				h.sweep()
				h.statusAnswer("web1", req.TransactionID, "running")
				return
			}
			var again protocol.NonBlockingRequest
			h.one(protocol.TypeNonBlockingRequest, &again)
			if again.TransactionID != req.TransactionID {
				t.Fatalf("request sent again with transaction %s, want the same %s", again.TransactionID, req.TransactionID)
			}
			err := h.answer("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: req.TransactionID,
				Results: json.RawMessage(`{"stdout":"{\"ok\":true}","stderr":"","exitcode":0}`)})
			if err != nil {
				t.Fatal(err)
			}
			if j, err := h.st.GetJob(t.Context(), job.ID); err != nil || j.State != jobs.StateFinished {
				t.Fatalf("job %v, %v: want finished", j.State, err)
			}
		})
	}
}

// TestStatusAnswerFromAnotherNodeIsRefused: a node cannot move another node's transaction.
func TestStatusAnswerFromAnotherNodeIsRefused(t *testing.T) {
	h := newStatusHarness(t, []string{"web1", "web2"})
	job := h.submit("web1")
	if err := h.orch.Dispatch(t.Context(), job.ID); err != nil {
		t.Fatal(err)
	}
	var req protocol.NonBlockingRequest
	h.one(protocol.TypeNonBlockingRequest, &req)
	res, _ := json.Marshal(protocol.StatusResults{TransactionID: req.TransactionID, Status: "unknown"})
	err := h.answer("web2", protocol.TypeBlockingResponse, protocol.BlockingResponse{TransactionID: protocol.NewID(), Results: res})
	if err == nil || !strings.Contains(err.Error(), "not sent to web2") {
		t.Fatalf("answer from web2: %v, want refused", err)
	}
	if sent := h.agents.take(); len(sent) != 0 {
		t.Fatalf("sent %d messages after another node's answer", len(sent))
	}
}

// TestHandoffClaimsEveryNodeAtCreation: with a remote dispatcher (AWS), creating a job
// claims all its nodes in the creating write — running where the agent is connected, ready
// where it is not — and hands them over; SendClaimed sends them; a request that does not go
// out is recorded undelivered, offered again, and ends the node errored once the connect
// timeout has passed since the claim.
func TestHandoffClaimsEveryNodeAtCreation(t *testing.T) {
	const size = 300 // more than one claim batch (256)
	names := make([]string, size)
	for i := range names {
		names[i] = fmt.Sprintf("node%03d", i)
	}
	var (
		handed  []jobs.Node
		handJob jobs.Job
		lookups int
	)
	h := newStatusHarness(t, names, orchestrator.WithHandoff(
		func(_ context.Context, job jobs.Job, claimed []jobs.Node) error {
			handJob, handed = job, claimed
			return nil
		},
		func(_ context.Context, asked []string) (map[string]bool, error) {
			lookups++
			out := map[string]bool{}
			for _, n := range asked {
				out[n] = n != "node000" // node000's agent is not connected
			}
			return out, nil
		}))
	job := h.submit(names...)
	if lookups != 1 || handJob.ID != job.ID || len(handed) != size {
		t.Fatalf("%d lookups, handed job %d with %d nodes; want 1 lookup and job %d with all %d", lookups, handJob.ID, len(handed), job.ID, size)
	}
	if sent := h.agents.take(); len(sent) != 0 {
		t.Fatalf("the creating process sent %d messages; the dispatcher sends", len(sent))
	}
	for _, n := range handed {
		want := jobs.NodeRunning
		if n.Name == "node000" {
			want = jobs.NodeReady
		}
		if n.State != want {
			t.Fatalf("%s claimed %s, want %s", n.Name, n.State, want)
		}
	}
	// node000 is not connected; node001 disconnected between the snapshot and the send.
	h.agents.mu.Lock()
	h.agents.connected["node000"] = false
	h.agents.connected["node001"] = false
	h.agents.mu.Unlock()
	if err := h.orch.SendClaimed(t.Context(), job.ID, handed); err != nil {
		t.Fatal(err)
	}
	if sent := h.agents.take(); len(sent) != size-2 {
		t.Fatalf("sent %d requests, want %d", len(sent), size-2)
	}
	n1 := h.node(job.ID, "node001")
	if n1.State != jobs.NodeRunning || n1.StartedAt != nil || n1.DueAt == nil {
		t.Fatalf("undelivered node001: %s started %v due %v; want running, undelivered, due", n1.State, n1.StartedAt, n1.DueAt)
	}
	// It comes back: the sweep delivers it and records it started.
	h.agents.mu.Lock()
	h.agents.connected["node001"] = true
	h.agents.mu.Unlock()
	h.clock.Add(2 * time.Second)
	h.sweep()
	n1 = h.node(job.ID, "node001")
	if n1.StartedAt == nil || !n1.StartedAt.Equal(h.clock.Now()) {
		t.Fatalf("node001 after the sweep delivered it: started %v, want %v", n1.StartedAt, h.clock.Now())
	}
	// node000 never connects: errored once the connect timeout has passed.
	h.clock.Add(10 * time.Second)
	h.sweep()
	n0 := h.node(job.ID, "node000")
	if n0.State != jobs.NodeErrored || !strings.Contains(n0.Message, "did not connect") {
		t.Fatalf("node000: %s %q, want errored, did not connect", n0.State, n0.Message)
	}
}

// TestForceStopReachesAnAgentThatWasAway: a forced stop while a node's agent is away is
// remembered: the cancel goes out when the agent is back, and the node's result records
// whether the kill was confirmed.
func TestForceStopReachesAnAgentThatWasAway(t *testing.T) {
	h := newStatusHarness(t, []string{"web1", "web2"})
	job := h.submit("web1", "web2")
	if err := h.orch.Dispatch(t.Context(), job.ID); err != nil {
		t.Fatal(err)
	}
	txns := map[string]string{}
	for _, e := range h.agents.take() {
		var r protocol.NonBlockingRequest
		if err := protocol.DecodeData(e, &r); err != nil {
			t.Fatal(err)
		}
		txns[strings.TrimSuffix(strings.TrimPrefix(e.Target, "pcp://"), "/agent")] = r.TransactionID
	}
	h.agents.mu.Lock()
	h.agents.connected["web2"] = false // away when the stop comes
	h.agents.mu.Unlock()
	if _, err := h.orch.Stop(t.Context(), job.ID, true); err != nil {
		t.Fatal(err)
	}
	var c protocol.Cancel
	h.one(protocol.TypeCancel, &c) // web1's, at once
	if c.TransactionID != txns["web1"] {
		t.Fatalf("cancel of %s, want web1's %s", c.TransactionID, txns["web1"])
	}
	kill := func(name string) string {
		var r struct {
			Error struct {
				Details map[string]any `json:"details"`
			} `json:"_error"`
		}
		n := h.node(job.ID, name)
		if n.State != jobs.NodeStopped || json.Unmarshal(n.Result, &r) != nil {
			t.Fatalf("%s: %s %s", name, n.State, n.Result)
		}
		k, _ := r.Error.Details["kill"].(string)
		return k
	}
	if k1, k2 := kill("web1"), kill("web2"); k1 != orchestrator.KillRequested || k2 != orchestrator.KillPending {
		t.Fatalf("kills %q and %q, want requested and pending", k1, k2)
	}
	h.clock.Add(5 * time.Second)
	h.sweep() // web2 still away: nothing sent
	if sent := h.agents.take(); len(sent) != 0 {
		t.Fatalf("sent %d messages to an agent that is away", len(sent))
	}
	h.agents.mu.Lock()
	h.agents.connected["web2"] = true
	h.agents.mu.Unlock()
	h.clock.Add(5 * time.Second)
	h.sweep()
	h.one(protocol.TypeCancel, &c)
	if c.TransactionID != txns["web2"] || kill("web2") != orchestrator.KillRequested {
		t.Fatalf("cancel of %s (kill %q), want web2's %s, requested", c.TransactionID, kill("web2"), txns["web2"])
	}
	// The agents report the end of their cancelled transactions: confirmed, and acknowledged.
	for _, name := range []string{"web1", "web2"} {
		err := h.answer(name, protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: txns[name],
			Results: json.RawMessage(`{"stdout":"","stderr":"killed","exitcode":-1}`)})
		if err != nil {
			t.Fatal(err)
		}
		var ack protocol.ResultAck
		h.one(protocol.TypeResultAck, &ack)
		if kill(name) != orchestrator.KillConfirmed {
			t.Fatalf("%s: kill %q after the agent's report, want confirmed", name, kill(name))
		}
	}
	if j, err := h.st.GetJob(t.Context(), job.ID); err != nil || j.State != jobs.StateStopped {
		t.Fatalf("job %v, %v: want stopped", j.State, err)
	}
}

func TestStatusDue(t *testing.T) {
	const period, interval = time.Minute, time.Minute
	var asked []int
	for minute := 0; minute <= 40; minute++ {
		if orchestrator.StatusDue(time.Duration(minute)*time.Minute+30*time.Second, period, interval) {
			asked = append(asked, minute)
		}
	}
	if fmt.Sprint(asked) != "[1 2 4 8 16 32]" {
		t.Fatalf("asked at minutes %v, want 1 2 4 8 16 32", asked)
	}
}

// TestStatusScan: with StatusScan (AWS), a running record carries no status due time; the
// sweep asks about a node when its time running crosses the interval, then twice it, …
func TestStatusScan(t *testing.T) {
	h := newStatusHarness(t, []string{"web1"}, orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: -1,
		StatusInterval: time.Minute, StatusScan: true, SweepPeriod: time.Minute}))
	job := h.submit("web1")
	if err := h.orch.Dispatch(t.Context(), job.ID); err != nil {
		t.Fatal(err)
	}
	var req protocol.NonBlockingRequest
	h.one(protocol.TypeNonBlockingRequest, &req)
	if n := h.node(job.ID, "web1"); n.DueAt != nil {
		t.Fatalf("running record due %v: want no due time with StatusScan", n.DueAt)
	}
	var queried []int
	for minute := 1; minute <= 9; minute++ {
		h.clock.Add(time.Minute)
		h.sweep()
		if sent := h.agents.take(); len(sent) > 0 {
			queried = append(queried, minute)
		}
	}
	if fmt.Sprint(queried) != "[1 2 4 8]" {
		t.Fatalf("status queries at minutes %v, want 1 2 4 8", queried)
	}
}

// TestOutcomeUnknownEndsFailed: an agent that cannot know how its task ended says so
// (outcome_unknown); the node ends failed with the agent's error kind and words — not
// errored, which would say the task was never run.
func TestOutcomeUnknownEndsFailed(t *testing.T) {
	h := newStatusHarness(t, []string{"web1"})
	job := h.submit("web1")
	if err := h.orch.Dispatch(t.Context(), job.ID); err != nil {
		t.Fatal(err)
	}
	var req protocol.NonBlockingRequest
	h.one(protocol.TypeNonBlockingRequest, &req)
	res, _ := json.Marshal(protocol.TaskResults{Exitcode: -1, OutcomeUnknown: true,
		Stdout: `{"_error":{"details":{},"kind":"baton/task-outcome-unknown","msg":"the agent restarted while the task ran; outcome unknown"}}`})
	if err := h.answer("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: req.TransactionID, Results: res}); err != nil {
		t.Fatal(err)
	}
	n := h.node(job.ID, "web1")
	if n.State != jobs.NodeFailed || !strings.Contains(string(n.Result), `"kind":"baton/task-outcome-unknown"`) ||
		!strings.Contains(n.Message, "the agent restarted while the task ran; outcome unknown") {
		t.Fatalf("node %s %q %s, want failed with kind baton/task-outcome-unknown and the agent's words", n.State, n.Message, n.Result)
	}
}

// TestNoResultAck: with NoResultAck (AWS) the requests say no_ack and a recorded outcome
// gets no acknowledgement on the wire; a repeat of it does (its agent sent it again and stops
// on it); a lost outcome is found by the status scan, which sends the request again.
func TestNoResultAck(t *testing.T) {
	h := newStatusHarness(t, []string{"web1"}, orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: -1,
		StatusInterval: time.Minute, StatusScan: true, SweepPeriod: time.Minute, NoResultAck: true}))
	result := json.RawMessage(`{"stdout":"{\"ok\":true}","stderr":"","exitcode":0}`)
	run := func() (jobs.Job, protocol.NonBlockingRequest) {
		job, req := h.start(orchestrator.TaskRequest{Task: "demo::noop",
			Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"web1"}}}})
		if !req.NoAck {
			t.Fatalf("request %+v: want no_ack", req)
		}
		return job, req
	}
	job, req := run()
	if err := h.answer("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: req.TransactionID, Results: result}); err != nil {
		t.Fatal(err)
	}
	if sent := h.agents.take(); len(sent) != 0 {
		t.Fatalf("sent %d messages after a recorded outcome, want none (no acknowledgement)", len(sent))
	}
	if j, err := h.st.GetJob(t.Context(), job.ID); err != nil || j.State != jobs.StateFinished {
		t.Fatalf("job %v, %v: want finished", j.State, err)
	}
	if err := h.answer("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: req.TransactionID, Results: result}); err != nil {
		t.Fatal(err)
	}
	var ack protocol.ResultAck
	h.one(protocol.TypeResultAck, &ack)
	if ack.TransactionID != req.TransactionID {
		t.Fatalf("acknowledged %s, want the repeat's %s", ack.TransactionID, req.TransactionID)
	}

	// An outcome that never arrives: the scan asks after a minute, the agent says it finished,
	// the request goes again (its agent answers a repeat with its outcome).
	job, req = run()
	h.clock.Add(time.Minute)
	h.sweep()
	h.statusAnswer("web1", req.TransactionID, "success")
	var again protocol.NonBlockingRequest
	h.one(protocol.TypeNonBlockingRequest, &again)
	if again.TransactionID != req.TransactionID || !again.NoAck {
		t.Fatalf("sent again %+v, want %s with no_ack", again, req.TransactionID)
	}
	if err := h.answer("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: req.TransactionID, Results: result}); err != nil {
		t.Fatal(err)
	}
	if sent := h.agents.take(); len(sent) != 0 {
		t.Fatalf("sent %d messages after the recorded outcome, want none", len(sent))
	}
	if j, err := h.st.GetJob(t.Context(), job.ID); err != nil || j.State != jobs.StateFinished {
		t.Fatalf("job %v, %v: want finished", j.State, err)
	}
}

// TestNoResultAckAsksBeforeTheTimeout: with NoResultAck a result may be lost without a word,
// so a node that reaches its job's timeout (plus grace) is asked about once before it ends
// failed: an answer brings its result; silence ends it StatusInterval later.
func TestNoResultAckAsksBeforeTheTimeout(t *testing.T) {
	for _, tc := range []struct {
		answered bool
		unknown  bool          // the answer is "unknown": the request never arrived
		late     time.Duration // how long after the deadline the sweep comes
	}{{true, false, 0}, {false, false, 0}, {false, false, 3 * time.Minute}, {false, true, 0}} {
		answered := tc.answered
		t.Run(fmt.Sprintf("answered=%v,unknown=%v,late=%s", answered, tc.unknown, tc.late), func(t *testing.T) {
			h := newStatusHarness(t, []string{"web1"}, orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: -1,
				StatusInterval: time.Minute, StatusScan: true, SweepPeriod: time.Minute, NoResultAck: true, TimeoutGrace: 30 * time.Second}))
			job, req := h.start(orchestrator.TaskRequest{Task: "demo::noop",
				Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"web1"}}, Timeout: 10}})
			h.clock.Add(40*time.Second + tc.late) // the timeout and its grace
			h.sweep()
			if n := h.node(job.ID, "web1"); n.State != jobs.NodeRunning {
				t.Fatalf("at the deadline the node is %s, want running and asked about", n.State)
			}
			if !answered {
				if tc.unknown {
					// Not sent again: a task is not started past its timeout.
					h.statusAnswer("web1", req.TransactionID, "unknown")
					if sent := h.agents.take(); len(sent) != 0 {
						t.Fatalf("sent %d messages after an unknown past the timeout, want none", len(sent))
					}
				} else {
					h.statusAnswerNone(req.TransactionID)
				}
				h.clock.Add(time.Minute)
				h.sweep()
				if n := h.node(job.ID, "web1"); n.State != jobs.NodeFailed || !strings.Contains(n.Message, "within the 10 second timeout") {
					t.Fatalf("a minute after the query the node is %s (%q), want failed on its timeout", n.State, n.Message)
				}
				return
			}
			h.statusAnswer("web1", req.TransactionID, "failure") // the agent's own timeout report was lost
			var again protocol.NonBlockingRequest
			h.one(protocol.TypeNonBlockingRequest, &again)
			err := h.answer("web1", protocol.TypeNonBlockingResponse, protocol.NonBlockingResponse{TransactionID: req.TransactionID,
				Results: json.RawMessage(`{"stdout":"","stderr":"timed out","exitcode":124}`)})
			if err != nil {
				t.Fatal(err)
			}
			if n := h.node(job.ID, "web1"); n.State != jobs.NodeFailed || !strings.Contains(string(n.Result), "timed out") {
				t.Fatalf("node %s %s, want failed with the agent's result", n.State, n.Result)
			}
		})
	}
}

// statusAnswerNone takes the status query sent for txn and leaves it unanswered.
func (h *statusHarness) statusAnswerNone(txn string) {
	h.t.Helper()
	var q protocol.BlockingRequest
	h.one(protocol.TypeBlockingRequest, &q)
	var p protocol.StatusQueryParams
	if json.Unmarshal(q.Params, &p) != nil || p.TransactionID != txn {
		h.t.Fatalf("status query %+v, want one for %s", q, txn)
	}
}

// TestNoResultAckOffersOnceMoreAtTheConnectDeadline: with NoResultAck no provisional response
// records a delivered node running when the server's own write of it was lost, so a node
// still ready at its connect deadline whose agent is connected is offered once more (the
// resend records it running) instead of ending "did not connect"; one whose agent is away
// ends as before.
func TestNoResultAckOffersOnceMoreAtTheConnectDeadline(t *testing.T) {
	for _, connected := range []bool{true, false} {
		t.Run(fmt.Sprintf("connected=%v", connected), func(t *testing.T) {
			h := newStatusHarness(t, []string{"web1"}, orchestrator.WithConfig(orchestrator.Config{TaskConcurrency: -1,
				StatusInterval: time.Minute, StatusScan: true, SweepPeriod: time.Minute, NoResultAck: true,
				ConnectTimeout: 10 * time.Second, ConnectRetry: 2 * time.Second}))
			job, req := h.start(orchestrator.TaskRequest{Task: "demo::noop",
				Common: orchestrator.Common{Scope: orchestrator.Scope{Nodes: []string{"web1"}}}})
			// The request went out, but the write that recorded the node running was lost.
			n := h.node(job.ID, "web1")
			readyAt := h.clock.Now()
			n.State, n.StartedAt, n.ReadyAt, n.DueAt = jobs.NodeReady, nil, &readyAt, &readyAt
			if _, err := h.st.UpdateJobNode(t.Context(), n); err != nil {
				t.Fatal(err)
			}
			h.agents.mu.Lock()
			h.agents.connected["web1"] = connected
			h.agents.mu.Unlock()
			h.clock.Add(10 * time.Second) // the connect deadline
			h.sweep()
			got := h.node(job.ID, "web1")
			if !connected {
				if sent := h.agents.take(); len(sent) != 0 || got.State != jobs.NodeErrored {
					t.Fatalf("agent away: sent %d messages, node %s; want none and errored", len(sent), got.State)
				}
				return
			}
			var again protocol.NonBlockingRequest
			h.one(protocol.TypeNonBlockingRequest, &again)
			if again.TransactionID != req.TransactionID || got.State != jobs.NodeRunning || got.StartedAt == nil {
				t.Fatalf("offered %s, node %s (started %v); want %s offered again and recorded running", again.TransactionID, got.State, got.StartedAt, req.TransactionID)
			}
		})
	}
}
