//go:build unix

package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// svAgent is an agent with only what runDaemon needs: a supervisor process (this test binary)
// let go after idle.
func svAgent(t *testing.T, idle time.Duration) *Agent {
	t.Helper()
	a := &Agent{log: slog.New(slog.NewTextHandler(io.Discard, nil)), sv: newSupervisor(testSupervisorDaemon(t), idle)}
	t.Cleanup(func() { a.sv.Close() })
	return a
}

// parentOf is pid's parent PID (from /proc).
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	ppid, err := strconv.Atoi(strings.Fields(s[strings.LastIndexByte(s, ')')+2:])[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

// TestSupervisorProcessRunsTasks runs tasks under the supervisor process as the agent does and
// checks what it records and reports: the task's own PID and start time, its output, stdin,
// environment and working directory, and its exit code — 128+n for a task killed by signal n,
// 127 with the reason for one that cannot be run — and that the task inherits none of the
// supervisor's descriptors.
func TestSupervisorProcessRunsTasks(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	a := svAgent(t, time.Hour)
	work := t.TempDir()
	for _, tc := range []struct {
		name         string
		cmd          Command
		exitcode     int
		stdout, errs string
	}{
		{"output and exit code", Command{Path: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}}, 3, "out\n", "err\n"},
		{"input on stdin", Command{Path: "/bin/sh", Args: []string{"-c", "cat"}, Stdin: []byte("the input")}, 0, "the input", ""},
		{"environment and directory", Command{Path: "/bin/sh", Args: []string{"-c", `echo "$PT_x $(pwd)"`}, Env: []string{"PT_x=1"}, Dir: work}, 0, "1 " + work + "\n", ""},
		{"no descriptors leaked", Command{Path: "/bin/sh", Args: []string{"-c", `for fd in 3 4 5 6 7 8 9; do { true >&$fd; } 2>/dev/null && echo "fd $fd is open"; done; echo checked`}}, 0, "checked\n", ""},
		{"input left unread by a process it left behind", Command{Path: "/bin/sh", Args: []string{"-c", "sleep 600 & echo left"}, Stdin: make([]byte, 1<<20)}, 0, "left\n", ""},
		{"killed by a signal", Command{Path: "/bin/sh", Args: []string{"-c", "kill -KILL $$"}}, 128 + 9, "", ""},
		{"cannot be run", Command{Path: filepath.Join(work, "missing")}, 127, "", "Executable '" + filepath.Join(work, "missing") + "' failed to run: fork/exec " + filepath.Join(work, "missing") + ": no such file or directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Cleanup(func() { // whatever the task left behind
				if pr, err := readPIDRecord(dir); err == nil {
					_ = killProcessGroup(pr.PID)
				}
			})
			res, err := a.runDaemon(context.Background(), dir, tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if res.Exitcode != tc.exitcode || res.Stdout != tc.stdout || res.Stderr != tc.errs {
				t.Errorf("results %+v, want exit code %d, stdout %q, stderr %q", res, tc.exitcode, tc.stdout, tc.errs)
			}
			if rec, ok := collectTask(dir); !ok || rec.Exitcode != tc.exitcode {
				t.Errorf("recorded %+v (%v), want exit code %d", rec, ok, tc.exitcode)
			}
			if tc.exitcode == 127 {
				return // no process, no PID
			}
			pr, err := readPIDRecord(dir)
			if err != nil || pr.Start == 0 {
				t.Errorf("PID record %+v, %v: want the task's PID and start time", pr, err)
			}
		})
	}
	if n, _ := a.sv.Spawns(); n != 1 {
		t.Errorf("%d supervisor processes started for 6 tasks, want 1", n)
	}

	// A supervisor process that cannot create the task's output files runs nothing and says so.
	marker, dir := filepath.Join(work, "ran"), t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, stdoutFile), 0o700); err != nil { // not a file it can open
		t.Fatal(err)
	}
	_, err := a.runDaemon(context.Background(), dir, Command{Path: "/bin/sh", Args: []string{"-c", "echo ran > " + marker}})
	if _, serr := os.Stat(marker); !errors.Is(err, errTaskNotStarted) || serr == nil {
		t.Errorf("output files cannot be created: error %v, task ran: %v; want not started, not run", err, serr == nil)
	}
}

