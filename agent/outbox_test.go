//go:build unix

package agent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// TestUnacknowledgedResultIsResentOnTheSameConnection checks that a result the server does
// not acknowledge is sent again on the same connection, with growing waits, until it is
// acknowledged, and not after.
func TestUnacknowledgedResultIsResentOnTheSameConnection(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.AckTimeout, cfg.MaxAckTimeout = 50*time.Millisecond, 200*time.Millisecond
	startAgent(t, cfg)
	file := ts.addFile("r.sh", script("echo result"))
	const txn = "txn-noack"
	ts.runTask(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	ts.waitFrame(t, 0, "the result sent three more times", func(frame) bool {
		return ts.countLocked(onConn(1, isOutcome(txn))) >= 4
	})
	if ts.currentConn() != 1 {
		t.Fatalf("the agent reconnected (conn %d): the result must be resent on the same connection", ts.currentConn())
	}

	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: txn})
	ts.statusQuery(t, txn) // the ack is processed before this is answered
	acked := ts.count(isOutcome(txn))
	// Barrier: a second result, resent twice, takes longer than the first one's longest wait.
	ts.runTask(t, "txn-later", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	ts.waitFrame(t, 0, "txn-later resent twice", func(frame) bool {
		return ts.countLocked(isOutcome("txn-later")) >= 3
	})
	if n := ts.count(isOutcome(txn)); n > acked+1 {
		t.Errorf("result sent %d more times after its acknowledgement", n-acked)
	}
}

