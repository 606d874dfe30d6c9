package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// Files of a task run under a supervisor, in its transaction's directory (see spool.go).
const (
	startedFile    = "started" // the start marker of agents before 2026-12-06 (now a line of the metadata)
	pidFile        = "pid"
	stdoutFile     = "stdout"
	stderrFile     = "stderr"
	exitcodeFile   = "exitcode"
	supervisorFile = "supervisor.err" // the supervisor's own complaints, if any
)

// pidRecord names a task's supervisor process: its PID and when it started (clock ticks
// since boot; 0 where unknown), so that a reused PID is not mistaken for it.
type pidRecord struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start,omitempty"`
}

// exitRecord is what the supervisor writes last: the task's exit code.
type exitRecord struct {
	Exitcode int `json:"exitcode"`
}

// errTaskNotStarted: the task supervisor failed before it started the task.
var errTaskNotStarted = errors.New("the task was not started")

// pidGrace is how long an agent restarted between starting a supervisor and the
// supervisor's writing its PID waits for the PID to appear.
const pidGrace = 2 * time.Second

// reattachPoll is how often the agent checks whether a task it found again after a restart
// (not its child: it cannot wait for it) still runs.
const reattachPoll = 100 * time.Millisecond

// SupervisorScript is the fallback task supervisor (where the supervisor process,
// RunSupervisor, cannot be started), a POSIX shell script run as `sh -c
// SupervisorScript baton-run-task DIR EXECUTABLE [ARGS...]` (DefaultSupervisor). It records
// its PID and start time in DIR/pid, runs EXECUTABLE with its own stdin, environment and
// working directory, its stdout and stderr going to DIR/stdout and DIR/stderr, and, once the
// task has ended, writes its exit code to DIR/exitcode (128+n for a task killed by signal n, as
// shells report it). It outlives the agent that started it, so an agent restarted meanwhile
// still reports the task's real outcome. It is a shell, not a Go program, because it is one
// process per task: 200 tasks started at once cost about 3.5 ms of CPU each in sh against
// about 13 ms in a Go supervisor on the 2-core machine of BENCHMARKS.md (the supervisor
// process, one per agent, costs neither).
//
// What it does not do, and who does instead:
//   - cap the output files: the agent reads at most MaxOutputBytes of each (collectTask) and
//     says how much it dropped; like pxp-agent's spool, the files themselves are not capped;
//   - retry an executable that is busy being written (ETXTBSY): the agent never runs a file
//     that a forked process may still hold open for writing (writeExecutable);
//   - record anything it cannot write: the file descriptors are opened by `exec` first, so a
//     supervisor that cannot create them exits (2) before it runs the task, and an exit code it
//     cannot write leaves no (or an unreadable) DIR/exitcode: the agent then reports the task
//     not started, or its outcome unknown — never an exit code the task did not return.
//
// The start time is field 22 of /proc/self/stat (clock ticks since boot, as procStart reads
// it), 0 where there is no /proc; the command name, in parentheses, is cut first.
const SupervisorScript = `d=$1; shift
s=0
if read -r st </proc/self/stat 2>/dev/null; then
	st=${st##*") "}
	f() { s=${20}; }
	set -f; f $st; set +f
fi
printf '{"pid":%d,"start":%s}\n' "$$" "${s:-0}" >"$d/pid" || exit 1
exec 3>"$d/stdout" 4>"$d/stderr"
"$@" >&3 2>&4 3>&- 4>&-
rc=$?
exec 3>&- 4>&-
printf '{"exitcode":%d}\n' "$rc" >"$d/exitcode"
`

// DefaultSupervisor is the Config.Supervisor that baton-agent uses: SupervisorScript run by
// /bin/sh. It is nil where there is no /bin/sh (tasks then run as the agent's own children,
// and their outcome is unknown after a restart of the agent).
func DefaultSupervisor() []string {
	if fi, err := os.Stat("/bin/sh"); err != nil || fi.IsDir() {
		return nil
	}
	return []string{"/bin/sh", "-c", SupervisorScript, "baton-run-task"}
}

// supervised reports whether tasks run under a supervisor (process or script), so that they
// outlive a restart of the agent and their output is in files.
func (a *Agent) supervised() bool { return a.sv != nil || len(a.cfg.Supervisor) > 0 }

