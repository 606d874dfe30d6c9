package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// The spool keeps one directory per non-blocking transaction (reference §4.4):
//
//	<spool>/<txn>/metadata     JSON txnMetadata as accepted (status running); request params
//	                           are always redacted to "{}"
//	<spool>/<txn>/result.json  the results object, once the handler returned; its
//	                           modification time is the transaction's end
//	<spool>/<txn>/error.json   {"description": ..., "end": ...}, when the transaction failed
//	                           before/instead
//	<spool>/<txn>/acked        present once the server acknowledged the outcome
//
// A finished transaction's status and end are its outcome file's: the metadata is written
// once (agents before 2026-12-06 wrote it again with them, and load still reads those).
//
// A task's metadata gains a line "started <time>" just before its process is started (agents
// before 2026-12-06 wrote a file <spool>/<txn>/started instead; both are read). A task run
// under a supervisor (Config.SupervisorDaemon or Config.Supervisor) adds, in this order:
//
//	<spool>/<txn>/pid          {"pid", "start"}: the PID and /proc start time of the task (under
//	                           the supervisor process) or of its supervisor script
//	<spool>/<txn>/stdout       the task's stdout, capped at MaxOutputBytes (emptied once the
//	                           outcome is recorded)
//	<spool>/<txn>/stderr       the task's stderr, likewise
//	<spool>/<txn>/exitcode     {"exitcode", ...}, written last, once the task ended
//
// so that an agent restarted while a task ran can find the process again, wait for it, and
// report its real outcome (see recover).
//
// Directories are 0700 and files 0600. A directory's existence alone means "this transaction
// was accepted": a repeated request is never run again, even after an agent restart. A
// directory is created under a temporary name and renamed into place with its metadata, so a
// kill at any point leaves either no transaction or a readable one; an entry found unreadable
// anyway (a damaged disk, an older agent's leftovers) is repaired into a failure whose outcome
// is unknown, which is reported like any other.

const (
	statusRunning = "running"
	statusSuccess = "success"
	statusFailure = "failure"

	metadataFile = "metadata"
	resultFile   = "result.json"
	errorFile    = "error.json"
	ackedFile    = "acked"
	// sentFile marks a no_ack outcome that went out on a connection: it is not sent again
	// on the next one (the server asks when it lacks it).
	sentFile = "sent"
)

// Outcomes of transactions a previous agent process left unfinished.
const (
	// outcomeUnknownError: the transaction may have run, or be running still, but what it
	// did cannot be known (reported with kind OutcomeUnknownKind where the result allows).
	outcomeUnknownError = "the agent restarted while the task ran; outcome unknown"
	// notStartedError: the agent stopped after accepting the transaction and before starting
	// its process: it did not run.
	notStartedError = "the agent restarted before the task started; it was not run"
	// unreadableError: the transaction's spool entry could not be read.
	unreadableError = "the agent could not read its record of this transaction; outcome unknown"
)

// OutcomeUnknownKind is the _error kind of a task result whose outcome the agent cannot know:
// it restarted while the task ran and could not follow the task to its end.
const OutcomeUnknownKind = "baton/task-outcome-unknown"

// Fault points: the places where Config.FaultHook is called, in the order a transaction
// passes them. A chaos test kills the agent at one of them to check that every transaction is
// still answered, once.
const (
	FaultSpoolBeforeRename = "spool-create-before-rename" // metadata written, directory not in place
	FaultSpoolCreated      = "spool-created"              // accepted, nothing started
	FaultTaskStarted       = "task-started"               // the task's process runs
	FaultTaskEnded         = "task-ended"                 // the handler returned, nothing spooled
	FaultSpoolFinished     = "spool-finished"             // the outcome is spooled, not sent
	FaultSpoolAck          = "spool-ack"                  // acknowledged, not yet recorded
)

// FaultPoints lists every fault point.
var FaultPoints = []string{FaultSpoolBeforeRename, FaultSpoolCreated, FaultTaskStarted, FaultTaskEnded, FaultSpoolFinished, FaultSpoolAck}

