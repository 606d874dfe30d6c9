package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// run sets up the server, the proxy, the disks and the agents, runs the workload under the
// faults, checks every node-run against the ledger and prints the report. ok: the four counts
// are zero and enough node-runs ran.
func run(ctx context.Context, cfg *config, out io.Writer) (ok bool, err error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.deadline)
	defer cancel()
	if cfg.seed == 0 {
		cfg.seed = rand.Uint64()
	}
	fmt.Fprintf(out, "baton-chaos: seed %d (again: --seed %d), %d agents, %d node-runs\n", cfg.seed, cfg.seed, cfg.agents, cfg.nodeRuns)
	work := cfg.work
	if work == "" {
		if work, err = os.MkdirTemp("", "baton-chaos-"); err != nil {
			return false, fmt.Errorf("working directory: %w", err)
		}
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return false, fmt.Errorf("working directory: %w", err)
	}
	if work, err = filepath.Abs(work); err != nil {
		return false, err
	}
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		if ok && !cfg.keepWork && cfg.work == "" {
			os.RemoveAll(work)
		} else {
			fmt.Fprintf(out, "baton-chaos: logs, data and ledger in %s\n", work)
		}
	}()

	names := make([]string, cfg.agents)
	for i := range names {
		names[i] = fmt.Sprintf("c%02d", i+1)
	}
	hooks := map[string]bool{}
	if cfg.on(faultAgentHook) {
		for _, n := range names[:int(cfg.hookAgents*float64(len(names))+0.5)] {
			hooks[n] = true
		}
	}
	// The full-disk faults: a tmpfs under the database and under the last agent's spool.
	var skipped []string
	data := filepath.Join(work, "data")
	spools := map[string]string{}
	var dbDisk, spDisk *tmpfs
	mount := func(fault, path string, mb int) *tmpfs {
		if !cfg.on(fault) {
			return nil
		}
		t, err := mountTmpfs(path, mb)
		if err != nil {
			msg := fmt.Sprintf("%s: mounting a tmpfs is not permitted here (%v): the fault is skipped", fault, err)
			fmt.Fprintln(out, "baton-chaos:", msg)
			skipped = append(skipped, msg)
			return nil
		}
		cleanup = append(cleanup, func() {
			if !ok || cfg.keepWork {
				// The tmpfs goes with the unmount: keep a copy for the post-mortem.
				if out, err := exec.Command("cp", "-a", path, path+".kept").CombinedOutput(); err != nil {
					cfg.log.Warn("keep a copy", "path", path, "err", err, "out", string(out))
				}
			}
			if err := t.unmount(); err != nil {
				cfg.log.Warn("unmount", "err", err)
			}
		})
		return t
	}
	dbDisk = mount(faultDiskDB, data, 256)
	spoolNode := names[len(names)-1]
	spoolPath := filepath.Join(work, "agents", spoolNode, "spool")
	if spDisk = mount(faultDiskSpool, spoolPath, 64); spDisk != nil {
		spools[spoolNode] = spoolPath
	}

	srv, err := newServer(cfg, work, data)
	if err != nil {
		return false, err
	}
	if err := srv.start(ctx); err != nil {
		return false, fmt.Errorf("%w (log: %s)", err, srv.logPath)
	}
	cleanup = append(cleanup, func() { srv.stop(20 * time.Second) })
	px, err := newProxy(fmt.Sprintf("127.0.0.1:%d", srv.port), cfg.seed, cfg.log)
	if err != nil {
		return false, err
	}
	cleanup = append(cleanup, px.close)
	agents, err := startAgents(ctx, cfg, srv, work, "ws://"+px.addr()+"/pcp", names, hooks, spools)
	cleanup = append(cleanup, func() {
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Go(func() { a.stop(10 * time.Second) })
		}
		wg.Wait()
	})
	if err != nil {
		return false, err
	}
	if err := waitConnected(ctx, srv, names, 2*time.Minute); err != nil {
		return false, err
	}
	cfg.log.Info("agents connected", "agents", len(agents), "hook_agents", len(hooks), "after", time.Since(began).Round(time.Millisecond))

	ledgerDir := filepath.Join(work, "ledger")
	wl := newWorkload(cfg, srv.api, names, ledgerDir)
	ch := newChaos(cfg, srv, agents, px, dbDisk, spDisk)
	chaosCtx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		ch.run(chaosCtx, func() float64 { return float64(wl.submitted.Load()) / float64(cfg.nodeRuns) })
	}()
	// The faults stop once every node-run is submitted: the jobs in flight then end in calm.
	go func() {
		for chaosCtx.Err() == nil && int(wl.submitted.Load()) < cfg.nodeRuns {
			sleepCtx(chaosCtx, 200*time.Millisecond)
		}
		stopChaos()
	}()
	wl.run(ctx)
	stopChaos()
	<-chaosDone
	cfg.log.Info("workload done", "after", time.Since(began).Round(time.Millisecond))
	// A run started late (a duplicate request, a task that outlived its agent) must reach
	// the ledger before it is read.
	sleepCtx(ctx, time.Duration((cfg.maxSleep+3)*float64(time.Second)))
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return false, ctx.Err()
	}

	// Every agent takes work again once the faults have stopped: when the half-open
	// connections are found and closed (the liveness bound) and every agent is back.
	calmFrom := time.Now()
	for px.troubled() > 0 && time.Since(calmFrom) < 90*time.Second && sleepCtx(ctx, 500*time.Millisecond) {
	}
	if err := waitConnected(ctx, srv, names, 60*time.Second); err != nil {
		cfg.log.Warn("before the probe", "err", err)
	}
	cfg.log.Info("calm", "after", time.Since(calmFrom).Round(time.Millisecond), "troubled_connections", px.troubled())
	probe := wl.probe(ctx)
	sleepCtx(ctx, time.Duration((cfg.maxSleep+3)*float64(time.Second)))

	l, err := readLedger(ledgerDir)
	if err != nil {
		return false, err
	}
	v := check(wl.all(), l)
	f := faultReport{injected: ch.snapshot(), hookPoints: map[string]int{}, dupToServer: px.dupToServer.Load(),
		dupToAgent: px.dupToAgent.Load(), proxyConns: px.accepted.Load(), skipped: skipped}
	f.injected[faultCut] = int(px.cuts.Load())
	for _, a := range agents {
		hk := a.hookKills()
		for p, n := range hk {
			f.hookPoints[p] += n
		}
		_, _, exits := a.ends()
		killed := 0
		for _, e := range exits {
			if e == "signal: killed" {
				killed++
				continue
			}
			f.agentCrashes = append(f.agentCrashes, fmt.Sprintf("%s: %s (log %s)", a.name, e, a.logPath))
		}
		if extra := killed - sum(hk); extra > 0 {
			f.agentCrashes = append(f.agentCrashes, fmt.Sprintf("%s: killed %d times by no one we know (log %s)", a.name, extra, a.logPath))
		}
	}
	_, _, exits := srv.ends()
	for _, e := range exits {
		f.serverExits = append(f.serverExits, fmt.Sprintf("%s (log %s)", e, srv.logPath))
	}
	f.probe = probeStates(probe)
	printReport(out, cfg, v, f, time.Since(began))
	return v.ok(cfg.nodeRuns), nil
}

// probeStates summarises the probe job: node states and, for nodes that did not finish, why.
func probeStates(r *jobRun) string {
	states := map[string]int{}
	var why []string
	for _, n := range r.results {
		states[n.State]++
		if n.State != "finished" {
			_, msg, _ := resultError(n.Result)
			why = append(why, fmt.Sprintf("%s %s: %s", n.Name, n.State, msg))
		}
	}
	s := fmt.Sprintf("%d of %d finished", states["finished"], len(r.nodes))
	if r.err != nil {
		s += fmt.Sprintf(" (%v)", r.err)
	}
	for _, w := range why {
		s += "; " + w
	}
	return s
}