// TestSupervisorProcessIsSharedAndLetGo: concurrent tasks share one supervisor process, whose
// children they are (not the agent's); it exits once let go after its idle time, and the next
// task starts a new one.
func TestSupervisorProcessIsSharedAndLetGo(t *testing.T) {
	a := svAgent(t, 100*time.Millisecond)
	release := filepath.Join(t.TempDir(), "release")
	dirs := make([]string, 8)
	var wg sync.WaitGroup
	results := make([]protocol.TaskResults, len(dirs))
	for i := range dirs {
		dirs[i] = t.TempDir()
		wg.Go(func() {
			results[i], _ = a.runDaemon(context.Background(), dirs[i], Command{Path: "/bin/sh",
				Args: []string{"-c", `while [ ! -f "$1" ]; do sleep 0.01; done; echo ok`, "task", release}})
		})
	}
	waitUntil(t, "every task to run", func() bool {
		for _, d := range dirs {
			if _, err := readPIDRecord(d); err != nil {
				return false
			}
		}
		return true
	})
	n, svPID := a.sv.Spawns()
	if n != 1 {
		t.Fatalf("%d supervisor processes for %d concurrent tasks, want 1", n, len(dirs))
	}
	for _, d := range dirs {
		pr, _ := readPIDRecord(d)
		if p := parentOf(t, pr.PID); p != svPID {
			t.Errorf("task %d's parent is %d, want the supervisor process %d", pr.PID, p, svPID)
		}
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range results {
		if r.Exitcode != 0 || r.Stdout != "ok\n" {
			t.Errorf("task %d: %+v", i, r)
		}
	}
	waitUntil(t, "the idle supervisor process to exit", func() bool { return !processAlive(svPID, 0) })
	if _, err := a.runDaemon(context.Background(), t.TempDir(), Command{Path: "/bin/true"}); err != nil {
		t.Fatal(err)
	}
	if n, pid := a.sv.Spawns(); n != 2 || pid == svPID {
		t.Errorf("after the first exited: %d processes started (the last %d), want a second one", n, pid)
	}
}

// TestSupervisorProcessOutlivesTheAgent: when the agent's end of the socket closes (the agent
// died) while a task runs, the supervisor process keeps the task, records its exit code when
// it ends, and exits.
func TestSupervisorProcessOutlivesTheAgent(t *testing.T) {
	a := svAgent(t, time.Hour)
	dir, release := t.TempDir(), filepath.Join(t.TempDir(), "release")
	t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o600) })
	go func() {
		_, _ = a.runDaemon(context.Background(), dir, Command{Path: "/bin/sh",
			Args: []string{"-c", `while [ ! -f "$1" ]; do sleep 0.01; done; echo finished; exit 4`, "task", release}})
	}()
	waitUntil(t, "the task to run", func() bool { _, err := readPIDRecord(dir); return err == nil })
	_, svPID := a.sv.Spawns()
	a.sv.Close() // as the agent's death does
	pr, _ := readPIDRecord(dir)
	if !processAlive(pr.PID, pr.Start) || !processAlive(svPID, 0) {
		t.Fatal("the task or its supervisor ended with the agent's end of the socket")
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the exit code to be recorded", func() bool { _, ok := collectTask(dir); return ok })
	if res, _ := collectTask(dir); res.Exitcode != 4 || res.Stdout != "finished\n" {
		t.Errorf("recorded %+v, want exit code 4 and its output", res)
	}
	waitUntil(t, "the supervisor process to exit", func() bool { return !processAlive(svPID, 0) })
}

// TestSupervisorProcessKilledMidTask: a supervisor process killed while its task runs leaves
// the task running; the agent follows it by its PID to its end and reports an unknown outcome
// (no exit code was recorded), never that it did not run. Then a cancel of a task under a new
// supervisor process kills the task's process group.
func TestSupervisorProcessKilledMidTask(t *testing.T) {
	a := svAgent(t, time.Hour)
	dir, release := t.TempDir(), filepath.Join(t.TempDir(), "release")
	t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o600) })
	got := make(chan protocol.TaskResults, 1)
	go func() {
		res, _ := a.runDaemon(context.Background(), dir, Command{Path: "/bin/sh",
			Args: []string{"-c", `while [ ! -f "$1" ]; do sleep 0.01; done; echo finished`, "task", release}})
		got <- res
	}()
	waitUntil(t, "the task to run", func() bool { _, err := readPIDRecord(dir); return err == nil })
	_, svPID := a.sv.Spawns()
	if err := syscall.Kill(svPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pr, _ := readPIDRecord(dir)
	waitUntil(t, "the supervisor process to be gone", func() bool { return !processAlive(svPID, 0) })
	if !processAlive(pr.PID, pr.Start) {
		t.Fatal("the task died with its supervisor")
	}
	select {
	case res := <-got:
		t.Fatalf("results %+v before the task ended", res)
	default:
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if !res.OutcomeUnknown || res.Exitcode != -1 || !strings.Contains(res.Stdout, "finished") {
		t.Errorf("results %+v, want an unknown outcome with the task's output", res)
	}

	// A cancelled task is killed, with its whole process group.
	ctx, cancel := context.WithCancel(context.Background())
	dir = t.TempDir()
	go func() {
		res, _ := a.runDaemon(ctx, dir, Command{Path: "/bin/sh", Args: []string{"-c", "sleep 600 & sleep 600; wait"}})
		got <- res
	}()
	waitUntil(t, "the second task to run", func() bool { _, err := readPIDRecord(dir); return err == nil })
	cancel()
	select {
	case res := <-got:
		if !res.Canceled || res.Exitcode != -1 {
			t.Errorf("results %+v, want cancelled", res)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the cancelled 600 s task was not ended within 2 min")
	}
	pr, _ = readPIDRecord(dir)
	waitUntil(t, "the task's process group to be gone", func() bool {
		return syscall.Kill(-pr.PID, 0) == syscall.ESRCH
	})
}

// TestSupervisorRunByHand: `baton-agent supervise` without the agent's socket on descriptor 3
// (run by hand, or given a file there) refuses clearly and runs nothing.
func TestSupervisorRunByHand(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "not-a-socket")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name  string
		extra []*os.File
	}{
		{"nothing on descriptor 3", nil},
		{"a file on descriptor 3", []*os.File{f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := testSupervisorDaemon(t)
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.ExtraFiles = tc.extra
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "descriptor 3 is not a socket") {
				t.Errorf("exit %v, output %q: want exit status 2 saying descriptor 3 is not a socket", err, out)
			}
		})
	}
}
