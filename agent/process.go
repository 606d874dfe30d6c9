package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// Command is a process for RunCommand. Path is executed directly (never through a shell) with
// Args; Env is added to the agent's own environment (later entries win); Stdin nil means
// /dev/null.
type Command struct {
	Path  string
	Args  []string
	Dir   string
	Env   []string
	Stdin []byte
	// OnStart, when set, is called with the process's PID once it has started.
	OnStart func(pid int)
}

// ioGrace bounds how long RunCommand waits for stdout/stderr to close after the process
// exited (a background child may keep them open).
const ioGrace = 2 * time.Second

// RunCommand runs c in its own process group and returns its exit code and output (each stream
// capped at MaxOutputBytes, with a note appended when cut). When ctx ends first, the whole
// process group is killed with SIGKILL and the results have Exitcode -1 and TimedOut set
// (cause ErrTimedOut or a deadline) or Canceled set (any other cause). A process that cannot be
// started yields Exitcode 127, the reason on Stderr, and an error.
func RunCommand(ctx context.Context, c Command) (protocol.TaskResults, error) {
	if ctx.Err() != nil {
		return endedEarly(ctx, protocol.TaskResults{}), nil
	}
	stdout := &cappedBuffer{max: MaxOutputBytes}
	stderr := &cappedBuffer{max: MaxOutputBytes}
	var cmd *exec.Cmd
	for attempt := 0; ; attempt++ {
		cc := exec.CommandContext(ctx, c.Path, c.Args...)
		cc.Dir = c.Dir
		cc.Env = append(os.Environ(), c.Env...)
		if c.Stdin != nil {
			cc.Stdin = bytes.NewReader(c.Stdin)
		}
		cc.Stdout, cc.Stderr = stdout, stderr
		setProcessGroup(cc)
		cc.Cancel = func() error { return killProcessGroup(cc.Process.Pid) }
		cc.WaitDelay = ioGrace
		err := cc.Start()
		if err == nil {
			cmd = cc
			break
		}
		if ctx.Err() != nil {
			return endedEarly(ctx, protocol.TaskResults{}), nil
		}
		// A file written just before may still be open for writing in a process that another
		// goroutine is forking at this moment (golang/go#22315); that clears up quickly.
		if errors.Is(err, syscall.ETXTBSY) && attempt < 6 {
			t := time.NewTimer(time.Duration(10<<attempt) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return endedEarly(ctx, protocol.TaskResults{}), nil
			case <-t.C:
			}
			continue
		}
		return protocol.TaskResults{
			Exitcode: 127,
			Stderr:   fmt.Sprintf("Executable '%s' failed to run: %v", c.Path, err),
		}, fmt.Errorf("start %s: %w", c.Path, err)
	}
	if c.OnStart != nil {
		c.OnStart(cmd.Process.Pid)
	}
	werr := cmd.Wait()
	res := protocol.TaskResults{Exitcode: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		// The process may have exited on its own just as ctx ended: make sure nothing of the
		// group survives.
		_ = killProcessGroup(cmd.Process.Pid)
		res = endedEarly(ctx, res)
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	if errors.Is(werr, exec.ErrWaitDelay) {
		res.Stderr += "\n[baton-agent: stopped reading output: a background process kept it open]\n"
	}
	return res, nil
}

func endedEarly(ctx context.Context, r protocol.TaskResults) protocol.TaskResults {
	r.Exitcode = -1
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrTimedOut) || errors.Is(cause, context.DeadlineExceeded) {
		r.TimedOut = true
	} else {
		r.Canceled = true
	}
	return r
}

// cappedBuffer keeps the first max bytes written to it and counts the rest.
type cappedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int64
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if room >= len(p) {
		return b.buf.Write(p)
	}
	if room > 0 {
		b.buf.Write(p[:room])
	}
	b.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	if b.dropped == 0 {
		return b.buf.String()
	}
	return fmt.Sprintf("%s\n[baton-agent: output truncated: %d more bytes were dropped]\n", b.buf.String(), b.dropped)
}
