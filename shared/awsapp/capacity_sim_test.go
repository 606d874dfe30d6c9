package awsapp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/awsgw/apigwtest"
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

	mu    sync.Mutex
	tail  []string       // its last lines of output, for failure messages
	ready string         // its line saying the agents are enrolled
	warns map[string]int // the agents' warnings by message

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
	s := &simFleet{exited: make(chan struct{}), warns: map[string]int{}}
	for i := 1; i <= n; i++ {
		s.names = append(s.names, fmt.Sprintf("%s%d", prefix, i))
	}
	s.cmd = exec.Command(simulatorBinary(), "simulate", "--count", fmt.Sprint(n), "--prefix", prefix,
		"--server", server, "--api", api, "--token-file", tokenFile, "--keys-dir", filepath.Join(dir, "keys"),
		"--max-backoff", "10s", "--dial-parallel", fmt.Sprint(simDialParallel), "--status-interval", "100ms", "--log-level", "warn")
	s.cmd.Stdout = io.Discard
	// Killed with this process, should it die without stopping the simulator (a test
	// timeout, a signal), rather than left dialling a stand-in that is gone.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
		if msg, ok := logMessage(line); ok {
			s.warns[msg]++
			s.mu.Unlock()
			continue
		}
		if strings.Contains(line, "agents ready") {
			s.ready = line
		}
		s.tail = append(s.tail, line)
		if len(s.tail) > 20 {
			s.tail = s.tail[1:]
		}
		s.mu.Unlock()
	}
}

// logMessage returns the message of a log line of the agents (slog's text format), with the
// gist of its error if it has one (digits dropped, so that ports and timings fold together).
func logMessage(line string) (string, bool) {
	_, rest, ok := strings.Cut(line, " msg=")
	if !ok {
		return "", false
	}
	msg := quoted(rest)
	if _, e, ok := strings.Cut(rest, " error="); ok {
		gist := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return -1
			}
			return r
		}, quoted(e))
		if i := strings.LastIndex(gist, ": "); i >= 0 {
			gist = gist[i+2:]
		}
		msg += ": " + gist
	}
	return msg, true
}

// quoted returns the value at the start of s: a quoted string (slog quotes with
// strconv.Quote), or up to the next space.
func quoted(s string) string {
	if q, err := strconv.QuotedPrefix(s); err == nil {
		if v, err := strconv.Unquote(q); err == nil {
			return v
		}
	}
	v, _, _ := strings.Cut(s, " ")
	return v
}

// Warnings returns how many times the agents logged each warning or error message.
func (s *simFleet) Warnings() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.warns)
}

// readyLine is the simulator's line about its agents being enrolled and ready.
func (s *simFleet) readyLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
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

// simDialParallel bounds the simulated agents' connection attempts in flight: below the
// connect functions' reserved concurrency (capacityLimits), so that the agents connect at the
// pace the stand-in's handlers can take instead of all at once, every refused attempt a
// connection of its own to accept and close.
const simDialParallel = 32

// capacityLimits are the stand-in's limits in the capacity test: the reserved concurrency
// infra/stack.Specs gives the functions of a connect (wsauthorizer, $connect, $disconnect:
// 50 each), so that a storm of 10,000 agents connecting at once is refused in part (500) and
// retried by the agents with backoff, as on AWS, instead of running 10,000 handlers at once.
// $default (200 on AWS) is left unbounded: a throttled result is sent again only after the
// agent's 30 s acknowledgement timeout, and the test's handlers, sharing two cores, take far
// longer than a Lambda's ~50 ms, so a cap sized for AWS would throttle here and only slow
// the run; the SDK clients' connection bound (sdkHTTP) keeps their file descriptors in check.
func capacityLimits() []apigwtest.Option {
	return []apigwtest.Option{
		apigwtest.WithReservedConcurrency("authorizer", 50),
		apigwtest.WithReservedConcurrency("$connect", 50),
		apigwtest.WithReservedConcurrency("$disconnect", 50),
	}
}

// socketCensus sorts this process's sockets by TCP state and by the port of the server end
// (for a socket whose local port is one of ports, that port; else its remote port): where the
// open files go. Sockets missing from /proc/net/tcp{,6} are counted as "unlisted".
func socketCensus(ports map[string]string) string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err.Error()
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	states := map[string]string{"01": "ESTAB", "02": "SYN-SENT", "03": "SYN-RECV", "04": "FIN-WAIT-1", "05": "FIN-WAIT-2",
		"06": "TIME-WAIT", "07": "CLOSE", "08": "CLOSE-WAIT", "09": "LAST-ACK", "0A": "LISTEN", "0B": "CLOSING"}
	type sock struct{ state, local, remote string }
	var socks []sock
	listening := map[string]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 10 || !inodes[fl[9]] {
				continue
			}
			port := func(addr string) string {
				var p int
				_, _ = fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%X", &p)
				return fmt.Sprint(p)
			}
			sk := sock{states[fl[3]], port(fl[1]), port(fl[2])}
			if sk.state == "LISTEN" {
				listening[sk.local] = true
			}
			socks = append(socks, sk)
		}
	}
	name := func(port string) string {
		if n, ok := ports[port]; ok {
			return n
		}
		return ":" + port
	}
	count := map[string]int{}
	for _, sk := range socks {
		switch {
		case sk.state == "LISTEN":
			count["LISTEN "+name(sk.local)]++
		case listening[sk.local]:
			count[sk.state+" server "+name(sk.local)]++
		case listening[sk.remote]:
			count[sk.state+" client of "+name(sk.remote)]++
		default:
			count[sk.state+" to another process"]++
		}
	}
	seen := len(socks)
	count["unlisted"] = len(inodes) - seen
	var out []string
	for k, v := range count {
		out = append(out, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