type txnMetadata struct {
	Module         string     `json:"module"`
	Action         string     `json:"action"`
	RequestParams  string     `json:"request_params"`
	TransactionID  string     `json:"transaction_id"`
	RequestID      string     `json:"request_id"`
	NotifyOutcome  bool       `json:"notify_outcome"`
	Start          time.Time  `json:"start"`
	Status         string     `json:"status"`
	End            *time.Time `json:"end,omitempty"`
	ExecutionError string     `json:"execution_error,omitempty"`
	// Timeout (seconds, 0 for none) is kept so that a task found running after an agent
	// restart is still killed on time.
	Timeout int64 `json:"timeout,omitempty"`
	// NoAck: the server said it will not acknowledge the outcome (protocol.NonBlockingRequest).
	NoAck bool `json:"no_ack,omitempty"`
}

type txnState struct {
	meta    txnMetadata
	results json.RawMessage
	errDesc string
	acked   bool
	sent    bool // a no_ack outcome went out on a connection (see owed)
	started bool // a task's start was recorded in its metadata (see writeStarted)
}

func (s txnState) finished() bool { return s.results != nil || s.errDesc != "" }

// pending reports whether the outcome may still have to reach the server: it is sent in
// answer to a repeated request or a status query.
func (s txnState) pending() bool { return s.finished() && s.meta.NotifyOutcome && !s.acked }

// owed reports whether a new connection must send the outcome: pending, and not a no_ack
// outcome that went out already (the server asks for one it lacks).
func (s txnState) owed() bool { return s.pending() && !(s.meta.NoAck && s.sent) }

// txnSpool keeps the agent's transactions: which were accepted (so that none runs twice),
// their outcomes until the server acknowledges them, and their scratch directories. spool
// keeps them on disk; memSpool in memory, for simulated agents (Config.MemorySpool).
type txnSpool interface {
	// txnDir is the transaction's scratch directory ("" when there is none).
	txnDir(txn string) string
	// create records a new transaction; created is false when it was seen before.
	create(m txnMetadata) (created bool, err error)
	// load reads a transaction; the error wraps fs.ErrNotExist when it is not in the spool.
	load(txn string) (txnState, error)
	// finish records a transaction's outcome (results, or a failure description).
	finish(txn string, results json.RawMessage, desc string, end time.Time) (txnState, error)
	// ack marks a finished transaction's outcome as recorded by the server.
	ack(txn string) error
	// markSent records that a no_ack outcome went out on a connection.
	markSent(txn string) error
	// pending returns the outcomes a new connection sends (owed), oldest first.
	pending() ([]txnState, error)
	// purge deletes finished transactions that started before cutoff.
	purge(cutoff time.Time) (int, error)
	// unfinished returns the transactions without an outcome; called before any transaction
	// starts, these are what a previous agent process left. Unreadable entries are repaired
	// first (see repair), so they are not among them.
	unfinished(now time.Time) ([]txnState, error)
	// repair rewrites txn's unreadable entry as a failure whose outcome is unknown, keeping
	// what it can read of it, and returns it.
	repair(txn string, hint txnMetadata, now time.Time) (txnState, error)
}

func newSpool(cfg Config) txnSpool {
	if cfg.MemorySpool {
		return newMemSpool()
	}
	return &spool{dir: cfg.SpoolDir, fault: cfg.FaultHook}
}

type spool struct {
	dir   string
	fault func(point string)

	mu      sync.Mutex
	running map[string]createdTxn // the transactions this process created, until finished
}

// createdTxn is a transaction as this process created it: its metadata, and the size of its
// metadata file then (a task's start makes it longer; see writeStarted).
type createdTxn struct {
	meta txnMetadata
	size int64
}

func (s *spool) hit(point string) {
	if s.fault != nil {
		s.fault(point)
	}
}

func (s *spool) txnDir(txn string) string { return filepath.Join(s.dir, txn) }

