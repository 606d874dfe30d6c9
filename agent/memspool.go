package agent

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// memSpool is a txnSpool in memory, with the file spool's rules: a transaction is accepted
// once, its outcome is kept until acknowledged, and an acknowledged transaction is still
// remembered so that a repeated request is recognised.
type memSpool struct {
	mu   sync.Mutex
	txns map[string]*txnState
}

func newMemSpool() *memSpool { return &memSpool{txns: map[string]*txnState{}} }

func (m *memSpool) txnDir(string) string { return "" }

func (m *memSpool) create(meta txnMetadata) (bool, error) {
	if !protocol.ValidTransactionID(meta.TransactionID) {
		return false, fmt.Errorf("spool transaction %q: invalid transaction id", meta.TransactionID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.txns[meta.TransactionID]; ok {
		return false, nil
	}
	m.txns[meta.TransactionID] = &txnState{meta: meta}
	return true, nil
}

func (m *memSpool) load(txn string) (txnState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.txns[txn]
	if !ok {
		return txnState{}, fmt.Errorf("load transaction %s: %w", txn, fs.ErrNotExist)
	}
	return *st, nil
}

func (m *memSpool) finish(txn string, results json.RawMessage, desc string, end time.Time) (txnState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.txns[txn]
	if !ok {
		return txnState{}, fmt.Errorf("load transaction %s: %w", txn, fs.ErrNotExist)
	}
	st.meta.End = &end
	if desc != "" {
		st.errDesc, st.results = desc, nil
		st.meta.Status, st.meta.ExecutionError = statusFailure, desc
	} else {
		st.results = append(json.RawMessage(nil), results...)
		st.meta.Status = statusFailure
		if code, _ := resultsExitcode(results); code == 0 {
			st.meta.Status = statusSuccess
		}
	}
	return *st, nil
}

func (m *memSpool) ack(txn string) error {
	return m.mark(txn, "acknowledge", func(st *txnState) { st.acked = true })
}

func (m *memSpool) markSent(txn string) error {
	return m.mark(txn, "mark as sent", func(st *txnState) { st.sent = true })
}

// mark applies set to finished transaction txn.
func (m *memSpool) mark(txn, what string, set func(*txnState)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.txns[txn]
	if !ok {
		return fmt.Errorf("load transaction %s: %w", txn, fs.ErrNotExist)
	}
	if !st.finished() {
		return fmt.Errorf("%s transaction %s: it has no outcome yet", what, txn)
	}
	set(st)
	return nil
}

func (m *memSpool) pending() ([]txnState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []txnState
	for _, st := range m.txns {
		if st.owed() {
			out = append(out, *st)
		}
	}
	sortPending(out)
	return out, nil
}

func (m *memSpool) purge(cutoff time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, st := range m.txns {
		if st.finished() && st.meta.Start.Before(cutoff) {
			delete(m.txns, id)
			n++
		}
	}
	return n, nil
}

// unfinished finds none: a memory spool starts empty with every process.
func (m *memSpool) unfinished(time.Time) ([]txnState, error) { return nil, nil }

// repair has nothing to repair: memory is never unreadable.
func (m *memSpool) repair(txn string, _ txnMetadata, _ time.Time) (txnState, error) {
	return m.load(txn)
}
