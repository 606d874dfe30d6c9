//go:build unix

package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/baton-run/baton/shared/protocol"
)

// SupervisorCommand is the argument that makes baton-agent run as its own task supervisor
// (`baton-agent supervise`, started by the agent with Config.SupervisorDaemon): one process per
// agent process that starts every task, so that each task is that process's child and not the
// agent's. It serves the socket it inherits as file descriptor 3 (RunSupervisor) and outlives
// the agent that started it: a task still running when the agent is killed keeps its parent,
// which records its exit code; the restarted agent finds the task again by the PID recorded in
// the spool and reports its real outcome (recoverTransactions). A supervisor whose agent has
// gone exits as soon as its last task has ended and been recorded.
//
// It replaces the per-task supervisor script (SupervisorScript), which costs a shell's start
// for every task: on the 2-core machine of BENCHMARKS.md, 200 tasks started at once spend
// about a third of their CPU starting those shells.
const SupervisorCommand = "supervise"

// supervisorFD is the descriptor on which a supervisor finds its socket to the agent.
const supervisorFD = 3

// svRequest asks the supervisor to start a task: its output goes to Dir/stdout and
// Dir/stderr, its PID to Dir/pid once it runs, and its exit code to Dir/exitcode once it
// has ended (the files of SupervisorScript, the same formats).
type svRequest struct {
	ID    uint64   `json:"id"`
	Dir   string   `json:"dir"`
	Path  string   `json:"path"`
	Args  []string `json:"args,omitempty"`
	Env   []string `json:"env,omitempty"`
	Cwd   string   `json:"cwd,omitempty"`
	Stdin []byte   `json:"stdin,omitempty"`
}

// svReply is the supervisor's answer to a request: first PID (it runs) or Error (it was not
// started, NotStarted; or its outcome cannot be known), then, once it has ended, Ended with
// Exitcode (recorded in Dir/exitcode unless Unrecorded says why not).
type svReply struct {
	ID         uint64 `json:"id"`
	PID        int    `json:"pid,omitempty"`
	Start      uint64 `json:"start,omitempty"`
	Error      string `json:"error,omitempty"`
	NotStarted bool   `json:"not_started,omitempty"`
	Ended      bool   `json:"ended,omitempty"`
	Exitcode   int    `json:"exitcode,omitempty"`
	Unrecorded string `json:"unrecorded,omitempty"`
}

// RunSupervisor is `baton-agent supervise`: it serves the agent's requests on descriptor 3
// until the agent closes its end, then waits for the tasks it started and returns (0; 2 when
// there is no socket to serve).
func RunSupervisor() int {
	f := os.NewFile(supervisorFD, "supervisor-socket")
	if f == nil {
		fmt.Fprintln(os.Stderr, "baton-agent supervise: no socket on descriptor 3; it is started by baton-agent")
		return 2
	}
	conn, err := net.FileConn(f) // a duplicate, close-on-exec: tasks never inherit it
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-agent supervise: descriptor 3 is not a socket:", err)
		return 2
	}
	serveSupervisor(conn)
	return 0
}

// serveSupervisor runs the requests read from conn until it ends, then waits for the tasks.
func serveSupervisor(conn net.Conn) {
	defer conn.Close()
	var (
		wmu   sync.Mutex
		tasks sync.WaitGroup
	)
	enc := json.NewEncoder(conn)
	reply := func(r svReply) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(r) // the agent may be gone: the files say it all
	}
	dec := json.NewDecoder(bufio.NewReader(conn))
	for {
		var req svRequest
		if err := dec.Decode(&req); err != nil {
			break // the agent closed its end (or died)
		}
		tasks.Add(1)
		go func() {
			defer tasks.Done()
			superviseTask(req, reply)
		}()
	}
	tasks.Wait()
}

