package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-run/baton/agent/fleet"
)

// simulate runs `baton-agent simulate`: a fleet of virtual agents in this process.
func simulate(args []string) error {
	fs := flag.NewFlagSet("baton-agent simulate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: baton-agent simulate --count N --prefix P --server wss://host:8143/pcp --token-file FILE [flags]")
		fmt.Fprintln(fs.Output(), "Runs N virtual agents named P1…PN in one process, each with its own key and connection.")
		fs.PrintDefaults()
	}
	var cfg fleet.Config
	fs.IntVar(&cfg.Count, "count", 0, "number of virtual agents")
	fs.StringVar(&cfg.Prefix, "prefix", "sim", "name prefix: agents are named PREFIX1 … PREFIXN")
	fs.StringVar(&cfg.Server, "server", "", "the control plane's agent URL, e.g. wss://127.0.0.1:8143/pcp")
	fs.StringVar(&cfg.API, "api", "", "the HTTP API's base URL (default: the server's host over https)")
	tokenFile := fs.String("token-file", "", "file holding an API token allowed to enrol nodes (needed for names without a key)")
	fs.StringVar(&cfg.KeysDir, "keys-dir", "", "directory of the agents' keys, so that a second run reconnects the same fleet (default ./PREFIX-keys)")
	fs.StringVar(&cfg.TLSFingerprint, "tls-fingerprint", "", "SHA-256 fingerprint of the server's certificate to accept")
	fs.StringVar(&cfg.CAFile, "ca-file", "", "PEM file of CA certificates to trust besides the system's")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow a ws:// server URL on a host that is not loopback")
	fs.StringVar(&cfg.Executor, "executor", fleet.ExecutorNoop, "noop (answer after --latency, no process) or task (the real task runner)")
	fs.DurationVar(&cfg.Latency, "latency", 0, "how long the no-op executor takes per request")
	fs.Float64Var(&cfg.FailRate, "fail-rate", 0, "fraction (0 to 1) of no-op runs that fail with exit code 1")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "directory for the agents' spools and caches (the task executor)")
	fs.DurationVar(&cfg.MaxBackoff, "max-backoff", 0, "cap on the wait between connection attempts (default 30s)")
	fs.IntVar(&cfg.DialParallel, "dial-parallel", 0, "connection attempts in flight across the fleet at most (default: no bound)")
	status := fs.Duration("status-interval", time.Second, "how often to print the fleet's status (when it changed)")
	duration := fs.Duration("duration", 0, "stop after this long (default: until interrupted)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error (the agents' logs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("simulate: unexpected argument %q", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if cfg.KeysDir == "" {
		cfg.KeysDir = cfg.Prefix + "-keys"
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	raiseFileLimit(cfg.Count)
	// BATON_SIM_PPROF, when set, is the simulator's own: a harness that starts baton serve and
	// the simulator with one environment (baton-bench) can profile both.
	if addr := cmp.Or(os.Getenv("BATON_SIM_PPROF"), os.Getenv("BATON_PPROF")); addr != "" {
		go servePprof(addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	start := time.Now()
	f, err := fleet.New(ctx, cfg)
	if err != nil {
		return err
	}
	rssBefore := rssBytes()
	fmt.Fprintf(os.Stderr, "simulate: %d agents ready (keys in %s) in %s; connecting to %s\n",
		cfg.Count, cfg.KeysDir, time.Since(start).Round(time.Millisecond), cfg.Server)
	done := make(chan error, 1)
	connectStart := time.Now()
	go func() { done <- f.Run(ctx) }()
	tick := time.NewTicker(*status)
	defer tick.Stop()
	last, allAt := "", time.Duration(0)
	for {
		select {
		case err := <-done:
			runs, failed := f.NodeRuns()
			fmt.Fprintf(os.Stderr, "simulate: stopped; %d node-runs, %d failed\n", runs, failed)
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		case <-tick.C:
		}
		connected := f.Connected()
		runs, failed := f.NodeRuns()
		if connected == cfg.Count && allAt == 0 {
			allAt = time.Since(connectStart)
			rss := rssBytes()
			fmt.Fprintf(os.Stderr, "simulate: all %d agents connected in %s; RSS %d MB (%d KB per agent)\n",
				cfg.Count, allAt.Round(time.Millisecond), rss>>20, (rss-rssBefore)/int64(cfg.Count)>>10)
		}
		if connected < cfg.Count {
			allAt = 0
		}
		line := fmt.Sprintf("simulate: connected %d/%d node-runs %d failed %d", connected, cfg.Count, runs, failed)
		if line != last {
			fmt.Fprintln(os.Stderr, line)
			last = line
		}
	}
}

// raiseFileLimit lifts the soft limit on open files towards the hard one: each agent holds a
// socket.
func raiseFileLimit(agents int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(agents) + 1024
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// rssBytes is this process's resident set size, from /proc (0 where there is none).
func rssBytes() int64 {
	b, err := os.ReadFile(filepath.Join("/proc", "self", "statm"))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// servePprof serves net/http/pprof on addr: profiling for performance work, only when asked
// (BATON_SIM_PPROF, else BATON_PPROF).
func servePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	_ = http.ListenAndServe(addr, mux)
}
