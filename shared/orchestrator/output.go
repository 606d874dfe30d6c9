package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/store"
)

// Live task output: agents asked to stream (protocol.TaskParams.Stream) send their task's
// output in sequence-numbered chunks (protocol.TypeOutput) while it runs; they are stored
// once per (job, node, seq) and read with Output and WaitOutput. The node's result stays
// authoritative: it holds the whole output whatever chunks were lost.

// DefaultOutputGrace is how long after a node finished its output stays not done: an output
// message sent just before the result may be handled just after it (AWS runs each message
// in its own invocation).
const DefaultOutputGrace = 2 * time.Second

// outputState is a Service's live output bookkeeping.
type outputState struct {
	// all makes every task stream (baton serve); otherwise only jobs that asked.
	all   bool
	grace time.Duration
	poll  time.Duration // how often WaitOutput reads again (0: waitPoll)

	waiters waiters[outputKey, struct{}] // readers waiting for a node's next chunks

	mu sync.Mutex
	// owners caches the transactions whose sender this process checked: txn → record.
	owners map[string]outputOwner
}

type outputKey struct {
	job  int64
	node string
}

type outputOwner struct {
	job  int64
	node string
}

// maxOwners bounds the owners cache: past it, the cache starts over.
const maxOwners = 4096

// WithStreamAll makes every task job stream its output (baton serve, where storing it costs
// nothing metered); without it only jobs submitted with Stream do (AWS).
func WithStreamAll() Option { return func(s *Service) { s.output.all = true } }

// WithOutputGrace sets how long after a node finished its output is still not done
// (DefaultOutputGrace).
func WithOutputGrace(d time.Duration) Option { return func(s *Service) { s.output.grace = d } }

// WithOutputPoll sets how often WaitOutput reads a node's output again while it waits (250 ms
// by default): chunks another process stores are seen this late at most. Each read is a store
// query (DynamoDB bills it), so the AWS deployment reads less often than baton serve.
func WithOutputPoll(d time.Duration) Option { return func(s *Service) { s.output.poll = d } }

// streams reports whether the requests of a job with payload p ask for live output.
func (s *Service) streams(p payload) bool { return p.Stream || s.output.all }

// onOutput stores the chunks of an output message from node, after checking that the
// transaction was sent to it.
func (s *Service) onOutput(ctx context.Context, node string, o protocol.Output) error {
	jobID, err := s.outputJob(ctx, node, o.TransactionID)
	if err != nil {
		return err
	}
	s.charge(ctx, jobID)
	chunks := make([]store.OutputChunk, len(o.Chunks))
	for i, c := range o.Chunks {
		chunks[i] = store.OutputChunk{Seq: c.Seq, Stream: c.Stream, Data: c.Data}
	}
	if err := s.store.PutOutput(ctx, jobID, node, chunks); err != nil {
		return fmt.Errorf("output of %s: %w", o.TransactionID, err)
	}
	s.output.waiters.wake(outputKey{jobID, node}, struct{}{})
	return nil
}

// outputJob returns the job of transaction txn once it is known to have been sent to node:
// from this process's caches, else one read of the record (findOwn).
func (s *Service) outputJob(ctx context.Context, node, txn string) (int64, error) {
	o := &s.output
	o.mu.Lock()
	own, ok := o.owners[txn]
	o.mu.Unlock()
	if ok && own.node == node {
		return own.job, nil
	}
	if n, ok := s.started.get(txn); ok && n.Name == node {
		own = outputOwner{n.JobID, n.Name}
	} else {
		n, err := s.findOwn(ctx, node, txn)
		if errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("%w: transaction %s is unknown", ErrForbidden, txn)
		}
		if err != nil {
			return 0, err
		}
		own = outputOwner{n.JobID, n.Name}
	}
	o.mu.Lock()
	if o.owners == nil || len(o.owners) >= maxOwners {
		o.owners = map[string]outputOwner{}
	}
	o.owners[txn] = own
	o.mu.Unlock()
	return own.job, nil
}