// create makes the transaction's directory with its metadata; created is false when the
// directory already existed (the transaction was seen before). The directory is made under a
// temporary name and renamed into place once its metadata is written, so that a
// transaction's directory never exists without its metadata, whenever the agent is killed.
// The metadata is synced then, except a task's: its start (writeStarted) syncs it, so that a
// task costs one sync before it runs. A task lost with the machine before it started leaves
// no record, or an unreadable one (reported as an unknown outcome), never one of a run.
func (s *spool) create(m txnMetadata) (created bool, err error) {
	if !protocol.ValidTransactionID(m.TransactionID) {
		return false, fmt.Errorf("spool transaction %q: invalid transaction id", m.TransactionID)
	}
	dir := s.txnDir(m.TransactionID)
	if _, err := os.Lstat(dir); err == nil {
		return false, nil
	}
	tmp, err := os.MkdirTemp(s.dir, "."+m.TransactionID+".tmp-")
	if err != nil {
		return false, fmt.Errorf("spool transaction %s: %w", m.TransactionID, err)
	}
	// The directory is not in place yet: its metadata is written directly.
	size, err := writeNew(filepath.Join(tmp, metadataFile), m, m.Module != protocol.ModuleTask)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return false, fmt.Errorf("spool transaction %s: %w", m.TransactionID, err)
	}
	s.hit(FaultSpoolBeforeRename)
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return false, nil // created meanwhile (not by this agent, which serialises creates)
		}
		return false, fmt.Errorf("spool transaction %s: %w", m.TransactionID, err)
	}
	s.mu.Lock()
	if s.running == nil {
		s.running = map[string]createdTxn{}
	}
	s.running[m.TransactionID] = createdTxn{meta: m, size: size}
	s.mu.Unlock()
	s.hit(FaultSpoolCreated)
	return true, nil
}

// load reads a transaction; the error wraps fs.ErrNotExist when it is not in the spool.
func (s *spool) load(txn string) (txnState, error) {
	if !protocol.ValidTransactionID(txn) {
		return txnState{}, fmt.Errorf("load transaction %q: %w", txn, fs.ErrNotExist)
	}
	dir := s.txnDir(txn)
	if _, err := os.Stat(dir); err != nil {
		return txnState{}, fmt.Errorf("load transaction %s: %w", txn, err)
	}
	var st txnState
	b, err := readFile(filepath.Join(dir, metadataFile))
	if err != nil {
		return txnState{}, fmt.Errorf("load transaction %s metadata: %w", txn, err)
	}
	if st.meta, st.started, err = parseMetadata(b); err != nil {
		return txnState{}, fmt.Errorf("load transaction %s metadata: %w", txn, err)
	}
	if b, err := readFile(filepath.Join(dir, resultFile)); err == nil {
		st.results = b
	} else if !errors.Is(err, fs.ErrNotExist) {
		return txnState{}, fmt.Errorf("load transaction %s result: %w", txn, err)
	}
	var end *time.Time
	if b, err := readFile(filepath.Join(dir, errorFile)); err == nil {
		var e outcomeError
		if err := json.Unmarshal(b, &e); err != nil {
			return txnState{}, fmt.Errorf("load transaction %s error: %w", txn, err)
		}
		st.errDesc, end = e.Description, e.End
	} else if !errors.Is(err, fs.ErrNotExist) {
		return txnState{}, fmt.Errorf("load transaction %s error: %w", txn, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ackedFile)); err == nil {
		st.acked = true
	}
	if st.meta.NoAck {
		if _, err := os.Stat(filepath.Join(dir, sentFile)); err == nil {
			st.sent = true
		}
	}
	if st.finished() && st.meta.End == nil {
		// Finished by an agent that keeps the status and end in the outcome file: its end is
		// the error's, or the result's modification time.
		if end == nil {
			if fi, err := os.Stat(filepath.Join(dir, resultFile)); err == nil {
				t := fi.ModTime().UTC()
				end = &t
			}
		}
		st.meta.End = end
		settle(&st)
	}
	return st, nil
}

// outcomeError is the content of error.json. End, when set, is when the transaction ended
// (files written before it was kept there have none: their metadata has the end).
type outcomeError struct {
	Description string     `json:"description"`
	End         *time.Time `json:"end,omitempty"`
}

// settle sets the metadata's status (and execution error) from a finished transaction's
// outcome: a failure description, or results whose exit code says success or failure.
func settle(st *txnState) {
	switch {
	case st.errDesc != "":
		st.meta.Status, st.meta.ExecutionError = statusFailure, st.errDesc
	case st.results != nil:
		st.meta.Status = statusFailure
		if code, _ := resultsExitcode(st.results); code == 0 {
			st.meta.Status = statusSuccess
		}
	}
}

