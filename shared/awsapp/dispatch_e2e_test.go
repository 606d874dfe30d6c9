package awsapp_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/awsgw/apigwtest"
	"github.com/baton-run/baton/shared/client"
)

// duplicatingQueue sends every dispatch message twice, as two distinct messages: two
// dispatch invocations then hold the same share of a job at the same time. It sits between
// the cloud's counting queue and SQS, and counts the copies as pending too.
type duplicatingQueue struct {
	next    awsapp.QueueSender
	counted *countingQueue
}

func (q duplicatingQueue) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	twice := *in
	twice.Entries = nil
	for _, e := range in.Entries {
		dup := e
		dup.Id = aws.String(aws.ToString(e.Id) + "-again")
		twice.Entries = append(twice.Entries, e, dup)
	}
	out, err := q.next.SendMessageBatch(ctx, &twice, opts...)
	if err == nil {
		q.counted.pending.Add(int64(len(in.Entries)))
	}
	return out, err
}

// output is what the agent has logged so far.
func (p *agentProc) output() string {
	lw := p.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return p.out.String()
}

// TestAWSConcurrentDispatchersSendOnce: every share of a job's nodes is delivered twice to
// the dispatch function, concurrently; each agent still gets its request once.
func TestAWSConcurrentDispatchersSendOnce(t *testing.T) {
	c := newCloud(t)
	c.queue.QueueSender = duplicatingQueue{next: c.queue.QueueSender, counted: c.queue}
	dir := t.TempDir()
	names := []string{"web1", "web2", "db1"}
	agents := map[string]*agentProc{}
	for _, n := range names {
		agents[n] = c.startAgent(n, dir)
	}
	c.waitConnected(names...)
	ref, err := c.api.RunTask(t.Context(), client.TaskRequest{Task: "demo::hello", Params: map[string]any{"name": "once"}, Scope: client.Scope{Nodes: names}})
	if err != nil {
		t.Fatal(err)
	}
	c.waitQuiet(ref.Name)
	job, _ := c.waitJob(ref.Name)
	if job.State != "finished" || job.NodeStates["finished"] != 3 {
		t.Fatalf("job %s %v", job.State, job.NodeStates)
	}
	for n, p := range agents {
		if out := p.output(); strings.Contains(out, "not run again") {
			t.Errorf("%s was sent its request twice:\n%s", n, out)
		}
	}
}

// TestAWSThrottledResultRedelivered: API Gateway throttles an agent's result (the agent
// gets "Too Many Requests" and the server never sees it); the agent, which the server told
// not to wait for an acknowledgement (no_ack), sends the results it sent lately again on that
// frame, on the same connection, and the job finishes without a reconnect. No
// acknowledgement goes on the wire but for the repeat.
func TestAWSThrottledResultRedelivered(t *testing.T) {
	var throttled atomic.Int32
	c := newCloud(t, apigwtest.WithThrottle(func(body []byte) bool {
		return strings.Contains(string(body), "rpc_non_blocking_response") && throttled.Add(1) == 1
	}))
	// Within 45 s: the status scan, which would also find the result, asks only after a
	// node has run for a minute.
	agentLog, st := c.lostResultComesBack(t, "again", 45*time.Second)
	if st.Throttled != 1 || throttled.Load() < 2 {
		t.Fatalf("throttled %d messages, saw %d results; want the first of at least two throttled", st.Throttled, throttled.Load())
	}
	if !strings.Contains(agentLog, "result sent again after API Gateway's error frame") || strings.Contains(agentLog, "no acknowledgement for a result") {
		t.Fatalf("want the result sent again on the gateway's frame, not on an acknowledgement timer:\n%s", agentLog)
	}
}

// TestAWSSilentlyLostResultFound: API Gateway loses an agent's result without a word (no
// frame). The agent, told not to wait for an acknowledgement, does not send it again by
// itself; the sweep's status query (every 2 s of running here) asks, the agent answers with
// the result, and the job finishes on the same connection.
func TestAWSSilentlyLostResultFound(t *testing.T) {
	var results atomic.Int32
	c := newCloudWith(t, func(cfg *awsapp.Config) { cfg.StatusInterval = 2 * time.Second }, apigwtest.WithDrop(func(body []byte) bool {
		return strings.Contains(string(body), "rpc_non_blocking_response") && results.Add(1) == 1
	}))
	agentLog, st := c.lostResultComesBack(t, "found", 60*time.Second)
	if st.Dropped != 1 || results.Load() < 2 {
		t.Fatalf("dropped %d messages, saw %d results; want the first of at least two dropped", st.Dropped, results.Load())
	}
	if strings.Contains(agentLog, "no acknowledgement for a result") || strings.Contains(agentLog, "API Gateway's error frame") {
		t.Fatalf("the result must come back on the server's status query, not on a timer or a frame:\n%s", agentLog)
	}
}

// lostResultComesBack runs demo::hello (name) on a new agent web1 whose first result the
// cloud loses, waits up to within for the job to end, checks that it finished with the
// result on the connection it started on, and returns the agent's log and the gateway's stats.
func (c *cloud) lostResultComesBack(t *testing.T, name string, within time.Duration) (string, apigwtest.Stats) {
	t.Helper()
	agent := c.startAgent("web1", t.TempDir())
	c.waitConnected("web1")
	connections := c.ws.Stats().Connections
	ref, err := c.api.RunTask(t.Context(), client.TaskRequest{Task: "demo::hello", Params: map[string]any{"name": name}, Scope: client.Scope{Nodes: []string{"web1"}}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lost result back", within, func() bool {
		j, err := c.api.Job(t.Context(), ref.Name)
		return err == nil && j.Done()
	})
	job, nodes := c.waitJob(ref.Name)
	if job.State != "finished" || len(nodes) != 1 || !strings.Contains(string(nodes[0].Result), "hello "+name) {
		t.Fatalf("job %s, nodes %+v", job.State, nodes)
	}
	st := c.ws.Stats()
	if st.Connections != connections {
		t.Fatalf("%d connections after the job, %d before: the result came back by reconnecting", st.Connections, connections)
	}
	return agent.output(), st
}