// runUnderSupervisor runs c under the supervisor process, or the per-task script where there
// is none (or it cannot be started).
func (a *Agent) runUnderSupervisor(ctx context.Context, dir string, c Command) (protocol.TaskResults, error) {
	if a.sv != nil {
		res, err := a.runDaemon(ctx, dir, c)
		if !errors.Is(err, errNoSupervisor) {
			return res, err
		}
		if len(a.cfg.Supervisor) == 0 {
			return protocol.TaskResults{}, fmt.Errorf("%w: %w", err, errTaskNotStarted)
		}
		a.log.Warn("the task supervisor process is not available; the task runs under the supervisor script", "error", err)
	}
	return a.runSupervised(ctx, dir, c)
}

// runSupervised runs c through Config.Supervisor, its output and exit code going to files in
// dir (the transaction's directory), as RunCommand does with pipes: the process group is
// killed when ctx ends, and the results say so.
func (a *Agent) runSupervised(ctx context.Context, dir string, c Command) (protocol.TaskResults, error) {
	if ctx.Err() != nil {
		return endedEarly(ctx, protocol.TaskResults{}), nil
	}
	if err := writeStarted(dir); err != nil {
		return protocol.TaskResults{}, err
	}
	complaints, err := os.OpenFile(filepath.Join(dir, supervisorFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return protocol.TaskResults{}, fmt.Errorf("record task start: %w", err)
	}
	defer complaints.Close()
	// The files the supervisor writes are made here, private: its shell redirections keep an
	// existing file's mode, and the task must not inherit a umask changed for them.
	for _, name := range []string{pidFile, stdoutFile, stderrFile, exitcodeFile} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return protocol.TaskResults{}, fmt.Errorf("record task start: %w", err)
		}
		f.Close()
	}
	sv := a.cfg.Supervisor
	args := append(append(append([]string{}, sv[1:]...), dir, c.Path), c.Args...)
	cmd := exec.Command(sv[0], args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	// Never a pipe for the supervisor's own output: it must survive the agent, and a write to
	// a pipe nobody reads any more would kill it.
	cmd.Stdout, cmd.Stderr = complaints, complaints
	setProcessGroup(cmd)
	cmd.WaitDelay = ioGrace
	if err := cmd.Start(); err != nil {
		return protocol.TaskResults{Exitcode: 127, Stderr: fmt.Sprintf("Executable '%s' failed to run: %v", c.Path, err)},
			fmt.Errorf("start task supervisor: %w", err)
	}
	pid := cmd.Process.Pid
	if a.cfg.FaultHook != nil {
		a.cfg.FaultHook(FaultTaskStarted)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = killProcessGroup(pid)
		<-done
	}
	res, ok := collectTask(dir)
	if ctx.Err() != nil {
		_ = killProcessGroup(pid) // whatever of the group may be left
		return endedEarly(ctx, res), nil
	}
	if !ok {
		// The supervisor failed (a full disk, say) and recorded no exit code: before it
		// recorded its PID, the task was not started; after, its outcome is unknown.
		complaint, _ := os.ReadFile(filepath.Join(dir, supervisorFile))
		why := fmt.Sprintf("the task supervisor failed (exit status %d): %s", cmd.ProcessState.ExitCode(), bytes.TrimSpace(complaint))
		if _, err := readPIDRecord(dir); err != nil {
			return protocol.TaskResults{}, fmt.Errorf("%s: %w", why, errTaskNotStarted)
		}
		return unknownResults(res, why, false), nil
	}
	return res, nil
}

// collectTask reads the outcome a supervisor recorded in dir: ok is false when it recorded no
// exit code (the output read so far is returned all the same). Of each output file it keeps
// the first MaxOutputBytes and notes how much more there was.
func collectTask(dir string) (res protocol.TaskResults, ok bool) {
	res = collectOutput(dir)
	var rec exitRecord
	b, err := readFile(filepath.Join(dir, exitcodeFile))
	if err != nil || json.Unmarshal(b, &rec) != nil {
		return res, false
	}
	res.Exitcode = rec.Exitcode
	return res, true
}

// collectOutput reads a supervised task's stdout and stderr from dir, capped as collectTask does.
func collectOutput(dir string) (res protocol.TaskResults) {
	res.Stdout = readCapped(filepath.Join(dir, stdoutFile), MaxOutputBytes)
	res.Stderr = readCapped(filepath.Join(dir, stderrFile), MaxOutputBytes)
	return res
}