// OutputPage is a page of a node's live output.
type OutputPage struct {
	Chunks []store.OutputChunk
	// Next is the seq of the last chunk returned, or the after asked for when none was.
	Next int64
	// Done says that the node has finished and no more chunks will come after Next.
	Done bool
}

// DefaultOutputLimit is how many chunks Output returns when asked for none in particular.
const DefaultOutputLimit = 500

// Output returns up to limit (0: DefaultOutputLimit; at most store.MaxOutputList) chunks of
// node's output in job jobID after seq after. While the node runs, the chunks returned are
// the run with no gap from after+1 (a missing chunk may still arrive); once it has finished
// (and DefaultOutputGrace has passed) every stored chunk is returned, gaps and all. An unknown
// job is an *Error of kind unknown-job, a node not in the job one of kind unknown-node.
func (s *Service) Output(ctx context.Context, jobID int64, node string, after int64, limit int) (OutputPage, error) {
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	limit = min(limit, store.MaxOutputList)
	after = max(after, 0)
	// The record first: chunks stored before it was read finished are all in the read below.
	n, err := s.store.GetJobNode(ctx, jobID, node)
	if errors.Is(err, store.ErrNotFound) {
		if _, jerr := s.Job(ctx, jobID); jerr != nil {
			return OutputPage{}, jerr
		}
		return OutputPage{}, &Error{Kind: KindUnknownNode, Msg: fmt.Sprintf("Node %s is not part of job %d", node, jobID),
			Details: map[string]any{"job": fmt.Sprint(jobID), "node": node}, Err: err}
	}
	if err != nil {
		return OutputPage{}, fmt.Errorf("job %d node %s: %w", jobID, node, err)
	}
	finished := n.State.Terminal() && (n.FinishedAt == nil || !s.clock().Before(n.FinishedAt.Add(s.outputGrace())))
	chunks, err := s.store.ListOutput(ctx, jobID, node, after, limit)
	if err != nil {
		return OutputPage{}, err
	}
	if !finished {
		for i, c := range chunks {
			if c.Seq != after+int64(i)+1 {
				chunks = chunks[:i]
				break
			}
		}
	}
	page := OutputPage{Chunks: chunks, Next: after, Done: finished && len(chunks) < limit}
	if len(chunks) > 0 {
		page.Next = chunks[len(chunks)-1].Seq
	}
	return page, nil
}

func (s *Service) outputGrace() time.Duration {
	if s.output.grace > 0 {
		return s.output.grace
	}
	return DefaultOutputGrace
}

// WaitOutput is Output that waits, up to d (at most MaxWait), for at least one chunk after
// after or for the output to be done. Chunks this process stores wake it at once; others
// (another process stored them) are seen within the output poll interval (WithOutputPoll).
func (s *Service) WaitOutput(ctx context.Context, jobID int64, node string, after int64, limit int, d time.Duration) (OutputPage, error) {
	d = min(d, MaxWait)
	woke, forget := s.output.waiters.add(outputKey{jobID, node})
	defer forget()
	timer := time.NewTimer(d)
	defer timer.Stop()
	every := waitPoll
	if s.output.poll > 0 {
		every = s.output.poll
	}
	poll := time.NewTicker(every)
	defer poll.Stop()
	for {
		page, err := s.Output(ctx, jobID, node, after, limit)
		if err != nil || len(page.Chunks) > 0 || page.Done || d <= 0 {
			return page, err
		}
		select {
		case <-woke:
			woke, forget = s.rewatch(jobID, node, forget)
		case <-poll.C:
		case <-timer.C:
			return s.Output(ctx, jobID, node, after, limit)
		case <-ctx.Done():
			return page, nil
		}
	}
}

func (s *Service) rewatch(jobID int64, node string, forget func()) (<-chan struct{}, func()) {
	forget()
	return s.output.waiters.add(outputKey{jobID, node})
}
