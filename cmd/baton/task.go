package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/baton-run/baton/shared/client"
)

func cmdTaskRun(args []string) error {
	fs, cf := newClientFlagSet("task run")
	nodes := fs.String("nodes", "", "comma-separated node names")
	query := fs.String("query", "", "PQL query selecting nodes (Baton's subset, or the whole of PQL when the server has a PuppetDB), e.g. 'inventory[certname] { facts.os.family = \"Debian\" }'")
	group := fs.String("node-group", "", "node group to run on")
	maxErrors := fs.String("max-errors", "", "stop starting nodes after this many errors (a count, or a percentage like 10%)")
	paramsJSON := fs.String("params", "", "task parameters as a JSON object")
	concurrency := fs.Int("concurrency", 0, "run on at most N nodes at once")
	timeout := fs.String("timeout", "", "per-node timeout (e.g. 30s, 5m, or seconds)")
	noop := fs.Bool("noop", false, "run in no-operation mode (the task must support it)")
	env := fs.String("environment", "production", "environment to load the task from")
	desc := fs.String("description", "", "job description")
	noWait := fs.Bool("no-wait", false, "print the job id and return at once")
	format := fs.String("format", "table", "output format: table or json")
	stream := fs.Bool("stream", false, "print the nodes' output as it comes, each line prefixed by its node (output.go)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError("task run needs a task name")
	}
	if *format != "table" && *format != "json" {
		return usageError("--format must be table or json")
	}
	taskName, kvs := pos[0], pos[1:]
	scope, err := scopeFromFlags(*nodes, *query, *group)
	if err != nil {
		return err
	}
	timeoutSecs := 0
	if *timeout != "" {
		if timeoutSecs, err = parseSeconds(*timeout); err != nil {
			return usageError("--timeout: %v", err)
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	params := map[string]any{}
	if *paramsJSON != "" {
		if len(kvs) > 0 {
			return usageError("give parameters either as --params JSON or as k=v arguments, not both")
		}
		dec := json.NewDecoder(strings.NewReader(*paramsJSON))
		dec.UseNumber()
		if err := dec.Decode(&params); err != nil || dec.More() {
			return usageError("--params must be one JSON object")
		}
	}
	if len(kvs) > 0 {
		task, err := c.Task(ctx, *env, taskName)
		if err != nil {
			return err
		}
		if params, err = parseKV(kvs, task.Metadata); err != nil {
			return err
		}
	}
	req := client.TaskRequest{Environment: *env, Task: taskName, Params: params, Noop: *noop, Description: *desc,
		Concurrency: *concurrency, MaxErrors: *maxErrors, Scope: scope, Timeout: timeoutSecs, Stream: *stream}
	start := time.Now()
	ref, err := c.RunTask(ctx, req)
	if err != nil {
		return err
	}
	if *noWait {
		if *format == "json" {
			return printJSON(ref)
		}
		fmt.Println(ref.Name)
		return nil
	}
	live := *format == "table"
	if live {
		fmt.Fprintf(os.Stderr, "Started job %s: %s on %s\n", ref.Name, taskName, scopeText(req.Scope))
	}
	waitStream := func(time.Duration) {}
	if *stream && live {
		waitStream = streamJob(ctx, c, ref.Name, newLineStreamer(os.Stdout, os.Stderr))
	}
	job, nodesOut, err := wait(ctx, c, ref.Name, live)
	waitStream(streamGrace)
	if err != nil {
		return err
	}
	if *format == "json" {
		if err := printJSON(boltJSON(job, nodesOut, taskName, time.Since(start))); err != nil {
			return err
		}
	} else {
		printNodeTable(nodesOut)
		fmt.Printf("Job %s %s: %s\n", job.Name, job.State, stateSummary(job.NodeStates))
	}
	for _, n := range nodesOut {
		if n.State != "finished" {
			return exitError{code: 1}
		}
	}
	if job.State != "finished" {
		return exitError{code: 1}
	}
	return nil
}

func scopeFromFlags(nodes, query, group string) (client.Scope, error) {
	set := 0
	for _, v := range []string{nodes, query, group} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return client.Scope{}, usageError("give exactly one of --nodes, --query or --node-group")
	}
	sc := client.Scope{Query: query, NodeGroup: group}
	for _, n := range strings.Split(nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			sc.Nodes = append(sc.Nodes, n)
		}
	}
	return sc, nil
}

func scopeText(s client.Scope) string {
	switch {
	case s.Query != "":
		return "query " + s.Query
	case s.NodeGroup != "":
		return "node group " + s.NodeGroup
	}
	return strings.Join(s.Nodes, ", ")
}

