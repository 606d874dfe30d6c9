package agent

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAwaitExitReturnsOnceTheChildHasExited checks that awaitExit returns only after the child
// has exited, leaving it for Wait to reap (a zombie until then), for a child that ends while
// it waits and for one that ended before.
func TestAwaitExitReturnsOnceTheChildHasExited(t *testing.T) {
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err != nil {
		t.Skipf("no pidfds here (%v): awaitExit returns at once by design", err)
	} else {
		unix.Close(fd)
	}
	for _, c := range []struct {
		name   string
		script string
		before bool // wait for it to end before awaitExit
	}{
		{"ends while it waits", "read x; exit 3", false},
		{"ended before", "exit 3", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", c.script)
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			returned := make(chan struct{})
			if c.before {
				in.Close()
				waitState(t, pid, "Z")
			}
			go func() {
				awaitExit(pid)
				close(returned)
			}()
			if !c.before {
				select {
				case <-returned:
					t.Fatal("awaitExit returned while the child runs")
				case <-time.After(100 * time.Millisecond):
				}
				in.Close()
			}
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Fatal("awaitExit did not return after the child exited")
			}
			if st := procState(t, pid); st != "Z" {
				t.Errorf("state %q after awaitExit, want Z: exited and not yet reaped", st)
			}
			err = cmd.Wait()
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
				t.Errorf("Wait: %v, want exit status 3", err)
			}
		})
	}
	// A PID that is not a child (or no process at all): it returns, and Wait decides.
	done := make(chan struct{})
	go func() { awaitExit(1 << 30); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("awaitExit of no process did not return")
	}
}

// procState is the state letter of process pid ("" once it is gone).
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return fields[0]
}

func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for procState(t, pid) != want {
		if time.Now().After(deadline) {
			t.Fatalf("process %d never reached state %s", pid, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