// collectTaskWithin is collectTask for a task whose process has ended, waiting up to grace for
// its exit code: a supervisor process records it just after the task is gone.
func collectTaskWithin(dir string, grace time.Duration) (protocol.TaskResults, bool) {
	deadline := time.Now().Add(grace)
	for {
		res, ok := collectTask(dir)
		if ok || time.Now().After(deadline) {
			return res, ok
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readCapped returns the first max bytes of the file at path ("" when it cannot be read),
// followed by a note of how many more bytes it has, as cappedBuffer notes for piped output.
func readCapped(path string, max int64) string {
	b, size, err := readFileCapped(path, max)
	if err != nil {
		return ""
	}
	if size > max {
		b = fmt.Appendf(b, "\n[baton-agent: output truncated: %d more bytes were dropped]\n", size-max)
	}
	return string(b)
}

func readPIDRecord(dir string) (pidRecord, error) {
	var pr pidRecord
	b, err := readFile(filepath.Join(dir, pidFile))
	if err != nil {
		return pr, err
	}
	if err := json.Unmarshal(b, &pr); err != nil || pr.PID <= 0 {
		return pr, fmt.Errorf("read %s: not a PID record", pidFile)
	}
	return pr, nil
}

// recoverTransactions finishes, or follows to their end, the transactions a previous agent
// process left without an outcome (called once, before the first connection):
//   - a task whose supervisor recorded its exit code: its real results;
//   - a task whose process still runs (same PID and start time): followed until it ends, as
//     a running transaction (status queries say running; a cancel kills it), then its real
//     results — or, if it ended without recording an exit code, an unknown outcome;
//   - a task that was accepted but never started: a failure saying it was not run;
//   - anything else (another module, a process that is gone without a record): a failure
//     whose outcome is unknown (kind OutcomeUnknownKind), never "not running".
func (a *Agent) recoverTransactions() {
	now := time.Now()
	states, err := a.spool.unfinished(now)
	if err != nil {
		a.log.Warn("read transactions left by a previous agent", "error", err)
	}
	for _, st := range states {
		a.recoverOne(st, now)
	}
}

func (a *Agent) recoverOne(st txnState, now time.Time) {
	m := st.meta
	dir := a.spool.txnDir(m.TransactionID)
	log := a.log.With("transaction_id", m.TransactionID)
	if dir == "" {
		a.concludeUnknown(context.Background(), st, protocol.TaskResults{}, "")
		return
	}
	if res, ok := collectTask(dir); ok {
		log.Info("a task that ran while the agent was away has ended; reporting its results")
		a.concludeTask(context.Background(), st, res)
		return
	}
	pr, perr := readPIDRecord(dir)
	started := st.started || fileExists(filepath.Join(dir, startedFile)) // the file: agents before 2026-12-06
	switch {
	case perr == nil && processAlive(pr.PID, pr.Start):
		log.Info("a task started by a previous agent still runs; following it", "pid", pr.PID)
		a.reattach(st, dir, &pr)
	case perr == nil:
		// Ended: its supervisor process may be recording its exit code right now.
		a.reattach(st, dir, &pr)
	case started && a.supervised():
		a.reattach(st, dir, nil) // the supervisor may be about to record its PID
	case m.Module == protocol.ModuleTask && !started:
		log.Warn("a task accepted by a previous agent never started; reporting that it was not run")
		a.conclude(context.Background(), st, nil, fmt.Sprintf("Failed to execute the task for the %s. Error: %s",
			label(false, m.Module, m.Action, m.TransactionID), notStartedError))
	default:
		log.Warn("a transaction left running by a previous agent cannot be followed; its outcome is unknown")
		a.concludeUnknown(context.Background(), st, protocol.TaskResults{}, "")
	}
}

// reattach follows a task started by a previous agent process until it ends, as a running
// transaction; pr is nil when its PID is not recorded yet (waited for up to pidGrace).
func (a *Agent) reattach(st txnState, dir string, pr *pidRecord) {
	txn := st.meta.TransactionID
	ctx, cancel := context.WithCancelCause(context.Background())
	a.mu.Lock()
	a.running[txn] = &transaction{cancel: cancel}
	a.tasks.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.tasks.Done()
		defer cancel(nil)
		runCtx := ctx
		if st.meta.Timeout > 0 {
			var stop context.CancelFunc
			runCtx, stop = context.WithDeadlineCause(ctx, st.meta.Start.Add(time.Duration(st.meta.Timeout)*time.Second), ErrTimedOut)
			defer stop()
		}
		tick := time.NewTicker(reattachPoll)
		defer tick.Stop()
		if pr == nil {
			deadline := time.Now().Add(pidGrace)
			for {
				if r, err := readPIDRecord(dir); err == nil {
					pr = &r
					break
				}
				if time.Now().After(deadline) {
					res, _ := collectTask(dir)
					a.concludeUnknown(ctx, st, res, "its process recorded no PID")
					return
				}
				<-tick.C
			}
		}
		for done := runCtx.Done(); processAlive(pr.PID, pr.Start); {
			select {
			case <-done:
				_ = killProcessGroup(pr.PID)
				done = nil // then wait for it to be gone
			case <-tick.C:
			}
		}
		res, ok := collectTaskWithin(dir, pidGrace)
		if runCtx.Err() != nil {
			if errors.Is(context.Cause(runCtx), ErrAgentStopped) {
				a.conclude(ctx, st, nil, fmt.Sprintf("Failed to execute the task for the %s. Error: %v",
					label(false, st.meta.Module, st.meta.Action, txn), ErrAgentStopped))
				return
			}
			a.concludeTask(ctx, st, endedEarly(runCtx, res))
			return
		}
		if !ok {
			a.concludeUnknown(ctx, st, res, "its process ended without recording an exit code")
			return
		}
		a.log.Info("a task started by a previous agent has ended", "transaction_id", txn, "exitcode", res.Exitcode)
		a.concludeTask(ctx, st, res)
	}()
}

// concludeTask records a recovered task's results (cut to a head and tail when too large for
// one message: the request's upload URL is not kept) and sends them.
func (a *Agent) concludeTask(ctx context.Context, st txnState, res protocol.TaskResults) {
	if len(res.Stdout)+len(res.Stderr) > InlineResultLimit {
		res.Stdout, res.Stderr = headTail(res.Stdout), headTail(res.Stderr)
	}
	b, err := json.Marshal(res)
	if err != nil {
		a.conclude(ctx, st, nil, err.Error())
		return
	}
	a.conclude(ctx, st, b, "")
}

// concludeUnknown records that a transaction's outcome cannot be known: for a task, results
// with exit code -1, OutcomeUnknown set and an _error of kind OutcomeUnknownKind (with what
// output there is); for another module, a failure saying the same.
func (a *Agent) concludeUnknown(ctx context.Context, st txnState, partial protocol.TaskResults, why string) {
	m := st.meta
	if m.Module != protocol.ModuleTask {
		a.conclude(ctx, st, nil, fmt.Sprintf("Failed to execute the task for the %s. Error: %s",
			label(false, m.Module, m.Action, m.TransactionID), outcomeUnknownError))
		return
	}
	a.concludeTask(ctx, st, unknownResults(partial, why, true))
}

// unknownResults are the results of a task whose outcome cannot be known: exit code -1,
// OutcomeUnknown, and an _error of kind OutcomeUnknownKind saying why, with what output there
// is. restarted: the agent restarted while the task ran (its message says exactly that);
// otherwise the message gives why (a supervisor that could not record the exit code).
func unknownResults(partial protocol.TaskResults, why string, restarted bool) protocol.TaskResults {
	msg := outcomeUnknownError
	if !restarted {
		msg = "the task's outcome is unknown: " + why
	}
	details := map[string]any{}
	if why != "" {
		details["reason"] = why
	}
	if partial.Stdout != "" {
		details["stdout"] = partial.Stdout
	}
	out, _ := json.Marshal(map[string]any{"_error": map[string]any{"kind": OutcomeUnknownKind, "msg": msg, "details": details}})
	return protocol.TaskResults{Exitcode: -1, OutcomeUnknown: true, Stdout: string(out), Stderr: partial.Stderr}
}

// conclude spools a transaction's outcome (results, or a failure description), takes it out
// of the running set and sends it when the request asked for it.
func (a *Agent) conclude(ctx context.Context, st txnState, results json.RawMessage, desc string) {
	m := st.meta
	done, serr := a.spool.finish(m.TransactionID, results, desc, time.Now().UTC())
	a.mu.Lock()
	if t := a.running[m.TransactionID]; t != nil && t.provisional != nil {
		t.provisional.Stop()
	}
	delete(a.running, m.TransactionID)
	a.lastDone = time.Now()
	a.mu.Unlock()
	if serr != nil {
		// The spool cannot keep the outcome: memory does, until the spool or the server takes it.
		a.log.Error("spool outcome; holding it in memory", "transaction_id", m.TransactionID, "error", serr)
		if done.meta.TransactionID == "" {
			done = txnState{results: results, errDesc: desc, meta: m}
		}
		if done.results == nil && done.errDesc == "" {
			done.results, done.errDesc = results, desc
		}
		done.acked = false
		a.keepUnspooled(done)
	}
	a.log.Info("transaction finished", "transaction_id", m.TransactionID, "failed", desc != "")
	if !done.meta.NotifyOutcome {
		return
	}
	if a.cfg.FaultHook != nil {
		a.cfg.FaultHook(FaultSpoolFinished)
	}
	if err := a.deliver(context.WithoutCancel(ctx), done); err != nil {
		a.log.Info("outcome kept in the spool until the next connection", "transaction_id", m.TransactionID, "error", err)
	}
}