// TestRefusedResultIsRetried checks the agent's answer to the server's error_message about a
// result: retryable (protocol.ErrorData) sends it again on the same connection after the wait
// named; final stops sending it on this connection; a retryable refusal of facts sends them
// again.
func TestRefusedResultIsRetried(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.AckTimeout = time.Hour // only refusals make the agent send again here
	startAgent(t, cfg)
	facts, _ := ts.waitFrame(t, 0, "facts", isType(protocol.TypeFacts))
	ts.sendEnvelope(t, protocol.NewRetryableError(facts.env.ID, "Too many messages; retry after 20ms", 20*time.Millisecond))
	ts.waitFrame(t, 0, "facts sent again", func(frame) bool { return ts.countLocked(isType(protocol.TypeFacts)) >= 2 })

	file := ts.addFile("r.sh", script("echo result"))
	const txn = "txn-refused"
	from := ts.frameCount()
	ts.runRequest(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	first, i := ts.waitFrame(t, from, "result", isOutcome(txn))
	ts.sendEnvelope(t, protocol.NewRetryableError(first.env.ID, "internal error handling message "+first.env.ID, 0))
	second, j := ts.waitFrame(t, i+1, "result sent again after a retryable refusal", isOutcome(txn))
	ts.sendEnvelope(t, protocol.NewRetryableError(second.env.ID, "Too many messages; retry after 30ms", 30*time.Millisecond))
	third, _ := ts.waitFrame(t, j+1, "result sent again after the server's wait", isOutcome(txn))
	if second.conn != 1 || third.conn != 1 {
		t.Fatalf("result resent on conns %d, %d: want the same connection", second.conn, third.conn)
	}

	// A final refusal: the result is not sent again on this connection.
	ts.sendEnvelope(t, protocol.NewErrorMessage(third.env.ID, "message not authorized: transaction txn-refused was not sent to node1"))
	ts.statusQuery(t, "txn-none") // a barrier (a status query of txn itself would send it again)
	n := ts.count(isOutcome(txn))
	ts.runTask(t, "txn-barrier", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	ts.statusQuery(t, "txn-none")
	if m := ts.count(isOutcome(txn)); m != n {
		t.Errorf("result sent %d more times after a final refusal", m-n)
	}
	// The next connection sends it again: the spool still holds it unacknowledged.
	ts.dropConn()
	ts.waitFrame(t, 0, "result on the next connection", onConn(2, isOutcome(txn)))
}

// TestNoAckResult checks an outcome whose request said no_ack: it goes out once, is not sent
// again on a timer, on a new connection or by a new agent process on the same spool, and is
// sent again when the server asks (a status query, a repeated request) and on an API Gateway
// error frame, which the agent does not answer. An acknowledgement (the server's answer to a
// repeat) ends even that.
func TestNoAckResult(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	cfg.AckTimeout, cfg.MaxAckTimeout = 50*time.Millisecond, 200*time.Millisecond
	ag := startAgent(t, cfg)
	file := ts.addFile("r.sh", script("echo result"))
	params, err := json.Marshal(protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	if err != nil {
		t.Fatal(err)
	}
	noAck := func(txn string) {
		ts.send(t, protocol.TypeNonBlockingRequest, protocol.NonBlockingRequest{
			TransactionID: txn, NotifyOutcome: true, Module: protocol.ModuleTask, Action: protocol.ActionRun, Params: params, NoAck: true,
		})
	}
	const txn = "txn-noack-1"
	noAck(txn)
	ts.waitFrame(t, 0, "the outcome", isOutcome(txn))
	// Barrier: an outcome the server acknowledges, never acknowledged here, sent three times
	// on its timer (50 + 100 + 200 ms): longer than txn's wait would have been.
	ts.runTask(t, "txn-acked", protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	ts.waitFrame(t, 0, "txn-acked sent three times", func(frame) bool { return ts.countLocked(isOutcome("txn-acked")) >= 3 })
	if n := ts.count(isOutcome(txn)); n != 1 {
		t.Fatalf("the no_ack outcome was sent %d times on a timer; want once", n)
	}

	// A new connection sends what is owed, oldest first: txn-acked, and not txn.
	ts.dropConn()
	ts.waitFrame(t, 0, "txn-acked on the next connection", onConn(2, isOutcome("txn-acked")))
	if n := ts.count(onConn(2, isOutcome(txn))); n != 0 {
		t.Fatalf("the no_ack outcome was sent again on a new connection")
	}
	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: "txn-acked"})

	// The server asks: a status query and a repeated request each bring it again.
	from := ts.frameCount()
	if st := ts.statusQuery(t, txn); st.Status != "success" {
		t.Fatalf("status %+v", st)
	}
	ts.waitFrame(t, from, "the outcome after a status query", isOutcome(txn))
	from = ts.frameCount()
	noAck(txn)
	ts.waitFrame(t, from, "the outcome after a repeated request", isOutcome(txn))

	// A new agent process on the same spool does not send it either.
	ag.stop()
	ts.dropConn()
	before := ts.count(isOutcome(txn))
	cfg.AckTimeout, cfg.MaxAckTimeout = time.Minute, time.Minute // the window of the steps below
	startAgent(t, cfg)
	ts.waitFrame(t, 0, "facts from the new process", onConn(3, isType(protocol.TypeFacts)))
	ts.statusQuery(t, "txn-none")
	if n := ts.count(isOutcome(txn)); n != before {
		t.Fatalf("the new agent process sent the no_ack outcome again")
	}

	// A retryable refusal of it: sent again after the wait the server names.
	from = ts.frameCount()
	noAck(txn)
	sent, i := ts.waitFrame(t, from, "the outcome after a repeated request", isOutcome(txn))
	ts.sendEnvelope(t, protocol.NewRetryableError(sent.env.ID, "Too many messages; retry after 20ms", 20*time.Millisecond))
	ts.waitFrame(t, i+1, "the outcome after a retryable refusal", isOutcome(txn))

	// API Gateway error frames: the outcomes sent lately go again (after a backoff), and the
	// frames get no answer.
	from = ts.frameCount()
	gwFrame := []byte(`{"message": "Too Many Requests", "connectionId": "c1", "requestId": "r1"}`)
	ts.sendRaw(t, gwFrame)
	ts.sendRaw(t, gwFrame)
	ts.waitFrame(t, from, "the outcome after a gateway error frame", isOutcome(txn))
	ts.statusQuery(t, "txn-none") // a barrier: frames before its answer are in
	if n := ts.count(func(f frame) bool { return f.env.MessageType == protocol.TypeErrorMessage }); n != 0 {
		t.Fatalf("the agent answered %d messages with an error_message (the gateway's frame is not the server's)", n)
	}

	// Acknowledged (a repeat's answer): a status query no longer brings it.
	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: txn})
	ts.statusQuery(t, "txn-none")
	before = ts.count(isOutcome(txn))
	if st := ts.statusQuery(t, txn); st.Status != "success" {
		t.Fatalf("status %+v", st)
	}
	ts.statusQuery(t, "txn-none")
	if n := ts.count(isOutcome(txn)); n != before {
		t.Fatalf("an acknowledged outcome was sent again on a status query")
	}
}
