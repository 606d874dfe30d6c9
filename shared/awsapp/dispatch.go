package awsapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/store/dynamo"
	"github.com/baton-run/baton/shared/usage"
)

// DispatchMessage is the body of a message on the dispatch queue: a job to move on, or —
// with Nodes — a share of the nodes claimed when the job was created, for the dispatch
// function to send. A job of 10,000 nodes is 100 messages, sent by as many invocations in
// parallel as the queue's event source mapping allows, so that no invocation sends to more
// than a few hundred agents.
type DispatchMessage struct {
	JobID int64       `json:"job_id"`
	Nodes []jobs.Node `json:"nodes,omitempty"`
	// Conns are the nodes' connection ids as the job's creation found them, so that sending
	// reads nothing; a connection closed since is answered 410 by API Gateway, and the node
	// is offered again.
	Conns map[string]string `json:"conns,omitempty"`
}

// connCache passes the connection ids the creation's lookup found to the handoff that follows.
type connCache struct {
	mu sync.Mutex
	m  map[string]string
}

// maxCachedConns bounds connCache: entries of nodes that were looked up but not claimed
// (a job's concurrency limit) are dropped when it is reached.
const maxCachedConns = 200_000

func newConnCache() *connCache { return &connCache{m: map[string]string{}} }

func (c *connCache) put(node, conn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedConns {
		clear(c.m)
	}
	c.m[node] = conn
}

// take returns and forgets the connection ids of nodes.
func (c *connCache) take(nodes []jobs.Node) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for _, n := range nodes {
		if id, ok := c.m[n.Name]; ok {
			out[n.Name] = id
			delete(c.m, n.Name)
		}
	}
	return out
}

type knownConnsKey struct{}

// withKnownConnections makes the sender use conns instead of reading the inventory.
func withKnownConnections(ctx context.Context, conns map[string]string) context.Context {
	if len(conns) == 0 {
		return ctx
	}
	return context.WithValue(ctx, knownConnsKey{}, conns)
}

func knownConnection(ctx context.Context, node string) (string, bool) {
	conns, _ := ctx.Value(knownConnsKey{}).(map[string]string)
	id, ok := conns[node]
	return id, ok && id != ""
}

// Limits of the dispatch queue's messages.
const (
	// NodesPerMessage is the most claimed nodes one dispatch message carries (about 40 KB).
	NodesPerMessage = 100
	// maxBatchBytes keeps one SendMessageBatch under SQS's 256 KiB per request.
	maxBatchBytes = 240 << 10
	// maxBatchEntries is SQS's limit of messages per SendMessageBatch.
	maxBatchEntries = 10
	// sendBatchWorkers bounds the SendMessageBatch calls in flight for one job.
	sendBatchWorkers = 8
)

// QueueSender is the part of the SQS client the dispatch queue uses.
type QueueSender interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// queueHandoff returns the orchestrator's Handoff to the dispatch queue at url: the claimed
// nodes in messages of NodesPerMessage, with their connection ids from conns, a message naming
// the job alone when none were claimed (its dispatch claims them).
func queueHandoff(q QueueSender, url string, conns *connCache) func(ctx context.Context, job jobs.Job, claimed []jobs.Node) error {
	return func(ctx context.Context, job jobs.Job, claimed []jobs.Node) error {
		var bodies []string
		add := func(m DispatchMessage) error {
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			bodies = append(bodies, string(b))
			return nil
		}
		if len(claimed) == 0 {
			if err := add(DispatchMessage{JobID: job.ID}); err != nil {
				return err
			}
		}
		for start := 0; start < len(claimed); start += NodesPerMessage {
			share := claimed[start:min(start+NodesPerMessage, len(claimed))]
			if err := add(DispatchMessage{JobID: job.ID, Nodes: share, Conns: conns.take(share)}); err != nil {
				return err
			}
		}
		return sendBodies(ctx, q, url, bodies)
	}
}

// sendBodies sends message bodies in batches of at most maxBatchEntries and maxBatchBytes,
// sendBatchWorkers batches at a time.
func sendBodies(ctx context.Context, q QueueSender, url string, bodies []string) error {
	var batches [][]sqstypes.SendMessageBatchRequestEntry
	var cur []sqstypes.SendMessageBatchRequestEntry
	size := 0
	for i, b := range bodies {
		if len(cur) == maxBatchEntries || len(cur) > 0 && size+len(b) > maxBatchBytes {
			batches, cur, size = append(batches, cur), nil, 0
		}
		cur = append(cur, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b)})
		size += len(b)
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	errs := make([]error, len(batches))
	parallel(len(batches), sendBatchWorkers, func(i int) { errs[i] = sendBatch(ctx, q, url, batches[i]) })
	return errors.Join(errs...)
}

