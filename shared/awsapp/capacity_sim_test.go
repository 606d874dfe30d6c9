package awsapp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// simFleet is `baton-agent simulate` run as a child process: n virtual agents (agent/fleet:
// the agent library's real protocol code, a no-op executor), each with its own key and
// WebSocket. In its own process the agents' ends of the sockets do not count against this
// process's open-file limit, which then holds only the stand-in's ends (one per agent).
type simFleet struct {
	names []string
	cmd   *exec.Cmd
	// From the simulator's status lines.
	connected, runs, failed atomic.Int64
	exited                  chan struct{} // closed when the process has ended
	waitErr                 error         // set before exited is closed

	mu   sync.Mutex
	tail []string // its last lines of output, for failure messages

	stopOnce sync.Once
	stopErr  error
}

// simulatorBinary is the baton-agent the capacity test runs: BATON_AGENT_BIN, or the one
// TestMain built from this tree.
func simulatorBinary() string {
	if b := os.Getenv("BATON_AGENT_BIN"); b != "" {
		return b
	}
	return agentBin
}

// startSimulator starts n virtual agents named prefix1 … prefixN against the WebSocket
// endpoint server, enrolling them through api with token; it stops them at the test's end.
func startSimulator(t *testing.T, n int, prefix, server, api, token string) *simFleet {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &simFleet{exited: make(chan struct{})}
	for i := 1; i <= n; i++ {
		s.names = append(s.names, fmt.Sprintf("%s%d", prefix, i))
	}
	s.cmd = exec.Command(simulatorBinary(), "simulate", "--count", fmt.Sprint(n), "--prefix", prefix,
		"--server", server, "--api", api, "--token-file", tokenFile, "--keys-dir", filepath.Join(dir, "keys"),
		"--max-backoff", "10s", "--status-interval", "100ms", "--log-level", "error")
	s.cmd.Stdout = io.Discard
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s simulate: %v", simulatorBinary(), err)
	}
	read := make(chan struct{})
	go func() { defer close(read); s.read(stderr) }()
	go func() {
		<-read // Wait closes the pipe: read it to the end first
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("simulator: %v\n%s", err, s.lastLines())
		}
	})
	return s
}

// read follows the simulator's status lines ("simulate: connected C/N node-runs R failed F").
func (s *simFleet) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		var connected, count, runs, failed int64
		if _, err := fmt.Sscanf(line, "simulate: connected %d/%d node-runs %d failed %d", &connected, &count, &runs, &failed); err == nil {
			s.connected.Store(connected)
			s.runs.Store(runs)
			s.failed.Store(failed)
		}
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > 20 {
			s.tail = s.tail[1:]
		}
		s.mu.Unlock()
	}
}

func (s *simFleet) lastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// Names returns the agents' node names.
func (s *simFleet) Names() []string { return s.names }

// Connected returns how many agents the simulator last reported connected.
func (s *simFleet) Connected() int { return int(s.connected.Load()) }

// NodeRuns returns the requests the agents' no-op executor answered, and how many failed.
func (s *simFleet) NodeRuns() (runs, failed int64) { return s.runs.Load(), s.failed.Load() }

// Err is non-nil once the simulator has exited before being stopped.
func (s *simFleet) Err() error {
	select {
	case <-s.exited:
		return fmt.Errorf("the simulator exited: %v\n%s", s.waitErr, s.lastLines())
	default:
		return nil
	}
}

// Stop interrupts the simulator and waits for it; it must exit cleanly. Later calls return
// the first one's answer.
func (s *simFleet) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *simFleet) stop() error {
	select {
	case <-s.exited:
		return s.waitErr
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-s.exited:
		return s.waitErr
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("did not stop within a minute of SIGTERM")
	}
}

// openFiles counts this process's open file descriptors (-1 where /proc is missing).
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// fdWatch samples openFiles until ctx ends and keeps the highest count.
func fdWatch(ctx context.Context) (peak func() int) {
	var max atomic.Int64
	max.Store(int64(openFiles()))
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if n := int64(openFiles()); n > max.Load() {
					max.Store(n)
				}
			}
		}
	}()
	return func() int { return int(max.Load()) }
}

// fileLimit is this process's soft limit on open files (0 if unknown).
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}
