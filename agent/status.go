package agent

import (
	"encoding/json"
	"errors"
	"io/fs"

	"github.com/baton-run/baton/shared/protocol"
)

// Status values of a status query (reference §4.5).
const (
	StatusUnknown = "unknown"
	StatusRunning = "running"
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// status answers a `status query` for txn from memory and the spool (reference §4.5):
//   - not in the spool: unknown, stdout = an _error JSON string "found no results directory";
//   - results spooled: success iff exitcode is 0, else failure, with exitcode/stdout/stderr;
//   - failed before a process ran (error record): failure, no exitcode, stdout = _error JSON;
//   - running in this agent: running;
//   - accepted but neither running nor finished: unknown.
func (a *Agent) status(txn string) protocol.StatusResults {
	out := protocol.StatusResults{TransactionID: txn, Status: StatusUnknown}
	// Look at memory before the spool: an outcome is spooled before its transaction leaves
	// the running set, so this order never reports a finished transaction as unknown.
	a.mu.Lock()
	_, running := a.running[txn]
	a.mu.Unlock()
	st, err := a.spool.load(txn)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			out.Stdout = executionErrorJSON("found no results directory")
		} else {
			out.Stdout = executionErrorJSON("could not read the transaction's metadata: " + err.Error())
		}
		return out
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
	default:
		if running {
			out.Status = StatusRunning
		} else {
			out.Stdout = executionErrorJSON(outcomeUnknownError)
		}
	}
	return out
}

// executionErrorJSON is pxp-agent's stdout replacement when a transaction has an execution error.
func executionErrorJSON(msg string) string {
	b, _ := json.Marshal(map[string]any{"_error": map[string]any{
		"kind": "puppetlabs.pxp-agent/execution-error", "msg": msg, "details": map[string]any{},
	}})
	return string(b)
}
