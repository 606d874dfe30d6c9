package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/baton-run/baton/shared/client"
)

// cmdRun starts an on-demand Puppet run (POST /command/deploy) and shows its progress.
func cmdRun(args []string) error {
	fs, cf := newClientFlagSet("run")
	nodes := fs.String("nodes", "", "comma-separated node names")
	query := fs.String("query", "", "PQL-subset query selecting nodes")
	group := fs.String("node-group", "", "node group to run on")
	var req client.DeployRequest
	fs.StringVar(&req.Environment, "environment", "production", "environment")
	fs.BoolVar(&req.Noop, "noop", false, "run with --noop")
	fs.BoolVar(&req.NoNoop, "no-noop", false, "run with --no-noop")
	fs.StringVar(&req.Tags, "tags", "", "only apply resources with these tags (comma-separated)")
	fs.StringVar(&req.SkipTags, "skip-tags", "", "skip resources with these tags")
	fs.BoolVar(&req.EnforceEnvironment, "enforce-environment", false, "make agents use --environment")
	fs.BoolVar(&req.Debug, "debug", false, "puppet --debug")
	fs.BoolVar(&req.Trace, "trace", false, "puppet --trace")
	fs.BoolVar(&req.Evaltrace, "evaltrace", false, "puppet --evaltrace")
	fs.BoolVar(&req.UseCachedCatalog, "use-cached-catalog", false, "puppet --use_cached_catalog")
	fs.IntVar(&req.Concurrency, "concurrency", 0, "run on at most N nodes at once")
	fs.StringVar(&req.MaxErrors, "max-errors", "", "stop starting nodes after this many errors (a count, or a percentage like 10%)")
	fs.StringVar(&req.Description, "description", "", "job description")
	timeout := fs.String("timeout", "", "per-node timeout (e.g. 10m)")
	noWait := fs.Bool("no-wait", false, "print the job id and return at once")
	format := fs.String("format", "table", "table or json")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("run takes no arguments, got %q", pos)
	}
	if req.Scope, err = scopeFromFlags(*nodes, *query, *group); err != nil {
		return err
	}
	if *timeout != "" {
		if req.Timeout, err = parseSeconds(*timeout); err != nil {
			return usageError("--timeout: %v", err)
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	ref, err := c.Deploy(ctx, req)
	if err != nil {
		return err
	}
	if *noWait {
		fmt.Println(ref.Name)
		return nil
	}
	live := *format == "table"
	if live {
		fmt.Fprintf(os.Stderr, "Started job %s: puppet run in %s on %s\n", ref.Name, req.Environment, scopeText(req.Scope))
	}
	job, out, err := wait(ctx, c, ref.Name, live)
	if err != nil {
		return err
	}
	if *format == "json" {
		if err := printJSON(map[string]any{"job": job.Name, "state": job.State, "elapsed_time": int(time.Since(start).Seconds()), "items": out}); err != nil {
			return err
		}
	} else {
		printRunTable(out)
		fmt.Printf("Job %s %s: %s\n", job.Name, job.State, stateSummary(job.NodeStates))
	}
	for _, n := range out {
		if n.State != "finished" {
			return exitError{code: 1}
		}
	}
	return nil
}

// puppetResult is the part of a Puppet run's node result the summary shows.
type puppetResult struct {
	Status  string         `json:"status"`
	Metrics map[string]int `json:"metrics"`
	Error   string         `json:"error"`
	Noop    struct {
		Noop bool `json:"noop"`
	} `json:"noop"`
	NoopPending bool `json:"noop_pending"`
	Err         *struct {
		Msg string `json:"msg"`
	} `json:"_error"`
}

func printRunTable(nodes []client.Node) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tSTATUS\tCHANGED\tFAILED\tTOTAL\tDURATION\tNOTE")
	for _, n := range nodes {
		var r puppetResult
		_ = json.Unmarshal(n.Result, &r)
		dur := "-"
		if n.Duration != nil {
			dur = fmt.Sprintf("%.1fs", *n.Duration)
		}
		note := r.Error
		if r.Err != nil {
			note = r.Err.Msg
		}
		if r.Noop.Noop && r.NoopPending {
			note = "noop: changes pending"
		}
		status := r.Status
		if status == "" {
			status = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", n.Name, n.State, status, r.Metrics["changed"], r.Metrics["failed"], r.Metrics["total"], dur, oneLine(note))
	}
	tw.Flush()
}