// finish records a transaction's outcome: results, or (when desc is set) a failure
// description. The returned state is complete even when writing it failed.
func (s *spool) finish(txn string, results json.RawMessage, desc string, end time.Time) (txnState, error) {
	// A transaction this process created is not read back: its metadata is as created.
	s.mu.Lock()
	c, ok := s.running[txn]
	delete(s.running, txn)
	s.mu.Unlock()
	st := txnState{meta: c.meta}
	dir := s.txnDir(txn)
	if !ok {
		var err error
		if st, err = s.load(txn); err != nil {
			return txnState{}, err
		}
	} else if c.meta.Module == protocol.ModuleTask {
		// A task's metadata is synced at its start: one that ended before it (a download
		// that failed, a cancel) has it synced now, before its outcome, so that a crash
		// cannot leave the outcome without the record it belongs to.
		if err := syncIfUnchanged(filepath.Join(dir, metadataFile), c.size); err != nil {
			return st, fmt.Errorf("finish transaction %s: %w", txn, err)
		}
	}
	var err error
	st.meta.End = &end
	outcome := resultFile
	if desc != "" {
		outcome = errorFile
		st.errDesc, st.results = desc, nil
		err = writeJSONAtomic(filepath.Join(dir, errorFile), outcomeError{Description: desc, End: &end}, true)
	} else {
		st.results = results
		err = writeFileAtomic(filepath.Join(dir, resultFile), results, true)
	}
	settle(&st)
	if err != nil {
		return st, fmt.Errorf("finish transaction %s: %w", txn, err)
	}
	// The metadata is not written again (a new file and a freed one per task): its status
	// and end are the outcome file's (see load). The end is the file's modification time.
	if err := os.Chtimes(filepath.Join(dir, outcome), end, end); err != nil {
		return st, fmt.Errorf("finish transaction %s: %w", txn, err)
	}
	// The outcome holds the output now: the supervisor's copies of it are not kept twice.
	// They are emptied, not removed: a removal would make each new file of the next tasks
	// cost more to create (ext4 passes over the inodes freed in the last minute).
	for _, f := range []string{stdoutFile, stderrFile} {
		_ = os.Truncate(filepath.Join(dir, f), 0)
	}
	return st, nil
}

// ack marks a finished transaction's outcome as recorded by the server. Its directory stays,
// so that a repeated request is still recognised.
func (s *spool) ack(txn string) error { return s.mark(txn, ackedFile, "acknowledge", FaultSpoolAck) }

// markSent records that a no_ack outcome went out on a connection.
func (s *spool) markSent(txn string) error { return s.mark(txn, sentFile, "mark as sent", "") }

// mark gives finished transaction txn the marker name.
func (s *spool) mark(txn, name, what, fault string) error {
	if !protocol.ValidTransactionID(txn) {
		return fmt.Errorf("%s transaction %q: %w", what, txn, fs.ErrNotExist)
	}
	dir := s.txnDir(txn)
	marker := filepath.Join(dir, name)
	if _, err := os.Lstat(marker); err == nil {
		return nil
	}
	// The outcome file: a failure's, else the results (as load reads them).
	outcome := ""
	for _, f := range []string{errorFile, resultFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			outcome = f
			break
		}
	}
	if outcome == "" {
		if _, err := os.Lstat(filepath.Join(dir, metadataFile)); err != nil {
			return fmt.Errorf("%s transaction %s: %w", what, txn, err)
		}
		return fmt.Errorf("%s transaction %s: it has no outcome yet", what, txn)
	}
	if fault != "" {
		s.hit(fault)
	}
	// A marker, not synced: losing an acknowledgement in a crash only sends the outcome again,
	// which the server recognises (so does losing a sent mark). Only its existence counts, so
	// it is a second name of the outcome file (a hard link: a directory entry, no new file),
	// or an empty file where links cannot be made.
	if err := os.Link(filepath.Join(dir, outcome), marker); err != nil && !errors.Is(err, fs.ErrExist) {
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return fmt.Errorf("%s transaction %s: %w", what, txn, err)
		}
	}
	return nil
}

