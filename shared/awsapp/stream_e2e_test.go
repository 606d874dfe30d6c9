package awsapp_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/client"
)

// TestAWSStreamedOutput: on the AWS stand-in, a job created with "stream": true has its
// agents stream the task's output through the WebSocket API's $default function into
// DynamoDB, and the output endpoint (through the HTTP API) returns it — live while the task
// runs, all of it in order once done; a job without it streams nothing. It measures, with the
// meter, what streaming adds per node-run: the same task run unstreamed and streamed.
func TestAWSStreamedOutput(t *testing.T) {
	c := newCloud(t)
	dir := t.TempDir()
	names := []string{"s1", "s2"}
	for _, n := range names {
		c.startAgent(n, dir)
	}
	ctx := t.Context()
	c.waitConnected(names...)

	// Every line of output demo::ticker prints for these parameters.
	const lines, intervalMS = 8, 250
	params := map[string]any{"lines": lines, "interval_ms": intervalMS}
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "tick %d of %d\n", i, lines)
	}
	fmt.Fprintf(&want, `{"ticks":%d,"interval_ms":%d}`+"\n", lines, intervalMS)

	// readAll returns a node's whole output from the endpoint, which must say done.
	readAll := func(job, node string) (stdout string, chunks int) {
		t.Helper()
		var b strings.Builder
		var after int64
		deadline := time.Now().Add(60 * time.Second)
		for {
			if time.Now().After(deadline) {
				t.Fatalf("job %s %s: output not done after 60 s", job, node)
			}
			// wait=: the server answers at once with chunks, else when done (or after 10 s).
			o, err := c.api.JobOutput(ctx, job, node, after, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range o.Chunks {
				if ch.Seq != after+1 {
					t.Fatalf("job %s %s: chunk %d after %d", job, node, ch.Seq, after)
				}
				if ch.Stream == "stdout" {
					b.WriteString(ch.Data)
				}
				after = ch.Seq
				chunks++
			}
			if o.Done {
				return b.String(), chunks
			}
		}
	}

	// run runs the task on both nodes and returns the job and what it cost.
	run := func(stream bool) (string, awsapp.Usage) {
		t.Helper()
		c.paused.Store(true)
		defer c.paused.Store(false)
		before := c.usage()
		ref, err := c.api.RunTask(ctx, client.TaskRequest{Task: "demo::ticker", Params: params, Scope: client.Scope{Nodes: names}, Stream: stream})
		if err != nil {
			t.Fatal(err)
		}
		c.waitQuiet(ref.Name)
		u := c.usage().Sub(before)
		// As in TestAWSEndToEnd: one HTTP API request (the POST) and its authorizer call.
		u.Invocations["http $default"], u.Invocations["http authorizer"] = 1, 1
		job, nodes := c.waitJob(ref.Name)
		if job.State != "finished" {
			t.Fatalf("job %s %s %v", ref.Name, job.State, job.NodeStates)
		}
		for _, n := range nodes {
			// The result is the whole output, streamed or not.
			if !strings.Contains(string(n.Result), fmt.Sprintf("tick %d of %d", lines, lines)) {
				t.Errorf("%s result %s", n.Name, n.Result)
			}
		}
		return ref.Name, u
	}

	plainJob, plain := run(false)
	streamedJob, streamed := run(true)

	// The same streamed job with a reader following each node's output live (long polls with
	// wait=10s, as `baton job output --follow` does on AWS): what reading costs on top. Each
	// request is an HTTP API invocation and its authorizer's (counted here, as run counts the
	// POST's), and it holds its Lambda while it waits: that time past the meter's 50 ms per
	// invocation is added at the Lambda price.
	var requests atomic.Int64
	var held atomic.Int64 // nanoseconds of Lambda time past 50 ms per request
	follow := func(job, node string) {
		var after int64
		for {
			start := time.Now()
			o, err := c.api.JobOutput(ctx, job, node, after, 10*time.Second)
			requests.Add(1)
			held.Add(int64(max(0, time.Since(start)-time.Duration(awsapp.USEast1.LambdaSecondsPerInvocation*float64(time.Second)))))
			if err != nil {
				t.Errorf("follow %s %s: %v", job, node, err)
				return
			}
			if len(o.Chunks) > 0 {
				after = o.Chunks[len(o.Chunks)-1].Seq
			}
			if o.Done {
				return
			}
		}
	}
	followedJob, followed := func() (string, awsapp.Usage) {
		c.paused.Store(true)
		defer c.paused.Store(false)
		before := c.usage()
		ref, err := c.api.RunTask(ctx, client.TaskRequest{Task: "demo::ticker", Params: params, Scope: client.Scope{Nodes: names}, Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Add(1)
			go func() { defer wg.Done(); follow(ref.Name, n) }()
		}
		wg.Wait()
		c.waitQuiet(ref.Name)
		u := c.usage().Sub(before)
		u.Invocations["http $default"], u.Invocations["http authorizer"] = 1+int(requests.Load()), 1+int(requests.Load())
		return ref.Name, u
	}()
	if job, _ := c.waitJob(followedJob); job.State != "finished" {
		t.Fatalf("followed job %s %s", followedJob, job.State)
	}
	if requests.Load() < int64(len(names)) {
		t.Fatalf("%d output requests for %d followed nodes", requests.Load(), len(names))
	}
	heldCost := time.Duration(held.Load()).Seconds() * awsapp.USEast1.LambdaMemoryGB * awsapp.USEast1.LambdaGBSecond
	reading := (followed.Cost(awsapp.USEast1) + heldCost - streamed.Cost(awsapp.USEast1)) / float64(len(names))
	// What a request reads (measured once by partition key): the token, user and roles twice
	// (the stand-in's authorizer, which API Gateway would cache, and the api function), the
	// node's record and its output query once per wake. Every function runs in this process,
	// so a stored chunk wakes the waiting request at once; on AWS the request finds it by its
	// next read (OutputPoll).
	t.Logf("COST following the output live adds $%.2f per million node-runs followed (%d requests of wait=10s for %d nodes, %.1f more RCU per node-run, %.1f s of Lambda held in all)",
		reading*1e6, requests.Load(), len(names), (followed.DynamoRCU-streamed.DynamoRCU)/float64(len(names)), time.Duration(held.Load()).Seconds())

	for _, n := range names {
		if out, chunks := readAll(plainJob, n); chunks != 0 || out != "" {
			t.Errorf("unstreamed job %s: %s has %d chunks of output", plainJob, n, chunks)
		}
		out, chunks := readAll(streamedJob, n)
		if out != want.String() {
			t.Errorf("streamed job %s: %s's output\n%q\nwant\n%q", streamedJob, n, out, want.String())
		}
		t.Logf("%s: %d chunks", n, chunks)
	}
	if streamed.MessagesIn <= plain.MessagesIn {
		t.Errorf("streamed: %d messages in, unstreamed %d: no output messages", streamed.MessagesIn, plain.MessagesIn)
	}
	reportCost(t, "task unstreamed (demo::ticker, 9 lines over 2 s)", plain, len(names))
	reportCost(t, "task streamed (demo::ticker, 9 lines over 2 s)", streamed, len(names))
	extra := (streamed.Cost(awsapp.USEast1) - plain.Cost(awsapp.USEast1)) / float64(len(names))
	t.Logf("COST streaming adds $%.2f per million node-runs (%d more messages in, %.1f more WCU, %.1f more RCU, %d more invocations per node-run)",
		extra*1e6, (streamed.MessagesIn-plain.MessagesIn)/len(names), (streamed.DynamoWCU-plain.DynamoWCU)/float64(len(names)),
		(streamed.DynamoRCU-plain.DynamoRCU)/float64(len(names)), (invocations(streamed)-invocations(plain))/len(names))

	t.Run("read live through the HTTP API", func(t *testing.T) {
		ref, err := c.api.RunTask(ctx, client.TaskRequest{Task: "demo::ticker", Params: map[string]any{"lines": 12, "interval_ms": 300},
			Scope: client.Scope{Nodes: []string{"s1"}}, Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		// Long polling (wait=): the first chunk comes while the task still runs.
		o, err := c.api.JobOutput(ctx, ref.Name, "s1", 0, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Chunks) == 0 || o.Done || !strings.HasPrefix(o.Chunks[0].Data, "tick 1 of 12") {
			t.Fatalf("first output %+v", o)
		}
		job, err := c.api.Job(ctx, ref.Name)
		if err != nil {
			t.Fatal(err)
		}
		if job.Done() {
			t.Fatalf("the first chunk came when the job had ended (%s): not live", job.State)
		}
		c.waitJob(ref.Name)
		if out, _ := readAll(ref.Name, "s1"); !strings.HasSuffix(out, "tick 12 of 12\n{\"ticks\":12,\"interval_ms\":300}\n") {
			t.Errorf("output %q", out)
		}
	})
}

func invocations(u awsapp.Usage) int {
	n := 0
	for _, v := range u.Invocations {
		n += v
	}
	return n
}
