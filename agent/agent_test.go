//go:build unix

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

func TestFactsSentOnEveryConnect(t *testing.T) {
	ts := newTestServer(t)
	ta := startAgent(t, testConfig(t, ts))
	for conn := 1; conn <= 2; conn++ {
		f, _ := ts.waitFrame(t, 0, "facts", onConn(conn, isType(protocol.TypeFacts)))
		var facts protocol.Facts
		if err := json.Unmarshal(f.env.Data, &facts); err != nil {
			t.Fatal(err)
		}
		if facts.Facts["hostname"] != "node1" {
			t.Errorf("conn %d facts %v", conn, facts.Facts)
		}
		waitUntil(t, "connected", ta.Connected)
		ts.dropConn()
	}
}

func TestRejectedCredentialsAreRetried(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.Secret = "wrong"
	ta := startAgent(t, cfg)
	waitUntil(t, "several attempts", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.rejected >= 3
	})
	if ta.Connected() || ts.currentConn() != 0 {
		t.Error("agent connected with a wrong secret")
	}
}

func TestResultResentAfterReconnectUntilAcked(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	file := ts.addFile("r.sh", script("echo result"))
	const txn = "txn-resend"
	ts.runTask(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})

	ts.dropConn()
	ts.waitFrame(t, 0, "result resent on conn 2", onConn(2, isTxn(protocol.TypeNonBlockingResponse, txn)))
	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: txn})
	ts.statusQuery(t, txn) // the ack is processed before this is answered

	ts.dropConn()
	ts.waitFrame(t, 0, "facts on conn 3", onConn(3, isType(protocol.TypeFacts)))
	ts.statusQuery(t, txn) // spooled results go out before requests are read
	if n := ts.count(onConn(3, isOutcome(txn))); n != 0 {
		t.Errorf("acknowledged result sent again on conn 3 (%d times)", n)
	}
	if n := ts.count(isOutcome(txn)); n != 2 {
		t.Errorf("result sent %d times, want 2", n)
	}
}

func TestResultsResentOldestFirst(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	file := ts.addFile("r.sh", script("echo result"))
	txns := []string{"txn-c", "txn-a", "txn-b"}
	for _, txn := range txns {
		ts.runTask(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	}
	ts.dropConn()
	ts.waitFrame(t, 0, "facts on conn 2", onConn(2, isType(protocol.TypeFacts)))
	ts.statusQuery(t, "txn-none") // answered after everything sent before it
	var got []string
	ts.mu.Lock()
	for _, f := range ts.frames {
		if f.conn == 2 && f.env.MessageType == protocol.TypeNonBlockingResponse {
			got = append(got, txnOf(f))
		}
	}
	ts.mu.Unlock()
	if strings.Join(got, ",") != strings.Join(txns, ",") {
		t.Errorf("resent %v, want %v", got, txns)
	}
}

func TestResultWhileDisconnectedIsSentOnReconnect(t *testing.T) {
	ts := newTestServer(t)
	ta := startAgent(t, testConfig(t, ts))
	release := filepath.Join(t.TempDir(), "release")
	file := ts.addFile("w.sh", script(`while [ ! -f "$PT_release" ]; do sleep 0.02; done; echo late`))
	const txn = "txn-offline"
	from := ts.frameCount()
	ts.runRequest(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
		Input: mustJSON(t, map[string]string{"release": release})})
	ts.waitFrame(t, from, "provisional", isTxn(protocol.TypeProvisionalResponse, txn))

	// Refuse reconnects while the task finishes.
	ts.setBlocked(true)
	ts.dropConn()
	waitUntil(t, "disconnected", func() bool { return !ta.Connected() })
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the result to be spooled", func() bool {
		return fileExists(filepath.Join(ta.cfg.SpoolDir, txn, resultFile))
	})
	ts.setBlocked(false)
	f, _ := ts.waitFrame(t, from, "result after reconnect", isOutcome(txn))
	if f.conn != 2 {
		t.Errorf("result sent on conn %d, want 2", f.conn)
	}
	if res := taskResults(t, f); res.Stdout != "late\n" {
		t.Errorf("results %+v", res)
	}
}

