package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestSupervisorScript runs the supervisor as baton-agent does and checks what it records:
// its own PID and start time (as procStart reads them), the task's output, and its exit code
// — 128+n for a task killed by signal n — and that the task inherits none of its descriptors.
func TestSupervisorScript(t *testing.T) {
	sv := DefaultSupervisor()
	if sv == nil {
		t.Skip("no /bin/sh")
	}
	for _, tc := range []struct {
		name         string
		script       string
		exitcode     int
		stdout, errs string
	}{
		{"output and exit code", `echo out; echo err >&2; exit 3`, 3, "out\n", "err\n"},
		{"input on stdin", `cat`, 0, "the input", ""},
		{"no descriptors leaked", `for fd in 3 4 5 6 7 8 9; do { true >&$fd; } 2>/dev/null && echo "fd $fd is open"; done; echo checked`, 0, "checked\n", ""},
		{"killed by a signal", `kill -TERM $$`, 128 + 15, "", "*"}, // the shell may say "Terminated"
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(sv[0], append(append([]string{}, sv[1:]...), dir, "/bin/sh", "-c", tc.script)...)
			cmd.Stdin = strings.NewReader("the input")
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				t.Fatalf("supervisor: %v, output %q", err, out)
			}
			pr, err := readPIDRecord(dir)
			if err != nil {
				t.Fatal(err)
			}
			if pr.PID != cmd.Process.Pid {
				t.Errorf("recorded PID %d, want %d", pr.PID, cmd.Process.Pid)
			}
			if runtime.GOOS == "linux" && pr.Start == 0 {
				t.Error("no start time recorded")
			}
			res, ok := collectTask(dir)
			if tc.errs == "*" {
				res.Stderr = "*"
			}
			if !ok || res.Exitcode != tc.exitcode || res.Stdout != tc.stdout || res.Stderr != tc.errs {
				t.Errorf("results %+v (recorded: %v), want exit code %d, stdout %q, stderr %q", res, ok, tc.exitcode, tc.stdout, tc.errs)
			}
		})
	}
}

// TestSupervisorStartTimeIsProcStart checks the start time the script records against the one
// the agent reads (procStart), which decides whether a recorded PID is still the same process.
func TestSupervisorStartTimeIsProcStart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	sv := DefaultSupervisor()
	cmd := exec.Command(sv[0], append(append([]string{}, sv[1:]...), dir, "/bin/sh", "-c", "read x")...)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitUntil(t, "the PID record", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, pidFile))
		return json.Valid(b)
	})
	pr, err := readPIDRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	start, _, err := procStart(cmd.Process.Pid)
	if err != nil || pr.Start != start || !processAlive(pr.PID, pr.Start) {
		t.Errorf("recorded %+v, procStart %d (%v)", pr, start, err)
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pr.PID, pr.Start) {
		t.Error("the supervisor is still alive after it ended")
	}
}

// TestSupervisorThatCannotWriteRunsNothing checks that a supervisor that cannot create the
// output files (a full disk, say) exits without running the task or recording an exit code.
func TestSupervisorThatCannotWriteRunsNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, stdoutFile), 0o700); err != nil { // cannot be opened for writing
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	sv := DefaultSupervisor()
	cmd := exec.Command(sv[0], append(append([]string{}, sv[1:]...), dir, "/bin/sh", "-c", `echo > "$0"`, marker)...)
	if err := cmd.Run(); err == nil {
		t.Error("the supervisor succeeded")
	}
	if fileExists(marker) {
		t.Error("the task ran")
	}
	if _, ok := collectTask(dir); ok {
		t.Error("an exit code was recorded")
	}
}