// all loads every transaction in the spool; unreadable ones are returned as names in bad.
func (s *spool) all() (states []txnState, bad []string, err error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read spool %s: %w", s.dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || !protocol.ValidTransactionID(e.Name()) {
			continue
		}
		st, err := s.load(e.Name())
		if err != nil {
			bad = append(bad, e.Name())
			continue
		}
		states = append(states, st)
	}
	return states, bad, nil
}

// pending returns the outcomes not yet acknowledged, oldest first.
func (s *spool) pending() ([]txnState, error) {
	states, _, err := s.all()
	if err != nil {
		return nil, err
	}
	var out []txnState
	for _, st := range states {
		if st.owed() {
			out = append(out, st)
		}
	}
	sortPending(out)
	return out, nil
}

// sortPending orders outcomes oldest first: by end (or start), then start, then id.
func sortPending(out []txnState) {
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].meta, out[j].meta
		if ea, eb := endOrStart(a), endOrStart(b); !ea.Equal(eb) {
			return ea.Before(eb)
		}
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return a.TransactionID < b.TransactionID
	})
}

func endOrStart(m txnMetadata) time.Time {
	if m.End != nil {
		return *m.End
	}
	return m.Start
}

// purge deletes finished transactions (acknowledged or not) that started before cutoff, and
// unreadable transaction directories last modified before it.
func (s *spool) purge(cutoff time.Time) (int, error) {
	states, bad, err := s.all()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, st := range states {
		if !st.finished() || !st.meta.Start.Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(s.txnDir(st.meta.TransactionID)); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	for _, name := range bad {
		fi, err := os.Stat(s.txnDir(name))
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(s.txnDir(name)); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("purge spool: %w", err)
	}
	return n, nil
}

// unfinished returns the transactions without an outcome, oldest first. It first removes
// the directories of creations a killed agent left unfinished (never renamed into place: those
// transactions were never accepted) and repairs unreadable entries.
func (s *spool) unfinished(now time.Time) ([]txnState, error) {
	if entries, err := os.ReadDir(s.dir); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp-") {
				_ = os.RemoveAll(filepath.Join(s.dir, e.Name()))
			}
		}
	}
	states, bad, err := s.all()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, name := range bad {
		if _, err := s.repair(name, txnMetadata{}, now); err != nil {
			errs = append(errs, err)
		}
	}
	var out []txnState
	for _, st := range states {
		if !st.finished() {
			out = append(out, st)
		}
	}
	sortPending(out)
	return out, errors.Join(errs...)
}

// repair rewrites txn's unreadable entry: metadata from hint where the old one cannot be read
// (notify_outcome is assumed: the server recognises an outcome it did not ask for), and the
// outcome kept when it can be read, else a failure whose outcome is unknown.
func (s *spool) repair(txn string, hint txnMetadata, now time.Time) (txnState, error) {
	if !protocol.ValidTransactionID(txn) {
		return txnState{}, fmt.Errorf("repair transaction %q: invalid transaction id", txn)
	}
	dir := s.txnDir(txn)
	var st txnState
	var merr error
	if b, err := readFile(filepath.Join(dir, metadataFile)); err != nil {
		merr = err
	} else {
		st.meta, _, merr = parseMetadata(b)
	}
	if merr != nil || st.meta.TransactionID != txn {
		st.meta = hint
		st.meta.TransactionID, st.meta.RequestParams, st.meta.NotifyOutcome = txn, "{}", true
		if st.meta.Start.IsZero() {
			st.meta.Start = now
		}
	}
	st.meta.End = &now
	var kept outcomeError
	if b, err := os.ReadFile(filepath.Join(dir, resultFile)); err == nil && json.Valid(b) {
		st.results = b
		settle(&st)
	} else if b, err := os.ReadFile(filepath.Join(dir, errorFile)); err == nil && json.Unmarshal(b, &kept) == nil && kept.Description != "" {
		// The failure recorded is kept (its metadata may be what a crash damaged).
		st.errDesc = kept.Description
		settle(&st)
		if kept.End != nil {
			st.meta.End = kept.End
		}
	} else {
		st.errDesc = fmt.Sprintf("Failed to execute the task for the %s. Error: %s",
			label(false, st.meta.Module, st.meta.Action, txn), unreadableError)
		settle(&st)
		_ = os.Remove(filepath.Join(dir, resultFile))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return st, fmt.Errorf("repair transaction %s: %w", txn, err)
		}
		if err := writeJSONAtomic(filepath.Join(dir, errorFile), map[string]string{"description": st.errDesc}, true); err != nil {
			return st, fmt.Errorf("repair transaction %s: %w", txn, err)
		}
	}
	_ = os.Remove(filepath.Join(dir, ackedFile)) // whatever was acknowledged, this outcome is not
	_ = os.Remove(filepath.Join(dir, sentFile))  // nor sent
	if err := writeJSONAtomic(filepath.Join(dir, metadataFile), st.meta, true); err != nil {
		return st, fmt.Errorf("repair transaction %s: %w", txn, err)
	}
	return st, nil
}