// superviseTask starts req's task, records its PID, waits for it and records its exit code
// (128+n for a task killed by signal n, as shells report it), replying at each step.
func superviseTask(req svRequest, reply func(svReply)) {
	fail := func(notStarted bool, format string, args ...any) {
		reply(svReply{ID: req.ID, Error: fmt.Sprintf(format, args...), NotStarted: notStarted})
	}
	if !filepath.IsAbs(req.Dir) {
		fail(true, "transaction directory %q is not absolute", req.Dir)
		return
	}
	stdout, err := openFile(filepath.Join(req.Dir, stdoutFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		fail(true, "open the task's output: %v", err)
		return
	}
	defer stdout.Close()
	stderr, err := openFile(filepath.Join(req.Dir, stderrFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		fail(true, "open the task's output: %v", err)
		return
	}
	defer stderr.Close()
	cmd := exec.Command(req.Path, req.Args...)
	cmd.Dir, cmd.Env = req.Cwd, req.Env
	if req.Env == nil {
		cmd.Env = []string{}
	}
	if req.Stdin != nil {
		cmd.Stdin = bytes.NewReader(req.Stdin)
	} else if null := devNull(); null != nil {
		cmd.Stdin = null // given as is: os/exec would open the null device for each task
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		// As a shell reports a command it cannot run: exit code 127, the reason on stderr.
		fmt.Fprintf(stderr, "Executable '%s' failed to run: %v\n", req.Path, err)
		reply(ended(req, 127))
		return
	}
	pid := cmd.Process.Pid
	start, _, _ := procStart(pid)
	if err := writeJSONAtomic(filepath.Join(req.Dir, pidFile), pidRecord{PID: pid, Start: start}, false); err != nil {
		// It runs, and a restarted agent could not find it: stop it, and say that what it did
		// is unknown (it may have begun).
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
		fail(false, "record the task's PID: %v", err)
		return
	}
	reply(svReply{ID: req.ID, PID: pid, Start: start})
	awaitExit(pid)
	err = cmd.Wait()
	code := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	default:
		code = -1
	}
	reply(ended(req, code))
}

// devNull is the null device, opened once for reading (nil when it cannot be): the standard
// input of the tasks that are given none.
var devNull = sync.OnceValue(func() *os.File {
	f, err := openFile(os.DevNull, os.O_RDONLY, 0)
	if err != nil {
		return nil
	}
	return f
})

// ended records code as req's task's exit code and returns the reply that says so.
func ended(req svRequest, code int) svReply {
	r := svReply{ID: req.ID, Ended: true, Exitcode: code}
	if err := writeJSONAtomic(filepath.Join(req.Dir, exitcodeFile), exitRecord{Exitcode: code}, false); err != nil {
		r.Unrecorded = err.Error()
	}
	return r
}

// errNoSupervisor: the supervisor process could not be started or has gone.
var errNoSupervisor = errors.New("the task supervisor is not running")

// supervisorIdle is how long the agent keeps its supervisor process without a task: an idle
// node has none (its memory is the agent's alone), a busy one starts it once.
const supervisorIdle = 30 * time.Second

// supervisor is the agent's side of its task supervisor process: started at the first task,
// shared by all, and let go (it exits) after idle without a task.
type supervisor struct {
	argv []string
	idle time.Duration

	mu      sync.Mutex
	conn    net.Conn
	enc     *json.Encoder
	waiters map[uint64]*svWaiter
	nextID  uint64
	active  int
	timer   *time.Timer
	spawns  int // processes started (tests count them)
	pid     int // the current one's
}

// svWaiter receives the replies about one task; ch is closed if the connection it was sent
// on ends first.
type svWaiter struct {
	conn net.Conn
	ch   chan svReply
}

func newSupervisor(argv []string, idle time.Duration) *supervisor {
	return &supervisor{argv: argv, idle: idle, waiters: map[uint64]*svWaiter{}}
}

// Close lets the supervisor process go: it exits once its tasks have ended.
func (s *supervisor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked()
	return nil
}

func (s *supervisor) dropLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn, s.enc = nil, nil
	}
}

// Spawns is how many supervisor processes this agent has started, and the PID of the last.
func (s *supervisor) Spawns() (n, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spawns, s.pid
}

// start sends req (its ID set here) to the supervisor process, starting one if none runs,
// and returns the ID and the channel its replies come on; done(ID) must follow.
func (s *supervisor) start(req svRequest) (uint64, <-chan svReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connLocked(); err != nil {
		return 0, nil, err
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.nextID++
	req.ID = s.nextID
	w := &svWaiter{conn: s.conn, ch: make(chan svReply, 2)}
	s.waiters[req.ID] = w
	s.active++
	if err := s.enc.Encode(req); err != nil {
		delete(s.waiters, req.ID)
		s.active--
		s.dropLocked()
		return 0, nil, fmt.Errorf("%w: send the task: %v", errNoSupervisor, err)
	}
	return req.ID, w.ch, nil
}

// done forgets task id; the last task's end starts the idle countdown.
func (s *supervisor) done(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.waiters[id]; !ok {
		return
	}
	delete(s.waiters, id)
	s.active--
	if s.active == 0 && s.conn != nil && s.timer == nil {
		s.timer = time.AfterFunc(s.idle, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.active == 0 {
				s.dropLocked()
			}
		})
	}
}

