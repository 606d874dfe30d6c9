// Command baton-bench measures Baton on this machine: it starts `baton serve` and a fleet of
// simulated agents (`baton-agent simulate`) at several sizes, and real `baton-agent`
// processes running a real task, and writes what it measured to BENCHMARKS.md. `make bench`
// runs it; `make bench-ci` runs a small version that keeps the harness from rotting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type options struct {
	bin, modules, work, out string
	sizes, realSizes        []int
	runs                    int
	submitFor               time.Duration
	rttJobs                 int
	taskConcurrency         int
	quick                   bool
	realStart               string
	startSample             int
	serverPprof             string
	agentEnv                []string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "baton-bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("baton-bench", flag.ContinueOnError)
	var o options
	sizes := fs.String("sizes", "100,1000,10000", "fleet sizes of simulated agents")
	realSizes := fs.String("real-agents", "200,500", "fleet sizes of real baton-agent processes running a real task (\"\" to skip)")
	fs.StringVar(&o.bin, "bin", "bin", "directory of the baton and baton-agent binaries")
	fs.StringVar(&o.modules, "modules", "examples/modules", "modules directory with bench::noop")
	fs.StringVar(&o.work, "work", "", "working directory (default: a new temporary one, removed afterwards)")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "file to write the results to (\"\" for standard output only)")
	fs.IntVar(&o.runs, "runs", 5, "fan-outs per size (the median is reported)")
	fs.DurationVar(&o.submitFor, "submit-for", 5*time.Second, "how long the 10 concurrent submitters run")
	fs.IntVar(&o.rttJobs, "rtt-jobs", 300, "single-node jobs run one after another for the round trip")
	fs.IntVar(&o.taskConcurrency, "task-concurrency", 0, "baton serve --task-concurrency (0: the server's default)")
	fs.StringVar(&o.realStart, "real-start", startLight, "real agents' platform: light (PATH with sh only: built-in facts, no puppet, nothing to detect) or full (facter and puppet --version in every agent at start)")
	fs.IntVar(&o.startSample, "start-sample", 10, "agents started with facter and puppet (and restarted) apart from the fleet, to measure a node's start-up work (0 to skip)")
	fs.StringVar(&o.serverPprof, "server-pprof", "", "BATON_PPROF address for baton serve (e.g. 127.0.0.1:6060)")
	agentEnv := fs.String("agent-env", "", "comma-separated NAME=VALUE settings added to the real agents' environment (e.g. GOMAXPROCS=1), for experiments")
	fs.BoolVar(&o.quick, "quick", false, "CI size: 200 simulated agents, 20 real ones, fewer repetitions")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.quick {
		*sizes, *realSizes = "200", "20"
		o.runs, o.submitFor, o.rttJobs = 3, 2*time.Second, 100
		o.startSample = min(o.startSample, 3)
	}
	if o.realStart != startLight && o.realStart != startFull {
		return fmt.Errorf("-real-start %q: want light or full", o.realStart)
	}
	for _, kv := range strings.Split(*agentEnv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				return fmt.Errorf("-agent-env %q: want NAME=VALUE", kv)
			}
			o.agentEnv = append(o.agentEnv, kv)
		}
	}
	if o.sizes, err = parseSizes(*sizes); err != nil {
		return err
	}
	if o.realSizes, err = parseSizes(*realSizes); err != nil {
		return err
	}
	for _, p := range []*string{&o.bin, &o.modules} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "baton-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.work)
	}
	ctx := context.Background()
	report := newReport(o)
	for _, n := range o.sizes {
		fmt.Fprintf(os.Stderr, "== %d simulated agents\n", n)
		r, err := benchSimulated(ctx, o, n)
		if err != nil {
			return fmt.Errorf("%d simulated agents: %w", n, err)
		}
		report.sim = append(report.sim, r)
	}
	for _, n := range o.realSizes {
		fmt.Fprintf(os.Stderr, "== %d real agents\n", n)
		r, err := benchReal(ctx, o, n)
		if err != nil {
			return fmt.Errorf("%d real agents: %w", n, err)
		}
		report.real = append(report.real, r)
	}
	text := report.markdown()
	fmt.Print(text)
	if o.out != "" {
		return report.write(o.out)
	}
	return nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("size %q: want a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}
