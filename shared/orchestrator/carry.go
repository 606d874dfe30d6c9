package orchestrator

import (
	"context"
	"sync"
	"time"

	"github.com/baton-run/baton/shared/store"
	"github.com/baton-run/baton/shared/usage"
)

// carried is the usage that result invocations of this process left for the next result of
// the same job to carry (Config.UsageCarry). Recording a result updates the job's counters,
// and the metered store adds the usage tallied so far to that update (no write of its own);
// what the invocation does after it — its events, its read of the counts, the counter
// update itself — would cost a write of the job's usage, one per node-run. Instead it is
// left here and the next result of the job in this process takes it into its tally, so
// that its counter update carries it. What is left when no result comes is written:
//   - at once, by a result whose invocation ended the job (nothing more will carry it);
//   - otherwise UsageCarry after the first usage was left, all of it (a write per job with
//     usage left over, at most once per UsageCarry: on AWS when the instance next runs).
//
// An AWS Lambda instance that is shut down with usage left loses it: at most what one
// invocation did after its counter update, per instance and job (about 1 write unit and 1–5
// read units), so a job's baton_usage can fall short of the meter by that much.
type carried struct {
	mu      sync.Mutex
	left    map[int64]store.Usage
	ended   map[int64]bool // jobs this process ended: the last maxEndedKept, oldest first in order
	order   []int64
	pending bool // a flush is scheduled
}

// maxEndedKept bounds the jobs carried remembers as ended here.
const maxEndedKept = 1024

// take removes and returns the usage left for job jobID.
func (c *carried) take(jobID int64) store.Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.left[jobID]
	delete(c.left, jobID)
	return u
}

// leave adds u to job jobID's usage left over; it is true when the caller must schedule a
// flush (none is).
func (c *carried) leave(jobID int64, u store.Usage) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == nil {
		c.left = map[int64]store.Usage{}
	}
	c.left[jobID] = addUsage(c.left[jobID], u)
	if c.pending {
		return false
	}
	c.pending = true
	return true
}

// end records that this process ended job jobID.
func (c *carried) end(jobID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == nil {
		c.ended = map[int64]bool{}
	}
	if c.ended[jobID] {
		return
	}
	c.ended[jobID] = true
	c.order = append(c.order, jobID)
	if len(c.order) > maxEndedKept {
		delete(c.ended, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *carried) isEnded(jobID int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended[jobID]
}

// drain removes and returns every job's usage left over.
func (c *carried) drain() map[int64]store.Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	left := c.left
	c.left, c.pending = nil, false
	return left
}

func addUsage(a, b store.Usage) store.Usage {
	a.Invocations += b.Invocations
	a.MessagesIn += b.MessagesIn
	a.MessagesOut += b.MessagesOut
	a.MessageUnits += b.MessageUnits
	a.ReadUnits += b.ReadUnits
	a.WriteUnits += b.WriteUnits
	a.S3Writes += b.S3Writes
	a.S3Reads += b.S3Reads
	return a
}

// takeCarried adds the usage left for job jobID to ctx's tally, for this result's counter
// update to carry.
func (s *Service) takeCarried(ctx context.Context, jobID int64) {
	if s.cfg.UsageCarry > 0 {
		if u := s.carried.take(jobID); !usage.Zero(u) {
			usage.From(ctx).Add(u)
		}
	}
}

// chargeResult is charge for a result's invocation: with UsageCarry, what its tally still
// holds is left for the job's next result, unless this process ended the job.
func (s *Service) chargeResult(ctx context.Context, jobID int64) {
	if s.cfg.UsageCarry <= 0 || s.carried.isEnded(jobID) {
		s.charge(ctx, jobID)
		return
	}
	u := usage.From(ctx).Take()
	if usage.Zero(u) {
		return
	}
	if s.carried.leave(jobID, u) {
		// A timer, not the injected clock: nothing here is compared with a time; on AWS
		// it fires when the instance next runs.
		time.AfterFunc(s.cfg.UsageCarry, s.flushCarried)
	}
}

// flushCarried writes every job's usage left over.
func (s *Service) flushCarried() {
	for jobID, u := range s.carried.drain() {
		if err := s.store.AddJobUsage(context.Background(), jobID, u); err != nil {
			s.log.Warn("record job usage", "job_id", jobID, "err", err)
		}
	}
}

// jobEndedHere records that this process ended job jobID: its results' usage is written, not
// left over.
func (s *Service) jobEndedHere(jobID int64) {
	if s.cfg.UsageCarry > 0 {
		s.carried.end(jobID)
	}
}
