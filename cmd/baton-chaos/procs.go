package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one run of a child process, its output appended to a log file.
type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // cmd.Wait's, once done is closed
	killed bool  // by the harness (guarded by its keeper's mutex)
}

// startProc runs bin with args (env added to ours) in a process group of its own, its output
// appended to logPath.
func startProc(logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	fmt.Fprintf(f, "==== baton-chaos: start %s at %s\n", bin, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// kill9 sends SIGKILL to the process alone (not its group: tasks an agent started must
// outlive it, as under systemd's KillMode=process) and waits for its end.
func (p *proc) kill9() {
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop asks the process to end (SIGTERM) and kills it if it has not within grace.
func (p *proc) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill9()
	}
}

// keeper keeps one process running: it restarts it when it exits, after a delay, and counts
// how it ended. Kill makes it end by kill -9 and come back after a given time.
type keeper struct {
	name   string
	launch func() (*proc, error)
	ready  func(ctx context.Context) error // nil: started is ready
	log    *slog.Logger

	mu       sync.Mutex
	cur      *proc
	downTill time.Time // when a process the harness killed is started again
	stopped  bool
	kills    int      // by the harness
	exits    []string // other ends: how, for the report
	restarts int
}

func newKeeper(name string, log *slog.Logger, launch func() (*proc, error), ready func(context.Context) error) *keeper {
	return &keeper{name: name, launch: launch, ready: ready, log: log.With("proc", name)}
}

// start starts the process and waits until it is ready; from then on it is kept running.
func (k *keeper) start(ctx context.Context) error {
	_, err := k.spawn(ctx)
	return err
}

// spawn launches the process and waits until it is ready. A process launched but not ready in
// time is killed (its watch starts it again); launched says whether it was launched at all.
func (k *keeper) spawn(ctx context.Context) (launched bool, err error) {
	p, err := k.launch()
	if err != nil {
		return false, fmt.Errorf("%s: %w", k.name, err)
	}
	k.mu.Lock()
	k.cur = p
	k.mu.Unlock()
	go k.watch(ctx, p)
	if k.ready != nil {
		rctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-rctx.Done():
			}
		}()
		err := k.ready(rctx)
		cancel()
		if err != nil {
			select {
			case <-p.done: // it ended by itself: its watch says how and starts it again
			default:
				k.mu.Lock()
				p.killed, k.downTill = true, time.Now().Add(time.Second)
				k.exits = append(k.exits, "not ready: "+err.Error())
				k.mu.Unlock()
				p.kill9()
			}
			return true, fmt.Errorf("%s: not ready: %w", k.name, err)
		}
	}
	return true, nil
}

// watch waits for p's end and starts the process again: after the delay the harness chose
// when it killed it, after a second otherwise.
func (k *keeper) watch(ctx context.Context, p *proc) {
	<-p.done
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	wait := time.Second
	if p.killed {
		wait = time.Until(k.downTill)
	} else {
		how := "exit status 0"
		if p.err != nil {
			how = p.err.Error()
		}
		k.exits = append(k.exits, how)
		k.log.Debug("process ended by itself; restarting", "how", how)
	}
	k.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		k.mu.Lock()
		stopped := k.stopped
		if !stopped {
			k.restarts++
		}
		k.mu.Unlock()
		if stopped {
			return
		}
		launched, err := k.spawn(ctx)
		if launched {
			if err != nil {
				k.log.Warn("restarted, but not ready", "err", err)
			}
			return // the new process's own watch takes over
		}
		k.log.Warn("restart failed; trying again", "err", err)
		wait = time.Second
	}
}

// kill9 kills the running process with SIGKILL; it is started again after down. false: it was
// not running.
func (k *keeper) kill9(down time.Duration) bool {
	k.mu.Lock()
	p := k.cur
	if k.stopped || p == nil || p.killed {
		k.mu.Unlock()
		return false
	}
	select {
	case <-p.done:
		k.mu.Unlock()
		return false
	default:
	}
	p.killed, k.downTill = true, time.Now().Add(down)
	k.kills++
	k.mu.Unlock()
	p.kill9()
	return true
}

// stop ends the process for good (SIGTERM, then SIGKILL after grace).
func (k *keeper) stop(grace time.Duration) {
	k.mu.Lock()
	k.stopped = true
	p := k.cur
	k.mu.Unlock()
	if p != nil {
		p.stop(grace)
	}
}

// ends returns the kills by the harness and the other ends of the process.
func (k *keeper) ends() (kills, restarts int, exits []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.kills, k.restarts, append([]string(nil), k.exits...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// grepFile returns the lines of path containing s.
func grepFile(path, s string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(l, []byte(s)) {
			out = append(out, string(l))
		}
	}
	return out
}
