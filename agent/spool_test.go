//go:build unix

package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// TestUnreadableSpoolEntriesAreAnswered checks that a transaction whose spool entry cannot be
// read is never left unanswered: entries found unreadable at start (an older agent killed
// between creating a directory and writing its metadata left only a temporary file; damaged
// metadata) are repaired and their outcome (unknown) is sent, and one damaged while the agent
// runs is repaired and answered when the server asks again. None is run again.
func TestUnreadableSpoolEntriesAreAnswered(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	write := func(txn, name, body string) {
		t.Helper()
		dir := filepath.Join(cfg.SpoolDir, txn)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("txn-leftover", ".metadata.tmp123456", `{"module":"task"`) // the old agent's half-made entry
	write("txn-damaged", metadataFile, `{not json`)
	marker := filepath.Join(t.TempDir(), "runs")
	file := ts.addFile("m.sh", script(`echo run >> "$PT_marker"; echo done`))
	p := protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}, Input: mustJSON(t, map[string]string{"marker": marker})}

	startAgent(t, cfg)
	for _, txn := range []string{"txn-leftover", "txn-damaged"} {
		f, _ := ts.waitFrame(t, 0, "the outcome of "+txn, isOutcome(txn))
		if e := rpcError(t, f); !strings.Contains(e.Description, unreadableError) {
			t.Errorf("%s: %+v, want %q", txn, e, unreadableError)
		}
		from := ts.frameCount()
		ts.runRequest(t, txn, p) // asked again: answered, not run
		ts.waitFrame(t, from, "an answer to the repeated request", isOutcome(txn))
		if st := ts.statusQuery(t, txn); st.Status != StatusFailure || !strings.Contains(st.Stdout, "outcome unknown") {
			t.Errorf("%s: status %+v", txn, st)
		}
	}

	// Damaged while the agent runs: the next request for it repairs it and gets an answer.
	const txn = "txn-ran"
	ts.runTask(t, txn, p)
	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: txn})
	ts.statusQuery(t, txn)
	write(txn, metadataFile, `garbage`)
	write(txn, resultFile, `garbage`)
	from := ts.frameCount()
	ts.runRequest(t, txn, p)
	f, _ := ts.waitFrame(t, from, "an answer for the damaged entry", isOutcome(txn))
	if e := rpcError(t, f); !strings.Contains(e.Description, unreadableError) || e.ID == "" {
		t.Errorf("got %+v", e)
	}
	if n := lines(t, marker); n != 1 {
		t.Errorf("tasks ran %d times, want 1 (txn-ran only)", n)
	}
}