func TestRestartDoesNotRerun(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	first := startAgent(t, cfg)
	marker := filepath.Join(t.TempDir(), "runs")
	file := ts.addFile("once.sh", script(`echo run >> "$PT_marker"; echo done`))
	p := protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}, Input: mustJSON(t, map[string]string{"marker": marker})}
	const txn = "txn-restart"
	ts.runTask(t, txn, p)
	first.stop()

	startAgent(t, cfg)
	ts.waitFrame(t, 0, "unacknowledged result resent by the new agent", onConn(2, isOutcome(txn)))
	from := ts.frameCount()
	ts.runRequest(t, txn, p)
	ts.waitFrame(t, from, "provisional", isTxn(protocol.TypeProvisionalResponse, txn))
	ts.waitFrame(t, from, "result sent again (not acknowledged)", isOutcome(txn))
	if n := lines(t, marker); n != 1 {
		t.Errorf("task ran %d times, want 1", n)
	}
}

func TestStopKillsRunningTaskAndReportsIt(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	first := startAgent(t, cfg)
	childpid := filepath.Join(t.TempDir(), "child")
	file := ts.addFile("spawn.sh", script(spawnScript))
	const txn = "txn-stopped"
	ts.runRequest(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
		Input: mustJSON(t, map[string]string{"childpid": childpid})})
	waitUntil(t, "the child to start", func() bool { return fileExists(childpid) })
	first.stop()
	pid := readPID(t, childpid)
	// SIGKILL is delivered to the whole group at once, but the child may take a moment to die.
	waitUntil(t, fmt.Sprintf("child %d to be gone after the agent stopped", pid), func() bool { return processGone(pid) })

	startAgent(t, cfg)
	f, _ := ts.waitFrame(t, 0, "error on the next connection", onConn(2, isOutcome(txn)))
	if e := rpcError(t, f); !strings.Contains(e.Description, ErrAgentStopped.Error()) {
		t.Errorf("description %q", e.Description)
	}
}

func TestOrphanedTransactionIsReported(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	sp := &spool{dir: cfg.SpoolDir}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.create(txnMetadata{Module: "task", Action: "run", RequestParams: "{}", TransactionID: "txn-orphan",
		RequestID: "req-1", NotifyOutcome: true, Start: time.Now().UTC(), Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cfg)
	f, _ := ts.waitFrame(t, 0, "orphan reported", isOutcome("txn-orphan"))
	if e := rpcError(t, f); e.ID != "req-1" || !strings.Contains(e.Description, notStartedError) {
		t.Errorf("got %+v, want %q: the task never started", e, notStartedError)
	}
}

func TestMalformedFramesGetErrorMessages(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	ts.waitFrame(t, 0, "facts", isType(protocol.TypeFacts))
	tests := []struct {
		name          string
		frame         string
		wantInReplyTo string
	}{
		{"not json", "this is not json", ""},
		{"unknown type", `{"id":"m-1","message_type":"http://example.com/bogus"}`, "m-1"},
		{"bad request data", `{"id":"m-2","message_type":"http://puppetlabs.com/rpc_non_blocking_request","data":{"transaction_id":"../x","notify_outcome":true,"module":"task","action":"run"}}`, "m-2"},
		{"request sent to the agent's peer type", `{"id":"m-3","message_type":"http://puppetlabs.com/rpc_provisional_response","data":{"transaction_id":"t"}}`, "m-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := ts.frameCount()
			ts.sendRaw(t, []byte(tt.frame))
			f, _ := ts.waitFrame(t, from, "error_message", isType(protocol.TypeErrorMessage))
			var desc string
			if err := json.Unmarshal(f.env.Data, &desc); err != nil || desc == "" {
				t.Errorf("data %s", f.env.Data)
			}
			if f.env.InReplyTo != tt.wantInReplyTo {
				t.Errorf("in_reply_to %q, want %q", f.env.InReplyTo, tt.wantInReplyTo)
			}
		})
	}
	if st := ts.statusQuery(t, "txn-x"); st.Status != StatusUnknown {
		t.Errorf("status %+v", st)
	}
	if n := ts.currentConn(); n != 1 {
		t.Errorf("connection count %d: malformed frames must not break the connection", n)
	}
}