// connLocked makes sure a supervisor process runs, connected to s.conn.
func (s *supervisor) connLocked() error {
	if s.conn != nil {
		return nil
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: socket pair: %v", errNoSupervisor, err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "supervisor"), os.NewFile(uintptr(fds[1]), "supervisor-child")
	defer theirs.Close()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.ExtraFiles = []*os.File{theirs} // descriptor 3
	// Its own session: signals to the agent's process group (a terminal's ^C, a kill of the
	// group) do not reach it or its tasks; a stop of the whole service (its cgroup) does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		mine.Close()
		return fmt.Errorf("%w: start %s: %v", errNoSupervisor, s.argv[0], err)
	}
	s.spawns++
	s.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reaped when it exits, after this agent let it go
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return fmt.Errorf("%w: %v", errNoSupervisor, err)
	}
	s.conn, s.enc = conn, json.NewEncoder(conn)
	go s.read(conn)
	return nil
}

// read delivers conn's replies to their waiters; when conn ends, the waiters of tasks sent on
// it are told (their channels closed).
func (s *supervisor) read(conn net.Conn) {
	dec := json.NewDecoder(bufio.NewReader(conn))
	for {
		var r svReply
		if err := dec.Decode(&r); err != nil {
			break
		}
		s.mu.Lock()
		w := s.waiters[r.ID]
		s.mu.Unlock()
		if w != nil {
			w.ch <- r // room for both of a task's replies
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == conn {
		s.conn.Close()
		s.conn, s.enc = nil, nil
	}
	for _, w := range s.waiters {
		if w.conn == conn {
			close(w.ch)
			w.conn = nil
		}
	}
}

// runDaemon runs c under the agent's supervisor process (Config.SupervisorDaemon), its
// output and exit code going to files in dir, as runSupervised does under the per-task
// script. errNoSupervisor: the process could not be started or reached (nothing was run).
func (a *Agent) runDaemon(ctx context.Context, dir string, c Command) (protocol.TaskResults, error) {
	if ctx.Err() != nil {
		return endedEarly(ctx, protocol.TaskResults{}), nil
	}
	if err := writeStarted(dir); err != nil {
		return protocol.TaskResults{}, err
	}
	id, replies, err := a.sv.start(svRequest{Dir: dir, Path: c.Path, Args: c.Args,
		Env: append(os.Environ(), c.Env...), Cwd: c.Dir, Stdin: c.Stdin})
	if err != nil {
		return protocol.TaskResults{}, err
	}
	defer a.sv.done(id)
	var (
		pid   int
		start uint64
	)
	done := ctx.Done()
	for {
		select {
		case r, ok := <-replies:
			if !ok {
				return a.followOrphan(ctx, dir, pid, start), nil
			}
			switch {
			case r.Ended:
				// The exit code comes with the reply (recorded or not: it is spooled with the
				// result); only the output is read.
				res := collectOutput(dir)
				res.Exitcode = r.Exitcode
				if ctx.Err() != nil {
					return endedEarly(ctx, res), nil
				}
				return res, nil
			case r.Error != "" && r.NotStarted:
				return protocol.TaskResults{}, fmt.Errorf("the task supervisor: %s: %w", r.Error, errTaskNotStarted)
			case r.Error != "":
				res, _ := collectTask(dir)
				return unknownResults(res, "the task supervisor: "+r.Error, false), nil
			default:
				pid, start = r.PID, r.Start
				if a.cfg.FaultHook != nil {
					a.cfg.FaultHook(FaultTaskStarted)
				}
				if ctx.Err() != nil { // ended before it was known to run
					_ = killProcessGroup(pid)
				}
			}
		case <-done:
			if pid > 0 {
				_ = killProcessGroup(pid)
			}
			done = nil // and wait for the supervisor to say it ended
		}
	}
}

// followOrphan follows a task whose supervisor process went away while it ran (pid 0: before
// it said the task runs) until the task ends, and reports what can be known: its recorded
// outcome if any, else an unknown one.
func (a *Agent) followOrphan(ctx context.Context, dir string, pid int, start uint64) protocol.TaskResults {
	a.log.Warn("the task supervisor went away while a task ran; following the task by its PID", "pid", pid)
	tick := time.NewTicker(reattachPoll)
	defer tick.Stop()
	for deadline := time.Now().Add(pidGrace); pid == 0 && time.Now().Before(deadline); <-tick.C {
		if pr, err := readPIDRecord(dir); err == nil {
			pid, start = pr.PID, pr.Start
		}
	}
	for done := ctx.Done(); pid > 0 && processAlive(pid, start); {
		select {
		case <-done:
			_ = killProcessGroup(pid)
			done = nil
		case <-tick.C:
		}
	}
	res, ok := collectTask(dir)
	switch {
	case ctx.Err() != nil:
		return endedEarly(ctx, res)
	case !ok:
		return unknownResults(res, "the task supervisor went away while it ran", false)
	}
	return res
}
