package main

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Fault names, as --faults takes them and the report prints them.
const (
	faultAgentKill  = "agent-kill"  // kill -9 of an agent, restarted after a short delay
	faultAgentHook  = "agent-hook"  // agents that kill themselves at spool steps (BATON_AGENT_FAULT)
	faultServerKill = "server-kill" // kill -9 of baton serve, restarted on the same data
	faultCut        = "cut"         // the proxy closes a connection (RST)
	faultDelay      = "delay"       // the proxy delays all traffic for a while
	faultStall      = "stall"       // the proxy stops forwarding a connection for a while, then resumes
	faultBlackhole  = "blackhole"   // the proxy stops forwarding a connection for good, without closing it
	faultDup        = "dup"         // the proxy sends whole WebSocket data frames twice for a while
	faultDiskDB     = "disk-db"     // the tmpfs under the database is filled, then freed
	faultDiskSpool  = "disk-spool"  // the tmpfs under one agent's spool is filled, then freed
)

// allFaults lists every fault, in report order.
var allFaults = []string{faultAgentKill, faultAgentHook, faultServerKill, faultCut, faultDelay, faultStall,
	faultBlackhole, faultDup, faultDiskDB, faultDiskSpool}

// config is the suite's configuration: sizes, timing, faults. The defaults are CI size.
type config struct {
	bin, modules, work string
	keepWork           bool
	seed               uint64
	agents             int
	nodeRuns           int     // node-runs to submit (at least)
	submitters         int     // jobs in flight at once
	hookAgents         float64 // share of agents run with BATON_AGENT_FAULT
	hookSpec           string  // their BATON_AGENT_FAULT
	maxSleep           float64 // the task sleeps up to this many seconds
	failShare          float64 // share of jobs whose task exits non-zero after recording its run
	taskTimeout        time.Duration
	jobBound           time.Duration // a job not ended this long after its submission is stuck
	deadline           time.Duration // the whole run, setup to checks
	faultEvery         time.Duration // mean time between random faults
	serverKills        int
	diskFills          int // of each disk fault
	faults             map[string]bool
	logLevel           slog.Level

	log *slog.Logger
}

func (c *config) on(fault string) bool { return c.faults[fault] }

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("baton-chaos", flag.ContinueOnError)
	c := &config{}
	fs.StringVar(&c.bin, "bin", "bin", "directory of the baton and baton-agent binaries")
	fs.StringVar(&c.modules, "modules", "examples/modules", "modules directory with chaos::ledger")
	fs.StringVar(&c.work, "work", "", "working directory: data, spools, ledger, logs (default: a new temporary one, removed after a passing run)")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of every random choice (0: a new one, printed)")
	fs.IntVar(&c.agents, "agents", 20, "baton-agent processes")
	fs.IntVar(&c.nodeRuns, "node-runs", 1000, "node-runs to run (at least)")
	fs.IntVar(&c.submitters, "submitters", 8, "jobs in flight at once")
	fs.Float64Var(&c.hookAgents, "hook-agents", 0.25, "share of the agents run with BATON_AGENT_FAULT (fault "+faultAgentHook+")")
	fs.StringVar(&c.hookSpec, "hook", "any:0.02", "their BATON_AGENT_FAULT: POINT[:P] or any:P")
	fs.Float64Var(&c.maxSleep, "max-sleep", 1.5, "the task sleeps a random time up to this many seconds")
	fs.Float64Var(&c.failShare, "fail-share", 0.1, "share of the jobs whose task exits 3 after recording its run")
	fs.DurationVar(&c.taskTimeout, "task-timeout", 90*time.Second, "each job's per-node timeout")
	fs.DurationVar(&c.jobBound, "job-bound", 5*time.Minute, "a job not ended this long after its submission counts as stuck")
	fs.DurationVar(&c.deadline, "deadline", 15*time.Minute, "the whole run, from setup to the checks")
	fs.DurationVar(&c.faultEvery, "fault-every", 1500*time.Millisecond, "mean time between random faults")
	fs.IntVar(&c.serverKills, "server-kills", 3, "kills of baton serve")
	fs.IntVar(&c.diskFills, "disk-fills", 2, "fills of each full-disk fault")
	faults := fs.String("faults", "all", "faults to inject, comma-separated (all, none, or of: "+strings.Join(allFaults, ", ")+")")
	fs.BoolVar(&c.keepWork, "keep", false, "keep the working directory even when the run passes")
	level := fs.String("log-level", "info", "the harness's log level (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	c.faults = map[string]bool{}
	for _, f := range strings.Split(*faults, ",") {
		switch f = strings.TrimSpace(f); {
		case f == "all":
			for _, a := range allFaults {
				c.faults[a] = true
			}
		case f == "none" || f == "":
		case slices.Contains(allFaults, f):
			c.faults[f] = true
		default:
			return nil, fmt.Errorf("--faults: unknown fault %q", f)
		}
	}
	for _, p := range []*string{&c.bin, &c.modules} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", *p, err)
		}
		*p = abs
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch {
	case c.agents < 1 || c.agents > 500:
		return fmt.Errorf("--agents %d: want 1 to 500", c.agents)
	case c.nodeRuns < 1:
		return fmt.Errorf("--node-runs %d: want at least 1", c.nodeRuns)
	case c.submitters < 1:
		return fmt.Errorf("--submitters %d: want at least 1", c.submitters)
	case c.hookAgents < 0 || c.hookAgents > 1, c.failShare < 0 || c.failShare > 1:
		return fmt.Errorf("--hook-agents and --fail-share are shares from 0 to 1")
	case c.maxSleep < 0 || c.maxSleep > 60:
		return fmt.Errorf("--max-sleep %g: want 0 to 60 seconds", c.maxSleep)
	case c.taskTimeout < time.Second || c.jobBound <= c.taskTimeout || c.deadline <= c.jobBound:
		return fmt.Errorf("want 1s ≤ --task-timeout < --job-bound < --deadline")
	case c.faultEvery <= 0:
		return fmt.Errorf("--fault-every must be positive")
	}
	return nil
}