// TestStatusQueryAnswersAreFinal checks the status answers the server's polling acts on: a
// finished, unacknowledged transaction is reported and its outcome sent again (whole); once
// acknowledged it is only reported; one accepted but with neither outcome nor process here is
// concluded on the spot as an unknown outcome (reported, and sent) rather than left "unknown"
// forever; one never seen is unknown.
func TestStatusQueryAnswersAreFinal(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	ta := startAgent(t, cfg)
	file := ts.addFile("r.sh", script("echo result"))
	const done = "txn-done"
	ts.runTask(t, done, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}})
	from := ts.frameCount()
	if st := ts.statusQuery(t, done); st.Status != StatusSuccess || st.Stdout != "result\n" {
		t.Errorf("status %+v", st)
	}
	ts.waitFrame(t, from, "the unacknowledged result sent again", isOutcome(done))
	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: done})
	ts.statusQuery(t, "txn-none")
	ts.statusQuery(t, done)
	ts.statusQuery(t, "txn-none")
	if n := ts.count(isOutcome(done)); n != 2 {
		t.Errorf("result sent %d times, want 2 (none after the acknowledgement)", n)
	}

	// Accepted, then lost: no outcome and no process (as when spooling the outcome failed).
	const lost = "txn-lost"
	if _, err := ta.spool.create(txnMetadata{Module: "task", Action: "run", RequestParams: "{}", TransactionID: lost,
		RequestID: "req-lost", NotifyOutcome: true, Start: time.Now().UTC(), Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	st := ts.statusQuery(t, lost)
	if st.Status != StatusFailure || !strings.Contains(st.Stdout, OutcomeUnknownKind) {
		t.Errorf("status of a lost transaction %+v, want a failure of kind %s", st, OutcomeUnknownKind)
	}
	f, _ := ts.waitFrame(t, 0, "the lost transaction's outcome", isOutcome(lost))
	if res := taskResults(t, f); !res.OutcomeUnknown || res.Exitcode != -1 {
		t.Errorf("results %+v, want an unknown outcome", res)
	}
	if st := ts.statusQuery(t, "txn-never"); st.Status != StatusUnknown {
		t.Errorf("status of a transaction never seen: %+v", st)
	}
}

// failingSpool is the spool on a full disk: finish fails while full is set.
type failingSpool struct {
	txnSpool
	full atomic.Bool
}

func (f *failingSpool) finish(txn string, results json.RawMessage, desc string, end time.Time) (txnState, error) {
	if f.full.Load() {
		st, _ := f.txnSpool.load(txn)
		st.results, st.errDesc, st.meta.End = results, desc, &end
		return st, fmt.Errorf("finish transaction %s: write result.json: %w", txn, syscall.ENOSPC)
	}
	return f.txnSpool.finish(txn, results, desc, end)
}

// TestOutcomeTheSpoolCannotKeepIsNotLost checks that a result the spool cannot record (a full
// disk) is held in memory and still delivered: sent at once, again on the next connection, and
// reported by a status query as it is (not as unknown); once the disk has room it is spooled.
func TestOutcomeTheSpoolCannotKeepIsNotLost(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	fs := &failingSpool{}
	fs.full.Store(true)
	ta := startAgent(t, cfg, func(a *Agent) { fs.txnSpool = a.spool; a.spool = fs })
	file := ts.addFile("r.sh", script("echo kept"))
	const txn = "txn-disk-full"
	if res := ts.runTask(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}}); res.Stdout != "kept\n" {
		t.Fatalf("results %+v", res)
	}
	ts.dropConn()
	f, _ := ts.waitFrame(t, 0, "the result on the next connection", onConn(2, isOutcome(txn)))
	if res := taskResults(t, f); res.Stdout != "kept\n" {
		t.Errorf("resent results %+v", res)
	}
	if st := ts.statusQuery(t, txn); st.Status != StatusSuccess || st.Stdout != "kept\n" {
		t.Errorf("status %+v, want the real result", st)
	}

	fs.full.Store(false) // room again: the next use spools it
	ts.statusQuery(t, txn)
	waitUntil(t, "the result to be spooled", func() bool {
		return fileExists(filepath.Join(ta.cfg.SpoolDir, txn, resultFile))
	})
	ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: txn})
	ts.statusQuery(t, "txn-none")
	if held := ta.heldOutcomes(); len(held) != 0 {
		t.Errorf("%d outcomes still held in memory after the acknowledgement", len(held))
	}
}

// TestFailingSupervisorIsReportedHonestly checks what a task whose supervisor fails (a full
// disk, say) is reported as: not started when the supervisor failed before recording its PID,
// an unknown outcome after — never a plain exit code the task did not return.
func TestFailingSupervisorIsReportedHonestly(t *testing.T) {
	for _, tc := range []struct {
		name, supervisor string
		unknown          bool
	}{
		{"fails before recording its PID", `echo "write pid: no space left on device" >&2; exit 1`, false},
		{"dies after recording its PID", `printf '{"pid":%d}' $$ > "$1/pid"; exit 1`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t)
			cfg := testConfig(t, ts)
			// A stand-in for a supervisor that fails: $1 is the transaction's directory.
			// The script alone (the supervisor process's failures: supervisord_test.go).
			cfg.Supervisor, cfg.SupervisorDaemon = []string{"/bin/sh", "-c", tc.supervisor, "supervisor"}, nil
			startAgent(t, cfg)
			marker := filepath.Join(t.TempDir(), "ran")
			file := ts.addFile("t.sh", script(`echo ran > "$PT_marker"`))
			const txn = "txn-bad-supervisor"
			from := ts.frameCount()
			ts.runRequest(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
				Input: mustJSON(t, map[string]string{"marker": marker})})
			f, _ := ts.waitFrame(t, from, "the outcome", isOutcome(txn))
			if tc.unknown {
				if res := taskResults(t, f); !res.OutcomeUnknown || !strings.Contains(res.Stdout, "exit status 1") ||
					!strings.Contains(res.Stdout, `"msg":"the task's outcome is unknown: the task supervisor failed`) {
					// The agent did not restart: its message must not say so.
					t.Errorf("results %+v, want an unknown outcome saying why (and not that the agent restarted)", res)
				}
				return
			}
			if e := rpcError(t, f); !strings.Contains(e.Description, "no space left on device") || !strings.Contains(e.Description, "the task was not started") {
				t.Errorf("outcome %+v, want the supervisor's complaint and that the task was not started", e)
			}
			if fileExists(marker) {
				t.Error("the task ran")
			}
		})
	}
}