// fileExists reports whether path names something that can be stat'ed.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// resultsExitcode reads an integer "exitcode" from a results object.
func resultsExitcode(results json.RawMessage) (code int, ok bool) {
	var r struct {
		Exitcode *int `json:"exitcode"`
	}
	if json.Unmarshal(results, &r) != nil || r.Exitcode == nil {
		return 0, false
	}
	return *r.Exitcode, true
}

func writeJSONAtomic(path string, v any, sync bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, b, sync)
}

// writeFileAtomic writes b to path (mode 0600) through a temporary file and a rename, so that
// readers see either the old or the new content; with sync, the content is on disk before
// the rename.
func writeFileAtomic(path string, b []byte, sync bool) error {
	dir, base := filepath.Split(path)
	var tmp string
	for try := 0; ; try++ {
		tmp = filepath.Join(dir, "."+base+".tmp"+strconv.FormatUint(uint64(rand.Uint32()), 10))
		err := writeFileFlags(tmp, b, os.O_CREATE|os.O_EXCL, sync)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			_ = os.Remove(tmp) // a write that failed after the create
		}
		if !errors.Is(err, fs.ErrExist) || try == 100 {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := renameFile(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// startedMark begins the line writeStarted appends to a task's metadata.
const startedMark = "started "

// writeStarted appends the line "started <time>" to the metadata in dir and syncs the file:
// on disk, with the metadata, before the task's process is started, so that after any crash
// an agent never reports as not run a task that may have run. Only its presence counts (see
// parseMetadata), so a line cut short by a crash still says "started".
// A directory without metadata (not the spool's) gets a "started" file instead.
func writeStarted(dir string) error {
	line := startedMark + time.Now().UTC().Format(time.RFC3339Nano) + "\n"
	err := writeFileFlags(filepath.Join(dir, metadataFile), []byte(line), os.O_APPEND, true)
	if errors.Is(err, fs.ErrNotExist) {
		err = writeFileFlags(filepath.Join(dir, startedFile), []byte(line), os.O_CREATE|os.O_TRUNC, true)
	}
	if err != nil {
		return fmt.Errorf("record task start: %w", err)
	}
	return nil
}

// parseMetadata reads a metadata file: its JSON object and whether a start was recorded after
// it (a line beginning "started ", or any beginning of one). Anything else after the object
// makes it unreadable.
func parseMetadata(b []byte) (m txnMetadata, started bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return txnMetadata{}, false, err
	}
	rest := bytes.TrimSpace(b[dec.InputOffset():])
	switch {
	case len(rest) == 0:
		return m, false, nil
	case bytes.HasPrefix(rest, []byte(startedMark)) || strings.HasPrefix(startedMark, string(rest)):
		return m, true, nil
	}
	return txnMetadata{}, false, fmt.Errorf("unexpected data after the metadata: %.20q", rest)
}

// writeNew creates path (0600, failing if it exists) with v as JSON, and with sync syncs it;
// it returns the file's size.
func writeNew(path string, v any, sync bool) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return int64(len(b)), writeFileFlags(path, b, os.O_CREATE|os.O_EXCL, sync)
}

// syncIfUnchanged syncs the file at path when it still has the given size.
func syncIfUnchanged(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return nil
	}
	return syncFile(path)
}
