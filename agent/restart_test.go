//go:build unix

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// The test binary doubles as a separate agent process (helperEnv set), so that tests can
// kill -9 a real agent and start it again.
const helperEnv = "BATON_AGENT_TEST_HELPER"

// helperConfig is what a helper agent process runs with.
type helperConfig struct {
	Server, SpoolDir, CacheDir string
	Supervisor                 []string
	SupervisorDaemon           []string
	// Fault, when set, is the fault point at which the helper kills itself with SIGKILL.
	Fault string
}

func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == SupervisorCommand {
		os.Exit(RunSupervisor()) // the test binary as the agent's supervisor process
	}
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(helperAgent(v))
	}
	os.Exit(m.Run())
}

// supervisorKind is a way baton-agent supervises tasks.
type supervisorKind struct {
	name           string
	script, daemon []string
}

// supervisorKinds: the supervisor process (the default, with the script as its fallback) and
// the per-task script alone (where the process cannot be started).
func supervisorKinds(t *testing.T) []supervisorKind {
	return []supervisorKind{
		{"process", testSupervisor(t), testSupervisorDaemon(t)},
		{"script", testSupervisor(t), nil},
	}
}

// testSupervisorDaemon is Config.SupervisorDaemon for tests: the test binary, which runs
// RunSupervisor when given SupervisorCommand (TestMain), as baton-agent does.
func testSupervisorDaemon(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, SupervisorCommand}
}

// testSupervisor is Config.Supervisor for tests: baton-agent's own (DefaultSupervisor).
func testSupervisor(t *testing.T) []string {
	t.Helper()
	sv := DefaultSupervisor()
	if sv == nil {
		t.Skip("no /bin/sh for the task supervisor")
	}
	return sv
}

func helperAgent(raw string) int {
	var hc helperConfig
	if err := json.Unmarshal([]byte(raw), &hc); err != nil {
		fmt.Fprintln(os.Stderr, "helper config:", err)
		return 2
	}
	cfg := Config{
		Server: hc.Server, Name: testNode, Secret: testSecret, SpoolDir: hc.SpoolDir, CacheDir: hc.CacheDir,
		Facts:        func(context.Context) (map[string]any, error) { return map[string]any{"hostname": "node1"}, nil },
		PingInterval: time.Second, MaxBackoff: 50 * time.Millisecond, DownloadBackoff: []time.Duration{},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	cfg.Supervisor, cfg.SupervisorDaemon = hc.Supervisor, hc.SupervisorDaemon
	if hc.Fault != "" {
		cfg.FaultHook = func(point string) {
			if point == hc.Fault {
				fmt.Fprintln(os.Stderr, "fault point reached; killing the agent:", point)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // never returns
			}
		}
	}
	a, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// agentProcess is a helper agent running as a process of its own.
type agentProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startAgentProcess starts a helper agent process with hc (a test binary re-executed).
func startAgentProcess(t *testing.T, hc helperConfig) *agentProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(hc)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	cmd.Stdout, cmd.Stderr = &testLogWriter{t: t, prefix: "agent process: "}, &testLogWriter{t: t, prefix: "agent process: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	return p
}

// kill sends SIGKILL to the agent process (not to its tasks, which have process groups of
// their own) and waits for it to end.
func (p *agentProcess) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		t.Fatal("the agent process did not end after SIGKILL")
	}
}

