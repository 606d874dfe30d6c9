package agent

import (
	"time"
)

// Outcomes the spool could not record (a full disk, say) are not lost: they are kept in
// memory, sent like spooled ones (on every connection, after an ack timeout, in answer to a
// repeated request or a status query), and written to the spool again each time they are
// used, until it takes them or the server acknowledges them.

// keepUnspooled holds st, a finished transaction the spool could not record.
func (a *Agent) keepUnspooled(st txnState) {
	a.unspooledMu.Lock()
	defer a.unspooledMu.Unlock()
	if a.unspooled == nil {
		a.unspooled = map[string]txnState{}
	}
	a.unspooled[st.meta.TransactionID] = st
}

// heldOutcome returns txn's outcome held in memory, after trying once more to spool it (when
// that works, the spooled state is returned and memory lets go of it).
func (a *Agent) heldOutcome(txn string) (txnState, bool) {
	a.unspooledMu.Lock()
	st, ok := a.unspooled[txn]
	a.unspooledMu.Unlock()
	if !ok {
		return txnState{}, false
	}
	end := time.Now().UTC()
	if st.meta.End != nil {
		end = *st.meta.End
	}
	if spooled, err := a.spool.finish(txn, st.results, st.errDesc, end); err == nil {
		a.unspooledMu.Lock()
		delete(a.unspooled, txn)
		a.unspooledMu.Unlock()
		a.log.Info("an outcome held in memory is spooled now", "transaction_id", txn)
		return spooled, true
	}
	return st, true
}

// heldOutcomes returns every outcome held in memory that a new connection sends (owed; see
// heldOutcome).
func (a *Agent) heldOutcomes() []txnState {
	a.unspooledMu.Lock()
	txns := make([]string, 0, len(a.unspooled))
	for txn := range a.unspooled {
		txns = append(txns, txn)
	}
	a.unspooledMu.Unlock()
	var out []txnState
	for _, txn := range txns {
		if st, ok := a.heldOutcome(txn); ok && st.owed() {
			out = append(out, st)
		}
	}
	return out
}

// forgetHeld lets go of txn's outcome held in memory: the server acknowledged it.
func (a *Agent) forgetHeld(txn string) {
	a.unspooledMu.Lock()
	defer a.unspooledMu.Unlock()
	delete(a.unspooled, txn)
}

// loadOutcome reads txn from the spool, or its outcome held in memory when the spool has
// none: what every resend and status answer works from.
func (a *Agent) loadOutcome(txn string) (txnState, error) {
	st, err := a.spool.load(txn)
	if err == nil && st.finished() {
		return st, nil
	}
	if held, ok := a.heldOutcome(txn); ok {
		return held, nil
	}
	return st, err
}