// sendBatch sends one batch, sending again (a few times) the entries SQS reports failed.
func sendBatch(ctx context.Context, q QueueSender, url string, entries []sqstypes.SendMessageBatchRequestEntry) error {
	for attempt := 0; ; attempt++ {
		out, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return fmt.Errorf("dispatch queue: %w", err)
		}
		if len(out.Failed) == 0 {
			return nil
		}
		failed := map[string]bool{}
		for _, f := range out.Failed {
			failed[aws.ToString(f.Id)] = true
		}
		var again []sqstypes.SendMessageBatchRequestEntry
		for _, e := range entries {
			if failed[aws.ToString(e.Id)] {
				again = append(again, e)
			}
		}
		if attempt == 2 {
			return fmt.Errorf("dispatch queue: %d messages refused: %s", len(again), aws.ToString(out.Failed[0].Message))
		}
		entries = again
	}
}

// DispatchMessages is the dispatch function's handler: it takes a batch of dispatch queue
// messages (the queue's event source mapping, with partial batch responses) and, for each,
// sends the claimed nodes it carries or moves its job on. A message that fails is reported
// for SQS to deliver again; the others are done.
//
// Sending is at-least-once: SQS may deliver a message twice, and a lease per message keeps
// two deliveries from sending at the same time; a delivery after the lease expired (the
// first invocation failed or timed out) sends the nodes again, which agents answer without
// running anything twice (their spool knows the transaction).
func (a *App) DispatchMessages(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	ctx, tally := usage.Start(ctx)
	tally.Add(store.Usage{Invocations: 1})
	var resp events.SQSEventResponse
	for _, rec := range ev.Records {
		if err := a.dispatchOne(ctx, rec); err != nil {
			a.log.Error("dispatch message", "message_id", rec.MessageId, "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

func (a *App) dispatchOne(ctx context.Context, rec events.SQSMessage) error {
	var m DispatchMessage
	if err := json.Unmarshal([]byte(rec.Body), &m); err != nil || m.JobID <= 0 {
		// Nothing to retry: a malformed message would fail every time. Log and drop it.
		a.log.Error("dispatch message: not a dispatch message", "message_id", rec.MessageId, "err", err)
		return nil
	}
	// The lease keeps concurrent deliveries of one share (SQS delivers at least once) from
	// both sending; it is kept after sending, so that a delivery soon after is dropped too.
	// A job without shares is moved on by one invocation at a time.
	name, hold := fmt.Sprintf("advance/%d", m.JobID), advanceLease
	if len(m.Nodes) > 0 {
		name, hold = fmt.Sprintf("send/%d/%s", m.JobID, m.Nodes[0].Name), sendLease
	}
	owner, now := protocol.NewID(), time.Now()
	taken, err := a.Store.TryLease(ctx, name, owner, now, now.Add(hold))
	if err != nil {
		return fmt.Errorf("dispatch lease %s: %w", name, err)
	}
	if !taken {
		a.log.Info("dispatch message: another invocation has it", "lease", name)
		return nil
	}
	if len(m.Nodes) > 0 {
		return a.Orchestrator.SendClaimed(withKnownConnections(ctx, m.Conns), m.JobID, m.Nodes)
	}
	defer func() {
		if err := a.Store.ReleaseLease(context.WithoutCancel(ctx), name, owner); err != nil {
			a.log.Warn("release dispatch lease", "lease", name, "err", err)
		}
	}()
	return a.Orchestrator.Dispatch(ctx, m.JobID)
}

// Leases of the dispatch function. sendLease outlasts the function's timeout (60 s) and is
// shorter than the queue's visibility timeout (6 min), so a share whose invocation failed is
// sent by the delivery that follows.
const (
	sendLease    = 2 * time.Minute
	advanceLease = time.Minute
)

// lookupBatch is how many names one read of the connected lookup asks for (BatchGetItem's
// limit), lookupWorkers how many such reads run at once.
const (
	lookupBatch   = 100
	lookupWorkers = 8
)

// connectedLookup tells which of names have an agent connected, from their connection items
// (BatchGetItem, lookupBatch names a call, lookupWorkers calls at once), and keeps their
// connection ids in conns for the handoff. A name that cannot be read counts as not
// connected: its node waits for its agent, and the sweep offers it again.
func connectedLookup(st *dynamo.Store, conns *connCache) func(ctx context.Context, names []string) (map[string]bool, error) {
	return func(ctx context.Context, names []string) (map[string]bool, error) {
		batches := (len(names) + lookupBatch - 1) / lookupBatch
		found := make([]map[string]string, batches)
		parallel(batches, lookupWorkers, func(b int) {
			got, err := st.Connections(ctx, names[b*lookupBatch:min((b+1)*lookupBatch, len(names))])
			if err == nil {
				found[b] = got
			}
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out := make(map[string]bool, len(names))
		for _, n := range names {
			out[n] = false
		}
		for _, got := range found {
			for n, id := range got {
				out[n] = true
				conns.put(n, id)
			}
		}
		return out, nil
	}
}

// parallel calls f(i) for every i in [0, n), at most workers at a time, and returns when all
// have returned.
func parallel(n, workers int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