// wait polls the job's events until it ends, printing each event when live.
func wait(ctx context.Context, c *client.Client, name string, live bool) (client.Job, []client.Node, error) {
	next := 1
	for {
		evs, n, err := c.Events(ctx, name, next)
		if err != nil {
			return client.Job{}, nil, err
		}
		next = n
		done := false
		for _, e := range evs {
			if live {
				fmt.Fprintf(os.Stderr, "  %s  %-14s %s\n", e.Timestamp.Local().Format("15:04:05"), e.Type, e.Message)
			}
			if e.Type == "job_finished" || e.Type == "job_aborted" {
				done = true
			}
		}
		if done {
			job, err := c.Job(ctx, name)
			if err != nil {
				return job, nil, err
			}
			nodes, err := c.JobNodes(ctx, name)
			return job, nodes, err
		}
		// Wait for the job to end, a second at most, then print what happened meanwhile: the
		// server answers as soon as the job ends.
		began := time.Now()
		job, err := c.WaitJob(ctx, name, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return client.Job{}, nil, fmt.Errorf("stopped waiting for job %s (it goes on; see `baton job show %s`): %w", name, name, ctx.Err())
			}
			return client.Job{}, nil, err
		}
		if !job.Done() && time.Since(began) < 50*time.Millisecond {
			// A server that does not wait (an older one): do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
}

func printNodeTable(nodes []client.Node) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tDURATION\tRESULT")
	for _, n := range nodes {
		dur := "-"
		if n.Duration != nil {
			dur = fmt.Sprintf("%.1fs", *n.Duration)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.State, dur, resultText(n.Result))
	}
	tw.Flush()
}

// resultText renders a node result in one line: _output as text, an _error's msg, else JSON.
func resultText(raw json.RawMessage) string {
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		return strings.TrimSpace(string(raw))
	}
	if e, ok := m["_error"].(map[string]any); ok {
		return fmt.Sprintf("error: %v", e["msg"])
	}
	if out, ok := m["_output"].(string); ok && len(m) == 1 {
		return oneLine(out)
	}
	b, _ := json.Marshal(m)
	return oneLine(string(b))
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " ⏎ ")
	if len(s) > 200 {
		i := 197
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "..."
	}
	return s
}

func stateSummary(states map[string]int) string {
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", states[k], k))
	}
	if len(parts) == 0 {
		return "no nodes"
	}
	return strings.Join(parts, ", ")
}

// boltJSON renders results like `bolt task run --format json`.
func boltJSON(job client.Job, nodes []client.Node, task string, elapsed time.Duration) map[string]any {
	items := make([]map[string]any, 0, len(nodes))
	for _, n := range nodes {
		status := "failure"
		if n.State == "finished" {
			status = "success"
		}
		var value any = map[string]any{}
		if len(n.Result) > 0 && string(n.Result) != "null" {
			value = n.Result
		}
		items = append(items, map[string]any{"target": n.Name, "action": "task", "object": task, "status": status, "state": n.State, "value": value})
	}
	return map[string]any{"job": job.Name, "state": job.State, "items": items, "target_count": len(nodes), "elapsed_time": int(elapsed.Seconds())}
}

func parseSeconds(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 {
			return 0, fmt.Errorf("must be at least 1 second")
		}
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 30s or 5m, or seconds: %v", err)
	}
	if d < time.Second || d%time.Second != 0 {
		return 0, fmt.Errorf("must be a whole number of seconds, at least 1")
	}
	return int(d / time.Second), nil
}

// parseKV turns k=v arguments into parameters. A value is taken as JSON (number, boolean,
// array, object, null) when it parses as JSON and the parameter's declared type is not a
// string type; otherwise it is a string.
func parseKV(kvs []string, metadata json.RawMessage) (map[string]any, error) {
	var meta struct {
		Parameters map[string]struct {
			Type string `json:"type"`
		} `json:"parameters"`
	}
	_ = json.Unmarshal(metadata, &meta)
	params := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError("parameter %q: want key=value", kv)
		}
		if stringType(meta.Parameters[k].Type) {
			params[k] = v
			continue
		}
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		var j any
		if err := dec.Decode(&j); err == nil && !dec.More() {
			params[k] = j
		} else {
			params[k] = v
		}
	}
	return params, nil
}

func stringType(t string) bool {
	for {
		inner, ok := strings.CutPrefix(t, "Optional[")
		if !ok {
			inner, ok = strings.CutPrefix(t, "Sensitive[")
		}
		if !ok {
			break
		}
		t = inner
	}
	for _, p := range []string{"String", "Enum", "Pattern"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

func cmdTaskList(args []string) error {
	fs, cf := newClientFlagSet("task list")
	env := fs.String("environment", "production", "environment")
	format := fs.String("format", "table", "table or json")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	list, err := c.Tasks(context.Background(), *env)
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(list)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tDESCRIPTION")
	for _, t := range list {
		d := t.Description
		if t.Private {
			d += " (private)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", t.Name, d)
	}
	return tw.Flush()
}

func cmdTaskShow(args []string) error {
	fs, cf := newClientFlagSet("task show")
	env := fs.String("environment", "production", "environment")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("task show needs one task name")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	t, err := c.Task(context.Background(), *env, pos[0])
	if err != nil {
		return err
	}
	return printJSON(t)
}
