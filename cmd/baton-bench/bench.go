package main

import (
	"context"
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
	connect        time.Duration
	fanOut         []time.Duration
	agentRSS       int64 // median idle RSS of one agent
	agentPSS       int64
	cpuPer1000     float64
	serverIdleRSS  int64
	agentsTotalRSS int64
}

func benchReal(ctx context.Context, o options, n int) (realResult, error) {
	r := realResult{n: n}
	dir := filepath.Join(o.work, fmt.Sprintf("real-%d", n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	srv, err := startServer(o, dir)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	var names []string
	for i := 1; i <= n; i++ {
		names = append(names, fmt.Sprintf("r%d", i))
	}
	began := time.Now()
	list, err := srv.api.EnrollNodes(ctx, names, "1h")
	if err != nil {
		return r, err
	}
	var agents []*proc
	defer func() {
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Go(a.stop)
		}
		wg.Wait()
	}()
	for _, e := range list {
		adir := filepath.Join(dir, "agents", e.Name)
		if err := os.MkdirAll(adir, 0o700); err != nil {
			return r, err
		}
		cred := filepath.Join(adir, "credential.json")
		if err := auth.WriteCredential(cred, auth.Credential{Name: e.Name, EnrollmentToken: e.EnrollmentToken,
			Server: srv.agentURL(), Fingerprint: srv.fingerprint}); err != nil {
			return r, err
		}
		a, err := start("baton-agent "+e.Name, filepath.Join(adir, "agent.log"), nil, filepath.Join(o.bin, "baton-agent"),
			"--credential", cred, "--cache-dir", filepath.Join(adir, "cache"), "--spool-dir", filepath.Join(adir, "spool"),
			"--log-level", "warn")
		if err != nil {
			return r, err
		}
		agents = append(agents, a)
	}
	if err := waitConnected(ctx, srv.api, n, 10*time.Minute); err != nil {
		return r, err
	}
	r.connect = time.Since(began)
	fmt.Fprintf(os.Stderr, "   %d real agents enrolled, connected and sent their facts in %s\n", n, r.connect.Round(time.Millisecond))
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
	r.cpuPer1000 = (after.cpu - before.cpu).Seconds() / (float64(o.runs*n) / 1000)
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

// waitConnected polls the inventory until n nodes are connected and have sent their facts
// (gathering them runs facter on each: the fan-outs must not compete with that).
func waitConnected(ctx context.Context, api *client.Client, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		nodes, err := api.Inventory(ctx)
		if err != nil {
			return err
		}
		c := 0
		for _, node := range nodes {
			if node.Connected {
				c++
			}
		}
		if c >= n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d agents connected after %s", c, n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	nodes, err := api.Inventory(ctx)
	if err != nil {
		return err
	}
	for _, node := range nodes { // the listing leaves facts out: one look-up per node
		for {
			got, err := api.InventoryNode(ctx, node.Name)
			if err != nil {
				return err
			}
			if len(got.Facts) > 2 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s sent no facts within %s", node.Name, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
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
