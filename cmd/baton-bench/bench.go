package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-run/baton/agent"
	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/client"
)

// server is a running baton serve.
type server struct {
	p           *proc
	dir, data   string
	port        int
	fingerprint string
	token       string
	env         []string
	args        []string
	o           options
	throttled   *atomic.Int64
	api         *client.Client
}

func (s *server) url() string      { return fmt.Sprintf("https://127.0.0.1:%d", s.port) }
func (s *server) agentURL() string { return fmt.Sprintf("wss://127.0.0.1:%d/pcp", s.port) }

var fingerprintRE = regexp.MustCompile(`SHA-256 fingerprint ([0-9a-f]{64})`)

// startServer starts baton serve on a fresh data directory under dir.
func startServer(o options, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, data: filepath.Join(dir, "data"), port: port, o: o, throttled: &atomic.Int64{},
		env: []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}}
	s.args = []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data", s.data,
		"--modules", o.modules, "--log-level", "warn"}
	if o.serverPprof != "" {
		s.env = append(s.env, "BATON_PPROF="+o.serverPprof)
	}
	if o.taskConcurrency != 0 {
		s.args = append(s.args, "--task-concurrency", strconv.Itoa(o.taskConcurrency))
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		s.stop()
		return nil, err
	}
	s.token = strings.TrimSpace(string(tok))
	hc, err := agent.NewHTTPClient(agent.Config{Server: s.agentURL(), TLSFingerprint: s.fingerprint})
	if err != nil {
		s.stop()
		return nil, err
	}
	hc.Transport = countThrottled{next: hc.Transport, n: s.throttled}
	hc.Timeout = 2 * time.Minute
	s.api = client.NewWithHTTP(s.url(), s.token, hc)
	return s, nil
}

func (s *server) start() error {
	p, err := start("baton serve", filepath.Join(s.dir, fmt.Sprintf("serve-%d.log", time.Now().UnixNano())), s.env,
		filepath.Join(s.o.bin, "baton"), s.args...)
	if err != nil {
		return err
	}
	m, err := p.waitLine(fingerprintRE, 60*time.Second)
	if err != nil {
		p.stop()
		return err
	}
	if s.fingerprint != "" && s.fingerprint != m[1] {
		p.stop()
		return fmt.Errorf("the server's certificate changed across a restart")
	}
	s.p, s.fingerprint = p, m[1]
	if _, err := p.waitLine(regexp.MustCompile(`admin token:`), 10*time.Second); err != nil {
		p.stop()
		return err
	}
	return nil
}

func (s *server) stop() { s.p.stop() }

// countThrottled counts 429 answers: a benchmark must never be throttled.
type countThrottled struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countThrottled) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.n.Add(1)
	}
	return resp, err
}

// simResult is what one size of simulated fleet measured.
type simResult struct {
	n                        int
	enrol, connect           time.Duration
	fanOut, cli              []time.Duration
	rttP50, rttP99           time.Duration
	jobsPerSec               float64
	jobs, jobsUnfinished     int
	storm                    time.Duration
	stormRefused             int
	serverIdleRSS, serverRSS int64
	cpuPer1000, simCPU1000   float64
	simRSSPerAgent           int64
	throttled                int64
}

var (
	readyRE     = regexp.MustCompile(`simulate: \d+ agents ready .* in (\S+);`)
	connectedRE = regexp.MustCompile(`simulate: all (\d+) agents connected in (\S+); RSS (\d+) MB \((\d+) KB per agent\)`)
)