func TestRequestErrors(t *testing.T) {
	ts := newTestServer(t)
	startAgent(t, testConfig(t, ts))
	file := ts.addFile("x.sh", script("true"))
	goodParams := mustJSON(t, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	tests := []struct {
		name     string
		blocking bool
		module   string
		action   string
		params   json.RawMessage
		want     string
	}{
		{"unknown module", false, "nope", "run", nil, "unknown module: nope"},
		{"unknown action", false, "task", "explode", nil, "unknown action 'explode' for module 'task'"},
		{"unknown status action", true, "status", "explode", nil, "unknown action 'explode' for module 'status'"},
		{"status is blocking only", false, "status", "query", nil, "the module 'status' supports only blocking PXP requests"},
		{"task is non-blocking only", true, "task", "run", goodParams, "the module 'task' supports only non-blocking PXP requests"},
		{"missing files", false, "task", "run", mustJSON(t, map[string]any{"task": "demo", "input": map[string]any{}}),
			"invalid input for non blocking 'task run' request (transaction TXN): files needs at least one file"},
		{"params not an object", false, "task", "run", json.RawMessage(`[1]`),
			"invalid input for non blocking 'task run' request (transaction TXN): params must be a JSON object"},
		{"input not an object", false, "task", "run", mustJSON(t, map[string]any{"task": "demo", "input": "x", "files": []protocol.TaskFile{file}}),
			"invalid input for non blocking 'task run' request (transaction TXN): input must be a JSON object"},
		{"path traversal", false, "task", "run", mustJSON(t, map[string]any{"task": "demo", "files": []protocol.TaskFile{{Filename: "../evil", URI: file.URI, SHA256: file.SHA256}}}),
			"invalid input for non blocking 'task run' request (transaction TXN): file \"../evil\": filename must be a relative path inside the task's install directory"},
		{"bad task name", false, "task", "run", mustJSON(t, map[string]any{"task": "../x", "files": []protocol.TaskFile{file}}),
			"invalid input for non blocking 'task run' request (transaction TXN): invalid task name: \"../x\"*"},
		{"bad metadata", false, "task", "run", mustJSON(t, map[string]any{"task": "demo", "files": []protocol.TaskFile{file}, "metadata": map[string]any{"input_method": "carrier-pigeon"}}),
			"invalid input for non blocking 'task run' request (transaction TXN): invalid task metadata: input_method: *"},
		{"bad status params", true, "status", "query", json.RawMessage(`{"transaction_id":"../x"}`),
			"invalid input for blocking 'status query' request (transaction TXN)"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txn := "txn-err-" + string(rune('a'+i))
			from := ts.frameCount()
			var req protocol.Envelope
			if tt.blocking {
				req = ts.send(t, protocol.TypeBlockingRequest, protocol.BlockingRequest{TransactionID: txn, Module: tt.module, Action: tt.action, Params: tt.params})
			} else {
				req = ts.send(t, protocol.TypeNonBlockingRequest, protocol.NonBlockingRequest{TransactionID: txn, NotifyOutcome: true, Module: tt.module, Action: tt.action, Params: tt.params})
			}
			f, _ := ts.waitFrame(t, from, "rpc error", isTxn(protocol.TypeRPCError, txn))
			e := rpcError(t, f)
			// A trailing * leaves the rest of the text to the package that produces it.
			want := strings.ReplaceAll(tt.want, "TXN", txn)
			match := e.Description == want
			if prefix, ok := strings.CutSuffix(want, "*"); ok {
				match = strings.HasPrefix(e.Description, prefix)
			}
			if !match || e.ID != req.ID {
				t.Errorf("got %q (id %s), want %q (id %s)", e.Description, e.ID, want, req.ID)
			}
			if n := ts.count(isTxn(protocol.TypeProvisionalResponse, txn)); n != 0 {
				t.Error("a rejected request got a provisional response")
			}
		})
	}
}