// TestEarlierAgentsSpoolsAreRead checks that what agents before 2026-12-06 left in a spool is
// still read right: a task started (a "started" file beside untouched metadata) whose process
// is gone is reported with an unknown outcome, one accepted and never started as not run;
// finished entries whose metadata carries the status and end (and an error file without an
// end) load as finished, with that end.
func TestEarlierAgentsSpoolsAreRead(t *testing.T) {
	ts := newTestServer(t)
	cfg := testConfig(t, ts)
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	end := start.Add(time.Minute)
	write := func(txn, name string, v any) {
		t.Helper()
		dir := filepath.Join(cfg.SpoolDir, txn)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b, ok := v.([]byte)
		if !ok {
			b = mustJSON(t, v)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(txn, status string, end *time.Time, execErr string) txnMetadata {
		return txnMetadata{Module: protocol.ModuleTask, Action: protocol.ActionRun, RequestParams: "{}", TransactionID: txn,
			RequestID: "r-" + txn, NotifyOutcome: true, Start: start, Status: status, End: end, ExecutionError: execErr}
	}
	write("old-started", metadataFile, meta("old-started", statusRunning, nil, ""))
	write("old-started", startedFile, []byte(start.Format(time.RFC3339Nano)+"\n"))
	write("old-accepted", metadataFile, meta("old-accepted", statusRunning, nil, ""))
	write("old-done", metadataFile, meta("old-done", statusSuccess, &end, ""))
	write("old-done", resultFile, []byte(`{"exitcode":0,"stdout":"x"}`))
	write("old-done", ackedFile, []byte{})
	write("old-failed", metadataFile, meta("old-failed", statusFailure, &end, "it broke"))
	write("old-failed", errorFile, map[string]string{"description": "it broke"})
	write("old-failed", ackedFile, []byte{})

	sp := &spool{dir: cfg.SpoolDir}
	for txn, want := range map[string]string{"old-done": statusSuccess, "old-failed": statusFailure} {
		st, err := sp.load(txn)
		if err != nil || st.meta.Status != want || st.meta.End == nil || !st.meta.End.Equal(end) || !st.acked || st.started {
			t.Errorf("%s: %+v (%v)", txn, st, err)
		}
	}
	if st, err := sp.load("old-started"); err != nil || st.started || st.finished() {
		t.Errorf("old-started before the agent: %+v (%v)", st, err) // the file is recoverOne's to read
	}

	startAgent(t, cfg)
	f, _ := ts.waitFrame(t, 0, "the outcome of old-accepted", isOutcome("old-accepted"))
	if e := rpcError(t, f); !strings.Contains(e.Description, notStartedError) {
		t.Errorf("old-accepted: %+v, want %q", e, notStartedError)
	}
	f, _ = ts.waitFrame(t, 0, "the outcome of old-started", isOutcome("old-started"))
	if res := taskResults(t, f); !res.OutcomeUnknown || !strings.Contains(res.Stdout, OutcomeUnknownKind) {
		t.Errorf("old-started: %+v, want an unknown outcome (it may have run)", res)
	}
}

// TestRepairKeepsARecordedFailure checks that an entry whose metadata is unreadable (a crash
// after its failure was synced, before its metadata was) keeps the failure it recorded.
func TestRepairKeepsARecordedFailure(t *testing.T) {
	sp := &spool{dir: t.TempDir()}
	end := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	dir := sp.txnDir("t1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, metadataFile), nil, 0o600); err != nil { // empty after the crash
		t.Fatal(err)
	}
	if err := writeJSONAtomic(filepath.Join(dir, errorFile), outcomeError{Description: "download failed", End: &end}, false); err != nil {
		t.Fatal(err)
	}
	st, err := sp.repair("t1", txnMetadata{}, end.Add(time.Hour))
	if err != nil || st.errDesc != "download failed" || st.meta.End == nil || !st.meta.End.Equal(end) {
		t.Fatalf("repaired %+v (%v)", st, err)
	}
	if st, err := sp.load("t1"); err != nil || st.errDesc != "download failed" || st.meta.Status != statusFailure {
		t.Errorf("loaded after the repair %+v (%v)", st, err)
	}
}
