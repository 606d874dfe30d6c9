package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"text/tabwriter"
	"time"
)

func cmdJobList(args []string) error {
	fs, cf := newClientFlagSet("job list")
	limit := fs.Int("limit", 20, "how many jobs")
	typ := fs.String("type", "", "task or deploy")
	format := fs.String("format", "table", "table or json")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}, "order_by": {"timestamp"}, "order": {"desc"}}
	if *typ != "" {
		q.Set("type", *typ)
	}
	list, err := c.Jobs(context.Background(), q)
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(list)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tTYPE\tSTATE\tNODES\tOWNER\tCREATED\tTASK")
	for _, j := range list.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%v\n", j.Name, j.Type, j.State, stateSummary(j.NodeStates), j.Owner["login"],
			j.Created.Local().Format("2006-01-02 15:04:05"), j.Options["task"])
	}
	return tw.Flush()
}

func cmdJobShow(args []string) error {
	fs, cf := newClientFlagSet("job show")
	format := fs.String("format", "table", "table or json")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("job show needs one job id")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	job, err := c.Job(ctx, pos[0])
	if err != nil {
		return err
	}
	nodes, err := c.JobNodes(ctx, pos[0])
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(map[string]any{"job": job, "nodes": nodes})
	}
	fmt.Printf("Job %s (%s %v) %s — %s\n", job.Name, job.Type, job.Options["task"], job.State, stateSummary(job.NodeStates))
	printNodeTable(nodes)
	if u := job.Usage; u != nil {
		fmt.Printf("AWS usage: %d Lambda invocations, %d+%d WebSocket messages (%d billing units), %.1f DynamoDB read + %.1f write units, %d+%d S3 requests\n",
			u.Invocations, u.MessagesIn, u.MessagesOut, u.MessageUnits, u.ReadUnits, u.WriteUnits, u.S3Writes, u.S3Reads)
		fmt.Printf("Estimated cost: $%.8f ($%.2f per million node-runs at us-east-1 list prices)\n", u.EstimatedCost, u.CostPerNodeRun*1e6)
	}
	return nil
}

func cmdJobEvents(args []string) error {
	fs, cf := newClientFlagSet("job events")
	start := fs.Int("start", 1, "first event id")
	follow := fs.Bool("follow", false, "keep printing new events until the job ends")
	format := fs.String("format", "table", "table or json")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("job events needs one job id")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *follow {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		next := *start
		for {
			evs, n, err := c.Events(ctx, pos[0], next)
			if err != nil {
				return err
			}
			next = n
			for _, e := range evs {
				if *format == "json" {
					if err := printJSON(e); err != nil {
						return err
					}
				} else {
					fmt.Printf("%s\t%s\t%-14s %s\n", e.ID, e.Timestamp.Local().Format("15:04:05.000"), e.Type, e.Message)
				}
				if e.Type == "job_finished" || e.Type == "job_aborted" {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	evs, _, err := c.Events(context.Background(), pos[0], *start)
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(evs)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tTYPE\tMESSAGE")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Timestamp.Local().Format("15:04:05.000"), e.Type, e.Message)
	}
	return tw.Flush()
}

func cmdJobStop(args []string) error {
	fs, cf := newClientFlagSet("job stop")
	force := fs.Bool("force", false, "also cancel running actions (their process groups are killed)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("job stop needs one job id")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	res, err := c.Stop(context.Background(), pos[0], *force)
	if err != nil {
		return err
	}
	fmt.Printf("Job %s %s: %s\n", res.Name, res.State, stateSummary(res.Nodes))
	return nil
}