func benchSimulated(ctx context.Context, o options, n int) (simResult, error) {
	r := simResult{n: n}
	dir := filepath.Join(o.work, fmt.Sprintf("sim-%d", n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	srv, err := startServer(o, dir)
	if err != nil {
		return r, err
	}
	defer func() { srv.stop() }()
	tokenFile := filepath.Join(srv.data, "admin.token")
	simStart := time.Now()
	sim, err := start("baton-agent simulate", filepath.Join(dir, "simulate.log"), nil, filepath.Join(o.bin, "baton-agent"),
		"simulate", "--count", strconv.Itoa(n), "--prefix", "s", "--server", srv.agentURL(), "--tls-fingerprint", srv.fingerprint,
		"--token-file", tokenFile, "--keys-dir", filepath.Join(dir, "keys"), "--status-interval", "50ms", "--max-backoff", "5s")
	if err != nil {
		return r, err
	}
	defer sim.stop()
	m, err := sim.waitLine(readyRE, 10*time.Minute)
	if err != nil {
		return r, err
	}
	if r.enrol, err = time.ParseDuration(m[1]); err != nil {
		return r, err
	}
	if m, err = sim.waitLine(connectedRE, 10*time.Minute); err != nil {
		return r, err
	}
	r.connect = time.Since(simStart)
	kb, _ := strconv.ParseInt(m[4], 10, 64)
	r.simRSSPerAgent = kb << 10
	fmt.Fprintf(os.Stderr, "   enrolled in %s, all connected %s after start\n", r.enrol, r.connect.Round(time.Millisecond))
	if u, err := readUsage(srv.p.pid()); err == nil {
		r.serverIdleRSS = u.rss
	}
	var names []string
	for i := 1; i <= n; i++ {
		names = append(names, fmt.Sprintf("s%d", i))
	}

	// Fan-out through the API: POST, then wait for the end.
	if _, err := fanOut(ctx, srv.api, names); err != nil { // a warm-up run, not counted
		return r, err
	}
	before, err := readUsage(srv.p.pid())
	if err != nil {
		return r, err
	}
	simBefore, err := readUsage(sim.pid())
	if err != nil {
		return r, err
	}
	peakCtx, stopPeak := context.WithCancel(ctx)
	peak := peakRSS(peakCtx, srv.p.pid())
	for range o.runs {
		d, err := fanOut(ctx, srv.api, names)
		if err != nil {
			stopPeak()
			return r, err
		}
		r.fanOut = append(r.fanOut, d)
	}
	stopPeak()
	r.serverRSS = peak()
	after, err := readUsage(srv.p.pid())
	if err != nil {
		return r, err
	}
	simAfter, err := readUsage(sim.pid())
	if err != nil {
		return r, err
	}
	runs := float64(o.runs*n) / 1000
	r.cpuPer1000 = (after.cpu - before.cpu).Seconds() / runs
	r.simCPU1000 = (simAfter.cpu - simBefore.cpu).Seconds() / runs
	fmt.Fprintf(os.Stderr, "   fan-out %v (median %s)\n", r.fanOut, median(r.fanOut))

	// The same from the CLI, as an operator runs it: a process that submits, follows and prints.
	for range max(1, o.runs/2) {
		d, err := cliFanOut(o, srv, n)
		if err != nil {
			return r, err
		}
		r.cli = append(r.cli, d)
	}
	fmt.Fprintf(os.Stderr, "   CLI %v\n", r.cli)

	// One node, one job after another.
	var rtts []time.Duration
	for range o.rttJobs {
		d, err := fanOut(ctx, srv.api, names[:1])
		if err != nil {
			return r, err
		}
		rtts = append(rtts, d)
	}
	r.rttP50, r.rttP99 = percentile(rtts, 50), percentile(rtts, 99)
	fmt.Fprintf(os.Stderr, "   round trip p50 %s p99 %s\n", r.rttP50, r.rttP99)

	// Ten submitters at once on one node, each submitting its next job when the last ended.
	if r.jobs, r.jobsUnfinished, r.jobsPerSec, err = submitters(ctx, srv.api, names[0], 10, o.submitFor); err != nil {
		return r, err
	}
	fmt.Fprintf(os.Stderr, "   10 submitters: %d jobs, %.0f/s, %d unfinished\n", r.jobs, r.jobsPerSec, r.jobsUnfinished)

	// Reconnect storm: restart the server; every agent must come back.
	mark := sim.lines()
	srv.stop()
	restart := time.Now()
	if err := srv.start(); err != nil {
		return r, err
	}
	count := regexp.MustCompile(`simulate: connected ([0-9]+)/` + strconv.Itoa(n) + ` `)
	drop, err := sim.waitAfter(mark, count, func(m []string) bool { return m[1] != strconv.Itoa(n) }, time.Minute)
	if err != nil {
		return r, err
	}
	if _, err := sim.waitAfter(drop+1, count, func(m []string) bool { return m[1] == strconv.Itoa(n) }, 5*time.Minute); err != nil {
		return r, err
	}
	r.storm = time.Since(restart)
	r.stormRefused = srv.p.countLines("agent refused")
	fmt.Fprintf(os.Stderr, "   reconnect storm: all back %s after the restart began (%d refused)\n", r.storm.Round(time.Millisecond), r.stormRefused)
	// After the storm the fleet still works.
	if _, err := fanOut(ctx, srv.api, names); err != nil {
		return r, fmt.Errorf("after the reconnect storm: %w", err)
	}
	r.throttled = srv.throttled.Load()
	return r, nil
}

// fanOut runs bench::noop on names and returns the time from the POST to the job's end,
// checking that every node finished.
func fanOut(ctx context.Context, api *client.Client, names []string) (time.Duration, error) {
	start := time.Now()
	ref, err := api.RunTask(ctx, client.TaskRequest{Task: "bench::noop", Scope: client.Scope{Nodes: names}})
	if err != nil {
		return 0, err
	}
	for {
		job, err := api.WaitJob(ctx, ref.Name, 20*time.Second)
		if err != nil {
			return 0, err
		}
		if job.Done() {
			d := time.Since(start)
			if job.State != "finished" || job.NodeStates["finished"] != len(names) {
				return d, fmt.Errorf("job %s ended %s: %v", ref.Name, job.State, job.NodeStates)
			}
			return d, nil
		}
		if time.Since(start) > 10*time.Minute {
			return 0, fmt.Errorf("job %s did not end in 10 minutes: %v", ref.Name, job.NodeStates)
		}
	}
}

// cliFanOut times `baton task run bench::noop` on the whole fleet, targeted by a query.
func cliFanOut(o options, srv *server, n int) (time.Duration, error) {
	cmd := exec.Command(filepath.Join(o.bin, "baton"), "task", "run", "bench::noop", "--query",
		`inventory[certname] { facts.baton_simulated = true }`)
	cmd.Env = append(os.Environ(), srv.env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("baton task run: %v\n%s", err, tail(string(out), 20))
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d finished", n)) {
		return d, fmt.Errorf("baton task run did not finish %d nodes:\n%s", n, tail(string(out), 20))
	}
	return d, nil
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// submitters runs k submitters for d, each submitting a job on node and waiting for its end
// before the next; every job must finish.
func submitters(ctx context.Context, api *client.Client, node string, k int, d time.Duration) (jobs, unfinished int, perSec float64, err error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		done     int
		refs     []string
		firstErr error
	)
	start := time.Now()
	stop := start.Add(d)
	for range k {
		wg.Go(func() {
			for time.Now().Before(stop) {
				ref, err := api.RunTask(ctx, client.TaskRequest{Task: "bench::noop", Scope: client.Scope{Nodes: []string{node}}})
				if err == nil {
					var job client.Job
					job, err = api.WaitJob(ctx, ref.Name, 20*time.Second)
					if err == nil && !job.Done() {
						err = fmt.Errorf("job %s did not end within 20s", ref.Name)
					}
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				done++
				refs = append(refs, ref.Name)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return done, 0, 0, firstErr
	}
	for _, name := range refs {
		job, err := api.Job(ctx, name)
		if err != nil {
			return done, 0, 0, err
		}
		if job.State != "finished" || job.NodeStates["finished"] != 1 {
			unfinished++
		}
	}
	return done, unfinished, float64(done) / elapsed.Seconds(), nil
}

// realResult is what a fleet of real agent processes measured.
type realResult struct {
	n              int
	start          string // how the fleet's agents found their platform (options.realStart)
	connect        time.Duration
	fanOut         []time.Duration
	agentRSS       int64 // median idle RSS of one agent
	agentPSS       int64
	cpuPer1000     float64
	agentCPU1000   float64 // the agents' CPU with their supervisors and tasks
	serverIdleRSS  int64
	agentsTotalRSS int64
	// startup is the full start-up (facter, puppet --version) of a sample of agents started
	// together, then their restart (the same cache and spool directories).
	startup, restart startupResult
}

// startupResult is what starting k agents at once cost until each had reported its facts and
// task features.
type startupResult struct {
	k     int
	ready time.Duration // first start: until all had reported facts and features; restart: until a task had run on all
	quiet time.Duration // until none had a child process left (facter, puppet) as well
	cpu   time.Duration // CPU per agent, with its children (facter, puppet)
}

// Agents' platforms: "light" gives the fleet's agents a PATH with sh only (no facter, no
// puppet: built-in facts, the shell feature, nothing to run at start), as nodes without Puppet
// have; "full" their ordinary PATH (facter and `puppet --version` in every agent at start).
const (
	startLight = "light"
	startFull  = "full"
)

// lightPath makes a directory with sh alone in it, for the PATH of light agents.
func lightPath(dir string) (string, error) {
	d := filepath.Join(dir, "light-path")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		return "", err
	}
	if err := os.Symlink(sh, filepath.Join(d, "sh")); err != nil && !os.IsExist(err) {
		return "", err
	}
	return d, nil
}

// startAgents enrols names and starts a baton-agent for each, with env added to theirs, its
// directories under dir/agents/NAME (kept across calls: a second call restarts the same nodes).
func startAgents(ctx context.Context, o options, srv *server, dir string, names []string, env []string, enrol bool) ([]*proc, error) {
	creds := map[string]auth.Credential{}
	if enrol {
		list, err := srv.api.EnrollNodes(ctx, names, "1h")
		if err != nil {
			return nil, err
		}
		for _, e := range list {
			creds[e.Name] = auth.Credential{Name: e.Name, EnrollmentToken: e.EnrollmentToken,
				Server: srv.agentURL(), Fingerprint: srv.fingerprint}
		}
	}
	var agents []*proc
	for _, name := range names {
		adir := filepath.Join(dir, "agents", name)
		if err := os.MkdirAll(adir, 0o700); err != nil {
			return agents, err
		}
		cred := filepath.Join(adir, "credential.json")
		if c, ok := creds[name]; ok {
			if err := auth.WriteCredential(cred, c); err != nil {
				return agents, err
			}
		}
		a, err := start("baton-agent "+name, filepath.Join(adir, fmt.Sprintf("agent-%d.log", time.Now().UnixNano())), append(slices.Clone(o.agentEnv), env...),
			filepath.Join(o.bin, "baton-agent"),
			"--credential", cred, "--cache-dir", filepath.Join(adir, "cache"), "--spool-dir", filepath.Join(adir, "spool"),
			"--log-level", "warn")
		if err != nil {
			return agents, err
		}
		agents = append(agents, a)
	}
	return agents, nil
}

// agentsCPU is the CPU the agents used, with their children: those waited for (tasks, a
// supervisor process that has exited) and those still running (an agent's supervisor
// process, with the tasks it has waited for).
func agentsCPU(agents []*proc) time.Duration {
	var sum time.Duration
	kids := childrenByParent()
	for _, a := range agents {
		if u, err := readUsage(a.pid()); err == nil {
			sum += u.cpu + u.childCPU
		}
		for _, k := range kids[a.pid()] {
			if u, err := readUsage(k); err == nil {
				sum += u.cpu + u.childCPU
			}
		}
	}
	return sum
}

func stopAll(agents []*proc) {
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(a.stop)
	}
	wg.Wait()
}

// benchStartup starts k agents with their ordinary PATH (facter, puppet --version) at once
// and waits until each has reported its facts with its task features and has no child
// process left; then it restarts them on the same directories and times a task on all of
// them: a node's start-up work, measured apart from the fleet.
func benchStartup(ctx context.Context, o options, srv *server, dir string, k int) (first, again startupResult, err error) {
	var names []string
	for i := 1; i <= k; i++ {
		names = append(names, fmt.Sprintf("p%d", i))
	}
	for round, res := range []*startupResult{&first, &again} {
		began := time.Now()
		agents, err := startAgents(ctx, o, srv, dir, names, nil, round == 0)
		if err != nil {
			stopAll(agents)
			return first, again, err
		}
		if round == 0 {
			err = waitReady(ctx, srv.api, names, 10*time.Minute)
		} else {
			// The server keeps the facts of the first start: a task on every node shows that
			// the restarted agents are ready (the first task waits for feature detection).
			if err = waitConnectedSince(ctx, srv.api, names, began, 10*time.Minute); err == nil {
				_, err = fanOut(ctx, srv.api, names)
			}
		}
		res.k, res.ready = k, time.Since(began)
		if err == nil {
			err = waitQuiet(agents, 10*time.Minute)
		}
		res.quiet = time.Since(began)
		for _, a := range agents {
			if u, err := readUsage(a.pid()); err == nil {
				res.cpu += u.cpu + u.childCPU
			}
		}
		res.cpu /= time.Duration(k)
		stopAll(agents)
		if err != nil {
			return first, again, err
		}
		fmt.Fprintf(os.Stderr, "   %d agents with facter and puppet, round %d: ready in %s, quiet in %s, %s CPU each\n",
			k, round+1, res.ready.Round(time.Millisecond), res.quiet.Round(time.Millisecond), res.cpu.Round(time.Millisecond))
	}
	return first, again, nil
}

// waitQuiet waits until none of the agents has a child process (facter, puppet --version,
// a task).
func waitQuiet(agents []*proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		busy := 0
		for _, a := range agents {
			if hasChildren(a.pid()) {
				busy++
			}
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d agents still had child processes after %s", busy, len(agents), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasChildren reports whether pid has a child process (/proc/PID/task/*/children) other than
// an idle task supervisor process (`baton-agent supervise`, which an agent keeps for 30 s
// after its last task): a supervisor's own children count.
func hasChildren(pid int) bool {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			cmdline, _ := os.ReadFile(filepath.Join("/proc", f, "cmdline"))
			if !strings.HasSuffix(string(cmdline), "\x00"+agent.SupervisorCommand+"\x00") || hasChildren(child) {
				return true
			}
		}
	}
	return false
}

// waitConnectedSince waits until every node of names has connected at or after since.
func waitConnectedSince(ctx context.Context, api *client.Client, names []string, since time.Time, timeout time.Duration) error {
	return waitNodes(ctx, api, names, time.Now().Add(timeout), timeout, func(node client.InventoryNode) bool {
		return node.Connected && node.Timestamp != nil && !node.Timestamp.Before(since.Add(-time.Second))
	})
}

// waitNodes polls the inventory until ok holds for every node of names, or deadline; timeout
// (what deadline came from) is for the error.
func waitNodes(ctx context.Context, api *client.Client, names []string, deadline time.Time, timeout time.Duration, ok func(client.InventoryNode) bool) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for {
		nodes, err := api.Inventory(ctx)
		if err != nil {
			return err
		}
		c := 0
		for _, node := range nodes {
			if want[node.Name] && ok(node) {
				c++
			}
		}
		if c >= len(names) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d agents connected after %s", c, len(names), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func benchReal(ctx context.Context, o options, n int) (realResult, error) {
	r := realResult{n: n, start: o.realStart}
	dir := filepath.Join(o.work, fmt.Sprintf("real-%d", n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	srv, err := startServer(o, dir)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	if o.startSample > 0 {
		if r.startup, r.restart, err = benchStartup(ctx, o, srv, dir, o.startSample); err != nil {
			return r, fmt.Errorf("start-up sample: %w", err)
		}
	}
	var env []string
	if o.realStart == startLight {
		p, err := lightPath(dir)
		if err != nil {
			return r, err
		}
		env = []string{"PATH=" + p}
	}
	var names []string
	for i := 1; i <= n; i++ {
		names = append(names, fmt.Sprintf("r%d", i))
	}
	began := time.Now()
	agents, err := startAgents(ctx, o, srv, dir, names, env, true)
	defer func() { stopAll(agents) }()
	if err != nil {
		return r, err
	}
	if err := waitReady(ctx, srv.api, names, 15*time.Minute); err != nil {
		return r, err
	}
	r.connect = time.Since(began)
	fmt.Fprintf(os.Stderr, "   %d real agents (%s start) enrolled, connected and reported their facts and features in %s\n",
		n, o.realStart, r.connect.Round(time.Millisecond))
	if u, err := readUsage(srv.p.pid()); err == nil {
		r.serverIdleRSS = u.rss
	}
	if _, err := fanOut(ctx, srv.api, names); err != nil { // warm-up: the agents download the task
		return r, err
	}
	before, err := readUsage(srv.p.pid())
	if err != nil {
		return r, err
	}
	agentsBefore := agentsCPU(agents)
	for range o.runs {
		d, err := fanOut(ctx, srv.api, names)
		if err != nil {
			return r, err
		}
		r.fanOut = append(r.fanOut, d)
	}
	after, err := readUsage(srv.p.pid())
	if err != nil {
		return r, err
	}
	if err := waitQuiet(agents, time.Minute); err != nil { // every supervisor waited for
		return r, err
	}
	r.cpuPer1000 = (after.cpu - before.cpu).Seconds() / (float64(o.runs*n) / 1000)
	r.agentCPU1000 = (agentsCPU(agents) - agentsBefore).Seconds() / (float64(o.runs*n) / 1000)
	fmt.Fprintf(os.Stderr, "   CPU-seconds per 1,000 node-runs: server %.3f, agents with their tasks %.3f\n", r.cpuPer1000, r.agentCPU1000)
	fmt.Fprintf(os.Stderr, "   fan-out %v (median %s)\n", r.fanOut, median(r.fanOut))
	// Idle memory: agents let go of code they no longer run some 10-15 s after their last job.
	time.Sleep(20 * time.Second)
	var rss, pss []int64
	for _, a := range agents {
		u, err := readUsage(a.pid())
		if err != nil {
			return r, err
		}
		rss, pss = append(rss, u.rss), append(pss, u.pss)
		r.agentsTotalRSS += u.rss
	}
	slices.Sort(rss)
	slices.Sort(pss)
	r.agentRSS, r.agentPSS = rss[len(rss)/2], pss[len(pss)/2]
	return r, nil
}

// waitReady polls the inventory until every node of names is connected and has reported
// facts that carry its task features (agent.AgentFact), which an agent sends once its
// start-up work (facter, feature detection) is done: the fan-outs do not compete with it.
func waitReady(ctx context.Context, api *client.Client, names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := waitNodes(ctx, api, names, deadline, timeout, func(node client.InventoryNode) bool { return node.Connected }); err != nil {
		return err
	}
	for _, name := range names { // the listing leaves facts out: one look-up per node
		for {
			got, err := api.InventoryNode(ctx, name)
			if err != nil {
				return err
			}
			if hasFeatures(got.Facts) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s reported no facts with its task features within %s", name, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// hasFeatures reports whether facts carry the agent's task features (agent.AgentFact).
func hasFeatures(facts json.RawMessage) bool {
	var f map[string]json.RawMessage
	var self struct {
		Features []string `json:"features"`
	}
	if json.Unmarshal(facts, &f) != nil || json.Unmarshal(f[agent.AgentFact], &self) != nil {
		return false
	}
	return self.Features != nil
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
