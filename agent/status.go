package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// Status values of a status query (reference §4.5).
const (
	StatusUnknown = "unknown"
	StatusRunning = "running"
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// status answers a `status query` for txn from memory and the spool (reference §4.5), and
// returns the transaction as spooled:
//   - not in the spool: unknown, stdout = an _error JSON string "found no results directory";
//   - results spooled: success iff exitcode is 0, else failure, with exitcode/stdout/stderr;
//   - failed before a process ran (error record): failure, no exitcode, stdout = _error JSON;
//   - running in this agent (including a task a previous agent process started): running.
//
// A transaction that was accepted but has neither an outcome nor a process here (its outcome
// could not be spooled) is concluded on the spot as one whose outcome is unknown, and an
// unreadable entry is repaired the same way (see spool.repair), so that the answer is final
// and the outcome is sent too; only when even that cannot be written is the answer unknown.
// The returned state is what the caller still has to send (nothing when it was just sent).
func (a *Agent) status(ctx context.Context, txn string) (protocol.StatusResults, txnState) {
	out := protocol.StatusResults{TransactionID: txn, Status: StatusUnknown}
	// Read under a.mu, which handleNonBlocking holds from creating a transaction to adding
	// it to the running set: a transaction found without an outcome and not running is lost.
	a.mu.Lock()
	_, running := a.running[txn]
	st, err := a.loadOutcome(txn)
	a.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		out.Stdout = executionErrorJSON("found no results directory")
		return out, txnState{}
	}
	if err != nil {
		a.log.Warn("spooled transaction unreadable; repairing it", "transaction_id", txn, "error", err)
		if st, err = a.spool.repair(txn, txnMetadata{Start: time.Now().UTC()}, time.Now().UTC()); err != nil {
			out.Stdout = executionErrorJSON("could not read the transaction's metadata: " + err.Error())
			return out, txnState{}
		}
	}
	resend := true
	if !running && !st.finished() {
		a.log.Warn("accepted transaction has no outcome and no process; its outcome is unknown", "transaction_id", txn)
		a.concludeUnknown(ctx, st, protocol.TaskResults{}, "its outcome was never recorded")
		resend = false // concluding sent it
		if st, err = a.spool.load(txn); err != nil {
			st = txnState{}
		}
	}
	switch {
	case st.results != nil:
		var r struct {
			Stdout *string `json:"stdout"`
			Stderr string  `json:"stderr"`
		}
		_ = json.Unmarshal(st.results, &r)
		code, _ := resultsExitcode(st.results)
		out.Exitcode = &code
		out.Status = StatusFailure
		if code == 0 {
			out.Status = StatusSuccess
		}
		if r.Stdout != nil {
			out.Stdout = *r.Stdout
		} else {
			out.Stdout = string(st.results)
		}
		out.Stderr = r.Stderr
	case st.errDesc != "":
		out.Status = StatusFailure
		out.Stdout = executionErrorJSON(st.errDesc)
	case running:
		out.Status = StatusRunning
	default:
		out.Stdout = executionErrorJSON(outcomeUnknownError)
	}
	if !resend {
		return out, txnState{}
	}
	return out, st
}

// executionErrorJSON is pxp-agent's stdout replacement when a transaction has an execution error.
func executionErrorJSON(msg string) string {
	b, _ := json.Marshal(map[string]any{"_error": map[string]any{
		"kind": "puppetlabs.pxp-agent/execution-error", "msg": msg, "details": map[string]any{},
	}})
	return string(b)
}