// exited reports whether the process has ended (on its own, e.g. at a fault point).
func (p *agentProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

type testLogWriter struct {
	t      *testing.T
	prefix string
}

func (w *testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// releaseScript records that it ran, waits for a release file, then prints and exits with
// the code given.
const releaseScript = `echo run >> "$PT_marker"
while [ ! -f "$PT_release" ]; do sleep 0.02; done
echo "finished $PT_code"
echo "to stderr" >&2
exit "$PT_code"`

// TestAgentKilledDuringTaskReportsTheRealOutcome kills -9 a real agent process while its task
// runs, checks that the task keeps running and that the restarted agent says so, then lets the
// task end and checks that the restarted agent reports its real results — both when the task
// ends after the restart and when it ends while no agent runs.
func TestAgentKilledDuringTaskReportsTheRealOutcome(t *testing.T) {
	for _, tc := range []struct {
		name         string
		endWhileDown bool
	}{
		{"task ends after the restart", false},
		{"task ends while the agent is down", true},
	} {
		for _, sk := range supervisorKinds(t) {
			t.Run(sk.name+"/"+tc.name, func(t *testing.T) {
				ts := newTestServer(t)
				dir := t.TempDir()
				hc := helperConfig{Server: ts.url(), SpoolDir: filepath.Join(dir, "spool"), CacheDir: filepath.Join(dir, "cache"),
					Supervisor: sk.script, SupervisorDaemon: sk.daemon}
				first := startAgentProcess(t, hc)
				marker, release := filepath.Join(dir, "runs"), filepath.Join(dir, "release")
				t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o600) }) // no task outlives the test
				file := ts.addFile("slow.sh", script(releaseScript))
				const txn = "txn-survives"
				p := protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
					Input: mustJSON(t, map[string]string{"marker": marker, "release": release, "code": "3"})}
				ts.waitFrame(t, 0, "the agent to connect", isType(protocol.TypeFacts))
				ts.runRequest(t, txn, p)
				waitUntil(t, "the task to start", func() bool { return lines(t, marker) == 1 })
				// The supervisor process records the PID just after the task starts (the script,
				// just before).
				var pr pidRecord
				waitUntil(t, "the task's PID to be recorded", func() bool {
					var err error
					pr, err = readPIDRecord(filepath.Join(hc.SpoolDir, txn))
					return err == nil
				})

				first.kill(t)
				if !processAlive(pr.PID, pr.Start) {
					t.Fatal("the task's process died with the agent")
				}
				if tc.endWhileDown {
					if err := os.WriteFile(release, nil, 0o600); err != nil {
						t.Fatal(err)
					}
					waitUntil(t, "the task to end", func() bool { return !processAlive(pr.PID, pr.Start) })
				}
				startAgentProcess(t, hc)
				ts.waitFrame(t, 0, "the restarted agent", onConn(2, isType(protocol.TypeFacts)))
				if !tc.endWhileDown {
					if st := ts.statusQuery(t, txn); st.Status != StatusRunning {
						t.Errorf("status of a task that still runs: %+v, want running", st)
					}
					from := ts.frameCount()
					ts.runRequest(t, txn, p) // the server asks again: not run again
					ts.waitFrame(t, from, "provisional response", isTxn(protocol.TypeProvisionalResponse, txn))
					if err := os.WriteFile(release, nil, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				f, _ := ts.waitFrame(t, 0, "the real outcome", isOutcome(txn))
				res := taskResults(t, f)
				if res.Exitcode != 3 || res.Stdout != "finished 3\n" || res.Stderr != "to stderr\n" || res.OutcomeUnknown {
					t.Errorf("results %+v, want the task's own: exit code 3, its stdout and stderr", res)
				}
				if n := lines(t, marker); n != 1 {
					t.Errorf("task ran %d times, want 1", n)
				}
				if st := ts.statusQuery(t, txn); st.Status != StatusFailure || st.Exitcode == nil || *st.Exitcode != 3 {
					t.Errorf("status %+v, want failure with exit code 3", st)
				}
			})
		}
	}
}