func TestWithModule(t *testing.T) {
	ts := newTestServer(t)
	started := make(chan struct{}, 1)
	handler := func(ctx context.Context, req Request) (json.RawMessage, error) {
		var p struct {
			Flags []string `json:"flags"`
			Wait  bool     `json:"wait"`
			Fail  bool     `json:"fail"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil {
			return nil, err
		}
		if p.Fail {
			return nil, errors.New("puppet is not installed")
		}
		if p.Wait {
			started <- struct{}{}
			<-ctx.Done()
			return json.Marshal(map[string]any{"status": "failed", "exitcode": -1, "cause": context.Cause(ctx).Error()})
		}
		if fi, err := os.Stat(req.Dir); err != nil || fi.Mode().Perm() != 0o700 {
			return nil, errors.New("transaction dir missing or not 0700")
		}
		return json.Marshal(map[string]any{"status": "changed", "exitcode": 0, "flags": p.Flags})
	}
	startAgent(t, testConfig(t, ts), WithModule(protocol.ModulePuppet, protocol.ActionRun, handler))
	send := func(txn string, params any) {
		ts.send(t, protocol.TypeNonBlockingRequest, protocol.NonBlockingRequest{TransactionID: txn, NotifyOutcome: true,
			Module: protocol.ModulePuppet, Action: protocol.ActionRun, Params: mustJSON(t, params)})
	}
	results := func(f frame) map[string]any {
		var resp protocol.NonBlockingResponse
		var out map[string]any
		if err := json.Unmarshal(f.env.Data, &resp); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(resp.Results, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("results", func(t *testing.T) {
		send("txn-puppet", map[string]any{"flags": []string{"--noop"}})
		f, _ := ts.waitFrame(t, 0, "result", isOutcome("txn-puppet"))
		if r := results(f); r["status"] != "changed" {
			t.Errorf("results %v", r)
		}
		st := ts.statusQuery(t, "txn-puppet")
		if st.Status != StatusSuccess || !strings.Contains(st.Stdout, `"status":"changed"`) {
			t.Errorf("status %+v", st)
		}
	})
	t.Run("error", func(t *testing.T) {
		send("txn-puppet-fail", map[string]any{"fail": true})
		f, _ := ts.waitFrame(t, 0, "rpc error", isOutcome("txn-puppet-fail"))
		if e := rpcError(t, f); e.Description != "Failed to execute the task for the non blocking 'pxp-module-puppet run' request (transaction txn-puppet-fail). Error: puppet is not installed" {
			t.Errorf("description %q", e.Description)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		send("txn-puppet-timeout", map[string]any{"wait": true, "timeout": 1})
		f, _ := ts.waitFrame(t, 0, "result", isOutcome("txn-puppet-timeout"))
		if r := results(f); r["cause"] != ErrTimedOut.Error() {
			t.Errorf("results %v", r)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		send("txn-puppet-cancel", map[string]any{"wait": true})
		<-started
		ts.send(t, protocol.TypeCancel, protocol.Cancel{TransactionID: "txn-puppet-cancel"})
		f, _ := ts.waitFrame(t, 0, "result", isOutcome("txn-puppet-cancel"))
		if r := results(f); r["cause"] != ErrCanceled.Error() {
			t.Errorf("results %v", r)
		}
		if st := ts.statusQuery(t, "txn-puppet-cancel"); st.Status != StatusFailure {
			t.Errorf("status %+v", st)
		}
	})
	t.Run("unknown action of a plugged module", func(t *testing.T) {
		ts.send(t, protocol.TypeNonBlockingRequest, protocol.NonBlockingRequest{TransactionID: "txn-puppet-x", NotifyOutcome: true,
			Module: protocol.ModulePuppet, Action: "apply"})
		f, _ := ts.waitFrame(t, 0, "rpc error", isOutcome("txn-puppet-x"))
		if e := rpcError(t, f); e.Description != "unknown action 'apply' for module 'pxp-module-puppet'" {
			t.Errorf("description %q", e.Description)
		}
	})
}

func TestRunTwiceConcurrentlyFails(t *testing.T) {
	ts := newTestServer(t)
	ta := startAgent(t, testConfig(t, ts))
	waitUntil(t, "connected", ta.Connected)
	if err := ta.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

func TestAgentPurgesSpoolAtStart(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	sp := &spool{dir: cfg.SpoolDir}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-20 * 24 * time.Hour)
	if _, err := sp.create(txnMetadata{TransactionID: "ancient", Start: old, Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.finish("ancient", json.RawMessage(`{"exitcode":0}`), "", old); err != nil {
		t.Fatal(err)
	}
	if err := sp.ack("ancient"); err != nil {
		t.Fatal(err)
	}
	staleEntry := filepath.Join(cfg.CacheDir, strings.Repeat("a", 64))
	freshEntry := filepath.Join(cfg.CacheDir, strings.Repeat("b", 64))
	for _, d := range []string{staleEntry, freshEntry} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(staleEntry, old, old); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, cfg)
	waitUntil(t, "connected", ta.Connected)
	if fileExists(filepath.Join(cfg.SpoolDir, "ancient")) {
		t.Error("old acknowledged transaction not purged")
	}
	if fileExists(staleEntry) || !fileExists(freshEntry) {
		t.Errorf("cache purge: stale entry exists %v, fresh entry exists %v", fileExists(staleEntry), fileExists(freshEntry))
	}
}

// TestFactsNeverHoldUpWork checks that facts are gathered in the background: a request is
// run while facts are still being gathered, spooled results go out before the facts on a
// reconnect, and facts gathered within FactsTTL are sent again without gathering them anew.
func TestFactsNeverHoldUpWork(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	cfg.Facts = func(ctx context.Context) (map[string]any, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			select { // the first gathering takes as long as the test wants
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return map[string]any{"hostname": "node1"}, nil
	}
	startAgent(t, cfg)
	file := ts.addFile("r.sh", script("echo result"))
	res := ts.runTask(t, "txn-before-facts", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	if res.Stdout != "result\n" {
		t.Fatalf("result %+v", res)
	}
	if n := ts.count(isType(protocol.TypeFacts)); n != 0 {
		t.Fatalf("%d facts messages before the facts were gathered", n)
	}
	close(release)
	ts.waitFrame(t, 0, "facts once gathered", onConn(1, isType(protocol.TypeFacts)))

	// An unacknowledged result goes out on the next connection before the (cached) facts.
	ts.runTask(t, "txn-unacked", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	ts.dropConn()
	ts.waitFrame(t, 0, "facts on conn 2", onConn(2, isType(protocol.TypeFacts)))
	var order []string
	ts.mu.Lock()
	for _, f := range ts.frames {
		if f.conn == 2 && (f.env.MessageType == protocol.TypeFacts || f.env.MessageType == protocol.TypeNonBlockingResponse) {
			order = append(order, f.env.MessageType)
		}
	}
	ts.mu.Unlock()
	if len(order) < 2 || order[0] != protocol.TypeNonBlockingResponse {
		t.Errorf("on reconnect the agent sent %v: want the spooled result before the facts", order)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("facts gathered %d times, want once (cached within FactsTTL)", calls)
	}
}