// TestAgentKilledDuringUnsupervisedTask: without a supervisor the task is the agent's own
// child, whose exit code is lost with the agent; the restarted agent still follows the process
// (status running while it runs) and then reports exactly that the outcome is unknown, with
// its own error kind — never that the task is not running.
func TestAgentKilledDuringUnsupervisedTask(t *testing.T) {
	ts := newTestServer(t)
	dir := t.TempDir()
	hc := helperConfig{Server: ts.url(), SpoolDir: filepath.Join(dir, "spool"), CacheDir: filepath.Join(dir, "cache")}
	first := startAgentProcess(t, hc)
	marker, release := filepath.Join(dir, "runs"), filepath.Join(dir, "release")
	t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o600) }) // no task outlives the test
	file := ts.addFile("slow.sh", script(releaseScript))
	const txn = "txn-unsupervised"
	ts.waitFrame(t, 0, "the agent to connect", isType(protocol.TypeFacts))
	ts.runRequest(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file},
		Input: mustJSON(t, map[string]string{"marker": marker, "release": release, "code": "0"})})
	waitUntil(t, "the task to start", func() bool { return lines(t, marker) == 1 })
	waitUntil(t, "the task's PID to be recorded", func() bool {
		_, err := readPIDRecord(filepath.Join(hc.SpoolDir, txn))
		return err == nil
	})
	first.kill(t)
	startAgentProcess(t, hc)
	ts.waitFrame(t, 0, "the restarted agent", onConn(2, isType(protocol.TypeFacts)))
	if st := ts.statusQuery(t, txn); st.Status != StatusRunning {
		t.Errorf("status of a task that still runs: %+v, want running", st)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := ts.waitFrame(t, 0, "the outcome", isOutcome(txn))
	res := taskResults(t, f)
	var out struct {
		Error struct {
			Kind, Msg string
		} `json:"_error"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	if !res.OutcomeUnknown || res.Exitcode != -1 || out.Error.Kind != OutcomeUnknownKind ||
		out.Error.Msg != "the agent restarted while the task ran; outcome unknown" {
		t.Errorf("results %+v, want an unknown outcome of kind %s", res, OutcomeUnknownKind)
	}
}

// TestAgentKilledAtEveryFaultPoint kills a real agent process at each fault point of a
// transaction's life (Config.FaultHook), restarts it, and checks that the transaction is
// answered with its real outcome — or, when the agent died before the task started, that it
// was not run — that it ran at most once, and that the server asking again always gets an
// answer.
func TestAgentKilledAtEveryFaultPoint(t *testing.T) {
	for _, point := range FaultPoints {
		for _, sk := range supervisorKinds(t) {
			t.Run(sk.name+"/"+point, func(t *testing.T) {
				ts := newTestServer(t)
				dir := t.TempDir()
				hc := helperConfig{Server: ts.url(), SpoolDir: filepath.Join(dir, "spool"), CacheDir: filepath.Join(dir, "cache"),
					Supervisor: sk.script, SupervisorDaemon: sk.daemon, Fault: point}
				first := startAgentProcess(t, hc)
				marker := filepath.Join(dir, "runs")
				file := ts.addFile("quick.sh", script(`echo run >> "$PT_marker"; echo done`))
				const txn = "txn-fault"
				p := protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}, Input: mustJSON(t, map[string]string{"marker": marker})}
				ts.waitFrame(t, 0, "the agent to connect", isType(protocol.TypeFacts))
				ts.runRequest(t, txn, p)
				if point == FaultSpoolAck {
					f, _ := ts.waitFrame(t, 0, "the outcome", isOutcome(txn))
					if res := taskResults(t, f); res.Stdout != "done\n" {
						t.Fatalf("results %+v", res)
					}
					ts.send(t, protocol.TypeResultAck, protocol.ResultAck{TransactionID: txn})
				}
				waitUntil(t, "the agent to die at "+point, first.exited)

				hc.Fault = ""
				startAgentProcess(t, hc)
				ts.waitFrame(t, 0, "the restarted agent", onConn(2, isType(protocol.TypeFacts)))
				from := ts.frameCount()
				ts.runRequest(t, txn, p) // the server sends its running nodes' requests again
				ts.waitFrame(t, from, "an answer to the repeated request", func(f frame) bool {
					return txnOf(f) == txn && (f.env.MessageType == protocol.TypeProvisionalResponse || isOutcome(txn)(f))
				})
				if point == FaultSpoolAck {
					if runs := lines(t, marker); runs != 1 {
						t.Fatalf("task ran %d times", runs)
					}
					return // acknowledged by the server: nothing more is owed
				}
				f, _ := ts.waitFrame(t, 0, "the outcome", func(f frame) bool { return f.conn >= 2 && isOutcome(txn)(f) })
				runs := lines(t, marker) // the outcome comes once the task ended, if it ran
				if runs > 1 {
					t.Fatalf("task ran %d times", runs)
				}
				switch {
				case runs == 1:
					if res := taskResults(t, f); res.Stdout != "done\n" || res.Exitcode != 0 {
						t.Errorf("the task ran; results %+v, want its own", res)
					}
				default:
					if e := rpcError(t, f); !strings.Contains(e.Description, notStartedError) {
						t.Errorf("the task did not run; outcome %+v, want %q", e, notStartedError)
					}
				}
			})
		}
	}
}

// TestFollowedTaskIsStillTimedOut checks that a task found running after an agent restart is
// still killed at its timeout (counted from its start), its whole process group with it, and
// reported as timed out.
func TestFollowedTaskIsStillTimedOut(t *testing.T) {
	ts := newTestServer(t)
	dir := t.TempDir()
	hc := helperConfig{Server: ts.url(), SpoolDir: filepath.Join(dir, "spool"), CacheDir: filepath.Join(dir, "cache"), Supervisor: testSupervisor(t)}
	first := startAgentProcess(t, hc)
	childpid := filepath.Join(dir, "child")
	file := ts.addFile("spawn.sh", script(spawnScript))
	const txn = "txn-timeout-after-restart"
	ts.waitFrame(t, 0, "the agent to connect", isType(protocol.TypeFacts))
	ts.runRequest(t, txn, protocol.TaskParams{Task: "demo", Files: []protocol.TaskFile{file}, Timeout: 3,
		Input: mustJSON(t, map[string]string{"childpid": childpid})})
	waitUntil(t, "the child to start", func() bool { return fileExists(childpid) })
	first.kill(t)
	pid := readPID(t, childpid)
	if processGone(pid) {
		t.Fatal("the task's child died with the agent")
	}
	startAgentProcess(t, hc)
	f, _ := ts.waitFrame(t, 0, "the timed-out result", isOutcome(txn))
	if res := taskResults(t, f); !res.TimedOut || res.Exitcode != -1 {
		t.Errorf("results %+v, want timed out", res)
	}
	waitUntil(t, "the child to be killed", func() bool { return processGone(pid) })
}
